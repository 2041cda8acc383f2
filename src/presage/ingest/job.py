"""``presage ingest``: raw drops -> bronze Delta tables + quarantine, exactly once per file.

Each run plans a batch per source (the files not yet ingested) in the ingest log, then writes bronze,
quarantine and quality results with Delta's idempotent writes (``txnAppId`` / ``txnVersion`` = the
batch number), then marks the batch committed. A run that crashes half way resumes the same batch
with the same files, batch id and ingestion time, so the tables end as after a clean run.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType, TimestampType

from presage import fs
from presage.config import Settings
from presage.ingest.quality import validation_results
from presage.ingest.read import RawReadError, find_unreadable, read_batch
from presage.ingest.validate import FAILURES, bronze_rows, check, quarantine_rows, typed
from presage.lakehouse import Lakehouse
from presage.privacy import load_key
from presage.schemas import RAW_SOURCES, load_schema

log = logging.getLogger(__name__)

LOG_SCHEMA = StructType(
    [
        StructField("source", StringType(), False),
        StructField("batch_seq", IntegerType(), False),
        StructField("batch_id", StringType(), False),
        StructField("status", StringType(), False),  # planned (one row per file) or committed
        StructField("file", StringType(), True),  # path relative to raw/<source>/
        StructField("size", LongType(), True),
        StructField("modified_ms", LongType(), True),
        StructField("planned_at", TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class Batch:
    source: str
    seq: int
    files: list[str]  # relative to raw/<source>/
    planned_at: dt.datetime

    @property
    def batch_id(self) -> str:
        return f"{self.source}-{self.seq:06d}"


@dataclass(frozen=True)
class BatchResult:
    source: str
    batch_seq: int
    files: int
    bronze_rows: int
    quarantined_rows: int


def plan(spark: SparkSession, lake: Lakehouse, sources: list[str]) -> list[Batch]:
    """The batch to run per source: an unfinished one to resume, else its new files (if any).

    New batches are recorded in the ingest log (one row per file) before anything else is written.
    """
    rows = []
    if DeltaTable.isDeltaTable(spark, lake.ingest_log):
        rows = spark.read.format("delta").load(lake.ingest_log).where(F.col("source").isin(*sources)).collect()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    batches, planned = [], []
    for source in sources:
        mine = [r for r in rows if r.source == source]
        committed = {r.batch_seq for r in mine if r.status == "committed"}
        unfinished = sorted({r.batch_seq for r in mine if r.status == "planned"} - committed)
        if unfinished:
            seq = unfinished[0]
            files = sorted(r.file for r in mine if r.batch_seq == seq and r.status == "planned")
            planned_at = next(r.planned_at for r in mine if r.batch_seq == seq)
            log.warning("resuming unfinished ingestion batch %s-%06d (%d files)", source, seq, len(files))
            batches.append(Batch(source, seq, files, planned_at))
            continue
        root = lake.raw(source)
        seen = {r.file for r in mine if r.status == "planned"}
        infos = [f for f in fs.list_files(spark, root) if _relative(root, f.path) not in seen]
        if not infos:
            continue
        seq = max((r.batch_seq for r in mine), default=0) + 1
        batch = Batch(source, seq, [_relative(root, f.path) for f in infos], now)
        batches.append(batch)
        planned += [(source, seq, batch.batch_id, "planned", _relative(root, f.path), f.size, f.modified_ms, now) for f in infos]
    if planned:
        spark.createDataFrame(planned, LOG_SCHEMA).write.format("delta").mode("append").save(lake.ingest_log)
    return batches


def _relative(root: str, path: str) -> str:
    marker = root.split("://", 1)[-1].rstrip("/") + "/"
    return path.split(marker, 1)[1] if marker in path else path


def append_once(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Append exactly once per (app_id, version), creating the table with Change Data Feed on."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .option("delta.enableChangeDataFeed", "true")
        .save(path)
    )


@dataclass
class BatchFrames:
    """A planned batch read, typed and checked (persisted), split into its outputs."""

    checked: DataFrame
    bronze: DataFrame
    quarantine: DataFrame
    parameters: dict[str, str]


def batch_frames(spark: SparkSession, settings: Settings, lake: Lakehouse, batch: Batch) -> BatchFrames:
    """Read and check a batch; the caller unpersists ``checked`` when done."""
    source = batch.source
    schema = load_schema(source)
    key = load_key(settings)
    latest = batch.planned_at + dt.timedelta(hours=settings.ingest.future_tolerance_hours)
    parameters = {"earliest_timestamp": settings.ingest.earliest_timestamp, "latest_timestamp": latest.isoformat()}
    stamp = [F.lit(batch.batch_id).alias("_batch_id"), F.lit(batch.planned_at).cast("timestamp").alias("_ingested_at")]
    raw = read_batch(spark, _paths(lake, batch), schema).withColumn("_row", F.monotonically_increasing_id())
    checked = check(typed(raw, schema), source, parameters).persist()
    return BatchFrames(
        checked,
        bronze_rows(checked, source, key).select("*", *stamp),
        quarantine_rows(checked, source, key).select("*", *stamp),
        parameters,
    )


def _paths(lake: Lakehouse, batch: Batch) -> list[str]:
    return [f"{lake.raw(batch.source)}/{f}" for f in batch.files]


def ingest_batch(spark: SparkSession, settings: Settings, lake: Lakehouse, batch: Batch) -> BatchResult:
    """Write one planned batch to bronze, quarantine and quality results, then mark it committed."""
    source = batch.source
    frames = batch_frames(spark, settings, lake, batch)
    good = F.size(FAILURES) == 0
    try:
        try:
            counts = {bool(r["good"]): r["count"] for r in frames.checked.groupBy(good.alias("good")).count().collect()}
        except Exception as exc:  # Spark reads lazily: name the file that cannot be read
            raise RawReadError(find_unreadable(spark, _paths(lake, batch), load_schema(source)) or str(exc)) from exc
        append_once(frames.bronze, lake.bronze(source), f"presage-ingest-{source}", batch.seq)
        append_once(frames.quarantine, lake.quarantine, f"presage-quarantine-{source}", batch.seq)
        results = validation_results(frames.checked, source, frames.parameters).select(
            "*", F.lit(batch.batch_id).alias("_batch_id"), F.lit(batch.planned_at).cast("timestamp").alias("_ingested_at")
        )
        append_once(results, lake.quality_results, f"presage-quality-{source}", batch.seq)
    finally:
        frames.checked.unpersist()
    marker = [(source, batch.seq, batch.batch_id, "committed", None, None, None, batch.planned_at)]
    spark.createDataFrame(marker, LOG_SCHEMA).write.format("delta").mode("append").save(lake.ingest_log)
    result = BatchResult(source, batch.seq, len(batch.files), counts.get(True, 0), counts.get(False, 0))
    log.info("ingested %s: %s", batch.batch_id, result)
    return result


def run(spark: SparkSession, settings: Settings, sources: list[str] | None = None) -> list[BatchResult]:
    """Ingest every new file of the given sources (default: every source with a raw folder).

    Raises:
        RawReadError: no raw drops at all, a requested source without a folder, or an unreadable file.
    """
    lake = Lakehouse.of(settings)
    if sources:
        unknown = sorted(set(sources) - set(RAW_SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; known sources: {list(RAW_SOURCES)}")
        missing = [s for s in sources if not fs.exists(spark, lake.raw(s))]
        if missing:
            raise RawReadError(f"no raw folder for {missing}: expected {[lake.raw(s) for s in missing]}")
        chosen = [s for s in RAW_SOURCES if s in sources]
    else:
        chosen = [s for s in RAW_SOURCES if fs.exists(spark, lake.raw(s))]
        if not chosen:
            raise RawReadError(f"no raw drops under {lake.path('raw')}: run `presage generate` or copy drops there")
    return [ingest_batch(spark, settings, lake, batch) for batch in plan(spark, lake, chosen)]
