"""Behavioural micro-segments (Spark ML k-means) and RFM segments, each with a profile in words.

Micro-segments are recomputed every run from one gold snapshot: a curated set of behaviour
features (no demographics, no location) is transformed so that no single skewed amount dominates,
standardised, and clustered into dozens of small groups. A segment is described by the features
where its mean stands furthest from everybody's, in standard deviations (z), because that is what a
marketer needs to tell it apart. RFM segments follow the usual quintile rules beside them and are
described the same way. Nothing here writes tables; the scoring job does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import SegmentSettings
from presage.features.catalog import CHANNELS, ENTITY

log = logging.getLogger(__name__)

DAYS_CAP = 365.0  # the catalog's longest window: older than a year is just "over a year"
TOP_FEATURES = 5  # distinguishing features kept per segment
NAME_WORDS = 2  # features that name a segment
PHRASES = 3  # features in the profile sentence
NOTABLE_Z = 0.5  # a difference smaller than this many standard deviations names nothing
MIN_SHARE_GAP = 0.05  # ... nor one of fewer than 5 points between shares (p_alive 97 % vs 99 %)
MIN_RELATIVE_GAP = 0.2  # ... nor one of less than 20 % between counts, amounts or days
PROSPECT = "prospect"

Missing = Literal["zero", "mean", "cap", "present", "positive"]
Unit = Literal["count", "money", "days", "share"]


@dataclass(frozen=True)
class Behaviour:
    """One clustering dimension: read from a gold column, transformed, and put into words.

    ``missing``: zero (null is none), mean (null is unknown: Spark ML Imputer's mean, so it
    separates nobody), cap (days since: capped at ``DAYS_CAP``, null imputed like mean; a flag
    tells "never" apart), present / positive (a 0/1 flag: the column is not null / above zero).
    Counts and money go through log1p. ``template`` has ``{seg}`` and ``{all}``; ``high`` and
    ``low`` name a segment above or below everybody (None: not worth a name). ``implied_by``: left
    out of the words when that flag is notably low ("few orders" adds nothing to "never bought").
    """

    name: str
    missing: Missing
    unit: Unit
    template: str
    high: str | None
    low: str | None
    implied_by: str | None = None
    column: str | None = None  # the gold column, when it is not ``name``

    @property
    def source(self) -> str:
        return self.column or self.name


_NOUNS = {"email": "emails", "sms": "SMS", "push": "push messages", "display": "display ads",
          "social_ads": "social ads"}


def _channel(channel: str) -> Behaviour:
    noun = _NOUNS.get(channel, f"{channel} messages")
    template = f"opens {{seg}} of {noun} vs {{all}}"
    return Behaviour(f"{channel}_open_rate_90d", "mean", "share", template,
                     f"{channel.replace('_', ' ')}-engaged", f"ignore {noun}")


_B = Behaviour
BEHAVIOURS: tuple[Behaviour, ...] = (
    # purchases
    _B("has_ordered", "positive", "share", "{seg} have ordered vs {all}", None, "never bought",
       column="orders_total"),
    _B("days_since_last_order", "cap", "days", "last order {seg} days ago vs {all}",
       "no recent orders", "recent buyers", "has_ordered"),
    _B("orders_365d", "zero", "count", "orders in a year {seg} vs {all}",
       "frequent buyers", "few orders", "has_ordered"),
    _B("revenue_365d", "zero", "money", "revenue in a year {seg} vs {all}",
       "high spenders", "low spenders", "has_ordered"),
    _B("avg_order_value_365d", "mean", "money", "average order {seg} vs {all}",
       "big baskets", "small baskets"),
    _B("discount_rate_365d", "mean", "share", "discount {seg} of order value vs {all}",
       "discount seekers", "full-price buyers"),
    _B("return_rate_365d", "mean", "share", "returns {seg} of orders vs {all}",
       "frequent returners", None),
    # browsing intent
    _B("has_visited", "present", "share", "{seg} visited online vs {all}", None, "never online",
       column="days_since_last_visit"),
    _B("days_since_last_visit", "cap", "days", "last visit {seg} days ago vs {all}",
       "not visiting lately", "recent visitors", "has_visited"),
    _B("web_sessions_30d", "zero", "count", "visits in 30 days {seg} vs {all}",
       "frequent visitors", "rare visitors", "has_visited"),
    _B("product_views_30d", "zero", "count", "product views in 30 days {seg} vs {all}",
       "active browsers", "light browsers", "has_visited"),
    _B("searches_30d", "zero", "count", "searches in 30 days {seg} vs {all}",
       "searchers", None, "has_visited"),
    _B("add_to_carts_30d", "zero", "count", "adds to cart in 30 days {seg} vs {all}",
       "cart builders", None, "has_visited"),
    _B("open_cart", "positive", "share", "{seg} left a cart vs {all}", "abandoned carts", None),
    # campaigns
    *(_channel(c) for c in CHANNELS),
    _B("campaign_sends_30d", "zero", "count", "messages received in 30 days {seg} vs {all}",
       "heavily contacted", "rarely contacted"),
    _B("has_unsubscribed", "positive", "share", "{seg} unsubscribed somewhere vs {all}",
       "unsubscribed", None, column="unsubscribes_total"),
    # social and reviews
    _B("social_events_90d", "zero", "count", "social interactions in 90 days {seg} vs {all}",
       "social fans", None),
    _B("reviews_total", "zero", "count", "reviews written {seg} vs {all}", "reviewers", None),
    # lifecycle
    _B("tenure_days", "zero", "days", "known for {seg} days vs {all}",
       "long-standing", "newcomers"),
    _B("p_alive", "mean", "share", "chance still active {seg} vs {all}",
       "likely active", "likely lapsed"),
)

# RFM: quintiles of recency (days since the last order, fewer is better), frequency (orders) and
# monetary value (revenue) among persons with an order; names on the R x FM grid,
# FM = ceil((F + M) / 2).
RFM_SOURCES = ("days_since_last_order", "orders_total", "revenue_total")
QUINTILES = [0.2, 0.4, 0.6, 0.8]
RFM_GRID: dict[int, tuple[str, str, str, str, str]] = {  # R -> names for FM = 1..5
    5: ("new customers", "potential loyalists", "potential loyalists", "champions", "champions"),
    4: ("promising", "potential loyalists", "potential loyalists", "loyal", "loyal"),
    3: ("about to sleep", "about to sleep", "need attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at risk", "at risk", "cannot lose them"),
    1: ("lost", "hibernating", "at risk", "at risk", "cannot lose them"),
}
RFM_ORDER = (
    "champions", "loyal", "potential loyalists", "new customers", "promising", "need attention",
    "about to sleep", "at risk", "cannot lose them", "hibernating", "lost", PROSPECT,
)
RFM_COLUMNS = ("rfm_segment", "recency_score", "frequency_score", "monetary_score")
IMPUTED = ("mean", "cap")  # kinds of Behaviour.missing the Imputer fills in

FEATURE_STRUCT = T.StructType([
    T.StructField("feature", T.StringType()),
    T.StructField("segment_mean", T.DoubleType()),
    T.StructField("overall_mean", T.DoubleType()),
    T.StructField("z", T.DoubleType()),
])
PROFILE_SCHEMA = T.StructType([
    T.StructField("kind", T.StringType(), False),
    T.StructField("segment", T.StringType(), False),
    T.StructField("name", T.StringType(), False),
    T.StructField("size", T.LongType(), False),
    T.StructField("share", T.DoubleType(), False),
    T.StructField("profile", T.StringType(), False),
    T.StructField("features", T.ArrayType(FEATURE_STRUCT)),
])


@dataclass(frozen=True)
class Segments:
    """``members``: one row per person; ``profiles``: one row per micro and per RFM segment."""

    members: DataFrame
    profiles: DataFrame


def rfm_segment_name(recency: Column, frequency: Column, monetary: Column) -> Column:
    """The RFM segment of 1-5 scores (see RFM_GRID); null when a score is null."""
    fm = F.floor((frequency + monetary + 1) / 2).cast("int")
    cells = [F.lit(RFM_GRID[r][c]) for r in (5, 4, 3, 2, 1) for c in range(5)]
    known = recency.isNotNull() & frequency.isNotNull() & monetary.isNotNull()
    # guarded: Spark 4.2 gave element_at(<literal array>, NULL) the array's last element
    return F.when(known, F.element_at(F.array(*cells), (5 - recency) * 5 + fm))


def with_rfm(features: DataFrame) -> DataFrame:
    """``features`` with recency_score, frequency_score, monetary_score (1-5) and rfm_segment.

    Scores are quintiles among persons with an order (bounds by ``percentile_approx``, so no
    single-partition sort; tied values share a score). Lifetime orders and revenue, so a lapsed
    big spender still reads "cannot lose them". Persons without orders are "prospect", scores null.
    """
    _require(features, RFM_SOURCES)
    orders = F.coalesce(F.col("orders_total"), F.lit(0))
    buyer = (orders > 0) & F.col("days_since_last_order").isNotNull()
    bounds = features.agg(
        *[F.percentile_approx(F.when(buyer, F.col(c)), QUINTILES).alias(c) for c in RFM_SOURCES]
    ).first()
    assert bounds is not None  # a global aggregate has one row

    def above(column: str) -> Column:
        """How many quintile bounds the value exceeds: 0..4."""
        return sum(((F.col(column) > F.lit(b)).cast("int") for b in bounds[column] or []), F.lit(0))

    r = F.when(buyer, 5 - above("days_since_last_order"))
    f = F.when(buyer, 1 + above("orders_total"))
    m = F.when(buyer, 1 + above("revenue_total"))
    named = rfm_segment_name(r, f, m)
    return features.withColumns({
        "recency_score": r, "frequency_score": f, "monetary_score": m,
        "rfm_segment": F.coalesce(named, F.lit(PROSPECT)),
    })


def segment(features: DataFrame, settings: SegmentSettings) -> Segments:
    """Micro-segments and RFM segments of one feature snapshot (one row per ``customer_id``).

    Example::

        result = segment(snapshot, settings.scoring.segments)
        result.profiles.where("kind = 'micro'").orderBy("segment").show(truncate=False)

    Raises:
        ValueError: columns are missing, the snapshot is empty, or a person appears twice.
    """
    _require(features, [ENTITY, *{b.source for b in BEHAVIOURS}, *RFM_SOURCES])
    prepared = _prepare(with_rfm(features))
    used, n = _check(prepared)
    model, clustered = _cluster(prepared, used, settings, n)
    scored = model.transform(prepared).select(
        ENTITY, *RFM_COLUMNS,
        (F.lit(0) if clustered is None else clustered).alias("_cluster"),
        vector_to_array(F.col("_scaled")).alias("_z"),
        *[f"d_{b.name}" for b in used],
    )
    micro, rfm = _group_stats(scored, used)
    ranked = sorted(micro, key=lambda g: (-g.size, g.key))
    total = {  # everybody's readable means
        b.name: _ratio(sum(g.sums[b.name] for g in micro), sum(g.counts[b.name] for g in micro))
        for b in used
    }
    names = _unique_names([_words(g, used, total) for g in ranked])
    profiles = [_profile_row("micro", str(i), name, g, n, used, total)
                for i, (g, name) in enumerate(zip(ranked, names), start=1)]
    by_name = {g.key: g for g in rfm}
    profiles += [_profile_row("rfm", key, key, by_name[key], n, used, total)
                 for key in RFM_ORDER if key in by_name]
    log.info("%d micro-segments and %d RFM segments over %d persons", len(ranked), len(by_name), n)

    number = F.create_map(*[F.lit(x) for i, g in enumerate(ranked, start=1) for x in (g.key, i)])
    label = F.create_map(*[F.lit(x) for g, name in zip(ranked, names) for x in (g.key, name)])
    members = scored.select(
        ENTITY,
        F.element_at(number, F.col("_cluster")).cast("int").alias("micro_segment"),
        F.element_at(label, F.col("_cluster")).alias("micro_segment_name"),
        *RFM_COLUMNS,
    )
    return Segments(members, features.sparkSession.createDataFrame(profiles, PROFILE_SCHEMA))


def _require(features: DataFrame, columns: Iterable[str]) -> None:
    missing = sorted(set(columns) - set(features.columns))
    if missing:
        raise ValueError(
            f"feature snapshot lacks columns {missing} (see presage.features.catalog.BEHAVIOUR)"
        )


def _prepare(features: DataFrame) -> DataFrame:
    """Clustering inputs ``t_<name>`` (null only where the Imputer fills in) and readable values
    ``d_<name>`` (null where the person has none, e.g. no order yet)."""
    columns: list[Column] = []
    for b in BEHAVIOURS:
        raw = F.col(b.source).cast("double")
        if b.missing == "present":
            t = d = raw.isNotNull().cast("double")
        elif b.missing == "positive":
            t = d = (F.coalesce(raw, F.lit(0.0)) > 0).cast("double")
        elif b.missing == "cap":  # not F.least: it would turn null into the cap
            t, d = F.when(raw > DAYS_CAP, F.lit(DAYS_CAP)).otherwise(raw), raw
        elif b.missing == "zero":
            t = d = F.coalesce(raw, F.lit(0.0))
        else:
            t, d = raw, raw
        t = F.log1p(t) if b.unit in ("count", "money") else t
        columns += [t.alias(f"t_{b.name}"), d.alias(f"d_{b.name}")]
    return features.select(ENTITY, *RFM_COLUMNS, *columns)


def _check(prepared: DataFrame) -> tuple[list[Behaviour], int]:
    """The behaviours with any value in this snapshot, and the number of persons."""
    imputable = [b for b in BEHAVIOURS if b.missing in IMPUTED]
    stats = prepared.agg(
        F.count("*").alias("n"),
        F.count_distinct(ENTITY).alias("ids"),
        *[F.count(f"t_{b.name}").alias(b.name) for b in imputable],
    ).first()
    assert stats is not None  # a global aggregate has one row
    n = stats["n"]
    if n == 0:
        raise ValueError("the feature snapshot has no rows: nothing to segment")
    if stats["ids"] != n:
        raise ValueError(
            f"{n - stats['ids']} duplicate {ENTITY} rows: pass exactly one feature snapshot"
        )
    empty = sorted(b.name for b in imputable if stats[b.name] == 0)
    if empty:
        log.info("no values in this snapshot, left out of segmentation: %s", empty)
    return [b for b in BEHAVIOURS if b.name not in empty], n


def _cluster(
    prepared: DataFrame, used: list[Behaviour], settings: SegmentSettings, n: int
) -> tuple[PipelineModel, Column | None]:
    """Imputer -> VectorAssembler -> StandardScaler -> KMeans; k falls to the number of persons."""
    imputed = [b.name for b in used if b.missing in IMPUTED]
    stages: list = []
    if imputed:
        stages.append(Imputer(strategy="mean", inputCols=[f"t_{c}" for c in imputed],
                              outputCols=[f"i_{c}" for c in imputed]))
    inputs = [f"i_{b.name}" if b.name in imputed else f"t_{b.name}" for b in used]
    stages += [
        VectorAssembler(inputCols=inputs, outputCol="_vector"),
        StandardScaler(inputCol="_vector", outputCol="_scaled", withMean=True, withStd=True),
    ]
    k = min(settings.micro_segments, n)
    if k < settings.micro_segments:
        log.warning("%d persons: %d micro-segments instead of %d", n, k, settings.micro_segments)
    if k < 2:  # Spark's k-means needs k >= 2; one person is one segment
        return Pipeline(stages=stages).fit(prepared), None
    stages.append(KMeans(k=k, seed=settings.seed, maxIter=settings.max_iterations,
                         featuresCol="_scaled", predictionCol="_cluster"))
    return Pipeline(stages=stages).fit(prepared), F.col("_cluster")


@dataclass(frozen=True)
class _Group:
    """Aggregates of one segment: mean z, and sums and counts of the readable values."""

    key: Any
    size: int
    z: dict[str, float]
    sums: dict[str, float]
    counts: dict[str, int]

    def mean(self, name: str) -> float | None:
        return _ratio(self.sums[name], self.counts[name])


def _ratio(numerator: float, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _group_stats(scored: DataFrame, used: list[Behaviour]) -> tuple[list[_Group], list[_Group]]:
    """Micro and RFM segment aggregates in one pass (grouping sets); only they reach the driver."""
    aggs = [F.count("*").alias("size")]
    for i, b in enumerate(used):
        d = F.col(f"d_{b.name}")
        aggs += [F.avg(F.col("_z")[i]).alias(f"z{i}"), F.sum(d).alias(f"s{i}"),
                 F.count(d).alias(f"c{i}")]
    rows = scored.groupingSets([["_cluster"], ["rfm_segment"]], "_cluster", "rfm_segment").agg(
        F.grouping("rfm_segment").alias("_micro"), *aggs
    ).collect()
    micro: list[_Group] = []
    rfm: list[_Group] = []
    for row in rows:
        group = _Group(
            key=row["_cluster"] if row["_micro"] else row["rfm_segment"],
            size=row["size"],
            z={b.name: row[f"z{i}"] or 0.0 for i, b in enumerate(used)},
            sums={b.name: row[f"s{i}"] or 0.0 for i, b in enumerate(used)},
            counts={b.name: row[f"c{i}"] for i, b in enumerate(used)},
        )
        (micro if row["_micro"] else rfm).append(group)
    return micro, rfm


def _notable(
    group: _Group, used: list[Behaviour], total: dict[str, float | None], words: bool
) -> list[Behaviour]:
    """Features far from the average, strongest first, without ones another already implies.

    A feature must also differ visibly in plain units, in the direction of z: the standardised
    (log, imputed) scale can make a tiny or reversed difference of the readable means look large.
    """
    chosen: list[Behaviour] = []
    for b in sorted(used, key=lambda b: -abs(group.z[b.name])):
        z, seg, overall = group.z[b.name], group.mean(b.name), total[b.name]
        if abs(z) < NOTABLE_Z or b.implied_by in {c.name for c in chosen if group.z[c.name] < 0}:
            continue
        if seg is None or overall is None or (seg - overall) * z <= 0:
            continue
        if b.unit == "share":
            visible = abs(seg - overall) >= MIN_SHARE_GAP
        else:
            visible = abs(seg - overall) >= MIN_RELATIVE_GAP * abs(overall)
        if visible and not (words and (b.high if z > 0 else b.low) is None):
            chosen.append(b)
    return chosen


def _words(group: _Group, used: list[Behaviour], total: dict[str, float | None]) -> list[str]:
    notable = _notable(group, used, total, words=True)
    return [(b.high if group.z[b.name] > 0 else b.low) or "" for b in notable]


def _unique_names(words: list[list[str]]) -> list[str]:
    """Two words per segment (a third, then a number, where two segments would share a name)."""
    names: list[str] = []
    for candidate in words:
        name = ", ".join(candidate[:NAME_WORDS]) or "close to average"
        if name in names and len(candidate) > NAME_WORDS:
            name = ", ".join(candidate[: NAME_WORDS + 1])
        base, copy = name, 2
        while name in names:
            name, copy = f"{base} ({copy})", copy + 1
        names.append(name)
    return names


def _format(value: float, unit: Unit) -> str:
    if unit == "share":
        return f"{value:.0%}"
    if unit == "days" or value == 0 or abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def _phrase(b: Behaviour, seg: float, overall: float) -> str:
    text = b.template.format(seg=_format(seg, b.unit), all=_format(overall, b.unit))
    ratio = seg / overall if overall > 0 else 0.0
    if b.unit in ("count", "money") and ratio >= 2:
        text += f" ({ratio:.0f}x the average)" if ratio >= 10 else f" ({ratio:.1f}x the average)"
    return text


def _profile_row(
    kind: str, key: str, name: str, group: _Group, n: int, used: list[Behaviour],
    total: dict[str, float | None],
) -> tuple:
    """One row of PROFILE_SCHEMA."""
    phrases = [_phrase(b, group.mean(b.name) or 0.0, total[b.name] or 0.0)
               for b in _notable(group, used, total, words=False)[:PHRASES]]
    top = sorted(used, key=lambda b: -abs(group.z[b.name]))[:TOP_FEATURES]
    features = [(b.name, group.mean(b.name), total[b.name], group.z[b.name]) for b in top]
    sentence = ", ".join(phrases) or "close to the average on every behaviour"
    return (kind, key, name, group.size, group.size / n, sentence, features)
