"""The pipeline on a real Spark standalone cluster: a master and two one-core workers started with
``spark-class`` on 127.0.0.1, the jobs submitted with ``deploy/submit.sh --target standalone``
(spark-submit, client mode, the installed interpreter on the workers) on a tiny generated lakehouse.

Submitted: ingest, build_profiles, build_features, ``feast apply``, materialize and the training of
the purchase propensity model. Not submitted here, for time: the three other trainings and
``score`` (each application costs minutes on two cores whatever the data size: every stage pays the
cluster's scheduling round trips; the same code runs in local mode across the rest of the suite).

Checked: each submission exits 0, the bronze, silver and gold tables and the online store are
written, the model is registered, the master's JSON lists every application as finished, and the
executors' logs in the workers' work directories show tasks on both workers (the xgboost.spark
training on both at once)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable
from mlflow import MlflowClient
from pyspark.find_spark_home import _find_spark_home

from presage.config import Settings
from presage.generate.params import GenParams
from presage.generate.run import generate
from presage.lakehouse import Lakehouse
from presage.models import tracking
from presage.scoring.predict import PURCHASE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = ROOT / "deploy" / "submit.sh"
WORKERS = 2
STEP_TIMEOUT = 1800  # seconds; a guard against a hung job, far above a step's normal minute or two
# Small enough to be quick, long enough for a 28-day horizon to leave training and holdout snapshots
# with positives for every goal.
LAKE = {"customers": 150, "days": 90, "seed": 3}
CONFIG = {
    "horizon_days": 21,
    "models": {"num_workers": WORKERS, "max_rounds": 20, "early_stopping_rounds": 5, "holdout_snapshots": 1},
    "scoring": {"segments": {"micro_segments": 4, "max_iterations": 10},
                "recommendations": {"rank": 8, "max_iterations": 3}},
}
# Tiny data: few shuffle partitions, no driver UI, the driver on 127.0.0.1.
SPARK_CONF = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4", "spark.ui.enabled": "false",
              "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
              "spark.executor.memory": "1g", "spark.driver.memory": "2g",
              # Delta rebuilds a table's state in 50 tasks by default: pure overhead on a few files.
              "spark.databricks.delta.snapshotPartitions": "2",
              # Tiny tasks: launch at once rather than wait up to 3 s for a data-local slot.
              "spark.locality.wait": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


def _stop(processes: list[subprocess.Popen]) -> None:
    """Terminate each daemon's process group (its executors and Python workers too), then kill."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run a command in its own process group, killed whole (spark-submit's Python driver too) if it
    outlasts ``timeout``; returns (exit code, stderr)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        return -1, f"timed out after {timeout:.0f} s\n{stderr}"
    except BaseException:  # interrupted: leave no driver behind
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process.returncode, stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A standalone master and two workers (1 core, 2g each); yields the master URL, its web UI port
    and the workers' work directories. Stopped whatever happens."""
    folder = tmp_path_factory.mktemp("cluster")
    spark_class = Path(_find_spark_home()) / "bin" / "spark-class"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    port, ui_port = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []

    def daemon(name: str, *args: str) -> None:
        with open(folder / f"{name}.log", "wb") as log:  # the daemon keeps its own copy of the descriptor
            processes.append(subprocess.Popen([str(spark_class), *args], stdout=log, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True))

    work_dirs = [folder / f"worker{i}" for i in range(WORKERS)]
    try:
        daemon("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
               "--webui-port", str(ui_port))
        for i, work_dir in enumerate(work_dirs):
            daemon(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                   "--webui-port", str(_free_port()), "--cores", "1", "--memory", "2g", "--work-dir", str(work_dir), url)
        deadline = time.monotonic() + 180
        while True:
            try:
                if _master_state(ui_port).get("aliveworkers") == WORKERS:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(folder.glob("*.log")))
                pytest.fail(f"the standalone cluster did not come up with {WORKERS} workers:\n{logs}")
            time.sleep(1)
        yield url, ui_port, work_dirs
    finally:
        _stop(processes)


