"""One SparkSession for the whole suite (test profile: local[2], no UI, 2 shuffle partitions).

The lakehouse of the session lives in a temporary folder named by PRESAGE_HOME, so nothing a test
writes lands in the working copy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from presage.config import ModelSettings, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("lakehouse")
    os.environ["PRESAGE_HOME"] = str(home)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return str(home)


@pytest.fixture(scope="session")
def settings(lake_home: str) -> Settings:
    return Settings(spark={"profile": "test"})


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from presage.session import get_spark

    session = get_spark("presage-tests", settings)
    yield session
    session.stop()


SMALL = {"customers": 300, "days": 90, "seed": 11}


@pytest.fixture(scope="session")
def generated(spark, settings: Settings) -> dict:
    """Small raw drops written once into the session lakehouse; returns the generator's manifest."""
    from presage.generate.params import GenParams
    from presage.generate.run import generate
    from presage.lakehouse import Lakehouse

    return generate(spark, GenParams(**SMALL), Lakehouse.of(settings))


@pytest.fixture(scope="session")
def ingested(spark, settings: Settings, generated: dict) -> list:
    """The generated drops ingested once into bronze; returns the batch results."""
    from presage.ingest.job import run

    return run(spark, settings)


@pytest.fixture(scope="session")
def silver(spark, settings: Settings, ingested: list):
    """The silver layer of the session lakehouse, built once from the ingested drops."""
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver

    return build_silver(spark, settings, Lakehouse.of(settings))


@pytest.fixture(scope="session")
def gold(spark, settings: Settings, silver):
    """Feature snapshots of the session lakehouse, built once; returns the FeatureResult."""
    from presage.features.job import build_features
    from presage.lakehouse import Lakehouse

    return build_features(spark, settings, Lakehouse.of(settings))


# The lakehouse models are trained on: eight months of history, so that labels over a 56-day horizon
# leave several training and holdout snapshots; few boosting rounds keep the suite quick.
MODEL_HORIZON = 56
MODEL_LAKE = {"customers": 1500, "days": 240, "seed": 5}


@pytest.fixture(scope="session")
def model_settings() -> Settings:
    return Settings(spark={"profile": "test"}, horizon_days=MODEL_HORIZON,
                    models=ModelSettings(max_rounds=150, early_stopping_rounds=20, holdout_snapshots=3))


@pytest.fixture(scope="session")
def model_lake(spark, tmp_path_factory: pytest.TempPathFactory, lake_home: str, model_settings: Settings) -> str:
    """A second lakehouse built once through gold and `feast apply`; returns its root. Modules using
    it point PRESAGE_HOME at it for their duration (see ``use_home``)."""
    from presage.features.job import build_features
    from presage.generate.params import GenParams
    from presage.generate.run import generate
    from presage.ingest.job import run
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver

    home = str(tmp_path_factory.mktemp("model_lake"))
    with use_home(home, lake_home):
        lake = Lakehouse.of(model_settings)
        generate(spark, GenParams(**MODEL_LAKE), lake)
        run(spark, model_settings)
        build_silver(spark, model_settings, lake)
        build_features(spark, model_settings, lake)
        applied = subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=ROOT / "feature_repo",
                                 capture_output=True, text=True, env={**os.environ, "PRESAGE_HOME": home}, timeout=600,
                                 check=False)
        assert applied.returncode == 0, applied.stderr[-2000:]
    return home


@pytest.fixture(scope="session")
def scored_lake(spark, model_lake: str, lake_home: str, model_settings: Settings):
    """The model lakehouse with a champion for each of the four goals (trained here unless a test
    already did) and one `presage score` run for today with the default settings; returns its
    ScoreResult. Use the lakehouse inside ``use_home(model_lake, lake_home)``."""
    from presage.models import tracking
    from presage.models.train import train
    from presage.scoring.job import run
    from presage.scoring.predict import GOALS

    with use_home(model_lake, lake_home):
        tracking.configure(model_settings)
        for goal in GOALS:
            if tracking.champion(tracking.registered_name(model_settings, goal)) is None:
                train(spark, model_settings, goal)
        return run(spark, model_settings)


class use_home:
    """Point PRESAGE_HOME at ``home`` inside a with-block, then back at what it was (``previous``,
    the session lakehouse, when it was unset), so that blocks nest: a session fixture entered
    inside a module's block does not move the module off its lakehouse."""

    def __init__(self, home: str, previous: str) -> None:
        self.home, self.previous = home, previous

    def __enter__(self) -> str:
        self.saved = os.environ.get("PRESAGE_HOME", self.previous)
        os.environ["PRESAGE_HOME"] = self.home
        return self.home

    def __exit__(self, *exc: object) -> None:
        os.environ["PRESAGE_HOME"] = self.saved


@contextmanager
def redis_server(folder: Path) -> Iterator[int]:
    """A real redis-server (Debian package) on 127.0.0.1 and a free port, without persistence,
    stopped when the block ends; yields its port."""
    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
