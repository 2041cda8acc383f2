"""Online materialization: each view's newest gold snapshot into Feast's online store, on executors.

The gold tables hold complete snapshots, so the online state is exactly the newest snapshot at or
before the as-of time: one partition is read and no per-key deduplication over the history is
needed. Redis is written by :mod:`presage.featurestore.redis_bulk` inside Spark tasks; any other
online store by Feast's own Spark-engine writer (``map_in_arrow``: Feast's row conversion and the
store's ``online_write_batch``, in Spark tasks), in a single task for SQLite, whose database takes
one writer at a time. Either way the registry records the interval, as ``feast materialize`` does.

SQLite gets the rows sorted by the bytes of Feast's serialized entity key, the first column of its
tables' primary key: a snapshot's rows arrive in file order, effectively random against that key,
and random inserts into a primary-key B-tree larger than the page cache cost a page read each, so
the writer slowed as the database grew (1.45x the time per row at 1M persons against 100k, in
bench/RESULTS.md). In key order the B-tree fills one page after the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feast import FeatureStore, FeatureView
from feast.infra.common.serde import SerializedArtifacts
from feast.infra.compute_engines.spark.utils import map_in_arrow
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.online_stores.redis import (
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    RedisType,
    _versioned_fv_name,
)
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64, String
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.featurestore import redis_bulk

log = logging.getLogger(__name__)

BULK_TYPES = {Float64: "double", Int64: "long", String: "string"}


@dataclass(frozen=True)
class Materialized:
    view: str
    snapshot: datetime | None  # None: no snapshot at or before the as-of time
    rows: int
    seconds: float
    writer: str


def _delta_path(view: FeatureView) -> str:
    source = view.batch_source
    if not isinstance(source, SparkSource) or not source.path or not isinstance(source.table_format, DeltaFormat):
        raise ValueError(
            f"feature view {view.name}: presage materializes views over a Delta path (SparkSource with "
            "path and DeltaFormat); use `feast materialize` for other sources"
        )
    return source.path


def latest_snapshot(spark: SparkSession, view: FeatureView, as_of: datetime) -> tuple[DataFrame, datetime | None]:
    """The rows of the newest snapshot at or before ``as_of``, with the view's columns only."""
    source = view.batch_source
    ts = source.timestamp_field
    table = spark.read.format("delta").load(_delta_path(view))
    partition = source.date_partition_column
    bounded = table.where(F.col(ts) <= F.lit(as_of))
    if partition:
        bounded = bounded.where(F.col(partition) <= F.lit(as_of.date()))
    latest = bounded.agg(F.max(ts)).first()[0]
    columns = [*view.join_keys, ts, *(f.name for f in view.features)]
    if latest is None:
        return bounded.select(*columns).limit(0), None
    latest = latest.replace(tzinfo=UTC)  # the session time zone is UTC (spark_conf profiles)
    rows = bounded.where(F.col(ts) == F.lit(latest))
    if partition:
        rows = rows.where(F.col(partition) == F.lit(latest.date()))
    return rows.select(*columns), latest


def bulk_layout(store: FeatureStore, view: FeatureView) -> redis_bulk.Layout | None:
    """How redis_bulk writes this view, or None when the store or the view needs Feast's writer."""
    config = store.config.online_store
    if not isinstance(config, RedisOnlineStoreConfig) or config.redis_type != RedisType.redis:
        return None
    if store.config.entity_key_serialization_version != 3 or len(view.entity_columns) != 1:
        return None
    if view.entity_columns[0].dtype != String or any(f.dtype not in BULK_TYPES for f in view.features):
        return None
    nodes, kwargs = RedisOnlineStore._parse_connection_string(config.connection_string)
    return redis_bulk.Layout(
        project=store.project,
        view=_versioned_fv_name(view, store.config),
        join_key=view.entity_columns[0].name,
        features=tuple((f.name, BULK_TYPES[f.dtype]) for f in view.features),
        timestamp_field=view.batch_source.timestamp_field,
        key_ttl_seconds=config.key_ttl_seconds,
        connection={**kwargs, "host": nodes[0]["host"], "port": int(nodes[0]["port"])},
    )


