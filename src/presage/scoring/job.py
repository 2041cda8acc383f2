"""``presage score``: every person scored by the champion models, and the tables marketers act on.

Features come from Feast's historical retrieval at the newest gold snapshot (at or before the
score date), the same point-in-time path training used; models are the champions, or on a past
``--as-of`` date the versions trained by then. Every output is a Delta table under
``<home>/outputs`` partitioned by ``score_date``; a rerun for a date replaces that date's partition
in each table, so a crashed run is repaired by running it again.

Consent: lead_priority lists everyone (a person without consent is ``do_not_contact``);
segment_members, recommendations and the budget audiences hold only persons with marketing
consent; anomalies cover everyone, because they are about security, not marketing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import Settings
from presage.features.catalog import CHANNELS, ENTITY, TIMESTAMP
from presage.featurestore.store import open_store
from presage.featurestore.training import training_set
from presage.lakehouse import Lakehouse
from presage.scoring import anomalies, budget, champions, recommend, segments
from presage.scoring.champions import Champion
from presage.scoring.leads import (
    DECISION_INPUTS,
    GENERAL_CONSENT,
    Thresholds,
    consent_column,
    decide,
)
from presage.scoring.predict import (
    CHURN,
    GOALS,
    PURCHASE,
    REASONS,
    SPEND,
    explain_persons,
    response_column,
    score_persons,
)

log = logging.getLogger(__name__)

SCORE_DATE = "score_date"
TABLES = ("lead_priority", "score_thresholds", "segments", "segment_members", "budget_allocation",
          "recommendations", "anomalies")


@dataclass
class ScoreResult:
    score_date: dt.date
    feature_snapshot: dt.datetime
    models: dict[str, str]
    rows: dict[str, int] = field(default_factory=dict)


def _snapshot(spark: SparkSession, lake: Lakehouse, cutoff: dt.datetime) -> dt.datetime:
    """The newest gold snapshot instant at or before ``cutoff``.

    Raises:
        LookupError: no snapshot that early (or no gold table).
    """
    features = spark.read.format("delta").load(lake.gold("customer_features"))
    newest = features.where(F.col(TIMESTAMP) <= F.lit(cutoff)).agg(F.max(TIMESTAMP)).first()[0]
    if newest is None:
        raise LookupError(f"no feature snapshot at or before {cutoff:%Y-%m-%d %H:%M}: run `presage build-features`")
    return newest.replace(tzinfo=dt.UTC) if newest.tzinfo is None else newest


def _ranked(scored: DataFrame) -> DataFrame:
    """customer_id, purchase_propensity, priority_rank (1 = most ready to buy; ties by expected spend,
    then id): the one global sort of the run, on a narrow frame, cached for thresholds and lead_priority."""
    order = Window.orderBy(F.desc(PURCHASE), F.desc(SPEND), F.asc(ENTITY))
    return scored.select(ENTITY, PURCHASE, SPEND).withColumn("priority_rank", F.row_number().over(order)).persist()


def _thresholds(scored: DataFrame, ranked: DataFrame, n: int, hot_share: float, warm_share: float) -> Thresholds:
    at = [max(1, math.ceil(share * n)) for share in (hot_share, min(1.0, hot_share + warm_share))]
    cutoffs = {r["priority_rank"]: r[PURCHASE] for r in ranked.where(F.col("priority_rank").isin(at)).collect()}
    value = scored.where(F.col("avg_order_value_365d") > 0).approxQuantile("avg_order_value_365d", [0.5], 0.001)
    times = scored.where(F.col("preferred_send_hour").isNotNull()).select(
        (F.round("preferred_send_hour") % 24).cast("int").alias("h"), (F.round("preferred_send_weekday") % 7).cast("int").alias("d"))
    hour = times.groupBy("h").count().orderBy(F.desc("count"), "h").first()
    weekday = times.where(F.col("d").isNotNull()).groupBy("d").count().orderBy(F.desc("count"), "d").first()
    return Thresholds(hot=float(cutoffs[at[0]]), warm=float(cutoffs[at[1]]), order_value=float(value[0]) if value else 1.0,
                      send_hour=int(hour["h"]) if hour else 10, send_weekday=int(weekday["d"]) if weekday else 1)


def _tier(thresholds: Thresholds) -> Column:
    """The tier :func:`decide` gives, in Spark SQL."""
    return (F.when(F.col(PURCHASE) >= F.lit(thresholds.hot), "hot")
            .when(F.col(PURCHASE) >= F.lit(thresholds.warm), "warm").otherwise("cold"))


def _leads(scored: DataFrame, ranked: DataFrame, n: int, thresholds: Thresholds, champion: Champion,
           settings: Settings, score_date: dt.date) -> DataFrame:
    """lead_priority: ranked by purchase propensity (then expected spend), decided in pandas by
    :func:`decide`, the function ``presage serve`` also runs; the reasons of the persons in
    ``leads.explain_tiers`` (null for the others)."""
    channels, leads = settings.channels, settings.scoring.leads
    decided = T.StructType([
        T.StructField(ENTITY, T.StringType()), T.StructField("tier", T.StringType()),
        T.StructField("next_best_action", T.StringType()), T.StructField("best_channel", T.StringType()),
        T.StructField("best_channel_response", T.DoubleType()), T.StructField("expected_contact_value", T.DoubleType()),
        T.StructField("best_send_hour", T.IntegerType()), T.StructField("best_send_weekday", T.IntegerType()),
        T.StructField("contactable", T.BooleanType()),
    ])

    def kernel(batches):
        for batch in batches:
            yield decide(batch, thresholds, channels, leads).assign(**{ENTITY: batch[ENTITY].to_numpy()})[decided.fieldNames()]

    inputs = [ENTITY, PURCHASE, CHURN, *DECISION_INPUTS, *(response_column(c) for c in CHANNELS if c in channels)]
    decisions = scored.select(*dict.fromkeys(inputs)).mapInPandas(kernel, decided)
    to_explain = scored.where(_tier(thresholds).isin(leads.explain_tiers)).select(ENTITY, *champion.spec.features)
    explained = explain_persons(to_explain, champion, leads.reasons)
    responses = F.create_map(*[item for c in CHANNELS if c in channels for item in (F.lit(c), F.col(response_column(c)))])
    return (
        scored.join(ranked.select(ENTITY, "priority_rank"), ENTITY).join(decisions, ENTITY)
        .join(explained, ENTITY, "left")
        .select(
            ENTITY, F.lit(score_date).alias(SCORE_DATE), PURCHASE, CHURN, SPEND,
            (F.col(CHURN) * F.coalesce(F.col("revenue_365d"), F.lit(0.0))).alias("value_at_risk"),
            "priority_rank", F.round(100.0 * (1 - (F.col("priority_rank") - 1) / F.lit(n)), 2).alias("percentile"),
            "tier", "next_best_action", "best_channel", "best_channel_response",
            "expected_contact_value", "best_send_hour", "best_send_weekday", responses.alias("channel_responses"),
            REASONS, "contactable", "feature_snapshot", "model_versions",
        )
    )


def _write(df: DataFrame, path: str, score_date: dt.date) -> int:
    (df.write.format("delta").mode("overwrite").partitionBy(SCORE_DATE)
     .option("replaceWhere", f"{SCORE_DATE} = DATE'{score_date.isoformat()}'").save(path))
    return df.sparkSession.read.format("delta").load(path).where(F.col(SCORE_DATE) == F.lit(score_date)).count()


def _dated(df: DataFrame, score_date: dt.date) -> DataFrame:
    return df.withColumn(SCORE_DATE, F.lit(score_date))


def run(spark: SparkSession, settings: Settings, as_of: dt.date | None = None) -> ScoreResult:
    """Score every person of the newest snapshot and write the output tables for the score date."""
    lake = Lakehouse.of(settings)
    now = dt.datetime.now(dt.UTC)
    cutoff = dt.datetime.combine(as_of, dt.time.min, tzinfo=dt.UTC) if as_of else now
    score_date = as_of or now.date()
    models = {goal: champions.load(settings, goal, cutoff if as_of else None) for goal in GOALS}
    versions = {goal: m.version for goal, m in models.items()}
    snapshot = _snapshot(spark, lake, cutoff)
    log.info("scoring %s with the snapshot of %s and models %s", score_date, snapshot, versions)

    snapshot_rows = (spark.read.format("delta").load(lake.gold("customer_features"))
                     .where(F.col(TIMESTAMP) == F.lit(snapshot)))
    rows = training_set(open_store(settings), snapshot_rows.select(ENTITY, TIMESTAMP), models[PURCHASE].spec.service)
    channels = tuple(c for c in CHANNELS if c in settings.channels)
    # The purchase model's features stay beside the scores: its reasons are computed after ranking.
    keep = list(dict.fromkeys([TIMESTAMP, *DECISION_INPUTS, *models[PURCHASE].spec.features]))
    version_map = F.create_map(*[item for goal, v in versions.items() for item in (F.lit(goal), F.lit(v))])
    scored = (score_persons(rows, models, channels, keep)
              .withColumnRenamed(TIMESTAMP, "feature_snapshot").withColumn("model_versions", version_map)
              .persist())
    result = ScoreResult(score_date, snapshot, versions)
    ranked = _ranked(scored)
    try:
        n = ranked.count()
        if n == 0:
            raise ValueError("no persons to score in the feature snapshot")
        thresholds = _thresholds(scored, ranked, n, settings.scoring.leads.hot_share, settings.scoring.leads.warm_share)
        leads = _leads(scored, ranked, n, thresholds, models[PURCHASE], settings, score_date)
        result.rows["lead_priority"] = _write(leads, lake.output("lead_priority"), score_date)
        result.rows["score_thresholds"] = _write(
            _dated(spark.createDataFrame([thresholds.as_row()]), score_date), lake.output("score_thresholds"), score_date)

        consented = scored.where(F.coalesce(F.col(GENERAL_CONSENT), F.lit(0)) >= 1).select(ENTITY)
        groups = segments.segment(snapshot_rows.join(consented, ENTITY, "left_semi"), settings.scoring.segments)
        members = groups.members.persist()
        result.rows["segments"] = _write(_dated(groups.profiles, score_date), lake.output("segments"), score_date)
        result.rows["segment_members"] = _write(_dated(members, score_date), lake.output("segment_members"), score_date)

        segment = F.col("micro_segment_name") if settings.scoring.budget.segment_by == "micro" else F.col("rfm_segment")
        value = F.when(F.col("avg_order_value_365d") > 0, F.col("avg_order_value_365d")).otherwise(F.lit(thresholds.order_value))
        candidates = scored.join(members.select(ENTITY, segment.alias("segment")), ENTITY).select(
            ENTITY, "segment", value.alias("value"),
            F.explode(F.array(*[
                F.struct(F.lit(c).alias("channel"), F.col(response_column(c)).alias("p_response"),
                         (F.coalesce(F.col(consent_column(c)), F.lit(0)) >= 1).alias("allowed"))
                for c in channels])).alias("c"),
        ).where("c.allowed").select(ENTITY, "segment", "c.channel", "c.p_response", "value")
        allocation = budget.allocate(candidates, settings.channels, settings.scoring.budget)
        result.rows["budget_allocation"] = _write(_dated(allocation, score_date), lake.output("budget_allocation"), score_date)

        recommended = recommend.recommend(spark, lake, cutoff, settings.scoring.recommendations, consented)
        result.rows["recommendations"] = _write(_dated(recommended, score_date), lake.output("recommendations"), score_date)
        found = anomalies.anomalies(spark, lake, cutoff, settings.scoring.anomalies)
        result.rows["anomalies"] = _write(_dated(found, score_date), lake.output("anomalies"), score_date)
        members.unpersist()
    finally:
        ranked.unpersist()
        scored.unpersist()
    return result
