"""One training of one goal, end to end: labels, Feast training set, xgboost.spark, holdout
evaluation against a simple baseline and the champion, explanations, fairness, MLflow.

``as_of`` replays a past date: no event at or after it is read, the split and the features are
those of that date, the run is tagged as a backtest and the champion alias does not move.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from delta.tables import DeltaTable
from feast import FeatureStore
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.stats import rankdata

from presage.config import Settings
from presage.features.catalog import ENTITY, TIMESTAMP
from presage.featurestore.store import open_store
from presage.featurestore.training import read_entities
from presage.lakehouse import Lakehouse
from presage.models import dataset, explain, fairness, fit, metrics, plots, tracking
from presage.models.goals import Goal, goal_for
from presage.models.labels import LABEL, VALUE, Window, built_in_labels, custom_labels, observed_until
from presage.models.pyfunc import PresageModel, score
from presage.models.spec import ModelSpec, encode_spark, vocabularies

log = logging.getLogger(__name__)

MIN_POSITIVES = 10


@dataclass(frozen=True)
class TrainResult:
    model: str
    run_id: str
    version: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    champion_metric: float | None  # the previous champion on this holdout (None: none to compare)
    promoted: bool
    decision: str
    training_rows: int
    holdout_rows: int
    trees: int
    fairness: dict[str, dict]


def _labels(spark: SparkSession, settings: Settings, lake: Lakehouse, goal: Goal, labels_path: str | None,
            as_of: dt.datetime | None) -> DataFrame:
    if goal.kind == "custom":
        return custom_labels(read_entities(spark, labels_path), as_of)
    window = Window(settings.horizon_days, observed_until(spark, lake, as_of))
    return built_in_labels(spark, lake, goal, window, settings.models.active_days)


def _baseline(goal: Goal, frame: pd.DataFrame) -> np.ndarray:
    """The rule a marketer would use without a model, as a score in (0, 1]: recency (churn: the
    longer ago, the riskier; spend: last year's revenue). Only its ranking metrics are reported."""
    if goal.objective == "regression":
        return pd.to_numeric(frame["revenue_365d"], errors="coerce").fillna(0.0).to_numpy(float)
    days = pd.to_numeric(frame["days_since_last_order"], errors="coerce").to_numpy(float)
    ordered = np.nan_to_num(days, nan=1e9) if goal.kind == "churn" else -np.nan_to_num(days, nan=1e9)
    return rankdata(ordered) / len(ordered)


def _evaluate(goal: Goal, outcome: np.ndarray, scores: np.ndarray, revenue: np.ndarray) -> dict[str, float]:
    if goal.objective == "regression":
        return metrics.regression(outcome, scores)
    return metrics.binary(outcome, scores, revenue)


RANK_METRICS = ("auc", "pr_auc", "top_decile_lift", "lift_quality_pct", "gini", "spearman", "top_decile_revenue_capture")


def _service_version(store: FeatureStore, service: str, features: list[str]) -> str:
    """A digest of what the service serves (views and features): changes when the feature set does."""
    projections = store.get_feature_service(service).feature_view_projections
    text = json.dumps([[p.name, [f.name for f in p.features]] for p in projections] + [features])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _delta_version(spark: SparkSession, path: str) -> int | None:
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def _holdout_frame(holdout: DataFrame, columns: list[str], max_rows: int) -> pd.DataFrame:
    total = holdout.count()
    if total > max_rows:
        keep = int(10_000 * max_rows / total)
        holdout = holdout.where(F.pmod(F.xxhash64(ENTITY, TIMESTAMP), F.lit(10_000)) < keep)
    return holdout.select(*columns).toPandas()


def _champion_on(name: str, frame: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """(the current champion's scores on ``frame``, why none) for the champion alias."""
    current = tracking.champion(name)
    if current is None:
        return None, "no champion yet"
    model = mlflow.pyfunc.load_model(f"models:/{name}@{tracking.CHAMPION}").unwrap_python_model()
    try:
        return score(model.booster, model.spec, frame), ""
    except KeyError as exc:
        return None, f"champion v{current.version} cannot score today's features ({exc})"


def _signature(features: list[str]) -> ModelSignature:
    """Every feature required by name, typed "any": Feast hands a count as int64, or as float64 when
    one value is missing, and MLflow refuses int64 for a double column. The model encodes its inputs
    itself (spec.json has the types)."""
    return ModelSignature(inputs=Schema([ColSpec(AnyType(), name) for name in features]),
                          outputs=Schema([ColSpec("double", "score")]))


def _decide(goal: Goal, challenger: float, champion: float | None, why_not: str, min_improvement: float,
            backtest: bool) -> tuple[bool, str]:
    metric = goal.primary_metric
    if backtest:
        return False, "backtest (--as-of): the champion alias does not move"
    if champion is None:
        return True, f"promoted: {why_not}"
    if challenger > champion + min_improvement:
        return True, f"promoted: holdout {metric} {challenger:.4f} > champion {champion:.4f} (+{min_improvement})"
    return False, f"kept the champion: holdout {metric} {challenger:.4f} <= champion {champion:.4f} (+{min_improvement})"


def train(
    spark: SparkSession,
    settings: Settings,
    model: str,
    labels_path: str | None = None,
    as_of: dt.datetime | None = None,
) -> TrainResult:
    """Train, evaluate, log, register and (maybe) promote one model.

    Raises:
        ValueError: unknown model, unusable labels, too little history or too few positives.
        FileNotFoundError: the silver or gold tables (or the label table) are missing.
    """
    lake = Lakehouse.of(settings)
    goal = goal_for(model, labels_path)
    tracking.configure(settings)
    store = open_store(settings)
    labels = _labels(spark, settings, lake, goal, labels_path, as_of)
    horizon = None if goal.kind == "custom" else settings.horizon_days
    split = dataset.plan_split(labels, horizon, settings.models.holdout_snapshots)

    path = lake.path("models", "training_sets", goal.name)
    assembled = dataset.assemble(store, goal, labels, split, settings.models.max_training_rows)
    assembled.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    rows = spark.read.format("delta").load(path)
    features = dataset.model_features(store, goal, settings.models.sensitive_attributes, rows)
    strings = [f.name for f in rows.schema.fields if f.name in features and f.dataType.simpleString() == "string"]

    train_rows = rows.where(F.col(dataset.PART) == "train")
    counts = {r[0]: r[1] for r in train_rows.groupBy(F.col(LABEL) > 0).count().collect()}
    positives, negatives = counts.get(True, 0), counts.get(False, 0)
    if goal.objective == "binary" and min(positives, negatives) < MIN_POSITIVES:
        raise ValueError(f"{goal.name}: {positives} positive and {negatives} negative training rows; "
                         f"at least {MIN_POSITIVES} of each are needed (more history or another horizon)")
    spec = ModelSpec(goal.name, goal.kind, goal.objective, goal.service,
                     settings.horizon_days, tuple(features), vocabularies(train_rows, strings))
    params = fit.parameters(goal.objective, settings.models, positives, negatives)
    booster = fit.fit(encode_spark(train_rows, spec), features, goal.objective, params, settings.models)

    extra = [c for c in ("days_since_last_order", "revenue_365d", *settings.models.sensitive_attributes)
             if c in rows.columns and c not in features]
    holdout = rows.where(F.col(dataset.PART) == "holdout")
    frame = _holdout_frame(holdout, [ENTITY, TIMESTAMP, LABEL, VALUE, *features, *extra], settings.models.evaluation_rows)
    outcome = frame[LABEL].to_numpy(float)
    revenue = pd.to_numeric(frame[VALUE], errors="coerce").to_numpy(float)
    scores = score(booster, spec, frame)
    result_metrics = _evaluate(goal, outcome, scores, revenue)
    baseline_all = _evaluate(goal, outcome, _baseline(goal, frame), revenue)
    baseline = {k: v for k, v in baseline_all.items() if k in RANK_METRICS}

    name = tracking.registered_name(settings, goal.name)
    champion_scores, why_not = _champion_on(name, frame)
    champion_metric = None
    if champion_scores is not None:
        champion_metric = _evaluate(goal, outcome, champion_scores, revenue)[goal.primary_metric]
    promoted, decision = _decide(goal, result_metrics[goal.primary_metric], champion_metric, why_not,
                                 settings.models.min_improvement, as_of is not None)

    favourable = outcome if goal.objective == "binary" else (outcome >= np.quantile(outcome, 0.9)).astype(int)
    sensitive = [c for c in settings.models.sensitive_attributes if c in frame.columns]
    fairness_report = fairness.report(favourable, scores, frame[sensitive], settings.models.min_group_rows) if sensitive else {}

    top = frame.iloc[np.argsort(-scores, kind="stable")[:200]]
    reasons = explain.reasons(booster, spec, top)
    explained = pd.DataFrame({
        ENTITY: top[ENTITY].to_numpy(), TIMESTAMP: top[TIMESTAMP].astype(str).to_numpy(),
        "score": scores[np.argsort(-scores, kind="stable")[:200]],
        **{f"reason_{k + 1}": [r[k]["text"] if len(r) > k else "" for r in reasons] for k in range(3)},
    })

    experiment = tracking.experiment_id(settings, goal.name)
    run_name = f"{goal.name} {(as_of or dt.datetime.now(dt.UTC)):%Y-%m-%d %H:%M}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({
            "model": goal.name, "kind": goal.kind, "objective": goal.objective, "horizon_days": horizon,
            "as_of": as_of.isoformat() if as_of else "now", "holdout_start": split.holdout_start.isoformat(),
            "train_end": split.train_end.isoformat(), "label_gap": split.gap,
            "train_snapshots": split.train_instants, "holdout_snapshots": split.holdout_instants,
            "feature_service": goal.service, "features": len(features), "num_workers": settings.models.num_workers,
            "max_rounds": settings.models.max_rounds, "early_stopping_rounds": settings.models.early_stopping_rounds,
            "imbalance": settings.models.imbalance, "sensitive_attributes": ",".join(settings.models.sensitive_attributes),
            **{f"xgb_{k}": v for k, v in params.items()},
        })
        mlflow.set_tags({
            "presage.backtest": str(as_of is not None).lower(),
            "presage.feature_service_version": _service_version(store, goal.service, features),
            "presage.feast_project": store.project,
            "presage.training_set": path,
            "presage.gold_customer_features_version": str(_delta_version(spark, lake.gold("customer_features"))),
            "presage.gold_customer_attributes_version": str(_delta_version(spark, lake.gold("customer_attributes"))),
            "presage.labels": labels_path or goal.kind,
            "presage.champion_decision": decision,
        })
        version = _delta_version(spark, path)
        mlflow.log_input(mlflow.data.load_delta(path=path, version=version, name=f"{goal.name}_training_set"),
                         context="training")
        trees = booster.num_boosted_rounds()
        mlflow.log_metrics({**result_metrics, **{f"baseline_{k}": v for k, v in baseline.items()},
                            "trees": float(trees), "training_rows": float(positives + negatives),
                            "training_positive_rate": positives / max(positives + negatives, 1)})
        if champion_metric is not None:
            mlflow.log_metrics({f"champion_{goal.primary_metric}": champion_metric})
        for attribute, item in fairness_report.items():
            mlflow.log_metrics({f"fairness_{attribute}_selection_rate_ratio": item["selection_rate_ratio"],
                                f"fairness_{attribute}_tpr_gap": item["true_positive_rate_gap"]})
            mlflow.set_tag(f"presage.fairness_flag.{attribute}", str(item["flagged"]).lower())
        mlflow.log_dict(fairness_report, "fairness.json")
        mlflow.log_text(explained.to_csv(index=False), "explanations_top200.csv")
        gain_outcome = outcome if goal.objective == "binary" else np.clip(outcome, 0, None)
        mlflow.log_figure(plots.gain_and_lift(scores, gain_outcome, _baseline(goal, frame), goal.name), "gain_lift.png")
        if goal.objective == "binary":
            mlflow.log_figure(plots.calibration_plot(outcome, scores, goal.name), "calibration.png")
        mlflow.log_dict(metrics.holdout_curves(scores, outcome, _baseline(goal, frame)), metrics.HOLDOUT_CURVES)
        gains = booster.get_score(importance_type="total_gain")
        mlflow.log_figure(plots.importance(gains, goal.name), "feature_importance.png")
        mlflow.log_dict({k: float(v) for k, v in sorted(gains.items(), key=lambda kv: -kv[1])}, "feature_importance.json")

        booster_path, spec_path = Path(tmp) / "booster.json", Path(tmp) / "spec.json"
        booster.save_model(booster_path)
        spec_path.write_text(spec.to_json())
        example = frame[features].head(5)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=PresageModel(),
            artifacts={"booster": str(booster_path), "spec": str(spec_path)},
            signature=_signature(features),
            input_example=example, registered_model_name=name,
        )
        registered = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        client.set_model_version_tag(name, registered, "as_of", as_of.isoformat() if as_of else "now")
        client.set_model_version_tag(name, registered, goal.primary_metric, f"{result_metrics[goal.primary_metric]:.6f}")
        if promoted:
            tracking.promote(name, registered)
        log.info("%s v%s: %s", name, registered, decision)
        return TrainResult(goal.name, run.info.run_id, registered, result_metrics, baseline, champion_metric,
                           promoted, decision, positives + negatives, len(frame), trees, fairness_report)
