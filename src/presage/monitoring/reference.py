"""What each model was trained on and what it scored: the two sides of every monitoring comparison.

- The model of a goal is the one scoring would use: its champion, or on a past ``--as-of`` date the
  newest version trained by then (``presage.scoring.champions``).
- Its feature reference is the gold snapshots of its training window: every snapshot before the
  run's ``train_end`` (MLflow parameter), i.e. the snapshots its training rows were drawn from,
  for every person in them (not only those with a label, so that it matches the population scored),
  at most ``monitoring.max_reference_rows`` of them (whole persons, by hash).
- Scores are read from ``lead_priority``: one row per score date (its rank-1 row) tells which
  model versions scored that date and from which feature snapshot.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.config import Settings
from presage.features.catalog import ENTITY, PARTITION, TIMESTAMP
from presage.lakehouse import Lakehouse
from presage.models import tracking
from presage.models.goals import goal_for
from presage.scoring import champions
from presage.scoring.predict import GOALS

log = logging.getLogger(__name__)

SCORE_DATE = "score_date"


@dataclass(frozen=True)
class ModelRun:
    """A registered model version and what its training run recorded."""

    goal: str
    version: str
    horizon_days: int
    train_end: dt.datetime  # training rows are gold snapshots before this instant
    holdout: dict[str, float]  # holdout metrics of the run (auc, top_decile_lift, gini, ...)

    @property
    def primary_metric(self) -> str:
        return goal_for(self.goal).primary_metric


@dataclass(frozen=True)
class ScoredDate:
    score_date: dt.date
    feature_snapshot: dt.datetime
    versions: dict[str, str]  # goal -> model version that scored the date


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def model_run(settings: Settings, goal: str, version: str) -> ModelRun:
    """The training facts of one registered version.

    Raises:
        LookupError: the version or its run is not in the registry, or the run lacks its window.
    """
    tracking.configure(settings)
    client = MlflowClient()
    name = tracking.registered_name(settings, goal)
    try:
        run = client.get_run(client.get_model_version(name, version).run_id)
    except MlflowException as exc:
        raise LookupError(f"{name} v{version} or its training run is not in the MLflow registry: {exc}") from exc
    params = run.data.params
    if "train_end" not in params or params.get("horizon_days") in (None, "None"):
        raise LookupError(f"{name} v{version}: its run records no training window (train_end, horizon_days)")
    return ModelRun(goal, str(version), int(params["horizon_days"]), _utc(dt.datetime.fromisoformat(params["train_end"])),
                    dict(run.data.metrics))


def deployed(settings: Settings, as_of: dt.datetime | None) -> dict[str, tuple[ModelRun, tuple[str, ...]]]:
    """goal -> (run, model features) of the model that scores today, or on ``as_of``; goals without
    such a model are left out (and logged)."""
    result = {}
    for goal in GOALS:
        try:
            champion = champions.load(settings, goal, as_of)
            result[goal] = (model_run(settings, goal, champion.version), champion.spec.features)
        except LookupError as exc:
            log.warning("not monitoring %s: %s", goal, exc)
    return result


def _require(spark: SparkSession, path: str, hint: str) -> DataFrame:
    if not DeltaTable.isDeltaTable(spark, path):
        raise FileNotFoundError(f"table {path} not found: run `{hint}` first")
    return spark.read.format("delta").load(path)


def behaviour(spark: SparkSession, lake: Lakehouse) -> DataFrame:
    return _require(spark, lake.gold("customer_features"), "presage build-features")


def gold(spark: SparkSession, lake: Lakehouse) -> DataFrame:
    """Every gold snapshot row with its behaviour features and attributes, as the models read them."""
    attributes = _require(spark, lake.gold("customer_attributes"), "presage build-features")
    return behaviour(spark, lake).join(attributes, [ENTITY, TIMESTAMP, PARTITION], "left")


def current_snapshot(spark: SparkSession, lake: Lakehouse, cutoff: dt.datetime) -> dt.datetime:
    """The newest gold snapshot at or before ``cutoff`` (the one ``presage score`` would use).

    Raises:
        LookupError: none that early.
    """
    newest = behaviour(spark, lake).where(F.col(TIMESTAMP) <= F.lit(cutoff)).agg(F.max(TIMESTAMP)).first()[0]
    if newest is None:
        raise LookupError(f"no feature snapshot at or before {cutoff:%Y-%m-%d %H:%M}: run `presage build-features`")
    return _utc(newest)


def snapshot_rows(rows: DataFrame, snapshot: dt.datetime) -> DataFrame:
    return rows.where((F.col(PARTITION) == F.lit(snapshot.date())) & (F.col(TIMESTAMP) == F.lit(snapshot)))


def last_training_snapshot(run: ModelRun) -> dt.date:
    """The newest snapshot date of a model's training window: snapshots are stamped at 00:00 UTC of
    their date, so "before train_end" is a filter on the partition column alone."""
    return (run.train_end - dt.timedelta(microseconds=1)).date()


def sample_persons(rows: DataFrame, total: int, max_rows: int) -> DataFrame:
    """About ``max_rows`` of ``total`` rows, whole persons by hash (the same persons on every run)."""
    if total <= max_rows:
        return rows
    keep = int(10_000 * max_rows / total)
    return rows.where(F.pmod(F.xxhash64(ENTITY), F.lit(10_000)) < keep)


def scored_dates(spark: SparkSession, lake: Lakehouse, until: dt.date) -> list[ScoredDate]:
    """Every lead_priority date up to ``until``, oldest first (empty when nothing was scored).

    Reads the rank-1 row of each date: Delta's file statistics on priority_rank skip the other files.
    """
    path = lake.output("lead_priority")
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    rows = (spark.read.format("delta").load(path)
            .where((F.col("priority_rank") == 1) & (F.col(SCORE_DATE) <= F.lit(until)))
            .select(SCORE_DATE, "feature_snapshot", "model_versions").collect())
    return sorted((ScoredDate(r[SCORE_DATE], _utc(r["feature_snapshot"]), dict(r["model_versions"] or {})) for r in rows),
                  key=lambda d: d.score_date)


def first_scored_by(dates: list[ScoredDate], goal: str, version: str) -> ScoredDate:
    """The earliest date a version of ``goal`` scored: its score reference (``dates`` must hold one)."""
    return next(d for d in dates if d.versions.get(goal) == version)


def leads(spark: SparkSession, lake: Lakehouse, score_date: dt.date) -> DataFrame:
    return spark.read.format("delta").load(lake.output("lead_priority")).where(F.col(SCORE_DATE) == F.lit(score_date))
