"""Behaviour worth a look, one row per finding with the reason in words and the numbers behind it.

Only behaviour in [as_of - lookback_days, as_of) is flagged; order amounts are compared with the
person's own orders before that window (or with everyone's orders when the person has few). Kinds:

- ``order_amount``: an order far above normal, by a robust z-score (median and MAD, which one
  outlier cannot drag along the way a mean and standard deviation would).
- ``order_velocity``: many orders by one person within 24 hours (a sliding window, so a burst
  around midnight counts as one).
- ``many_devices``: more distinct devices than usual for one account in a UTC day (an account used
  by several people). Devices identity resolution marks shared (store kiosks) do not count.
- ``shared_identifier``: an order placed with a device or email that identity resolution marks
  shared and that several persons used in the window.
- ``returns``: many returned or cancelled orders.

Events carry no geography, so location signals (countries, impossible travel) are not computed.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from presage.config import AnomalySettings
from presage.features.calendar import during
from presage.features.catalog import ENTITY
from presage.lakehouse import Lakehouse

MAD_TO_SD = 1.4826  # MAD times this estimates the standard deviation of normally distributed amounts
MIN_SCALE_SHARE = 0.1  # the deviation unit is at least 10% of the median, even when all past orders were equal
MEDIAN_ACCURACY = 10_000  # percentile_approx accuracy: exact for groups up to this many orders
DAY_SECONDS = 86_400
COLUMNS = (ENTITY, "kind", "reason", "severity", "observed_at", "order_id", "evidence")


def _money(value: Column) -> Column:
    return F.format_number(value, 2)


def _finding(kind: str, reason: Column, severity: Column, observed_at: Column, order_id: Column | None,
             evidence: dict[str, Column]) -> list[Column]:
    """The output columns of one finding, from the columns of a per-finding row."""
    pairs = [x for name, value in evidence.items() for x in (F.lit(name), value.cast("double"))]
    return [
        F.col("person_id").alias(ENTITY),
        F.lit(kind).alias("kind"),
        reason.alias("reason"),
        severity.cast("double").alias("severity"),
        observed_at.cast("timestamp").alias("observed_at"),
        (order_id if order_id is not None else F.lit(None)).cast("string").alias("order_id"),
        F.create_map(*pairs).alias("evidence"),
    ]


def _robust(orders: DataFrame, keys: list[str], prefix: str) -> DataFrame:
    """Per ``keys``: median, MAD and count of total_amount, as <prefix>_median, <prefix>_mad, <prefix>_n."""
    median = F.percentile_approx("total_amount", 0.5, MEDIAN_ACCURACY)
    centre = orders.groupBy(*keys).agg(median.alias("_median"), F.count("*").alias("_n"))
    deviation = F.abs(F.col("total_amount") - F.col("_median"))
    spread = orders.join(centre, keys).groupBy(*keys).agg(
        F.percentile_approx(deviation, 0.5, MEDIAN_ACCURACY).alias("_mad")
    )
    return centre.join(spread, keys).select(
        *keys, *[F.col(f"_{name}").alias(f"{prefix}_{name}") for name in ("median", "mad", "n")]
    )


def order_amounts(orders: DataFrame, start: dt.datetime, settings: AnomalySettings) -> DataFrame:
    """Orders of the window whose amount is ``amount_robust_z`` robust deviations above normal.

    ``orders`` spans [start - history_days, as_of). Normal is the person's own orders before ``start``
    (same currency) when there are at least ``min_history_orders``, else every order of the span. The
    deviation unit (1.4826 MAD) is never narrower than everyone's relative spread (MAD / median) times
    the person's median, nor than 10% of that median: a handful of similar past orders does not make
    an ordinary bigger basket an outlier.
    """
    amounts = orders.where(F.col("total_amount").isNotNull())
    history = amounts.where(F.col("order_ts") < F.lit(start))
    own = _robust(history, ["person_id", "currency"], "own")
    everyone = _robust(amounts, ["currency"], "all")
    window = amounts.where(F.col("order_ts") >= F.lit(start))
    joined = window.join(own, ["person_id", "currency"], "left").join(F.broadcast(everyone), "currency", "left")
    use_own = F.coalesce(F.col("own_n"), F.lit(0)) >= settings.min_history_orders
    median = F.when(use_own, F.col("own_median")).otherwise(F.col("all_median"))
    mad = F.when(use_own, F.col("own_mad")).otherwise(F.col("all_mad"))
    relative = F.coalesce(F.try_divide(F.col("all_mad"), F.col("all_median")), F.lit(0.0))
    unit = F.greatest(F.lit(MAD_TO_SD) * mad, F.lit(MAD_TO_SD) * relative * median, F.lit(MIN_SCALE_SHARE) * median)
    scored = joined.select(
        "*", median.alias("_median"), mad.alias("_mad"), unit.alias("_unit"), use_own.alias("_own"),
        F.try_divide(F.col("total_amount") - median, unit).alias("_z"),
    ).where(F.col("_z") >= settings.amount_robust_z)
    usual = F.when(
        F.col("_own"), F.concat(F.lit("this customer's usual "), _money(F.col("_median")))
    ).otherwise(F.concat(F.lit("the usual "), _money(F.col("_median")), F.lit(" of all customers' orders")))
    reason = F.format_string(
        "order of %s %s is %s robust deviations above %s",
        _money(F.col("total_amount")), F.coalesce("currency", F.lit("")), F.format_number("_z", 1), usual,
    )
    return scored.select(*_finding(
        "order_amount", reason, F.col("_z") / settings.amount_robust_z, F.col("order_ts"), F.col("order_id"),
        {"amount": F.col("total_amount"), "median": F.col("_median"), "mad": F.col("_mad"), "unit": F.col("_unit"),
         "robust_z": F.col("_z"),
         "history_orders": F.coalesce(F.col("own_n"), F.lit(0)), "threshold": F.lit(settings.amount_robust_z)},
    ))


def order_velocity(window: DataFrame, settings: AnomalySettings) -> DataFrame:
    """Persons with ``velocity_orders_per_day`` orders within 24 hours: their fastest burst."""
    last_day = Window.partitionBy("person_id").orderBy(F.unix_seconds("order_ts")).rangeBetween(-(DAY_SECONDS - 1), 0)
    counted = window.select(
        "person_id", "order_id", "order_ts",
        F.count("*").over(last_day).alias("_n"), F.min("order_ts").over(last_day).alias("_first"),
    ).where(F.col("_n") >= settings.velocity_orders_per_day)
    # The largest burst; among equal ones the earliest moment it was reached.
    key = F.struct(F.col("_n"), -F.unix_micros("order_ts"), F.col("order_id"))
    best = counted.groupBy("person_id").agg(F.max_by(F.struct("order_id", "order_ts", "_n", "_first"), key).alias("b"))
    hours = (F.unix_micros("b.order_ts") - F.unix_micros("b._first")) / 3_600_000_000.0
    reason = F.format_string(
        "%d orders within %s hours (alert at %d within 24 hours)",
        F.col("b._n"), F.format_number(hours, 1), F.lit(settings.velocity_orders_per_day),
    )
    return best.select(*_finding(
        "order_velocity", reason, F.col("b._n") / settings.velocity_orders_per_day, F.col("b.order_ts"),
        F.col("b.order_id"),
        {"orders_24h": F.col("b._n"), "span_hours": hours, "threshold": F.lit(settings.velocity_orders_per_day)},
    ))


def many_devices(usage: DataFrame, shared: DataFrame, settings: AnomalySettings) -> DataFrame:
    """Persons with more than ``max_devices_per_day`` own devices in a UTC day: their busiest day.

    ``usage`` is (person_id, device_id, ts) of the window; ``shared`` the shared identifiers.
    """
    own = usage.withColumn("identifier", F.concat(F.lit("device_id:"), "device_id")).join(shared, "identifier", "left_anti")
    days = own.groupBy("person_id", F.to_date("ts").alias("day")).agg(
        F.countDistinct("device_id").alias("_devices"), F.max("ts").alias("_last")
    ).where(F.col("_devices") > settings.max_devices_per_day)
    key = F.struct(F.col("_devices"), -F.unix_date("day"))
    best = days.groupBy("person_id").agg(
        F.max_by(F.struct("day", "_devices", "_last"), key).alias("b"), F.count("*").alias("_days")
    )
    reason = F.format_string(
        "%d distinct devices on %s (more than %d in a day); %d such day(s) in the last %d days",
        F.col("b._devices"), F.col("b.day").cast("string"), F.lit(settings.max_devices_per_day), F.col("_days"),
        F.lit(settings.lookback_days),
    )
    return best.select(*_finding(
        "many_devices", reason, F.col("b._devices") / settings.max_devices_per_day, F.col("b._last"), None,
        {"devices": F.col("b._devices"), "days_over": F.col("_days"), "threshold": F.lit(settings.max_devices_per_day)},
    ))


def _nodes(kind: str, column: str) -> Column:
    return F.when(F.col(column).isNotNull(), F.concat(F.lit(f"{kind}:"), F.col(column)))


def shared_identifiers(window: DataFrame, usage: DataFrame, shared: DataFrame, settings: AnomalySettings) -> DataFrame:
    """Persons who ordered with a shared device or email that more than ``max_persons_per_identifier``
    persons used in the window (orders and web events): the most shared one, its latest order."""
    order_nodes = window.select(
        "person_id", "order_id", "order_ts",
        F.explode(F.array_compact(F.array(_nodes("device_id", "device_id"), _nodes("email", "email_hash")))).alias("identifier"),
    ).join(shared, "identifier")
    seen = order_nodes.select("person_id", "identifier").unionByName(
        usage.select("person_id", _nodes("device_id", "device_id").alias("identifier")).join(shared, "identifier", "left_semi")
    )
    crowded = seen.groupBy("identifier").agg(F.countDistinct("person_id").alias("_persons")).where(
        F.col("_persons") > settings.max_persons_per_identifier
    )
    hits = order_nodes.join(crowded, "identifier")
    key = F.struct(F.col("_persons"), F.unix_micros("order_ts"), F.col("order_id"), F.col("identifier"))
    best = hits.groupBy("person_id").agg(
        F.max_by(F.struct("order_id", "order_ts", "kind", "_persons"), key).alias("b"),
        F.countDistinct("order_id").alias("_orders"),
    )
    what = F.when(F.col("b.kind") == "email", F.lit("an email address")).otherwise(F.lit("a device"))
    reason = F.format_string(
        "order placed with %s that %d customers used in the last %d days (more than %d); %d such order(s)",
        what, F.col("b._persons"), F.lit(settings.lookback_days), F.lit(settings.max_persons_per_identifier),
        F.col("_orders"),
    )
    return best.select(*_finding(
        "shared_identifier", reason, F.col("b._persons") / settings.max_persons_per_identifier, F.col("b.order_ts"),
        F.col("b.order_id"),
        {"persons": F.col("b._persons"), "orders": F.col("_orders"), "threshold": F.lit(settings.max_persons_per_identifier)},
    ))


def returns(window: DataFrame, settings: AnomalySettings) -> DataFrame:
    """Persons with more than ``max_returned_orders`` returned or cancelled orders in the window."""
    bad = F.col("status").isin("returned", "cancelled")
    per = window.groupBy("person_id").agg(
        F.count("*").alias("_orders"),
        F.count(F.when(F.col("status") == "returned", True)).alias("_returned"),
        F.count(F.when(F.col("status") == "cancelled", True)).alias("_cancelled"),
        F.max_by(F.struct("order_id", "order_ts"), F.when(bad, F.struct(F.unix_micros("order_ts"), F.col("order_id")))).alias("b"),
    ).withColumn("_bad", F.col("_returned") + F.col("_cancelled")).where(F.col("_bad") > settings.max_returned_orders)
    reason = F.format_string(
        "%d of %d orders in the last %d days were returned or cancelled (%d returned, %d cancelled; more than %d)",
        F.col("_bad"), F.col("_orders"), F.lit(settings.lookback_days), F.col("_returned"), F.col("_cancelled"),
        F.lit(settings.max_returned_orders),
    )
    return per.select(*_finding(
        "returns", reason, F.col("_bad") / settings.max_returned_orders, F.col("b.order_ts"), F.col("b.order_id"),
        {"returned": F.col("_returned"), "cancelled": F.col("_cancelled"), "orders": F.col("_orders"),
         "threshold": F.lit(settings.max_returned_orders)},
    ))


def anomalies(spark: SparkSession, lake: Lakehouse, as_of: dt.datetime, settings: AnomalySettings) -> DataFrame:
    """Findings of every kind in [as_of - lookback_days, as_of), from silver orders, web events and identity map.

    Returns:
        customer_id, kind, reason, severity (observed / threshold, >= 1), observed_at, order_id
        (null for many_devices), evidence (map<string,double> of the numbers in the reason).

    Raises:
        FileNotFoundError: a silver table is missing.
    """
    start = as_of - dt.timedelta(days=settings.lookback_days)
    orders = lake.read_silver(spark, "orders").where(
        F.col("person_id").isNotNull() & during("order_ts", start - dt.timedelta(days=settings.history_days), as_of)
    ).select("order_id", "person_id", "order_ts", "status", "currency", "total_amount", "device_id", "email_hash")
    window = orders.where(F.col("order_ts") >= F.lit(start))
    web = lake.read_silver(spark, "web_events").where(
        F.col("person_id").isNotNull() & F.col("device_id").isNotNull() & during("event_ts", start, as_of)
    ).select("person_id", "device_id", F.col("event_ts").alias("ts"))
    usage = web.unionByName(
        window.where(F.col("device_id").isNotNull()).select("person_id", "device_id", F.col("order_ts").alias("ts"))
    )
    shared = lake.read_silver(spark, "identity_map").where(
        F.col("is_shared") & F.col("kind").isin("device_id", "email")
    ).select("identifier", "kind").distinct()
    found = [
        order_amounts(orders, start, settings),
        order_velocity(window, settings),
        many_devices(usage, shared.select("identifier"), settings),
        shared_identifiers(window, usage, shared, settings),
        returns(window, settings),
    ]
    out = found[0]
    for frame in found[1:]:
        out = out.unionByName(frame)
    return out.select(*COLUMNS)
