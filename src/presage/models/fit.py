"""Distributed XGBoost training with xgboost.spark, and the defaults it starts from.

The defaults are chosen to generalise to data we have not seen rather than to win on the demo:
shallow-ish trees with a small learning rate, row and column subsampling, a minimum leaf weight
and early stopping on persons held out of training. Class imbalance: by default no reweighting
(``max_delta_step`` 1, XGBoost's advice when predicted probabilities must stay right: they feed
expected value and budgets); ``models.imbalance: balance`` sets ``scale_pos_weight`` instead.
Spend is fitted with a Tweedie objective: many zeros and a long tail of big spenders.
"""

from __future__ import annotations

import logging

import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

from presage.config import ModelSettings
from presage.models.dataset import EARLY_STOP
from presage.models.labels import LABEL

log = logging.getLogger(__name__)

DEFAULTS: dict[str, float | int | str] = {
    "max_depth": 5,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "reg_lambda": 1.0,
    "max_bin": 256,
    "tree_method": "hist",
}


def parameters(objective: str, settings: ModelSettings, positives: int, negatives: int) -> dict[str, float | int | str]:
    """XGBoost parameters of one training: defaults, objective and imbalance, then the user's."""
    params: dict[str, float | int | str] = dict(DEFAULTS)
    if objective == "regression":
        params.update(objective="reg:tweedie", tweedie_variance_power=1.5, eval_metric="rmse")
    else:
        params["eval_metric"] = "logloss"  # SparkXGBClassifier sets binary:logistic itself
        if settings.imbalance == "balance":
            params["scale_pos_weight"] = negatives / max(positives, 1)
        else:
            params["max_delta_step"] = 1
    params.update(settings.params)
    return params


def fit(rows: DataFrame, features: list[str], objective: str, params: dict, settings: ModelSettings) -> xgb.Booster:
    """Train on encoded rows (double features, ``label``, ``_early_stop``); the booster is cut at its
    best iteration, so that every later prediction uses exactly the trees early stopping chose."""
    estimator_class = SparkXGBRegressor if objective == "regression" else SparkXGBClassifier
    estimator = estimator_class(
        features_col=features,
        label_col=LABEL,
        validation_indicator_col=EARLY_STOP,
        n_estimators=settings.max_rounds,
        early_stopping_rounds=settings.early_stopping_rounds,
        num_workers=settings.num_workers,
        missing=float("nan"),
        verbose=False,  # no per-round evaluation lines in the job's output
        **params,
    )
    # One cached partition per worker, as bench/xgboost_training.py measures: xgboost.spark would
    # otherwise shuffle into num_workers partitions and scan the (encoded) training set twice per fit.
    data = (rows.select(*features, F.col(LABEL).cast("double").alias(LABEL), EARLY_STOP)
            .repartition(settings.num_workers).persist())
    try:
        model = estimator.fit(data)
    finally:
        data.unpersist()
    booster = model.get_booster()
    best = booster.best_iteration if "best_iteration" in booster.attributes() else None
    if best is not None and best + 1 < booster.num_boosted_rounds():
        booster = booster[: best + 1]
    log.info("trained %d trees (best iteration %s of at most %d)", booster.num_boosted_rounds(), best, settings.max_rounds)
    return booster