def _bulk_write(spark: SparkSession, rows: DataFrame, layout: redis_bulk.Layout) -> int:
    # The scan's own splits, no shuffle: a snapshot's files already spread over tasks, and one task
    # per core keeps pace with a single Redis.
    written = rows.mapInArrow(lambda batches: redis_bulk.write(batches, layout), "written long")
    return int(written.agg(F.sum("written")).first()[0] or 0)


def key_order(view: FeatureView, serialization_version: int) -> list[Column]:
    """Columns that sort rows in the byte order of Feast's serialized entity key, or [] if unknown.

    For one String join key, version 3 serializes a constant prefix, the value's UTF-8 length as a
    little-endian uint32, then the UTF-8 bytes: so the length's bytes, lowest first, then the value
    (Spark compares strings by their UTF-8 bytes).
    """
    if serialization_version != 3 or len(view.entity_columns) != 1 or view.entity_columns[0].dtype != String:
        return []
    key = F.col(view.entity_columns[0].name)
    length = F.octet_length(key)
    return [F.shiftright(length, shift).bitwiseAND(255) for shift in (0, 8, 16, 24)] + [key]


def _feast_write(spark: SparkSession, rows: DataFrame, store: FeatureStore, view: FeatureView) -> int:
    artifacts = SerializedArtifacts.serialize(feature_view=view, repo_config=store.config)
    single_writer = isinstance(store.config.online_store, SqliteOnlineStoreConfig)
    tasks = 1 if single_writer else spark.sparkContext.defaultParallelism
    if single_writer:
        # A range-partitioned sort, then one task: coalesce(1) reads the sorted partitions in order.
        order = key_order(view, store.config.entity_key_serialization_version)
        spread = (rows.orderBy(*order) if order else rows).coalesce(1)
    else:
        spread = rows.repartition(tasks)
    written = spread.mapInArrow(lambda batches: map_in_arrow(batches, artifacts, mode="online"), spread.schema)
    return written.count()


def materialize(
    spark: SparkSession,
    store: FeatureStore,
    as_of: datetime | None = None,
    views: Sequence[str] | None = None,
) -> list[Materialized]:
    """Write the newest snapshot (at or before ``as_of``, default now) of each online view.

    Raises:
        ValueError: no online view in the registry (``feast apply`` not run), or an unknown view.
    """
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    # Views with a push source are written by `presage stream`, not from snapshots.
    online = [view for view in store.list_batch_feature_views() if view.online and view.stream_source is None]
    if not online:
        raise ValueError(f"no online feature view in the registry of {store.repo_path}: run `feast apply` there first")
    unknown = sorted(set(views or ()) - {view.name for view in online})
    if unknown:
        raise ValueError(f"unknown feature views {unknown}; known: {sorted(view.name for view in online)}")
    results = []
    for view in online:
        if views and view.name not in views:
            continue
        started = time.perf_counter()
        rows, snapshot = latest_snapshot(spark, view, as_of)
        if snapshot is None:
            log.warning("feature view %s has no snapshot at or before %s", view.name, as_of)
            results.append(Materialized(view.name, None, 0, time.perf_counter() - started, "none"))
            continue
        layout = bulk_layout(store, view)
        if layout is not None:
            count, writer = _bulk_write(spark, rows, layout), "redis bulk writer in Spark tasks"
        else:
            count, writer = _feast_write(spark, rows, store, view), "Feast writer in Spark tasks"
        store.registry.apply_materialization(view, store.project, snapshot, snapshot)
        results.append(Materialized(view.name, snapshot, count, time.perf_counter() - started, writer))
        log.info("materialized %s snapshot %s: %d rows (%s)", view.name, snapshot, count, writer)
    return results
