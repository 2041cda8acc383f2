"""Realised performance: how the predictions of a past score date turned out, once their horizon passed.

A lead_priority date scored from the snapshot at t is labelled as training labels it
(``presage.models.labels``: the events in [t, t + H), H the scoring model's horizon), as soon as
t + H is inside the observed data and before the monitor time. Its metrics are the holdout's
(``presage.models.metrics``, on at most ``models.evaluation_rows`` rows), so each can be read beside
the value the training run logged in MLflow; the primary metric (AUC, or Gini for spend) is judged
by how far it fell below the holdout's. Each run evaluates, per model, the newest such date.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import MonitorSettings, Settings
from presage.features.catalog import ENTITY, TIMESTAMP
from presage.lakehouse import Lakehouse
from presage.models import metrics
from presage.models.goals import goal_for
from presage.models.labels import LABEL, VALUE, Window, built_in_labels, observed_until
from presage.monitoring.reference import ModelRun, ScoredDate, leads, model_run, sample_persons
from presage.scoring.predict import CHURN, PURCHASE, SPEND

log = logging.getLogger(__name__)

JUDGED = (PURCHASE, CHURN, SPEND)  # channel response has no single score per person in lead_priority

SCHEMA = T.StructType([
    T.StructField("model", T.StringType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("score_date", T.DateType()),
    T.StructField("feature_snapshot", T.TimestampType()),
    T.StructField("label_window_end", T.TimestampType()),
    T.StructField("metric", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("holdout", T.DoubleType()),  # the training run's holdout value, when logged
    T.StructField("status", T.StringType()),  # primary metric only: ok | warn | alert
    T.StructField("rows", T.LongType()),  # persons labelled
])


@dataclass(frozen=True)
class Realised:
    run: ModelRun
    scored: ScoredDate
    rows: int
    metrics: dict[str, float]

    @property
    def label_window_end(self) -> dt.datetime:
        return self.scored.feature_snapshot + dt.timedelta(days=self.run.horizon_days)


def _newest_evaluable(dates: list[ScoredDate], goal: str, runs: dict[tuple[str, str], ModelRun | None],
                      settings: Settings, until: dt.datetime) -> tuple[ScoredDate, ModelRun] | None:
    for scored in reversed(dates):
        version = scored.versions.get(goal)
        if version is None:
            continue
        if (goal, version) not in runs:
            try:
                runs[(goal, version)] = model_run(settings, goal, version)
            except LookupError as exc:
                log.warning("no realised performance for %s v%s: %s", goal, version, exc)
                runs[(goal, version)] = None
        run = runs[(goal, version)]
        if run is not None and scored.feature_snapshot + dt.timedelta(days=run.horizon_days) <= until:
            return scored, run
    return None


def realise(spark: SparkSession, settings: Settings, lake: Lakehouse, scored: ScoredDate, run: ModelRun) -> Realised | None:
    """The realised metrics of one model on one score date (None: no labelled person, or one class)."""
    goal, snapshot = goal_for(run.goal), scored.feature_snapshot
    window = Window(run.horizon_days, snapshot + dt.timedelta(days=run.horizon_days))
    labels = built_in_labels(spark, lake, goal, window, settings.models.active_days).where(F.col(TIMESTAMP) == F.lit(snapshot))
    rows = (leads(spark, lake, scored.score_date).select(ENTITY, F.col(run.goal).alias("score"), "tier")
            .join(labels.select(ENTITY, LABEL, VALUE), ENTITY).persist())
    try:
        exact = rows.agg(F.count("*").alias("n"), F.avg(LABEL).alias("rate"),
                         F.avg(F.when(F.col("tier") == "hot", F.col(LABEL))).alias("hot"),
                         F.sum("score").alias("predicted"), F.sum(LABEL).alias("actual")).first()
        if not exact["n"]:
            log.warning("no labelled persons for %s on %s", run.goal, scored.score_date)
            return None
        frame = sample_persons(rows, exact["n"], settings.models.evaluation_rows).select(LABEL, VALUE, "score").toPandas()
    finally:
        rows.unpersist()
    outcome, score = frame[LABEL].to_numpy(float), frame["score"].to_numpy(float)
    try:
        if goal.objective == "regression":
            found = metrics.regression(outcome, score)
            if exact["actual"]:
                found["total_spend_error"] = float((exact["predicted"] - exact["actual"]) / exact["actual"])
        else:
            found = metrics.binary(outcome, score, frame[VALUE].to_numpy(float))
            if goal.kind == "purchase" and exact["hot"] is not None and exact["rate"]:
                found["hot_tier_precision"] = float(exact["hot"])
                found["hot_tier_lift"] = float(exact["hot"] / exact["rate"])
    except ValueError as exc:  # one class only: no ranking metric
        log.warning("no realised performance for %s on %s: %s", run.goal, scored.score_date, exc)
        return None
    found.pop("rows", None)
    return Realised(run, scored, int(exact["n"]), {k: v for k, v in found.items() if np.isfinite(v)})


def realised(spark: SparkSession, settings: Settings, lake: Lakehouse, dates: list[ScoredDate],
             cutoff: dt.datetime) -> list[Realised]:
    """Per judged model, the realised metrics of the newest score date whose horizon ended by
    ``cutoff`` and inside the observed data (read only when some date qualifies by ``cutoff``)."""
    runs: dict[tuple[str, str], ModelRun | None] = {}
    data_end: dt.datetime | None = None
    found = []
    for goal in JUDGED:
        if _newest_evaluable(dates, goal, runs, settings, cutoff) is None:
            log.info("%s: no score date whose horizon has passed by %s", goal, cutoff)
            continue
        data_end = data_end or observed_until(spark, lake, None)
        chosen = _newest_evaluable(dates, goal, runs, settings, min(cutoff, data_end))
        if chosen is None:
            log.info("%s: no score date whose horizon has passed inside the data (up to %s)", goal, data_end)
            continue
        result = realise(spark, settings, lake, *chosen)
        if result is not None:
            found.append(result)
    return found


def status(result: Realised, metric: str, warn: float, alert: float) -> str | None:
    """How far the primary metric fell below the holdout's: ok / warn / alert (None for other metrics,
    or when the run logged no holdout value)."""
    expected = result.run.holdout.get(metric)
    if metric != result.run.primary_metric or expected is None or metric not in result.metrics:
        return None
    drop = expected - result.metrics[metric]
    if drop > alert:
        return "alert"
    return "warn" if drop > warn else "ok"


def rows(results: list[Realised], settings: MonitorSettings) -> list[tuple]:
    """The performance table's rows (SCHEMA): one per (model, metric), judged by ``settings``."""
    found = []
    for result in results:
        run, scored = result.run, result.scored
        for metric, value in sorted(result.metrics.items()):
            found.append((run.goal, run.version, scored.score_date, scored.feature_snapshot, result.label_window_end,
                          metric, float(value), run.holdout.get(metric),
                          status(result, metric, settings.metric_drop_warn, settings.metric_drop_alert), result.rows))
    return found
