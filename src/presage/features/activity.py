"""Short-window activity per person: the real-time features, defined once for stream and batch.

The streaming job (:mod:`presage.streaming`) computes them for the persons a micro-batch touched; a
batch caller computes them over any events with :func:`activity_features` and gets the same values
for the same events and the same ``as_of`` (``tests/test_streaming.py`` compares the two).

Two kinds of columns:

* windows ending at ``as_of``: views, searches, carts and checkouts in the last hour and day,
  minutes since the last activity (a web event or a campaign open, click or conversion) and the last
  campaign engagement, both looked at over :data:`LOOKBACK`;
* ``new_*``: what happened since the newest gold snapshot. The gold windows end at that snapshot, so
  :func:`fold_in` adds these counts to them and the champion models see a cart added a minute ago
  through the features they were trained on.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

from presage.features.catalog import CHANNELS, ENTITY, TIMESTAMP, Feature

LOOKBACK = dt.timedelta(days=7)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
ENGAGEMENT = ("open", "click", "conversion")
WEB, CAMPAIGN = "web_events", "campaign_events"
# Counted in the last hour and day: web event types by what a marketer calls them.
KINDS: dict[str, tuple[str, ...]] = {
    "views": ("page_view", "product_view"),
    "searches": ("search",),
    "carts": ("add_to_cart",),
    "checkouts": ("checkout",),
}
# Counted since the snapshot: web event type -> the gold windows it adds to (see fold_in).
NEW_WEB: dict[str, tuple[str, tuple[str, ...]]] = {
    "new_page_views": ("page_view", ("page_views_30d",)),
    "new_product_views": ("product_view", ("product_views_7d", "product_views_30d", "product_views_90d")),
    "new_searches": ("search", ("searches_7d", "searches_30d")),
    "new_carts": ("add_to_cart", ("add_to_carts_7d", "add_to_carts_30d", "add_to_carts_90d")),
    "new_checkouts": ("checkout", ("checkouts_7d", "checkouts_30d", "checkouts_90d")),
}

ACTIVITY: tuple[Feature, ...] = (
    *[Feature(f"{kind}_{span}", "long", f"{kind} ({', '.join(types)}) in the last {word}")
      for kind, types in KINDS.items() for span, word in (("1h", "hour"), ("24h", "24 hours"))],
    Feature("minutes_since_last_activity", "double", "minutes from the last web event or campaign engagement (7 days at most)"),
    Feature("last_activity_epoch", "long", "when that was, in seconds since 1970 (serving refreshes the minutes from it)"),
    Feature("minutes_since_last_engagement", "double", "minutes from the last campaign open, click or conversion (7 days at most)"),
    Feature("last_engagement_epoch", "long", "when that was, in seconds since 1970"),
    Feature("last_engagement_channel", "string", "channel of the last campaign engagement"),
    Feature("last_engagement_type", "string", "open, click or conversion"),
    Feature("snapshot_epoch", "long", "the gold snapshot the new_* counts start at, in seconds since 1970"),
    Feature("new_web_events", "long", "web events since the snapshot"),
    *[Feature(name, "long", f"{event_type} events since the snapshot") for name, (event_type, _) in NEW_WEB.items()],
    *[Feature(f"new_{c}_engagements", "long", f"{c} opens, clicks and conversions since the snapshot") for c in CHANNELS],
)
NAMES = [f.name for f in ACTIVITY]
TABLE = "customer_activity"  # gold table: each person's latest activity row (Feast's push source reads it)
_SPARK_TYPES = {"long": LongType(), "double": DoubleType(), "string": StringType()}
SCHEMA = StructType([StructField(ENTITY, StringType()), StructField(TIMESTAMP, TimestampType()),
                     *[StructField(f.name, _SPARK_TYPES[f.dtype]) for f in ACTIVITY]])


def create_table(spark: SparkSession, path: str) -> None:
    """Create the (empty) activity table if it is missing: Feast validates every source on
    ``feast apply``, before any stream has run."""
    spark.createDataFrame([], SCHEMA).write.format("delta").mode("ignore").save(path)


def activity_events(web: DataFrame | None, campaigns: DataFrame | None) -> DataFrame:
    """(person_id, event_id, event_ts, source, event_type, channel) of the resolved events of
    bronze- or silver-shaped web and campaign rows that carry ``person_id``, one per event id."""
    parts = []
    if web is not None:
        parts.append(web.select("person_id", "event_id", "event_ts", F.lit(WEB).alias("source"), "event_type",
                                F.lit(None).cast("string").alias("channel")))
    if campaigns is not None:
        parts.append(campaigns.select("person_id", "event_id", "event_ts", F.lit(CAMPAIGN).alias("source"), "event_type", "channel"))
    if not parts:
        raise ValueError("activity_events needs web or campaign events")
    events = parts[0]
    for part in parts[1:]:
        events = events.unionByName(part)
    # A resent event (same id) counts once, whichever copy is kept.
    return events.where(F.col("person_id").isNotNull()).dropDuplicates(["source", "event_id"])


def _count(condition: Column) -> Column:
    return F.count(F.when(condition, True)).cast("long")


def _epoch(ts: Column) -> Column:
    return F.unix_timestamp(ts).cast("long")


def activity_features(events: DataFrame, as_of: dt.datetime, snapshot: dt.datetime | None) -> DataFrame:
    """One row per person in ``events`` with every :data:`ACTIVITY` column as of ``as_of`` (naive or
    aware UTC), keyed ``customer_id`` with ``event_timestamp`` = ``as_of`` as Feast wants.

    Events after ``as_of`` or older than :data:`LOOKBACK` are ignored; with no ``snapshot`` the
    ``new_*`` counts are null (there is nothing to fold them into)."""
    as_of = as_of.astimezone(dt.UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
    ts, at = F.col("event_ts"), F.lit(as_of).cast("timestamp")
    web, kind = F.col("source") == WEB, F.col("event_type")
    engaged = (F.col("source") == CAMPAIGN) & kind.isin(*ENGAGEMENT)
    hour, day = ts > F.lit(as_of - HOUR).cast("timestamp"), ts > F.lit(as_of - DAY).cast("timestamp")
    recent = events.where((ts <= at) & (ts > F.lit(as_of - LOOKBACK).cast("timestamp")))
    aggs = [
        _count(web & kind.isin(*types) & window).alias(f"{name}_{span}")
        for name, types in KINDS.items() for span, window in (("1h", hour), ("24h", day))
    ]
    last_activity = F.max(F.when(web | engaged, ts))
    last_engagement = F.max(F.when(engaged, ts))
    aggs += [
        ((_epoch(at) - _epoch(last_activity)) / 60.0).alias("minutes_since_last_activity"),
        _epoch(last_activity).alias("last_activity_epoch"),
        ((_epoch(at) - _epoch(last_engagement)) / 60.0).alias("minutes_since_last_engagement"),
        _epoch(last_engagement).alias("last_engagement_epoch"),
        F.max_by(F.when(engaged, F.col("channel")), F.when(engaged, ts)).alias("last_engagement_channel"),
        F.max_by(F.when(engaged, kind), F.when(engaged, ts)).alias("last_engagement_type"),
    ]
    if snapshot is None:
        new = [F.lit(None).cast("long").alias(name) for name in NAMES[NAMES.index("snapshot_epoch"):]]
    else:
        snapshot = snapshot.astimezone(dt.UTC).replace(tzinfo=None) if snapshot.tzinfo else snapshot
        since = ts >= F.lit(snapshot).cast("timestamp")
        new = [
            F.lit(int(snapshot.replace(tzinfo=dt.UTC).timestamp())).cast("long").alias("snapshot_epoch"),
            _count(web & since).alias("new_web_events"),
            *[_count(web & since & (kind == event_type)).alias(name) for name, (event_type, _) in NEW_WEB.items()],
            *[_count(engaged & since & (F.col("channel") == c)).alias(f"new_{c}_engagements") for c in CHANNELS],
        ]
    return recent.groupBy(F.col("person_id").alias(ENTITY)).agg(*aggs, *new).select(
        ENTITY, at.alias(TIMESTAMP), *NAMES
    )


def fold_in(features: pd.DataFrame, activity: pd.DataFrame, snapshot_epoch: pd.Series) -> pd.DataFrame:
    """The gold features of each row with its activity since the snapshot added, for scoring.

    ``features`` are gold features as of the snapshot whose time (seconds since 1970) is
    ``snapshot_epoch``; ``activity`` holds the :data:`ACTIVITY` columns of the same rows. A row whose
    activity counts from another snapshot (or has none) is left as it is. Counts add to every window
    ending at the snapshot, and recency features restart at zero: windows then span the snapshot's
    days plus today, an approximation the next snapshot corrects (orders are not streamed, so order
    features wait for it too).
    """
    out = features.copy()
    activity = activity.set_axis(out.index)
    number = {f.name: pd.to_numeric(activity[f.name], errors="coerce") for f in ACTIVITY if f.dtype != "string"}
    snapshot = pd.to_numeric(pd.Series(snapshot_epoch), errors="coerce").set_axis(out.index)
    same = number["snapshot_epoch"].notna() & (number["snapshot_epoch"] == snapshot)
    if not same.any():
        return out
    for name, (_, windows) in NEW_WEB.items():
        added = number[name].where(same, 0).fillna(0)
        for column in windows:
            if column in out:
                out[column] = out[column].astype("float64") + added
    recency = {
        "days_since_last_visit": number["new_web_events"],
        "days_since_last_cart": number["new_carts"],
        **{f"{c}_days_since_engagement": number[f"new_{c}_engagements"] for c in CHANNELS},
    }
    for column, count in recency.items():
        if column in out:
            out[column] = out[column].astype("float64").mask(same & (count.fillna(0) > 0), 0.0)
    if "open_cart" in out:
        out["open_cart"] = out["open_cart"].mask(same & (number["new_carts"].fillna(0) > 0), 1)
    return out
