"""Labels by horizon, strictly after each snapshot, and custom label tables.

A snapshot at instant t sees events before t (gold features). Its label sees the events in
[t, t+H): everything from the snapshot on, for H days, and nothing after. Only snapshots whose
window has fully passed (t + H <= the end of observed data, or the --as-of time) are labelled.

Every event is sent to the snapshots whose window holds it (a handful of grid instants), then
summed per (person, snapshot): the cost follows the number of events, not persons x events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.features.catalog import ENTITY, TIMESTAMP
from presage.lakehouse import Lakehouse
from presage.models.goals import Goal

LABEL = "label"
VALUE = "horizon_revenue"  # revenue in the label window: revenue capture metrics and budgets
CHANNEL = "channel"


@dataclass(frozen=True)
class Window:
    """The labelled snapshots: those at or before ``last_snapshot``, read up to ``until``."""

    horizon_days: int
    until: dt.datetime  # no event at or after this instant is read

    @property
    def last_snapshot(self) -> dt.datetime:
        return self.until - dt.timedelta(days=self.horizon_days)


def _delta(spark: SparkSession, path: str, hint: str) -> DataFrame:
    if not DeltaTable.isDeltaTable(spark, path):
        raise FileNotFoundError(f"table {path} not found: run `{hint}` first")
    return spark.read.format("delta").load(path)


def observed_until(spark: SparkSession, lake: Lakehouse, as_of: dt.datetime | None) -> dt.datetime:
    """The end of the observed data: ``as_of`` when given, else just after the newest order or contact."""
    if as_of is not None:
        return as_of
    orders = _delta(spark, lake.silver("orders"), "presage build-profiles").select(F.max("order_ts")).first()[0]
    contacts = _delta(spark, lake.silver("campaign_events"), "presage build-profiles").select(F.max("event_ts")).first()[0]
    newest = max((t for t in (orders, contacts) if t is not None), default=None)
    if newest is None:
        raise ValueError("no orders and no campaign events in silver: nothing to label")
    return newest.replace(tzinfo=dt.UTC) + dt.timedelta(microseconds=1)


def snapshots(spark: SparkSession, lake: Lakehouse, window: Window) -> DataFrame:
    """(customer_id, event_timestamp, days_since_last_order) of every labelled gold snapshot."""
    gold = _delta(spark, lake.gold("customer_features"), "presage build-features")
    return gold.where(F.col(TIMESTAMP) <= F.lit(window.last_snapshot)).select(ENTITY, TIMESTAMP, "days_since_last_order")


def _grid(population: DataFrame) -> list[dt.datetime]:
    return sorted(r[0] for r in population.select(TIMESTAMP).distinct().collect())


def _to_snapshots(events: DataFrame, ts: str, grid: list[dt.datetime], horizon_days: int) -> DataFrame:
    """Each event once per snapshot t whose label window [t, t+H) holds it, as column event_timestamp."""
    instants = F.array(*[F.lit(t).cast("timestamp") for t in grid])
    span = F.make_interval(days=F.lit(horizon_days))
    hit = F.filter(instants, lambda t: (t <= F.col(ts)) & (F.col(ts) < t + span))
    return events.withColumn(TIMESTAMP, F.explode(hit))


def _orders_after(spark: SparkSession, lake: Lakehouse, population: DataFrame, window: Window) -> DataFrame:
    """Per (person, snapshot): orders placed and completed revenue in the label window."""
    orders = (
        _delta(spark, lake.silver("orders"), "presage build-profiles")
        .where(F.col("person_id").isNotNull() & (F.col("status") != "cancelled") & (F.col("order_ts") < F.lit(window.until)))
        .select(F.col("person_id").alias(ENTITY), "order_ts",
                F.when(F.col("status") == "completed", F.col("total_amount")).alias("_revenue"))
    )
    grid = _grid(population)
    if not grid:
        return population.limit(0).select(ENTITY, TIMESTAMP, F.lit(0).alias("_orders"), F.lit(0.0).alias("_revenue"))
    exploded = _to_snapshots(orders, "order_ts", grid, window.horizon_days)
    return exploded.groupBy(ENTITY, TIMESTAMP).agg(F.count("*").alias("_orders"), F.sum("_revenue").alias("_revenue"))


def _with_outcome(population: DataFrame, after: DataFrame) -> DataFrame:
    joined = population.join(after, [ENTITY, TIMESTAMP], "left")
    return joined.select(
        ENTITY, TIMESTAMP, F.coalesce("_orders", F.lit(0)).alias("_orders"),
        F.coalesce("_revenue", F.lit(0.0)).cast("double").alias(VALUE), "days_since_last_order",
    )


def _channel_response(spark: SparkSession, lake: Lakehouse, population: DataFrame, window: Window) -> DataFrame:
    """(person, snapshot, channel) for every channel that contacted the person in the window; label 1
    when a conversion on that channel followed the first contact within the window."""
    events = (
        _delta(spark, lake.silver("campaign_events"), "presage build-profiles")
        .where(F.col("person_id").isNotNull() & F.col("channel").isNotNull()
               & F.col("event_type").isin("send", "conversion") & (F.col("event_ts") < F.lit(window.until)))
        .select(F.col("person_id").alias(ENTITY), "event_ts", "event_type", CHANNEL, "revenue")
    )
    grid = _grid(population)
    if not grid:
        return population.limit(0).select(ENTITY, TIMESTAMP, F.lit("").alias(CHANNEL), F.lit(0).alias(LABEL), F.lit(0.0).alias(VALUE))
    exploded = _to_snapshots(events, "event_ts", grid, window.horizon_days)
    send, conversion = F.col("event_type") == "send", F.col("event_type") == "conversion"
    per_channel = exploded.groupBy(ENTITY, TIMESTAMP, CHANNEL).agg(
        F.min(F.when(send, F.col("event_ts"))).alias("_first_contact"),
        F.max(F.when(conversion, F.col("event_ts"))).alias("_last_conversion"),
        F.sum(F.when(conversion, F.coalesce("revenue", F.lit(0.0)))).alias("_conversion_revenue"),
    )
    contacted = per_channel.where(F.col("_first_contact").isNotNull())
    label = (F.col("_last_conversion") >= F.col("_first_contact")).cast("int")
    known = population.select(ENTITY, TIMESTAMP)  # persons in the snapshot (features exist)
    return contacted.join(known, [ENTITY, TIMESTAMP]).select(
        ENTITY, TIMESTAMP, CHANNEL, F.coalesce(label, F.lit(0)).alias(LABEL),
        F.coalesce("_conversion_revenue", F.lit(0.0)).cast("double").alias(VALUE),
    )


def built_in_labels(
    spark: SparkSession, lake: Lakehouse, goal: Goal, window: Window, active_days: int
) -> DataFrame:
    """Entity rows with label (and horizon_revenue, and channel for channel response) of a built-in goal."""
    population = snapshots(spark, lake, window)
    if goal.kind == "channel_response":
        return _channel_response(spark, lake, population, window)
    rows = _with_outcome(population, _orders_after(spark, lake, population, window))
    if goal.kind == "purchase":
        label: Column = (F.col("_orders") > 0).cast("int")
    elif goal.kind == "spend":
        label = F.col(VALUE)
    elif goal.kind == "churn":
        # Active at t: an order within active_days before t (gold's days_since_last_order is point in time).
        rows = rows.where(F.col("days_since_last_order") <= F.lit(float(active_days)))
        label = (F.col("_orders") == 0).cast("int")
    else:
        raise ValueError(f"{goal.name} is not a built-in goal")
    return rows.select(ENTITY, TIMESTAMP, label.alias(LABEL), VALUE)


def custom_labels(rows: DataFrame, until: dt.datetime | None) -> DataFrame:
    """A user's label table (customer_id, event_timestamp, label 0/1 or boolean), checked.

    Rows at or after ``until`` (the --as-of time) are dropped: they were not known then.

    Raises:
        ValueError: missing columns, null keys or labels, labels other than 0/1, or one class only.
    """
    missing = [c for c in (ENTITY, TIMESTAMP, LABEL) if c not in rows.columns]
    if missing:
        raise ValueError(f"a label table needs the columns {ENTITY}, {TIMESTAMP}, {LABEL}; missing {missing}")
    label = F.col(LABEL).cast("string")
    typed = rows.select(
        F.col(ENTITY).cast("string").alias(ENTITY),
        F.col(TIMESTAMP).try_cast("timestamp").alias(TIMESTAMP),
        F.when(F.lower(label).isin("1", "1.0", "true"), 1).when(F.lower(label).isin("0", "0.0", "false"), 0).alias(LABEL),
        F.col(LABEL).alias("_raw"),
    )
    bad = typed.where(F.col(ENTITY).isNull() | F.col(TIMESTAMP).isNull() | F.col(LABEL).isNull())
    count = bad.count()
    if count:
        examples = [r.asDict() for r in bad.limit(3).collect()]
        raise ValueError(f"{count} label rows lack a {ENTITY}, a valid {TIMESTAMP} or a 0/1 label, e.g. {examples}")
    if until is not None:
        typed = typed.where(F.col(TIMESTAMP) < F.lit(until))
    classes = {r[0] for r in typed.select(LABEL).distinct().collect()}
    if classes != {0, 1}:
        raise ValueError(f"a propensity model needs both classes in its labels; found only {sorted(classes)}")
    return typed.select(ENTITY, TIMESTAMP, LABEL, F.lit(None).cast("double").alias(VALUE))
