"""``presage stream``: one Structured Streaming query from landing folder or Kafka to
:func:`presage.streaming.batch.process`.

One query reads every streamed source (the source comes from the file's folder or the Kafka
topic), so micro-batches never write the same Delta tables concurrently. Its checkpoint
(``<home>/stream/_checkpoints/events`` by default) holds the offsets; with the idempotent writes of
each batch it makes the whole path exactly once.

The folder source reads ``<home>/stream/incoming/<source>/*.jsonl``. Producers write a file under
another name (``x.jsonl.tmp``, or a name starting with ``.`` or ``_``) and rename it when complete,
so that a half-written file is never read. In production the Kafka source reads the topics of
``stream.kafka_topics`` (one JSON event per message value) and needs Spark's connector:
``--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from presage import fs
from presage.config import Settings
from presage.featurestore.store import open_store
from presage.lakehouse import Lakehouse
from presage.privacy import load_key
from presage.streaming import STREAMED
from presage.streaming.batch import (
    PUSH_SOURCE,
    BatchOutcome,
    bootstrap,
    newest_snapshot,
    process,
    resolver,
    tidy,
    window_start,
)

log = logging.getLogger(__name__)

QUERY_NAME = "presage-stream-events"
REFRESH = dt.timedelta(minutes=10)  # how often the newest gold snapshot and the identity map are read again


def checkpoint(settings: Settings) -> str:
    return settings.stream.checkpoint or Lakehouse.of(settings).stream("_checkpoints", "events")


def read_lines(spark: SparkSession, settings: Settings) -> DataFrame:
    """The stream as (value, origin, source) lines."""
    stream = settings.stream
    if stream.source == "kafka":
        topics = {topic: source for source, topic in stream.kafka_topics.items()}
        raw = (spark.readStream.format("kafka")
               .option("kafka.bootstrap.servers", stream.kafka_bootstrap_servers)
               .option("subscribe", ",".join(topics))
               .option("startingOffsets", "earliest")
               .option("maxOffsetsPerTrigger", stream.max_offsets_per_trigger)
               .load())
        source = F.coalesce(*[F.when(F.col("topic") == t, F.lit(s)) for t, s in topics.items()], F.col("topic"))
        origin = F.concat_ws(":", F.lit("kafka"), "topic", "partition", "offset")
        return raw.select(F.col("value").cast("string").alias("value"), origin.alias("origin"), source.alias("source"))
    lake = Lakehouse.of(settings)
    for name in STREAMED:
        fs.mkdirs(spark, lake.landing(name))
    lines = (spark.readStream.format("text")
             .option("pathGlobFilter", "*.jsonl")
             .option("recursiveFileLookup", "true")
             .option("maxFilesPerTrigger", stream.max_files_per_trigger)
             .load(lake.stream("incoming")))
    path = F.col("_metadata.file_path")
    folder = F.regexp_extract(path, r"/incoming/([^/]+)/", 1)
    return lines.select("value", path.alias("origin"), folder.alias("source"))


def start(
    spark: SparkSession,
    settings: Settings,
    available_now: bool = False,
    on_batch: Callable[[BatchOutcome], None] | None = None,
) -> StreamingQuery:
    """Start the query; ``available_now`` processes what has landed, then stops.

    Raises:
        ValueError: the Feast registry has no ``customer_activity_push`` (``feast apply`` not run).
    """
    # Micro-batches are small, and every shuffle partition is a task. Set before the query starts: a
    # new checkpoint records the value, and Spark keeps the recorded one for the checkpoint's life.
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.stream.shuffle_partitions))
    store = open_store(settings)
    if PUSH_SOURCE not in {s.name for s in store.list_data_sources()}:
        raise ValueError(f"no push source {PUSH_SOURCE} in the Feast registry of {store.repo_path}: run `feast apply` there first")
    key = load_key(settings)
    lake = Lakehouse.of(settings)
    snapshot = newest_snapshot(spark, lake)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    seeded = bootstrap(spark, lake, window_start(now, snapshot))
    log.info("activity seeded from %d silver events", seeded)
    cached: dict[str, object] = {"at": time.monotonic(), "snapshot": snapshot, "identity": resolver(spark, lake), "query": None}

    def each(lines: DataFrame, batch_id: int) -> None:
        now = time.monotonic()
        if now - cached["at"] > REFRESH.total_seconds():
            if cached["identity"] is not None:
                cached["identity"].unpersist()
            cached.update(at=now, snapshot=newest_snapshot(spark, lake), identity=resolver(spark, lake))
            tidy(spark, lake, window_start(dt.datetime.now(dt.UTC).replace(tzinfo=None), cached["snapshot"]))
        if cached["query"] is None:  # written by Spark when the query first started on this checkpoint
            cached["query"] = json.loads(fs.first_line(spark, f"{checkpoint(settings)}/metadata"))["id"]
        outcome = process(spark, settings, store, key, lines, cached["query"], batch_id, cached["snapshot"], cached["identity"])
        if on_batch:
            on_batch(outcome)

    writer = (read_lines(spark, settings).writeStream.queryName(QUERY_NAME)
              .foreachBatch(each)
              .option("checkpointLocation", checkpoint(settings)))
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=f"{settings.stream.trigger_seconds} seconds")
    return writer.start()


def run(spark: SparkSession, settings: Settings, available_now: bool = False) -> None:
    """Start and wait; raises the query's error if it fails."""
    query = start(spark, settings, available_now,
                  on_batch=lambda o: print(f"batch {o.batch_id}: {o.bronze_rows} to bronze, {o.quarantined_rows} quarantined, "
                                           f"{o.persons_updated} persons updated in {o.seconds:.1f} s", flush=True))
    query.awaitTermination()
