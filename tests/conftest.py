"""One SparkSession for the whole suite (test profile: local[2], no UI, 2 shuffle partitions).

The lakehouse of the session lives in a temporary folder named by PRESAGE_HOME, so nothing a test
writes lands in the working copy.
"""

from __future__ import annotations

import os

import pytest

from presage.config import Settings


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
