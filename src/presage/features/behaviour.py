"""Windowed behaviour features per person and snapshot, from the per-day measures.

Each snapshot is a marker row (person, day = snapshot date) put beside the person's day rows; a
range window over ``[day - w, day - 1]`` then sums exactly the w days before the snapshot, and
nothing on or after it. One sort per person serves every window, so the cost grows with
person-days plus snapshots, not with their product.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from presage.features.catalog import BEHAVIOUR, CHANNELS, SOCIAL_TYPES

ALL = None  # the whole history before the snapshot


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def _rate(numerator: Column, denominator: Column) -> Column:
    """A share in [0, 1] (null without a denominator): events of one kind per contact."""
    return F.when(denominator > 0, F.least(F.lit(1.0), F.coalesce(numerator, F.lit(0)) / denominator))


@dataclass
class Frames:
    """The window aggregates the feature expressions ask for, named ``measure__agg__window``."""

    needed: dict[str, tuple[Callable[[str], Column], str, int | None]] = field(default_factory=dict)

    def _ask(self, agg: str, measure: str, window: int | None) -> Column:
        name = f"{measure}__{agg}__{window or 'all'}"
        self.needed[name] = ({"sum": F.sum, "max": F.max, "min": F.min}[agg], measure, window)
        return F.col(name)

    def sum(self, measure: str, window: int | None = ALL) -> Column:
        return self._ask("sum", measure, window)

    def count(self, measure: str, window: int | None = ALL) -> Column:
        return F.coalesce(self._ask("sum", measure, window), F.lit(0)).cast("long")

    def max(self, measure: str, window: int | None = ALL) -> Column:
        return self._ask("max", measure, window)

    def min(self, measure: str, window: int | None = ALL) -> Column:
        return self._ask("min", measure, window)

    def columns(self) -> list[Column]:
        out = []
        for name, (agg, measure, window) in self.needed.items():
            start = Window.unboundedPreceding if window is None else -window
            spec = Window.partitionBy("person_id").orderBy("day").rangeBetween(start, -1)
            out.append(agg(measure).over(spec).alias(name))
        return out


def _circular_mean(w: Frames, prefix: str, period: float, part: str) -> tuple[Column, Column]:
    s, c, n = w.sum(f"{prefix}_{part}sin"), w.sum(f"{prefix}_{part}cos"), w.sum(f"{prefix}_n")
    angle = F.atan2(s, c)
    value = F.floor(F.pmod(angle, F.lit(2 * math.pi)) * (period / (2 * math.pi)) + 0.5) % period
    return F.when(n > 0, value.cast("double")), F.when(n > 0, F.sqrt(s * s + c * c) / n)


def expressions(w: Frames, snapshot_day: Column, first_seen_day: Column) -> dict[str, Column]:
    """Every behaviour feature of the catalog except those joined from other modules."""
    since = lambda day: (snapshot_day - day).cast("double")
    e: dict[str, Column] = {
        "days_since_last_order": since(w.max("order_day")),
        "days_since_first_order": since(w.min("order_day")),
        "orders_total": w.count("orders"),
        "revenue_total": F.coalesce(w.sum("revenue"), F.lit(0.0)),
        "avg_order_value_365d": _ratio(w.sum("revenue", 365), w.sum("completed", 365)),
        "max_order_value_365d": w.max("order_max", 365),
        "std_order_value_365d": F.when(
            w.sum("completed", 365) >= 2,
            F.sqrt(F.greatest(F.lit(0.0), w.sum("order_sq", 365) / w.sum("completed", 365)
                              - F.pow(w.sum("revenue", 365) / w.sum("completed", 365), 2))),
        ),
        "avg_days_between_orders": F.when(
            w.sum("order_day_n") >= 2, (w.max("order_day") - w.min("order_day")) / (w.sum("order_day_n") - 1)
        ).cast("double"),
        "returns_365d": w.count("returns", 365),
        "return_rate_365d": _ratio(w.sum("returns", 365), w.sum("orders", 365)),
        "discount_rate_365d": _ratio(w.sum("discount", 365), w.sum("gross", 365)),
        "units_365d": w.count("units", 365),
        "page_views_30d": w.count("web_page_view", 30),
        "days_since_last_visit": since(w.max("visit_day")),
        "days_since_last_cart": since(w.max("cart_day")),
        "open_cart": F.when(w.max("cart_day") > F.coalesce(w.max("order_day"), F.lit(-1)), 1).otherwise(0).cast("long"),
        "cart_abandonment_rate_90d": F.when(
            w.sum("web_add_to_cart", 90) > 0,
            F.greatest(F.lit(0.0), 1 - F.coalesce(w.sum("web_checkout", 90), F.lit(0)) / w.sum("web_add_to_cart", 90)),
        ),
        "campaign_sends_30d": sum((w.count(f"{c}__send", 30) for c in CHANNELS), F.lit(0)).cast("long"),
        "unsubscribes_total": sum((w.count(f"{c}__unsubscribe") for c in CHANNELS), F.lit(0)).cast("long"),
        "bounces_365d": sum((w.count(f"{c}__bounce", 365) for c in CHANNELS), F.lit(0)).cast("long"),
        "social_events_90d": w.count("social", 90),
        "social_sentiment_365d": _ratio(w.sum("social_sentiment", 365), w.sum("social_sentiment_n", 365)),
        "reviews_total": w.count("reviews"),
        "review_rating_avg": _ratio(w.sum("rating_sum"), w.sum("rating_n")),
        "review_sentiment_avg": _ratio(w.sum("review_sentiment"), w.sum("review_sentiment_n")),
        "tenure_days": since(first_seen_day),
        "bgnbd_frequency": F.greatest(w.count("order_day_n") - 1, F.lit(0)).cast("long"),
        "bgnbd_recency_weeks": ((w.max("order_day") - w.min("order_day")) / 7.0),
        "bgnbd_age_weeks": ((snapshot_day - w.min("order_day")) / 7.0),
    }
    for window in (7, 30, 90, 365):
        e[f"orders_{window}d"] = w.count("orders", window)
        e[f"revenue_{window}d"] = F.coalesce(w.sum("revenue", window), F.lit(0.0))
    for window in (7, 30, 90):
        e[f"web_sessions_{window}d"] = w.count("web_sessions", window)
        e[f"product_views_{window}d"] = w.count("web_product_view", window)
        e[f"add_to_carts_{window}d"] = w.count("web_add_to_cart", window)
        e[f"checkouts_{window}d"] = w.count("web_checkout", window)
    for window in (7, 30):
        e[f"searches_{window}d"] = w.count("web_search", window)
    for c in CHANNELS:
        delivered = F.coalesce(F.when(w.sum(f"{c}__deliver", 90) > 0, w.sum(f"{c}__deliver", 90)), w.sum(f"{c}__send", 90))
        e[f"{c}_sends_90d"] = w.count(f"{c}__send", 90)
        e[f"{c}_open_rate_90d"] = _rate(w.sum(f"{c}__open", 90), delivered)
        e[f"{c}_click_rate_90d"] = _rate(w.sum(f"{c}__click", 90), delivered)
        e[f"{c}_conversion_rate_365d"] = _rate(w.sum(f"{c}__conversion", 365), w.sum(f"{c}__send", 365))
        e[f"{c}_days_since_engagement"] = since(w.max(f"{c}__engaged_day"))
    for t in SOCIAL_TYPES:
        e[f"social_{t}s_365d"] = w.count(f"social_{t}", 365)
    engaged_hour, engaged_conf = _circular_mean(w, "engtime", 24, "h")
    web_hour, web_conf = _circular_mean(w, "webtime", 24, "h")
    engaged_day, _ = _circular_mean(w, "engtime", 7, "d")
    web_day, _ = _circular_mean(w, "webtime", 7, "d")
    e["preferred_send_hour"] = F.coalesce(engaged_hour, web_hour)
    e["preferred_send_weekday"] = F.coalesce(engaged_day, web_day)
    e["send_time_confidence"] = F.coalesce(engaged_conf, web_conf)
    return e


JOINED = ("top_category_365d", "top_category_share_365d", "categories_365d", "p_alive", "expected_purchases_horizon")


def with_day_markers(days: DataFrame) -> DataFrame:
    """Per-day columns the features take maxima of: the day itself where something happened."""
    engaged = {c: sum((F.coalesce(F.col(f"{c}__{t}"), F.lit(0)) for t in ("open", "click", "conversion")), F.lit(0)) for c in CHANNELS}
    return days.select(
        "*",
        F.when(F.col("orders") > 0, F.col("day")).alias("order_day"),
        F.when(F.col("orders") > 0, 1).alias("order_day_n"),
        F.when(F.col("web_events") > 0, F.col("day")).alias("visit_day"),
        F.when(F.col("web_add_to_cart") > 0, F.col("day")).alias("cart_day"),
        *[F.when(n > 0, F.col("day")).alias(f"{c}__engaged_day") for c, n in engaged.items()],
    )


def behaviour(days: DataFrame, markers: DataFrame) -> DataFrame:
    """(person_id, snapshot_day, features...) for each marker row (person_id, day, first_seen_day).

    ``days`` is the output of :func:`presage.features.daily.person_days`.
    """
    w = Frames()
    exprs = expressions(w, F.col("day"), F.col("first_seen_day"))
    stacked = with_day_markers(days).withColumn("_marker", F.lit(False)).unionByName(
        markers.withColumn("_marker", F.lit(True)), allowMissingColumns=True
    )
    framed = stacked.select("person_id", "day", "first_seen_day", "_marker", *w.columns()).where("_marker")
    wanted = [f.name for f in BEHAVIOUR if f.name not in JOINED]
    missing = sorted(set(wanted) - set(exprs))
    if missing:
        raise KeyError(f"catalog features without an expression: {missing}")
    return framed.select("person_id", F.col("day").alias("snapshot_day"), *[exprs[name].alias(name) for name in wanted])
