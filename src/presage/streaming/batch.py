"""One micro-batch of streamed events: bronze and quarantine exactly once, fresh activity online.

1. lines are parsed, typed and checked exactly as ``presage ingest`` does (:mod:`presage.ingest`);
2. good rows are resolved to persons with the silver identity map, and the activity of every person
   the batch touched is recomputed from their earlier events (``stream/activity_events``) and these
   (:func:`presage.features.activity.activity_features`), then pushed to the Feast online store
   through the ``customer_activity_push`` push source;
3. with Delta's idempotent appends (``txnAppId`` per table and checkpoint query id, ``txnVersion``
   = the batch id): good rows to bronze and rejects to the quarantine from a second driver thread
   while step 2 runs (:func:`land_arrivals`), then, once both are done, the batch's resolved events
   to ``stream/activity_events`` and the activity rows to ``gold/customer_activity`` (one row per
   person and batch: the history Feast's batch source reads); the tables of each step are committed
   concurrently (:func:`append_all`).

A stream killed anywhere and restarted from its checkpoint replays the batch: the push writes the
same state again (an overwrite, not an increment) and every append already committed is skipped.
An event delivered twice (a resent file, an at-least-once Kafka producer) lands in bronze twice, as
batch drops do, but counts once: activity reads events once per (source, event id).
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce

from delta.tables import DeltaTable
from feast import FeatureStore
from feast.data_source import PushMode
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType
from pyspark.util import inheritable_thread_target

from presage.config import Settings
from presage.features.activity import LOOKBACK, TABLE, activity_events, activity_features
from presage.features.catalog import PARTITION
from presage.ingest.job import append_once
from presage.ingest.read import json_lines
from presage.ingest.validate import FAILURES, bronze_rows, check, quarantine_rows, redacted, typed
from presage.lakehouse import Lakehouse
from presage.profiles.facts import attach_person, identifier_nodes
from presage.schemas import load_schema
from presage.streaming import STREAMED

log = logging.getLogger(__name__)

PUSH_SOURCE = "customer_activity_push"
# A batch wanting up to LOOKUP_LIMIT values of a large table (identifiers of the cached identity map,
# persons of stream/activity_events) looks them up by value (rows_for).
LOOKUP_LIMIT = 200
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
    events = activity_events(parts.get("web_events"), parts.get("campaign_events")).persist()
    merge_events(spark, lake, events)
    tidy(spark, lake, since)
    seeded = events.count()
    events.unpersist()
    return seeded


def tidy(spark: SparkSession, lake: Lakehouse, since: dt.datetime) -> None:
    """Keep a long-running stream's own tables small: drop the events before ``since`` (they count
    nowhere any more) and compact the one-file-per-batch appends of ``stream/activity_events`` and
    ``gold/customer_activity``, which every batch and every Feast read would otherwise list."""
    events = lake.stream("activity_events")
    if DeltaTable.isDeltaTable(spark, events):
        DeltaTable.forPath(spark, events).delete(F.col("event_ts") <= F.lit(since).cast("timestamp"))
    for path in (events, lake.gold(TABLE)):
        if DeltaTable.isDeltaTable(spark, path):
            DeltaTable.forPath(spark, path).optimize().executeCompaction()


def lines_of(lines: DataFrame, source: str) -> DataFrame:
    """The text-shaped rows of one source from the stream's (value, origin, source) lines."""
    return json_lines(lines.where(F.col("source") == source), load_schema(source), F.col("origin"))


def resolver(spark: SparkSession, lake: Lakehouse) -> DataFrame | None:
    """The identity map's resolved identifiers (identifier, person_id), cached for the batches until
    the next refresh, sorted by identifier so that each cached block spans a narrow range of them
    and a lookup by value (:func:`identities_of`) skips the others; None before the first
    ``build-profiles``."""
    path = lake.silver("identity_map")
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    resolved = (spark.read.format("delta").load(path).where(F.col("person_id").isNotNull())
                .select("identifier", "person_id").orderBy("identifier"))
    resolved = resolved.persist()
    resolved.count()
    return resolved


