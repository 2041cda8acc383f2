"""Delta housekeeping shared by erasure and retention: find tables, vacuum now, keep silver in step.

Both jobs delete rows and then vacuum with zero retention, so that no earlier version of a table
can be read back. Two consequences are handled here: Delta refuses a zero retention unless its
safety check is switched off (done for the block only), and the change-feed files that
``presage build-profiles`` reads for bronze versions it has not consumed yet would be gone, so
these jobs run only when silver is up to date and then record their own versions as consumed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import unquote

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from presage.lakehouse import Lakehouse
from presage.profiles.job import BUILD_LOG

log = logging.getLogger(__name__)

RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# VACUUM lists a table's files in a Spark job of this many tasks (Spark's default: 10,000, which
# made a vacuum of a small table take 40 s on 2 cores); one task per core lists as fast.
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def hadoop_path(spark: SparkSession, path: str):
    """(Hadoop FileSystem, Path) of ``path``, for operations ``presage.fs`` does not offer."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def relative(root: str, path: str) -> str:
    """``path`` relative to the folder ``root``, whatever the scheme or URL encoding of either."""
    marker = root.split("://", 1)[-1].rstrip("/") + "/"
    path = unquote(path)
    return path.split(marker, 1)[1] if marker in path else path


def delta_tables(spark: SparkSession, lake: Lakehouse) -> list[str]:
    """Every Delta table under the lakehouse (a folder holding ``_delta_log``), relative to its root."""
    hfs, root = hadoop_path(spark, lake.root)
    if not hfs.exists(root):
        return []
    found: list[str] = []

    def walk(relative: str) -> None:
        folder = hadoop_path(spark, lake.path(relative))[1] if relative else root
        names = sorted(str(s.getPath().getName()) for s in hfs.listStatus(folder) if s.isDirectory())
        if "_delta_log" in names:
            found.append(relative)
            return
        for name in names:
            if not name.startswith("."):
                walk(f"{relative}/{name}" if relative else name)

    walk("")
    return found


def table_version(spark: SparkSession, path: str) -> int:
    """The current version of a Delta table, -1 when there is none."""
    if not DeltaTable.isDeltaTable(spark, path):
        return -1
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def _consumed(spark: SparkSession, lake: Lakehouse) -> dict[str, int]:
    path = lake.silver(BUILD_LOG)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    last = spark.read.format("delta").load(path).orderBy(F.desc("run")).first()
    return dict(last["versions"]) if last else {}


def _source_path(lake: Lakehouse, name: str) -> str:
    return lake.silver(name) if name == "identity_map" else lake.bronze(name)


def require_silver_current(spark: SparkSession, lake: Lakehouse, job: str) -> None:
    """Refuse to run while silver has not consumed every bronze version (see the module doc).

    Raises:
        ValueError: names the tables and the command that brings silver up to date.
    """
    consumed = _consumed(spark, lake)
    behind = [n for n, v in sorted(consumed.items()) if table_version(spark, _source_path(lake, n)) > v]
    if behind:
        raise ValueError(
            f"silver has not consumed the latest versions of {behind}: run `presage build-profiles` before "
            f"`presage {job}` (its vacuum removes the change-feed files build-profiles reads)"
        )


def record_consumed(spark: SparkSession, lake: Lakehouse) -> None:
    """Mark the versions written by this job as consumed by silver: their only changes are deletes,
    which silver either received directly (erasure) or does not follow (retention)."""
    consumed = _consumed(spark, lake)
    if not consumed:
        return
    versions = {name: table_version(spark, _source_path(lake, name)) for name in consumed}
    row = [(int(dt.datetime.now(dt.UTC).timestamp() * 1000), versions, 0)]
    (
        spark.createDataFrame(row, "run long, versions map<string,long>, persons_in_scope long")
        .write.format("delta").mode("append").save(lake.silver(BUILD_LOG))
    )


@contextmanager
def _session_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set Spark settings for the duration of the block only."""
    before = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def vacuum_now(spark: SparkSession, paths: Sequence[str]) -> None:
    """Delete every file the current version of each table does not need, change-feed files
    included, so that earlier versions cannot be read; rows hidden by deletion vectors are
    purged first, since a vacuum keeps the files that still hold them."""
    settings = {RETENTION_CHECK: "false", LISTING_PARALLELISM: str(spark.sparkContext.defaultParallelism)}
    with _session_conf(spark, settings):
        for path in paths:
            properties = DeltaTable.forPath(spark, path).detail().first()["properties"] or {}
            if properties.get("delta.enableDeletionVectors", "false").lower() == "true":
                spark.sql(f"REORG TABLE delta.`{path.replace('`', '``')}` APPLY (PURGE)")
            DeltaTable.forPath(spark, path).vacuum(0.0)
            log.info("vacuumed %s with zero retention", path)
