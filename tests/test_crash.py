"""Crash safety: writing jobs SIGKILLed mid-write, then rerun, leave the tables of a clean run.

One tiny generated lakehouse is copied twice. On the first copy ``ingest``, ``build-profiles`` and
``build-features`` run once each, in the test's session, while on the second each job runs as
``python -m presage.cli`` and is killed (the whole process tree, JVM included, with SIGKILL) at
points found by watching the filesystem, then rerun, sometimes killed again during its own
restart, and finally run to the end.
Then every Delta table of the two copies must hold the same rows (as multisets).

Left out of the comparison, because they differ between two runs by design:
- ``_ingested_at`` (bronze, quarantine, quality, silver facts) and ``planned_at`` (ingest log): the
  wall-clock time a batch was planned. A resumed batch keeps the time of its plan, but the clean
  copy planned its batch at another moment. Likewise ``merged_at`` of ``silver/identity_merges``.
- ``silver/_build_log``: ``run`` is the wall-clock time of the run, and ``versions`` holds Delta
  table versions, which a killed run advances (its commits stay in each table's history); only the
  set of tables it records is compared.
``_source_file`` (absolute path of the raw file) is compared relative to the lakehouse root, and
doubles are rounded to 1e-9, since the order of floating-point sums may follow the file layout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, FloatType, MapType

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = {"customers": 120, "days": 45, "seed": 13, "daily_drops": 0}  # two monthly drops per source
KEY = "crash-test-key"  # one HMAC key for both copies, so that pseudonyms agree
IGNORED = {"_ingested_at", "planned_at", "merged_at"}


def _committed(home: Path, table: str, version: int = 0) -> bool:
    return (home / table / "_delta_log" / f"{version:020d}.json").exists()


def _uncommitted_data(home: Path, table: str) -> bool:
    """A data file of ``table`` is on disk and the table's first commit is not."""
    folder = home / table
    return folder.is_dir() and not _committed(home, table) and any(folder.rglob("*.parquet"))


@dataclass(frozen=True)
class KillPoint:
    """When to kill a job: ``reached`` has become true while ``passed`` is still false."""

    name: str
    reached: Callable[[Path], bool]
    passed: Callable[[Path], bool]


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (PySpark's worker daemon leaves the job's process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Lakes:
    """Runs ``presage`` jobs as subprocesses on one lakehouse copy."""

    def __init__(self, home: Path, work: Path) -> None:
        self.home, self.work = home, work
        self.config = work / "crash.yaml"
        # A small heap per job: the data is tiny, and two jobs run beside the test's own session.
        self.config.write_text("spark:\n  profile: test\n  conf:\n    spark.driver.memory: 1g\n")
        path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PRESAGE_HOME": str(home), "PRESAGE_HMAC_KEY": KEY, "PYTHONPATH": path,
                    "GX_ANALYTICS_ENABLED": "false"}
        self.log = work / f"{home.name}.log"

    def run(self, job: str, kill: KillPoint | None = None, timeout: float = 1800) -> None:
        """Run ``job`` to the end, or kill its process tree at ``kill`` (which it must reach)."""
        command = [sys.executable, "-m", "presage.cli", "--config", str(self.config), "--log-level", "WARNING", job]
        with self.log.open("a") as out:
            out.write(f"\n=== {job} (kill at: {kill.name if kill else 'none'})\n")
            out.flush()
            proc = subprocess.Popen(command, cwd=self.work, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            deadline = time.monotonic() + timeout
            try:
                while proc.poll() is None:
                    if kill is not None and kill.reached(self.home):
                        os.killpg(proc.pid, signal.SIGSTOP)  # freeze driver and JVM at once, then kill them all
                        _signal(_tree(proc.pid), signal.SIGKILL)
                        proc.wait()
                        assert not kill.passed(self.home), f"{job}: killed too late, after {kill.name}"
                        return
                    assert time.monotonic() < deadline, f"{job} did not finish in {timeout} s"
                    time.sleep(0.01)
            finally:
                if proc.poll() is None:
                    _signal(_tree(proc.pid), signal.SIGKILL)
                    proc.wait()
        tail = self.log.read_text()[-3000:]
        assert proc.returncode == 0, f"{job} failed:\n{tail}"
        assert kill is None, f"{job} finished without reaching its kill point {kill.name}"


def _tables(home: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(home)) for p in home.rglob("_delta_log"))


