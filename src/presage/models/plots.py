"""The figures a training run logs to MLflow: gain and lift, calibration, feature importance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on clusters and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from presage.models.metrics import calibration, gain_curve


def gain_and_lift(scores: np.ndarray, outcome: np.ndarray, baseline: np.ndarray, title: str) -> Figure:
    """Cumulative gain (share of the outcome captured vs share contacted) and lift per decile."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    x, model = gain_curve(scores, outcome)
    _, recency = gain_curve(baseline, outcome)
    _, perfect = gain_curve(outcome, outcome)
    left.plot(x, model, label="model")
    left.plot(x, recency, label="baseline", linestyle="--")
    left.plot(x, perfect, label="perfect", color="grey", linewidth=0.8)
    left.plot([0, 1], [0, 1], label="random", color="black", linewidth=0.6)
    left.set(xlabel="share of people contacted (highest scores first)", ylabel="share of outcome captured",
             title=f"{title}: cumulative gain")
    left.legend(loc="lower right")
    order = np.argsort(-scores, kind="stable")
    deciles = np.array_split(outcome[order], 10)
    mean = outcome.mean() if outcome.mean() > 0 else 1.0
    right.bar(np.arange(1, 11), [d.mean() / mean for d in deciles])
    right.axhline(1.0, color="black", linewidth=0.6)
    right.set(xlabel="score decile (1 = highest)", ylabel="lift over average", title="lift by decile")
    figure.tight_layout()
    return figure


def calibration_plot(labels: np.ndarray, scores: np.ndarray, title: str) -> Figure:
    predicted, observed, _ = calibration(labels, scores)
    figure, axis = plt.subplots(figsize=(5, 5))
    top = max(predicted.max(), observed.max(), 1e-3) * 1.05
    axis.plot([0, top], [0, top], color="grey", linewidth=0.8, label="perfectly calibrated")
    axis.plot(predicted, observed, marker="o", label="model")
    axis.set(xlabel="mean predicted (per score decile)", ylabel="observed", title=f"{title}: calibration")
    axis.legend(loc="upper left")
    figure.tight_layout()
    return figure


def importance(gains: dict[str, float], title: str, top: int = 25) -> Figure:
    items = sorted(gains.items(), key=lambda kv: kv[1])[-top:]
    figure, axis = plt.subplots(figsize=(7, 0.28 * len(items) + 1.2))
    axis.barh([k for k, _ in items], [v for _, v in items])
    axis.set(xlabel="total gain", title=f"{title}: feature importance")
    figure.tight_layout()
    return figure
