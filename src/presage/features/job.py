"""``presage build-features``: point-in-time feature snapshots into two gold Delta tables.

``gold/customer_features`` (behaviour) and ``gold/customer_attributes`` (who the person was), both
keyed by (customer_id, event_timestamp) and partitioned by ``snapshot_date``; ``customer_id`` is the
unified person id of ``silver/identity_map``. A run computes only the grid dates missing from either
table; ``backfill`` recomputes a range and ``as_of`` one date. Each date's rows are replaced in one
Delta transaction per table, so a rerun after a crash redoes exactly the unfinished dates.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.config import Settings
from presage.features import activity, btyd
from presage.features.affinity import affinity, category_days
from presage.features.attributes import attribute_columns, attribute_types, attributes, snapshot_instant
from presage.features.behaviour import behaviour
from presage.features.calendar import grid
from presage.features.catalog import BEHAVIOUR, ENTITY, PARTITION, TIMESTAMP, names
from presage.features.daily import day_index, person_days
from presage.lakehouse import Lakehouse

log = logging.getLogger(__name__)

FEATURES_TABLE = "customer_features"
ATTRIBUTES_TABLE = "customer_attributes"
FACTS = ("orders", "order_items", "web_events", "campaign_events", "social_events", "reviews")
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class FeatureResult:
    dates: list[dt.date]
    feature_rows: int
    attribute_columns: list[str]


def _dates_in(spark: SparkSession, path: str) -> set[dt.date]:
    if not DeltaTable.isDeltaTable(spark, path):
        return set()
    return {r[0] for r in spark.read.format("delta").load(path).select(PARTITION).distinct().collect()}


def data_span(facts: dict[str, DataFrame]) -> tuple[dt.datetime, dt.datetime] | None:
    """Earliest and latest event time of orders, web and campaign events (None: no data)."""
    times = [facts["orders"].select(F.col("order_ts").alias("ts")), facts["web_events"].select(F.col("event_ts").alias("ts")),
             facts["campaign_events"].select(F.col("event_ts").alias("ts"))]
    union = times[0].unionByName(times[1]).unionByName(times[2])
    row = union.agg(F.min("ts").alias("lo"), F.max("ts").alias("hi")).first()
    return None if row["lo"] is None else (row["lo"], row["hi"])


def snapshot_dates(
    spark: SparkSession, settings: Settings, lake: Lakehouse, facts: dict[str, DataFrame],
    as_of: dt.date | None = None, backfill: tuple[dt.date, dt.date] | None = None,
) -> list[dt.date]:
    """The dates this run computes: one ``as_of``, a backfilled range of the grid, or the missing grid dates."""
    if as_of is not None:
        return [as_of]
    span = data_span(facts)
    if span is None:
        return []
    dates = grid(span[0], span[1], settings.features)
    if backfill is not None:
        start, end = backfill
        if start > end:
            raise ValueError(f"backfill range is empty: {start} is after {end}")
        return [d for d in dates if start <= d <= end]
    done = _dates_in(spark, lake.gold(FEATURES_TABLE)) & _dates_in(spark, lake.gold(ATTRIBUTES_TABLE))
    return [d for d in dates if d not in done]


def _write(df: DataFrame, path: str, dates: list[dt.date]) -> None:
    listed = ", ".join(f"DATE'{d.isoformat()}'" for d in dates)
    (
        df.write.format("delta").mode("overwrite").partitionBy(PARTITION)
        .option("replaceWhere", f"{PARTITION} IN ({listed})").option("mergeSchema", "true")
        .save(path)
    )


def _keyed(df: DataFrame) -> DataFrame:
    """Rename the person to the Feast entity and stamp the snapshot instant and partition date."""
    return df.select(
        F.col("person_id").alias(ENTITY),
        snapshot_instant(F.col("snapshot_day")).alias(TIMESTAMP),
        F.date_add(F.lit(EPOCH).cast("date"), F.col("snapshot_day")).alias(PARTITION),
        *[c for c in df.columns if c not in ("person_id", "snapshot_day")],
    )


def _existing_types(spark: SparkSession, path: str) -> dict[str, str]:
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    return {f.name: f.dataType.simpleString() for f in spark.read.format("delta").load(path).schema.fields}


@dataclass(frozen=True)
class Inputs:
    """What the snapshots are computed from (silver tables; ``known_since`` from the CRM)."""

    facts: dict[str, DataFrame]
    products: DataFrame
    profile: DataFrame
    history: DataFrame
    known_since: DataFrame


def read_inputs(spark: SparkSession, lake: Lakehouse) -> Inputs:
    facts = {name: lake.read_silver(spark, name) for name in FACTS}
    identity = lake.read_silver(spark, "identity_map").where((F.col("kind") == "customer_id") & F.col("person_id").isNotNull())
    if DeltaTable.isDeltaTable(spark, lake.bronze("customers")):
        crm = spark.read.format("delta").load(lake.bronze("customers")).select("customer_id", "created_at")
        known_since = crm.join(identity, crm["customer_id"] == identity["value"]).groupBy("person_id").agg(
            F.min("created_at").alias("known_since")
        )
    else:
        known_since = spark.createDataFrame([], "person_id string, known_since timestamp")
    return Inputs(facts, lake.read_silver(spark, "products"), lake.read_silver(spark, "customer_profile"),
                  lake.read_silver(spark, "customer_profile_history"), known_since)


def snapshots(
    spark: SparkSession, settings: Settings, inputs: Inputs, dates: list[dt.date], existing_types: dict[str, str]
) -> tuple[DataFrame, DataFrame, dict[str, str]]:
    """The (features, attributes) rows of ``dates`` and the extra attribute types: a pure transform."""
    days_of = spark.createDataFrame([((d - EPOCH).days,) for d in dates], "day int")
    persons = inputs.profile.where(F.col("first_seen_at").isNotNull()).select(
        "person_id", day_index(F.col("first_seen_at")).alias("first_seen_day")
    )
    markers = persons.crossJoin(F.broadcast(days_of)).where(F.col("first_seen_day") < F.col("day")).localCheckpoint()
    facts = inputs.facts
    days = person_days(facts).localCheckpoint()
    core = behaviour(days, markers).localCheckpoint()
    categories = affinity(category_days(facts["orders"], facts["order_items"], inputs.products), markers.select("person_id", "day"))
    buyers = core.where(F.col("bgnbd_age_weeks").isNotNull()).select(
        "person_id", "snapshot_day", F.col("bgnbd_frequency").alias("x"),
        F.col("bgnbd_recency_weeks").alias("t_x"), F.col("bgnbd_age_weeks").alias("T"),
    )
    params = btyd.fit_per_snapshot(spark, buyers)
    lifetime = btyd.predictions(buyers, params, settings.horizon_days / 7.0)
    features = core.join(categories, ["person_id", "snapshot_day"], "left").join(lifetime, ["person_id", "snapshot_day"], "left")
    features = _keyed(features.select("person_id", "snapshot_day", *names(BEHAVIOUR)))
    types = attribute_types(inputs.history, existing_types)
    who = _keyed(attributes(inputs.history, inputs.known_since, markers, types))
    return features, who, types


def build_features(
    spark: SparkSession, settings: Settings, lake: Lakehouse,
    as_of: dt.date | None = None, backfill: tuple[dt.date, dt.date] | None = None,
) -> FeatureResult:
    """Compute and write the snapshots of this run (see :func:`snapshot_dates`)."""
    activity.create_table(spark, lake.gold(activity.TABLE))
    inputs = read_inputs(spark, lake)
    dates = snapshot_dates(spark, settings, lake, inputs.facts, as_of, backfill)
    if not dates:
        log.info("features: every snapshot date is already built")
        return FeatureResult([], 0, [])
    features, who, types = snapshots(spark, settings, inputs, dates, _existing_types(spark, lake.gold(ATTRIBUTES_TABLE)))
    _write(features, lake.gold(FEATURES_TABLE), dates)
    _write(who, lake.gold(ATTRIBUTES_TABLE), dates)
    rows = spark.read.format("delta").load(lake.gold(FEATURES_TABLE)).where(F.col(PARTITION).isin(dates)).count()
    result = FeatureResult(sorted(dates), rows, sorted(attribute_columns(types).values()))
    log.info("features: %d snapshot dates, %d rows, %d extra attribute columns", len(dates), rows, len(types))
    return result