def _canonical(spark: SparkSession, home: Path, table: str) -> DataFrame:
    df = spark.read.format("delta").load(str(home / table))
    if table.endswith("_build_log"):
        return df.select(F.array_sort(F.map_keys("versions")).alias("tables"), "persons_in_scope")
    out = df.drop(*IGNORED)
    for field in out.schema.fields:
        column = F.col(f"`{field.name}`")
        if field.name == "_source_file":
            column = F.replace(column, F.lit(str(home)), F.lit(""))
        elif isinstance(field.dataType, MapType):
            column = F.array_sort(F.map_entries(column))
        elif isinstance(field.dataType, (DoubleType, FloatType)):
            column = F.round(column, 9)
        else:
            continue
        out = out.withColumn(field.name, column)
    return out


def _differences(spark: SparkSession, clean: Path, crashed: Path) -> dict[str, str]:
    """Tables whose rows differ between the two copies, with a few differing rows."""
    found = {}
    for table in _tables(clean):
        a, b = _canonical(spark, clean, table), _canonical(spark, crashed, table)
        only_clean, only_crashed = a.exceptAll(b), b.exceptAll(a)
        if only_clean.isEmpty() and only_crashed.isEmpty():
            continue
        found[table] = (f"{a.count()} rows clean, {b.count()} after crashes; only clean: "
                        f"{only_clean.limit(3).collect()}; only after crashes: {only_crashed.limit(3).collect()}")
    return found


@pytest.fixture(scope="module")
def tiny_raw(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw drops of a tiny lakehouse (not the session's), generated once."""
    from presage.generate.params import GenParams
    from presage.generate.run import generate
    from presage.lakehouse import Lakehouse

    home = tmp_path_factory.mktemp("crash_raw")
    generate(spark, GenParams(**TINY), Lakehouse(str(home)))
    return home


INGEST_LOG = "bronze/_ingest_log"
FEATURES, ATTRIBUTES = "gold/customer_features", "gold/customer_attributes"

KILLS = {
    "ingest": [
        # Every source's batch is planned in the log; nothing else is written yet.
        KillPoint("the ingest log records the planned batches", lambda h: _committed(h, INGEST_LOG),
                  lambda h: _committed(h, "bronze/customers")),
        # Resuming those batches: the orders append is in bronze (txnAppId/txnVersion); its
        # quarantine rows, quality results and committed mark are not.
        KillPoint("bronze/orders committed", lambda h: _committed(h, "bronze/orders"),
                  lambda h: _committed(h, "bronze/_quarantine", 2)),
    ],
    "build-profiles": [
        # Identity map and the first fact tables are in silver; the other facts and profiles are not.
        KillPoint("silver/order_items committed", lambda h: _committed(h, "silver/order_items"),
                  lambda h: _committed(h, "silver/web_events")),
    ],
    "build-features": [
        # Behaviour snapshots committed; attribute data files on disk before their table's commit.
        KillPoint("gold/customer_attributes data files before its commit",
                  lambda h: _committed(h, FEATURES) and _uncommitted_data(h, ATTRIBUTES),
                  lambda h: _committed(h, ATTRIBUTES)),
    ],
}


def _clean_run(spark: SparkSession, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: the three jobs run once each, in this session (a warm JVM: the same code the
    CLI calls, without three more JVM start-ups beside the killed jobs)."""
    from presage.config import Settings
    from presage.features.job import build_features
    from presage.ingest.job import run as ingest
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver

    with monkeypatch.context() as env:
        env.setenv("PRESAGE_HOME", str(home))
        env.setenv("PRESAGE_HMAC_KEY", KEY)
        settings = Settings(spark={"profile": "test"})
        lake = Lakehouse.of(settings)
        ingest(spark, settings)
        build_silver(spark, settings, lake)
        build_features(spark, settings, lake)


def test_killed_jobs_rerun_to_the_tables_of_a_clean_run(spark, tiny_raw: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clean, crashed = tmp_path / "clean", Lakes(tmp_path / "crashed", tmp_path)
    for home in (clean, crashed.home):
        shutil.copytree(tiny_raw, home)

    failures: list[BaseException] = []

    def crash_and_rerun() -> None:
        try:
            for job, points in KILLS.items():
                for point in points:
                    crashed.run(job, kill=point)
                crashed.run(job)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            failures.append(exc)

    killer = threading.Thread(target=crash_and_rerun)
    killer.start()
    try:
        _clean_run(spark, clean, monkeypatch)
    finally:
        killer.join()
    if failures:
        raise failures[0]

    assert _tables(crashed.home) == _tables(clean)
    assert len(_tables(clean)) >= 20
    assert _differences(spark, clean, crashed.home) == {}
    # The killed write's files are still on disk, outside the table (VACUUM removes them later).
    gold = crashed.home / ATTRIBUTES
    referenced = {f.rsplit("/", 1)[-1] for f in spark.read.format("delta").load(str(gold)).inputFiles()}
    assert {p.name for p in gold.rglob("*.parquet")} - referenced
