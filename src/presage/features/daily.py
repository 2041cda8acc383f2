"""Per person and day: the additive measures that every windowed feature is a sum (or max) of.

Reducing events to (person, day) rows first keeps the windows cheap: a year of events per person
becomes at most 365 rows, and the snapshots read those instead of raw events. Days are UTC dates
counted from 1970-01-01 so that range windows can use plain integers.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.features.catalog import CHANNELS, SOCIAL_TYPES
from presage.features.sentiment import sentiment
from presage.ingest.expectations import value_set

WEB_TYPES: tuple[str, ...] = tuple(value_set("web_events", "event_type"))
CAMPAIGN_TYPES: tuple[str, ...] = tuple(value_set("campaign_events", "event_type"))
ENGAGEMENT = ("open", "click", "conversion")
MAX_MEASURES = ("order_max",)


def day_index(ts: Column) -> Column:
    """Days since 1970-01-01 of a timestamp's UTC date (the session time zone is UTC)."""
    return F.datediff(F.to_date(ts), F.lit("1970-01-01"))


def _count(condition: Column) -> Column:
    return F.count(F.when(condition, True))


def _circular(ts: Column, prefix: str) -> list[Column]:
    """Sums of sine and cosine of hour-of-day and weekday: additive, so circular means survive windows."""
    hour = (F.hour(ts) + F.minute(ts) / 60.0) * (2 * math.pi / 24)
    weekday = (F.dayofweek(ts) + 5) % 7 * (2 * math.pi / 7)  # Spark: 1 = Sunday; here 0 = Monday
    return [
        F.sum(F.sin(hour)).alias(f"{prefix}_hsin"), F.sum(F.cos(hour)).alias(f"{prefix}_hcos"),
        F.sum(F.sin(weekday)).alias(f"{prefix}_dsin"), F.sum(F.cos(weekday)).alias(f"{prefix}_dcos"),
        F.count("*").alias(f"{prefix}_n"),
    ]


def order_days(orders: DataFrame, items: DataFrame) -> DataFrame:
    placed = orders.where(F.col("person_id").isNotNull() & (F.col("status") != "cancelled"))
    completed = F.col("status") == "completed"
    value = F.when(completed, F.col("total_amount"))
    units = items.groupBy("order_id").agg(F.sum("quantity").alias("_units"))
    return (
        placed.join(units, "order_id", "left")
        .groupBy("person_id", day_index(F.col("order_ts")).alias("day"))
        .agg(
            F.count("*").alias("orders"),
            _count(F.col("status") == "returned").alias("returns"),
            F.sum(value).alias("revenue"),
            _count(completed).alias("completed"),
            F.max(value).alias("order_max"),
            F.sum(value * value).alias("order_sq"),
            F.sum(F.coalesce("discount_amount", F.lit(0.0))).alias("discount"),
            F.sum(F.col("total_amount") + F.coalesce("discount_amount", F.lit(0.0))).alias("gross"),
            F.sum(F.coalesce("_units", F.lit(0))).alias("units"),
        )
    )


def web_days(web: DataFrame) -> DataFrame:
    rows = web.where(F.col("person_id").isNotNull())
    return rows.groupBy("person_id", day_index(F.col("event_ts")).alias("day")).agg(
        F.countDistinct("session_id").alias("web_sessions"),
        F.count("*").alias("web_events"),
        *[_count(F.col("event_type") == t).alias(f"web_{t}") for t in WEB_TYPES],
        *_circular(F.col("event_ts"), "webtime"),
    )


def campaign_days(campaigns: DataFrame) -> DataFrame:
    rows = campaigns.where(F.col("person_id").isNotNull())
    per_channel = [
        _count((F.col("channel") == c) & (F.col("event_type") == t)).alias(f"{c}__{t}")
        for c in CHANNELS for t in CAMPAIGN_TYPES
    ]
    engaged = rows.where(F.col("event_type").isin(*ENGAGEMENT))
    times = engaged.groupBy("person_id", day_index(F.col("event_ts")).alias("day")).agg(*_circular(F.col("event_ts"), "engtime"))
    counts = rows.groupBy("person_id", day_index(F.col("event_ts")).alias("day")).agg(*per_channel)
    return counts.join(times, ["person_id", "day"], "left")


def social_days(social: DataFrame) -> DataFrame:
    rows = social.where(F.col("person_id").isNotNull())
    worded = F.col("event_type").isin("comment", "mention")
    # The condition inside the UDF's argument: Spark sends a Python UDF every row of its input, and
    # the UDF returns null at once for a null text (likes, shares).
    rows = rows.withColumn("_sentiment", sentiment(F.when(worded, F.col("text"))))
    return rows.groupBy("person_id", day_index(F.col("event_ts")).alias("day")).agg(
        F.count("*").alias("social"),
        *[_count(F.col("event_type") == t).alias(f"social_{t}") for t in SOCIAL_TYPES],
        F.sum("_sentiment").alias("social_sentiment"),
        F.count("_sentiment").alias("social_sentiment_n"),
    )


def review_days(reviews: DataFrame) -> DataFrame:
    rows = reviews.where(F.col("person_id").isNotNull()).withColumn("_sentiment", sentiment(F.concat_ws(". ", "title", "text")))
    return rows.groupBy("person_id", day_index(F.col("review_ts")).alias("day")).agg(
        F.count("*").alias("reviews"),
        F.sum("rating").alias("rating_sum"),
        F.count("rating").alias("rating_n"),
        F.sum("_sentiment").alias("review_sentiment"),
        F.count("_sentiment").alias("review_sentiment_n"),
    )


def person_days(facts: dict[str, DataFrame]) -> DataFrame:
    """One row per (person_id, day) with every measure (0 or null where nothing happened)."""
    parts = [
        order_days(facts["orders"], facts["order_items"]),
        web_days(facts["web_events"]),
        campaign_days(facts["campaign_events"]),
        social_days(facts["social_events"]),
        review_days(facts["reviews"]),
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part, allowMissingColumns=True)
    measures = [c for c in union.columns if c not in ("person_id", "day")]
    return union.groupBy("person_id", "day").agg(
        *[(F.max(c) if c in MAX_MEASURES else F.sum(c)).alias(c) for c in measures]
    )
