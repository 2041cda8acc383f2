"""``presage retention``: raw behavioural events older than N days leave bronze and the raw drops.

The sources of ``retention.sources`` (web, campaign and social events by default) are the raw trail
of what people did. Their bronze rows whose event time is older than the cutoff are deleted, with
their quarantined rows ingested before it, and so are the raw drop files whose every plausible
event is older (a file that still holds a newer event stays whole; a file not yet ingested, or in
an unfinished ingestion batch, is left for ingestion). The tables are then vacuumed with zero
retention, so no readable version keeps the deleted rows, and ``audit/retention`` records what went.
Silver keeps its clean facts: features are computed from them (docs/privacy.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from presage import fs
from presage.config import Settings
from presage.ingest.read import read_batch
from presage.lakehouse import Lakehouse
from presage.maintenance import record_consumed, relative, require_silver_current, vacuum_now
from presage.schemas import RAW_SOURCES, event_time_column, load_schema

log = logging.getLogger(__name__)

AUDIT = "retention"
AUDIT_SCHEMA = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("at", TimestampType(), False),
        StructField("days", IntegerType(), False),
        StructField("cutoff", TimestampType(), False),
        StructField("rows_removed", MapType(StringType(), LongType()), False),
        StructField("files_removed", ArrayType(StringType()), False),
        StructField("vacuumed", ArrayType(StringType()), False),
    ]
)


@dataclass(frozen=True)
class RetentionResult:
    run_id: str
    days: int
    cutoff: dt.datetime
    rows_removed: dict[str, int]  # bronze/<source> and bronze/_quarantine
    files_removed: list[str]  # relative to <home>/raw
    vacuumed: list[str]


def _sources(settings: Settings) -> list[tuple[str, str]]:
    """(source, event time column) of the configured sources.

    Raises:
        ValueError: a configured source that is unknown or has no event time.
    """
    out = []
    for source in settings.retention.sources:
        column = event_time_column(load_schema(source)) if source in RAW_SOURCES else None
        if column is None:
            known = [s for s in RAW_SOURCES if event_time_column(load_schema(s))]
            raise ValueError(f"retention.sources: {source!r} is not a raw source with an event time; known: {known}")
        out.append((source, column))
    return out


def _ingested(spark: SparkSession, lake: Lakehouse, source: str) -> set[str]:
    """Files of a source (relative to its raw folder) in committed ingestion batches."""
    if not DeltaTable.isDeltaTable(spark, lake.ingest_log):
        return set()
    rows = spark.read.format("delta").load(lake.ingest_log).where(F.col("source") == source).collect()
    committed = {r.batch_seq for r in rows if r.status == "committed"}
    return {r.file for r in rows if r.status == "planned" and r.batch_seq in committed}


def expired_files(spark: SparkSession, settings: Settings, lake: Lakehouse, source: str, column: str,
                  cutoff: dt.datetime, now: dt.datetime) -> list[str]:
    """Ingested raw files of ``source`` whose newest plausible event is older than ``cutoff``.

    Event times are read as ingestion reads them (text, then ``try_cast``); times later than now
    plus ``ingest.future_tolerance_hours`` are implausible and ignored, as ingestion rejects them.
    """
    root = lake.raw(source)
    ingested = _ingested(spark, lake, source)
    paths = [f.path for f in fs.list_files(spark, root) if relative(root, f.path) in ingested] if fs.exists(spark, root) else []
    if not paths:
        return []
    latest = now + dt.timedelta(hours=settings.ingest.future_tolerance_hours)
    times = F.nullif(F.trim(F.col(column)), F.lit("")).try_cast("timestamp")
    newest = read_batch(spark, paths, load_schema(source)).groupBy("_source_file").agg(
        F.max(F.when(times <= F.lit(latest), times)).alias("newest")
    )
    by_relative = {relative(root, p): p for p in paths}
    expired = newest.where(F.col("newest") < F.lit(cutoff)).select("_source_file").collect()
    return sorted(by_relative[relative(root, r[0])] for r in expired)


def _audit(spark: SparkSession, lake: Lakehouse, result: RetentionResult) -> None:
    row = [(result.run_id, dt.datetime.now(dt.UTC), result.days, result.cutoff, result.rows_removed,
            result.files_removed, result.vacuumed)]
    spark.createDataFrame(row, AUDIT_SCHEMA).write.format("delta").mode("append").save(lake.audit(AUDIT))


def run(spark: SparkSession, settings: Settings, days: int | None = None) -> RetentionResult:
    """Delete raw events older than ``days`` (default ``retention.raw_event_days``) and vacuum.

    Raises:
        ValueError: ``days`` below 1, an unknown source in ``retention.sources``, or silver behind
            bronze (run ``presage build-profiles`` first).
    """
    days = settings.retention.raw_event_days if days is None else days
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    sources = _sources(settings)
    lake = Lakehouse.of(settings)
    require_silver_current(spark, lake, "retention")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cutoff = now - dt.timedelta(days=days)
    removed: dict[str, int] = {}
    for source, column in sources:
        path = lake.bronze(source)
        old = F.col(column) < F.lit(cutoff)
        if DeltaTable.isDeltaTable(spark, path) and (rows := spark.read.format("delta").load(path).where(old).count()):
            DeltaTable.forPath(spark, path).delete(old)
            removed[f"bronze/{source}"] = rows
    if DeltaTable.isDeltaTable(spark, lake.quarantine):
        old = F.col("source").isin(*[s for s, _ in sources]) & (F.col("_ingested_at") < F.lit(cutoff))
        if rows := spark.read.format("delta").load(lake.quarantine).where(old).count():
            DeltaTable.forPath(spark, lake.quarantine).delete(old)
            removed["bronze/_quarantine"] = rows
    files = [f for source, column in sources for f in expired_files(spark, settings, lake, source, column, cutoff, now)]
    for path in files:
        fs.delete(spark, path)
    vacuumed = sorted(removed)
    if vacuumed:
        vacuum_now(spark, [lake.path(t) for t in vacuumed])
        record_consumed(spark, lake)
    result = RetentionResult(uuid.uuid4().hex, days, cutoff, removed, [relative(lake.path("raw"), f) for f in files], vacuumed)
    _audit(spark, lake, result)
    log.info("retention: %s", result)
    return result
