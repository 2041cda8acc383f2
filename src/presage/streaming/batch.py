"""One micro-batch of streamed events: bronze and quarantine exactly once, then fresh activity.

Each step is idempotent for a replayed batch id, so a stream killed anywhere and restarted from its
checkpoint leaves every table and the online store as one clean pass would:

1. lines are parsed, typed and checked exactly as ``presage ingest`` does (:mod:`presage.ingest`);
   good rows are appended to bronze and rejects to the quarantine with Delta's idempotent writes
   (``txnAppId`` = the query's source, ``txnVersion`` = the batch id);
2. resolved events (person from the silver identity map) are MERGEd into ``stream/activity_events``
   on (source, event_id), so an event delivered twice counts once;
3. the activity of every person the batch touched is recomputed from those events
   (:func:`presage.features.activity.activity_features`), MERGEd into ``gold/customer_activity``
   and pushed to the Feast online store through the ``customer_activity_push`` push source.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from feast import FeatureStore
from feast.data_source import PushMode
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from presage.config import Settings
from presage.features.activity import LOOKBACK, TABLE, activity_events, activity_features, create_table
from presage.features.catalog import ENTITY, PARTITION
from presage.ingest.job import append_once
from presage.ingest.read import json_lines
from presage.ingest.validate import FAILURES, bronze_rows, check, quarantine_rows, redacted, typed
from presage.lakehouse import Lakehouse
from presage.profiles.facts import attach_person
from presage.schemas import load_schema
from presage.streaming import STREAMED

log = logging.getLogger(__name__)

PUSH_SOURCE = "customer_activity_push"
EVENTS_SCHEMA = StructType([
    StructField("person_id", StringType()), StructField("event_id", StringType()), StructField("event_ts", TimestampType()),
    StructField("source", StringType()), StructField("event_type", StringType()), StructField("channel", StringType()),
])


@dataclass(frozen=True)
class BatchOutcome:
    batch_id: int
    bronze_rows: int
    quarantined_rows: int
    resolved_events: int
    persons_updated: int
    seconds: float


def newest_snapshot(spark: SparkSession, lake: Lakehouse) -> dt.datetime | None:
    """Start of the newest gold behaviour snapshot (its date at 00:00 UTC), None before the first."""
    path = lake.gold("customer_features")
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    day = spark.read.format("delta").load(path).agg(F.max(PARTITION)).first()[0]
    return None if day is None else dt.datetime.combine(day, dt.time.min)


def _identity_map(spark: SparkSession, lake: Lakehouse) -> DataFrame | None:
    path = lake.silver("identity_map")
    return spark.read.format("delta").load(path) if DeltaTable.isDeltaTable(spark, path) else None


def merge_events(spark: SparkSession, lake: Lakehouse, events: DataFrame) -> None:
    """Add events not seen yet (by source and event id) to ``stream/activity_events``."""
    path = lake.stream("activity_events")
    if not DeltaTable.isDeltaTable(spark, path):
        spark.createDataFrame([], EVENTS_SCHEMA).write.format("delta").mode("ignore").save(path)
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(events.alias("s"), "t.source = s.source AND t.event_id = s.event_id")
        .whenNotMatchedInsertAll()
        .execute()
    )


def _merge_activity(spark: SparkSession, lake: Lakehouse, rows: DataFrame) -> None:
    path = lake.gold(TABLE)
    create_table(spark, path)
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(rows.alias("s"), f"t.{ENTITY} = s.{ENTITY}")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def bootstrap(spark: SparkSession, lake: Lakehouse, since: dt.datetime) -> int:
    """Seed ``stream/activity_events`` with the silver web and campaign events after ``since`` (and
    drop those before), so that activity counts what batch ingestion brought as well as what
    streamed; returns how many silver events were looked at (those already there are skipped)."""
    parts = {}
    for source in STREAMED:
        path = lake.silver(source)
        if DeltaTable.isDeltaTable(spark, path):
            parts[source] = spark.read.format("delta").load(path).where(F.col("event_ts") > F.lit(since).cast("timestamp"))
    if not parts:
        return 0
    events = activity_events(parts.get("web_events"), parts.get("campaign_events")).localCheckpoint()
    merge_events(spark, lake, events)
    # Older events can no longer count anywhere: keep the table to the window.
    DeltaTable.forPath(spark, lake.stream("activity_events")).delete(F.col("event_ts") <= F.lit(since).cast("timestamp"))
    return events.count()


def lines_of(lines: DataFrame, source: str) -> DataFrame:
    """The text-shaped rows of one source from the stream's (value, origin, source) lines."""
    return json_lines(lines.where(F.col("source") == source), load_schema(source), F.col("origin"))