def rows_for(table: DataFrame, column: str, wanted: DataFrame) -> DataFrame:
    """The rows of ``table`` whose ``column`` is among the values of ``wanted`` (one column).

    A batch wants a few values from a table of millions: up to ``LOOKUP_LIMIT`` of them (repeats
    counted: one stage, no shuffle) are looked up as equalities joined by OR, so that only the cached
    blocks or Delta files whose range of ``column`` holds one of them are scanned (an IN list prunes
    Delta files by the list's whole range, and Spark turns one of over 10 values into an InSet, which
    prunes nothing); more are joined to ``table`` broadcast, which scans it all but shuffles nothing."""
    carried = wanted.limit(LOOKUP_LIMIT + 1).collect()
    if len(carried) > LOOKUP_LIMIT:
        return table.join(F.broadcast(wanted.toDF(column).distinct()), column, "left_semi")
    if not carried:
        return table.limit(0)
    return table.where(reduce(operator.or_, [F.col(column) == value for value in sorted({r[0] for r in carried})]))


def identities_of(identity: DataFrame, bronze: dict[str, DataFrame], settings: Settings) -> DataFrame:
    """The rows of :func:`resolver`'s map (302 MiB cached at 1M customers) for the identifiers
    ``bronze`` (rows by source) carries."""
    carried = [rows.select(F.explode(identifier_nodes(source, settings)).alias("identifier"))
               for source, rows in bronze.items()]
    wanted = reduce(DataFrame.unionByName, carried).where(F.col("identifier").isNotNull())
    return rows_for(identity, "identifier", wanted)


def window_start(as_of: dt.datetime, snapshot: dt.datetime | None) -> dt.datetime:
    """The oldest event time activity as of ``as_of`` still counts: the lookback, or the snapshot
    if that is older (the ``new_*`` counts start there)."""
    return min(as_of - LOOKBACK, snapshot) if snapshot else as_of - LOOKBACK


def _activity(spark: SparkSession, lake: Lakehouse, events: DataFrame, as_of: dt.datetime,
              snapshot: dt.datetime | None) -> DataFrame:
    """Activity of the persons in ``events``: their earlier events (``stream/activity_events``, read
    by person: Delta's file statistics skip the one-file-per-batch appends of other persons) and
    these, each event once."""
    horizon = window_start(as_of, snapshot)
    path = lake.stream("activity_events")
    if DeltaTable.isDeltaTable(spark, path):
        earlier = spark.read.format("delta").load(path).where(F.col("event_ts") > F.lit(horizon).cast("timestamp"))
        events = rows_for(earlier, "person_id", events.select("person_id")).unionByName(events).dropDuplicates(["source", "event_id"])
    return activity_features(events, as_of, snapshot)


