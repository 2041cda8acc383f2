"""Holdout metrics marketers and data scientists read, from scores and outcomes in the driver.

"Lift quality" is the accuracy ratio of the gain curve, in percent: 0 % is random ordering, 100 %
puts every buyer first (for a binary label it equals 2 x AUC - 1). It is the single 0-100 number
marketing suites show beside a propensity model. Revenue capture is the share of the holdout's
horizon revenue that the top decile of scores holds.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

DECILE = 0.1
HOLDOUT_CURVES = "holdout_curves.json"  # the run artifact of holdout_curves(), drawn by `presage report`


def _top(scores: np.ndarray, share: float = DECILE) -> np.ndarray:
    """Indices of the highest ``share`` of scores (at least one row); ties broken by position."""
    count = max(1, round(len(scores) * share))
    return np.argsort(-scores, kind="stable")[:count]


def capture(scores: np.ndarray, values: np.ndarray, share: float = DECILE) -> float:
    """Share of the total of ``values`` held by the top ``share`` of scores (NaN when the total is 0)."""
    total = float(np.nansum(values))
    return float(np.nansum(values[_top(scores, share)]) / total) if total > 0 else float("nan")


def gain_curve(scores: np.ndarray, values: np.ndarray, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(share of rows contacted, share of ``values`` captured), contacting the highest scores first."""
    order = np.argsort(-scores, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values[order]))])
    total = cumulative[-1] if cumulative[-1] > 0 else 1.0
    x = np.linspace(0, 1, points + 1)
    return x, cumulative[np.round(x * len(scores)).astype(int)] / total


def gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Normalised Gini: the area of the gain curve of ``predicted`` over that of the perfect order."""
    def area(order_by: np.ndarray) -> float:
        x, y = gain_curve(order_by, actual, points=min(1000, max(10, len(actual))))
        return float(np.trapezoid(y, x) - 0.5)

    best = area(actual)
    return area(predicted) / best if best > 0 else float("nan")


def binary(labels: np.ndarray, scores: np.ndarray, revenue: np.ndarray | None = None) -> dict[str, float]:
    """AUC, PR-AUC, log loss, Brier, base rate, top-decile lift, lift quality, revenue capture."""
    labels = labels.astype(int)
    rate = float(labels.mean())
    if rate in (0.0, 1.0):
        raise ValueError("the holdout has one class only: no ranking metric is defined")
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(labels, scores))
    result = {
        "auc": auc,
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        "brier": float(brier_score_loss(labels, scores)),
        "base_rate": rate,
        "top_decile_lift": float(labels[_top(scores)].mean() / rate),
        "lift_quality_pct": float(max(0.0, 2 * auc - 1) * 100),
        "rows": float(len(labels)),
    }
    if revenue is not None and np.isfinite(revenue).any():
        result["top_decile_revenue_capture"] = capture(scores, revenue)
    return result


def regression(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, Spearman, normalised Gini and top-decile revenue capture of a spend model."""
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(actual, predicted))),
        "spearman": float(spearmanr(actual, predicted).statistic),
        "gini": gini(actual, predicted),
        "top_decile_revenue_capture": capture(predicted, actual),
        "mean_actual": float(np.mean(actual)),
        "mean_predicted": float(np.mean(predicted)),
        "rows": float(len(actual)),
    }


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean score, observed rate, rows) per score decile: a calibrated model lies on the diagonal."""
    order = np.argsort(scores, kind="stable")
    groups = [g for g in np.array_split(order, bins) if len(g)]
    return (np.array([scores[g].mean() for g in groups]), np.array([labels[g].mean() for g in groups]),
            np.array([len(g) for g in groups]))


def holdout_curves(scores: np.ndarray, outcome: np.ndarray, baseline: np.ndarray) -> dict[str, float | list[float]]:
    """The numbers behind the gain, lift and calibration figures, small enough to log as JSON so that
    `presage report` can redraw them: cumulative gain of the model, of the baseline rule and of the
    perfect order (negative outcomes, refunds, count as 0), and mean score against mean outcome per
    score decile. Lift per decile is the gain curve's slope between deciles."""
    gained = np.clip(np.nan_to_num(outcome), 0, None)
    x, model = gain_curve(scores, gained)
    predicted, observed, rows = calibration(outcome, scores)
    return {
        "rows": float(len(outcome)),
        "outcome_mean": float(np.nanmean(outcome)),
        "share_contacted": x.tolist(),
        "gain_model": model.tolist(),
        "gain_baseline": gain_curve(baseline, gained)[1].tolist(),
        "gain_perfect": gain_curve(gained, gained)[1].tolist(),
        "calibration_predicted": predicted.tolist(),
        "calibration_observed": observed.tolist(),
        "calibration_rows": rows.astype(float).tolist(),
    }