def process(
    spark: SparkSession,
    settings: Settings,
    store: FeatureStore,
    key: bytes,
    lines: DataFrame,
    query_id: str,
    batch_id: int,
    snapshot: dt.datetime | None,
) -> BatchOutcome:
    """Run one micro-batch of (value, origin, source) lines; see the module docstring.

    ``query_id`` (the checkpoint's query id) scopes the idempotent writes: a new checkpoint starts
    at batch 0 again, and must not find its writes taken for replays of the old one's."""
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    lake = Lakehouse.of(settings)
    latest = started + dt.timedelta(hours=settings.ingest.future_tolerance_hours)
    parameters = {"earliest_timestamp": settings.ingest.earliest_timestamp, "latest_timestamp": latest.isoformat()}
    stamp = [F.lit(f"stream-{batch_id:09d}").alias("_batch_id"), F.lit(started).cast("timestamp").alias("_ingested_at")]
    identity = _identity_map(spark, lake)
    lines = lines.persist()
    bronze_count = 0
    resolved: dict[str, DataFrame] = {}
    try:
        unknown = lines.where(~F.col("source").isin(*STREAMED))
        quarantined = unknown.count()
        if quarantined:  # empty writes are skipped: a one-second trigger would commit every second
            append_once(_unknown_source_rows(unknown).select("*", *stamp), lake.quarantine,
                        f"presage-stream-quarantine-unknown-{query_id}", batch_id)
        for source in STREAMED:
            checked = check(typed(lines_of(lines, source).withColumn("_row", F.monotonically_increasing_id()),
                                  load_schema(source)), source, parameters).persist()
            try:
                counts = {bool(r["good"]): r["count"] for r in checked.groupBy((F.size(FAILURES) == 0).alias("good")).count().collect()}
                good, bad = counts.get(True, 0), counts.get(False, 0)
                bronze = bronze_rows(checked, source, key).select("*", *stamp)
                if good:
                    append_once(bronze, lake.bronze(source), f"presage-stream-{source}-{query_id}", batch_id)
                if bad:
                    append_once(quarantine_rows(checked, source, key).select("*", *stamp), lake.quarantine,
                                f"presage-stream-quarantine-{source}-{query_id}", batch_id)
                bronze_count += good
                quarantined += bad
                if identity is not None and good:
                    resolved[source] = attach_person(bronze, source, settings, identity).localCheckpoint()
            finally:
                checked.unpersist()
    finally:
        lines.unpersist()
    events_count = persons = 0
    if resolved:
        events = activity_events(resolved.get("web_events"), resolved.get("campaign_events")).localCheckpoint()
        events_count = events.count()
        if events_count:
            merge_events(spark, lake, events)
            touched = events.select("person_id").distinct()
            horizon = min(started - LOOKBACK, snapshot) if snapshot else started - LOOKBACK
            recent = (spark.read.format("delta").load(lake.stream("activity_events"))
                      .where(F.col("event_ts") > F.lit(horizon).cast("timestamp"))
                      .join(touched, "person_id", "left_semi"))
            rows = activity_features(recent, started, snapshot).localCheckpoint()
            _merge_activity(spark, lake, rows)
            pushed = rows.toPandas()
            store.push(PUSH_SOURCE, pushed, to=PushMode.ONLINE)
            persons = len(pushed)
    elif identity is None:
        log.warning("no silver identity map yet: events go to bronze, but no person's activity is updated "
                    "until `presage build-profiles` has run")
    seconds = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - started).total_seconds()
    outcome = BatchOutcome(batch_id, bronze_count, quarantined, events_count, persons, seconds)
    log.info("stream batch %s", outcome)
    return outcome


def _unknown_source_rows(lines: DataFrame) -> DataFrame:
    """Quarantine rows for lines from a folder or topic that is not a streamed source."""
    return lines.select(
        F.col("source"),
        F.lit("unknown_source").alias("reason"),
        F.lit(None).cast("string").alias("column"),
        F.array(F.struct(F.lit("unknown_source").alias("check"), F.lit(None).cast("string").alias("column"))).alias("failed_checks"),
        redacted(F.col("value")).alias("record"),
        F.col("origin").alias("_source_file"),
    )