def process(
    spark: SparkSession,
    settings: Settings,
    store: FeatureStore,
    key: bytes,
    lines: DataFrame,
    query_id: str,
    batch_id: int,
    snapshot: dt.datetime | None,
    identity: DataFrame | None,
) -> BatchOutcome:
    """Run one micro-batch of (value, origin, source) lines; see the module docstring.

    The bronze and quarantine appends run beside the activity and its push, and the derived tables'
    appends after both, so that an event reaches the online store without waiting for any commit;
    a replay recomputes the same rows from the same events.
    ``query_id`` (the checkpoint's query id) scopes the idempotent writes: a new checkpoint starts
    at batch 0 again, and must not find its writes taken for replays of the old one's. ``identity``
    is :func:`resolver`'s frame."""
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    lake = Lakehouse.of(settings)
    latest = started + dt.timedelta(hours=settings.ingest.future_tolerance_hours)
    parameters = {"earliest_timestamp": settings.ingest.earliest_timestamp, "latest_timestamp": latest.isoformat()}
    stamp = [F.lit(f"stream-{batch_id:09d}").alias("_batch_id"), F.lit(started).cast("timestamp").alias("_ingested_at")]
    lines = lines.persist()
    cached: list[DataFrame] = [lines]
    events_count = persons = 0
    try:
        arrived = {r["source"] for r in lines.select("source").distinct().collect()}
        checked: dict[str, DataFrame] = {}
        for source in (s for s in STREAMED if s in arrived):
            checked[source] = check(typed(lines_of(lines, source).withColumn("_row", F.monotonically_increasing_id()),
                                          load_schema(source)), source, parameters).persist()
            cached.append(checked[source])
        bronze = {source: bronze_rows(frame, source, key) for source, frame in checked.items()}
        # What arrived lands in bronze and the quarantine from a driver thread while this one computes
        # and pushes the activity: the two overlap (both are mostly driver-side planning and log work),
        # and the bronze commit still precedes the derived tables'.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="presage-stream-bronze") as pool:
            landing = pool.submit(inheritable_thread_target(land_arrivals), lake, lines, arrived, checked, bronze, key,
                                  stamp, query_id, batch_id)
            events = rows = None
            if identity is not None and checked:
                known = identities_of(identity, bronze, settings)
                resolved = {source: attach_person(rows, source, settings, known) for source, rows in bronze.items()}
                events = activity_events(resolved.get("web_events"), resolved.get("campaign_events")).persist()
                cached.append(events)
                # Materialized apart from its plan: a cached plan that reads stream/activity_events would
                # be planned again by Spark's cache manager when this batch appends to that table.
                rows = _activity(spark, lake, events, started, snapshot).localCheckpoint()
                pushed = rows.toPandas()
                persons = len(pushed)
                if persons:
                    store.push(PUSH_SOURCE, pushed, to=PushMode.ONLINE)
            elif identity is None and checked:
                log.warning("no silver identity map yet: events go to bronze, but no person's activity is updated "
                            "until `presage build-profiles` has run")
            bronze_count, quarantined = landing.result()
        if persons:
            events_count = events.count()
            append_all([(events, lake.stream("activity_events"), f"presage-stream-activity-events-{query_id}"),
                        (rows, lake.gold(TABLE), f"presage-stream-activity-{query_id}")], batch_id)
    finally:
        for frame in cached:
            frame.unpersist()
    seconds = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - started).total_seconds()
    outcome = BatchOutcome(batch_id, bronze_count, quarantined, events_count, persons, seconds)
    log.info("stream batch %s", outcome)
    return outcome


def land_arrivals(lake: Lakehouse, lines: DataFrame, arrived: set[str], checked: dict[str, DataFrame],
                  bronze: dict[str, DataFrame], key: bytes, stamp: list[Column], query_id: str,
                  batch_id: int) -> tuple[int, int]:
    """Append a batch's good rows (``bronze``, by source) to bronze and its rejects (from
    ``checked``, and lines of unknown sources) to the quarantine, each exactly once and skipped when
    empty (a one-second trigger would otherwise commit every second); returns (bronze rows,
    quarantined rows)."""
    writes: list[tuple[DataFrame, str, str]] = []  # (rows, table, txnAppId)
    bronze_count = quarantined = 0
    if arrived - set(STREAMED):
        unknown = lines.where(~F.col("source").isin(*STREAMED))
        quarantined += unknown.count()
        writes.append((_unknown_source_rows(unknown).select("*", *stamp), lake.quarantine,
                       f"presage-stream-quarantine-unknown-{query_id}"))
    for source, frame in checked.items():
        counts = {bool(r["good"]): r["count"] for r in frame.groupBy((F.size(FAILURES) == 0).alias("good")).count().collect()}
        good, bad = counts.get(True, 0), counts.get(False, 0)
        bronze_count, quarantined = bronze_count + good, quarantined + bad
        if good:
            writes.append((bronze[source].select("*", *stamp), lake.bronze(source),
                           f"presage-stream-{source}-{query_id}"))
        if bad:
            writes.append((quarantine_rows(frame, source, key).select("*", *stamp), lake.quarantine,
                           f"presage-stream-quarantine-{source}-{query_id}"))
    append_all(writes, batch_id)
    return bronze_count, quarantined


def append_all(writes: list[tuple[DataFrame, str, str]], batch_id: int) -> None:
    """Append each (rows, table, txnAppId) exactly once, the tables concurrently.

    A small append is mostly driver-side Delta log work (the snapshot, the commit, the checksum), so
    the tables' commits overlap instead of queueing; the batch ends when all are done, and a failure
    of any is raised (the batch is replayed, and the appends already committed are skipped)."""
    if not writes:
        return
    append = inheritable_thread_target(append_once)  # the query's job group, so that stop() cancels them
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="presage-stream-append") as pool:
        for done in [pool.submit(append, frame, table, app_id, batch_id) for frame, table, app_id in writes]:
            done.result()


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
