"""What the report draws, read as small aggregates: nothing larger than a few hundred rows reaches the
driver, whatever the number of persons scored.

- the score run: the ``lead_priority`` partition of the score date (persons by tier and next best
  action, the feature snapshot and the model versions it was scored with);
- the models: for each of those versions, its MLflow run's holdout metrics and the curve points it
  logged (``holdout_curves.json``, see :func:`presage.models.metrics.holdout_curves`);
- ``budget_allocation`` (one row per segment and channel) and ``segments`` (one row per segment);
- drift: the newest ``monitoring/drift`` date at or before the score date (``presage monitor``),
  reduced to the score rows and the features that moved most.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import mlflow
import pandas as pd
from delta.tables import DeltaTable
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.config import Settings
from presage.lakehouse import Lakehouse
from presage.models import tracking
from presage.models.goals import BUILT_IN
from presage.models.metrics import HOLDOUT_CURVES
from presage.scoring.predict import GOALS

log = logging.getLogger(__name__)

SCORE_DATE = "score_date"
MONITOR_DATE = "monitor_date"
TOP_DRIFTING_FEATURES = 20


@dataclass(frozen=True)
class ModelEvaluation:
    """One model version that scored the date, as its training run evaluated it on the holdout."""

    goal: str
    version: str
    objective: str  # "binary" or "regression"
    metrics: dict[str, float]
    curves: dict | None  # holdout_curves.json; None when the run did not log it
    note: str = ""  # why there are no curves, in words


@dataclass(frozen=True)
class Drift:
    """One ``presage monitor`` date: every score's PSI and the features that moved most."""

    monitor_date: dt.date
    scores: pd.DataFrame  # model, name, psi, status
    features: pd.DataFrame  # name, psi (the largest over models), status (of that row), models
    features_by_status: dict[str, int]  # (model, feature) rows per status, all of them


@dataclass(frozen=True)
class ReportData:
    score_date: dt.date
    feature_snapshot: dt.datetime
    persons: int
    models: list[ModelEvaluation]
    leads: pd.DataFrame  # tier, next_best_action, persons
    budget: pd.DataFrame  # segment, channel, eligible, audience, budget, expected_conversions, expected_revenue
    segments: pd.DataFrame  # kind, segment, name, size, share
    drift: Drift | None  # None: no drift measured on or before the score date


def _table(spark: SparkSession, path: str) -> DataFrame | None:
    return spark.read.format("delta").load(path) if DeltaTable.isDeltaTable(spark, path) else None


def score_date(leads: DataFrame, as_of: dt.date | None) -> dt.date:
    """``as_of`` when lead_priority holds it, else (no ``as_of``) the newest date scored.

    Raises:
        LookupError: nothing scored yet, or not on ``as_of`` (the message lists the dates there are).
    """
    if as_of is None:
        newest = leads.agg(F.max(SCORE_DATE)).first()[0]
        if newest is None:
            raise LookupError("lead_priority is empty: run `presage score` first")
        return newest
    if leads.where(F.col(SCORE_DATE) == F.lit(as_of)).limit(1).count() == 0:
        dates = [r[0].isoformat() for r in leads.select(SCORE_DATE).distinct().orderBy(F.desc(SCORE_DATE)).limit(10).collect()]
        raise LookupError(f"no scores for {as_of} in lead_priority; scored dates (newest first): "
                          f"{', '.join(dates) or 'none'}: run `presage score --as-of {as_of}`")
    return as_of


def evaluation(client: MlflowClient, settings: Settings, goal: str, version: str) -> ModelEvaluation:
    """The holdout evaluation that the training run of ``version`` logged."""
    name = tracking.registered_name(settings, goal)
    objective = BUILT_IN[goal].objective
    try:
        run_id = client.get_model_version(name, version).run_id
        run = client.get_run(run_id)
    except MlflowException as exc:
        return ModelEvaluation(goal, version, objective, {}, None, f"{name} v{version} is not in MLflow any more ({exc.error_code})")
    if HOLDOUT_CURVES not in {item.path for item in client.list_artifacts(run_id)}:
        return ModelEvaluation(goal, version, objective, run.data.metrics, None,
                               f"{name} v{version} was trained before runs logged {HOLDOUT_CURVES}: "
                               f"retrain it (`presage train --model {goal}`) to see its curves here")
    curves = mlflow.artifacts.load_dict(f"runs:/{run_id}/{HOLDOUT_CURVES}")
    return ModelEvaluation(goal, version, objective, run.data.metrics, curves)


def drift(spark: SparkSession, path: str, on_or_before: dt.date, top: int = TOP_DRIFTING_FEATURES) -> Drift | None:
    """The newest drift measurement at or before ``on_or_before`` from a ``monitoring/drift`` table
    (monitor_date, model, kind 'feature'|'score', name, psi, status); None when there is none."""
    table = _table(spark, path)
    if table is None:
        return None
    table = table.where(F.col(MONITOR_DATE) <= F.lit(on_or_before))
    measured = table.agg(F.max(MONITOR_DATE)).first()[0]
    if measured is None:
        return None
    rows = table.where(F.col(MONITOR_DATE) == F.lit(measured))
    scores = rows.where(F.col("kind") == "score").select("model", "name", "psi", "status").orderBy("model", "name").toPandas()
    features = rows.where(F.col("kind") == "feature")
    worst = (features.groupBy("name")
             .agg(F.max("psi").alias("psi"), F.max_by("status", "psi").alias("status"), F.count_distinct("model").alias("models"))
             .orderBy(F.desc("psi"), "name").limit(top).toPandas())
    counts = {r["status"]: int(r["count"]) for r in features.groupBy("status").count().collect()}
    return Drift(measured, scores, worst, counts)


def gather(spark: SparkSession, settings: Settings, lake: Lakehouse, as_of: dt.date | None = None) -> ReportData:
    """Everything the page draws for one score date (``as_of``, default the newest scored).

    Raises:
        FileNotFoundError: no lead_priority table (nothing scored yet).
        LookupError: nothing scored on ``as_of``.
    """
    leads = _table(spark, lake.output("lead_priority"))
    if leads is None:
        raise FileNotFoundError(f"no lead_priority table at {lake.output('lead_priority')}: run `presage score` first")
    day = score_date(leads, as_of)
    leads = leads.where(F.col(SCORE_DATE) == F.lit(day))
    first = leads.select("feature_snapshot", "model_versions").first()
    by_action = (leads.groupBy("tier", "next_best_action").agg(F.count(F.lit(1)).alias("persons"))
                 .orderBy("tier", "next_best_action").toPandas())

    tracking.configure(settings)
    client = MlflowClient()
    versions = first["model_versions"]
    models = [evaluation(client, settings, goal, versions[goal]) for goal in GOALS if goal in versions]

    def partition(name: str, columns: list[str]) -> pd.DataFrame:
        table = _table(spark, lake.output(name))
        if table is None:
            return pd.DataFrame(columns=columns)
        return table.where(F.col(SCORE_DATE) == F.lit(day)).select(*columns).toPandas()

    budget = partition("budget_allocation", ["segment", "channel", "eligible", "audience", "budget",
                                             "expected_conversions", "expected_revenue"])
    segments = partition("segments", ["kind", "segment", "name", "size", "share"])
    measured = drift(spark, lake.monitoring("drift"), day)
    log.info("report of %s: %d persons, models %s, drift %s", day, int(by_action["persons"].sum()), dict(versions),
             measured.monitor_date if measured else "none")
    return ReportData(day, first["feature_snapshot"], int(by_action["persons"].sum()), models, by_action, budget, segments,
                      measured)