@pytest.fixture(scope="module")
def pipeline(cluster, spark, tmp_path_factory: pytest.TempPathFactory):
    """Raw drops generated in-process (demo data, not part of the production pipeline), then every job
    submitted to the cluster in order; returns (lakehouse root, number of applications, seconds per step)."""
    url, _, _ = cluster
    folder = tmp_path_factory.mktemp("cluster_lake")
    home = folder / "lake"
    generate(spark, GenParams(**LAKE), Lakehouse(str(home)))
    config = folder / "presage.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PRESAGE_HOME": str(home), "SPARK_HOME": _find_spark_home(),
           "PRESAGE_HMAC_KEY": "cluster-test-key", "GX_ANALYTICS_ENABLED": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    confs = [arg for key, value in SPARK_CONF.items() for arg in ("--conf", f"{key}={value}")]
    steps: list[tuple[str, list[str]]] = [
        ("ingest", []), ("build_profiles", []), ("build_features", []), ("feast apply", []), ("materialize", []),
        ("train", ["--model", PURCHASE]),
    ]
    seconds: dict[str, float] = {}
    applications = 0
    for job, args in steps:
        start = time.monotonic()
        if job == "feast apply":
            code, stderr = _run([str(Path(sys.executable).parent / "feast"), "apply"], ROOT / "feature_repo", env, 600)
        else:
            command = ["bash", str(SUBMIT), "--target", "standalone", "--master", url, "--python", sys.executable,
                       *confs, job, "--config", str(config), *args]
            code, stderr = _run(command, ROOT, env, STEP_TIMEOUT)
            applications += 1
        step = f"{job} {' '.join(args)}".strip()
        assert code == 0, f"{step} exited {code}:\n{stderr[-4000:]}"
        seconds[step] = round(time.monotonic() - start, 1)
        print(f"cluster step {step}: {seconds[step]} s", flush=True)
    return str(home), applications, seconds


def test_every_layer_the_online_store_and_the_model_are_written(pipeline):
    home, _, _ = pipeline
    lake = Lakehouse(home)
    for path in (lake.bronze("orders"), lake.bronze("web_events"), lake.silver("customer_profile"),
                 lake.silver("identity_map"), lake.gold("customer_features"), lake.gold("customer_attributes")):
        assert DeltaTable(path).to_pyarrow_table().num_rows > 0, path
    with sqlite3.connect(Path(home) / "feast" / "online.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        behaviour = next(name for name in tables if name.endswith("customer_behaviour"))
        assert db.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{behaviour}"').fetchone()[0] > 0
    # The registry read with a client of its own: the session's MLflow URI stays where it is.
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow/mlflow.db", registry_uri=f"sqlite:///{home}/mlflow/mlflow.db")
    name = tracking.registered_name(Settings(home=home), PURCHASE)
    assert str(client.get_model_version_by_alias(name, tracking.CHAMPION).version) == "1"


def _finished_applications(ui_port: int) -> list[dict]:
    state = _master_state(ui_port)
    assert state["aliveworkers"] == WORKERS and not state["activeapps"], state
    return state["completedapps"]


def test_master_lists_every_application_finished(cluster, pipeline):
    _, ui_port, _ = cluster
    _, applications, _ = pipeline
    finished = _finished_applications(ui_port)
    assert len(finished) == applications
    assert {app["state"] for app in finished} == {"FINISHED"}


def _tasks_on(work_dir: Path, app_id: str) -> int | None:
    """Tasks the executors of one worker ran for an application, from their logs (Spark's executor
    logs "Running task ..." at INFO for each); None when the worker launched no executor for it."""
    app = work_dir / app_id
    if not app.is_dir():
        return None
    return sum(log.read_text(errors="replace").count("Running task ") for log in app.glob("*/stderr"))


def test_executors_on_both_workers_ran_tasks(cluster, pipeline):
    _, ui_port, work_dirs = cluster
    tasks = {(app["id"], app["name"]): [_tasks_on(d, app["id"]) for d in work_dirs]
             for app in _finished_applications(ui_port)}
    assert all(None not in counts for counts in tasks.values()), f"an application without an executor on a worker: {tasks}"
    for worker in range(WORKERS):
        assert sum(counts[worker] for counts in tasks.values()) > 0, f"no task ran on worker {worker}: {tasks}"
    # xgboost.spark trains in barrier mode, one task per worker at once: the training used both.
    trainings = [counts for (_, name), counts in tasks.items() if name == "presage-train"]
    assert len(trainings) == 1 and min(trainings[0]) > 0, tasks
