"""Each chart of the report: inline SVG drawn by matplotlib, with a title and a one-line caption.

Text stays text in the SVG (``svg.fonttype: none``), so titles, axis labels and ticks can be searched
and read aloud; ids are prefixed with the chart's key so that many SVGs share one page; a fixed hash
salt and no date make the same numbers give the same bytes.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html import escape

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from presage.reporting.data import Drift, ModelEvaluation, ReportData

STYLE = {"svg.fonttype": "none", "svg.hashsalt": "presage-report", "font.size": 9,
         "axes.spines.top": False, "axes.spines.right": False}
MODEL, BASELINE, GREY = "#2f6db5", "#e08a2c", "#9a9a9a"
TIERS = ("hot", "warm", "cold")
ACTIONS = ("contact_now", "upsell_cross_sell", "retention_offer", "nurture", "do_not_contact")
STATUS_COLOURS = {"ok": "#4c9f70", "warn": "#e0a030", "warning": "#e0a030", "alert": "#c8453b"}
OUTCOMES = {"purchase_propensity": "buyers", "churn_risk": "customers who churned", "expected_spend": "revenue",
            "channel_response": "responses"}
BASELINES = {"binary": "recency rule", "regression": "last year's revenue"}
TOP_SEGMENTS = 15  # budget by segment: the best-funded segments, the rest summed as one bar


@dataclass(frozen=True)
class Chart:
    key: str  # unique on the page: the figure's id and the prefix of the SVG's ids
    title: str
    caption: str  # one line, plain words, with the number worth remembering
    svg: str


@dataclass(frozen=True)
class Charts:
    models: dict[str, list[Chart]]  # goal -> gain, lift, calibration (empty: no curves logged)
    leads: list[Chart] = field(default_factory=list)
    budget: list[Chart] = field(default_factory=list)
    segments: list[Chart] = field(default_factory=list)
    drift: list[Chart] = field(default_factory=list)

    def all(self) -> list[Chart]:
        return [c for charts in self.models.values() for c in charts] + self.leads + self.budget + self.segments + self.drift


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def _svg(figure: Figure, key: str, title: str) -> str:
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg[svg.index("<svg"):], flags=re.DOTALL)
    svg = re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{key}-", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1)


def _chart(key: str, title: str, caption: str, figure: Figure) -> Chart:
    return Chart(key, title, caption, _svg(figure, key, title))


def decile_lift(curves: dict) -> np.ndarray:
    """Lift of each score decile (1 = highest scores): its share of the outcome over its share of rows,
    the slope of the gain curve between deciles."""
    x, gain, rows = np.asarray(curves["share_contacted"]), np.asarray(curves["gain_model"]), curves["rows"]
    at = np.round(np.linspace(0, len(x) - 1, 11)).astype(int)
    share = np.diff(np.round(x[at] * rows) / rows)
    return np.divide(np.diff(gain[at]), share, out=np.full(10, np.nan), where=share > 0)


def _gain(e: ModelEvaluation) -> Chart:
    c, noun = e.curves, OUTCOMES.get(e.goal, "positive outcomes")
    x = np.asarray(c["share_contacted"])
    figure, axis = _figure(5.2, 3.6)
    axis.plot(x, c["gain_model"], color=MODEL, linewidth=2, label=f"model v{e.version}")
    axis.plot(x, c["gain_baseline"], color=BASELINE, linestyle="--", label=BASELINES[e.objective])
    axis.plot(x, c["gain_perfect"], color=GREY, linewidth=0.8, label="perfect order")
    axis.plot([0, 1], [0, 1], color="black", linewidth=0.6, label="random")
    axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="share of people contacted, highest scores first",
             ylabel=f"share of {noun} reached")
    axis.xaxis.set_major_formatter(PercentFormatter(1.0))
    axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.legend(loc="lower right", frameon=False)
    model, baseline = np.interp(0.1, x, c["gain_model"]), np.interp(0.1, x, c["gain_baseline"])
    caption = (f"Contacting the top 10% by score reaches {model:.0%} of the holdout's {noun} "
               f"({BASELINES[e.objective]}: {baseline:.0%}; at random: 10%).")
    return _chart(f"gain-{e.goal}", f"{e.goal}: cumulative gain", caption, figure)


def _lift(e: ModelEvaluation) -> Chart:
    lift = decile_lift(e.curves)
    figure, axis = _figure(5.2, 3.6)
    axis.bar(np.arange(1, 11), np.nan_to_num(lift), color=MODEL)
    axis.axhline(1.0, color="black", linewidth=0.6)
    axis.set(xticks=np.arange(1, 11), xlabel="score decile (1 = highest scores)", ylabel="lift over the average")
    noun = OUTCOMES.get(e.goal, "positive outcomes")
    caption = (f"The top decile holds {lift[0]:.1f}x its share of {noun}, the bottom decile {lift[-1]:.1f}x: "
               "the steeper the fall, the better the ranking.")
    return _chart(f"lift-{e.goal}", f"{e.goal}: lift by decile", caption, figure)


def _calibration(e: ModelEvaluation) -> Chart:
    c = e.curves
    predicted, observed = np.asarray(c["calibration_predicted"]), np.asarray(c["calibration_observed"])
    weights = np.asarray(c["calibration_rows"])
    figure, axis = _figure(5.2, 3.6)
    top = max(float(np.nanmax(predicted)), float(np.nanmax(observed)), 1e-3) * 1.05
    axis.plot([0, top], [0, top], color=GREY, linewidth=0.8, label="perfectly calibrated")
    axis.plot(predicted, observed, color=MODEL, marker="o", label=f"model v{e.version}")
    axis.legend(loc="upper left", frameon=False)
    error = float(np.average(np.abs(predicted - observed), weights=weights))
    if e.objective == "binary":
        axis.set(xlabel="mean score of the decile", ylabel="observed rate")
        caption = (f"A decile's mean score is {100 * error:.1f} points from the rate actually observed, on average; "
                   "on the diagonal, scores are true probabilities.")
    else:
        axis.set(xlabel="mean predicted spend of the decile", ylabel="mean actual spend")
        relative = error / c["outcome_mean"] if c["outcome_mean"] else float("nan")
        caption = (f"A decile's mean predicted spend is {error:,.2f} ({relative:.0%} of the average) from its actual "
                   "spend, on average; on the diagonal, predictions are unbiased.")
    return _chart(f"calibration-{e.goal}", f"{e.goal}: calibration", caption, figure)


def _leads(leads: pd.DataFrame) -> Chart:
    table = leads.pivot_table(index="tier", columns="next_best_action", values="persons", aggfunc="sum", fill_value=0)
    tiers = [t for t in TIERS if t in table.index] + sorted(set(table.index) - set(TIERS))
    actions = [a for a in ACTIONS if a in table.columns] + sorted(set(table.columns) - set(ACTIONS))
    table = table.reindex(index=tiers, columns=actions, fill_value=0)
    figure, axis = _figure(6.4, 3.8)
    bottom = np.zeros(len(tiers))
    colours = matplotlib.colormaps["tab10"]
    for i, action in enumerate(actions):
        axis.bar(tiers, table[action].to_numpy(), bottom=bottom, label=action.replace("_", " "), color=colours(i))
        bottom += table[action].to_numpy()
    axis.set(xlabel="tier (by purchase propensity)", ylabel="persons")
    axis.legend(title="next best action", frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    total = int(table.to_numpy().sum())
    per_tier = table.sum(axis=1)
    silent = int(table["do_not_contact"].sum()) if "do_not_contact" in table.columns else 0
    counts = ", ".join(f"{int(per_tier[t]):,} {t}" for t in tiers)
    caption = f"{counts}; {silent / max(total, 1):.0%} have no consented channel and are not contacted."
    return _chart("leads", "Lead tiers and next best actions", caption, figure)


def _channel_colours(channels: list[str]) -> dict[str, tuple]:
    colours = matplotlib.colormaps["Set2"]
    return {c: colours(i % colours.N) for i, c in enumerate(sorted(channels))}


def _budget(budget: pd.DataFrame) -> list[Chart]:
    colours = _channel_colours(list(budget["channel"].unique()))
    per_channel = budget.groupby("channel")[["budget", "expected_revenue"]].sum().sort_values("budget", ascending=False)
    total, revenue = float(per_channel["budget"].sum()), float(per_channel["expected_revenue"].sum())
    figure, axis = _figure(5.6, 3.6)
    axis.bar(per_channel.index, per_channel["budget"], color=[colours[c] for c in per_channel.index])
    for i, (spent, earned) in enumerate(zip(per_channel["budget"], per_channel["expected_revenue"])):
        axis.annotate(f"ROAS {earned / spent:,.0f}x" if spent > 0 else "nothing", (i, spent), ha="center",
                      va="bottom", textcoords="offset points", xytext=(0, 2))
    axis.set(xlabel="channel", ylabel="budget (order currency)")
    if total > 0:
        top = per_channel.index[0]
        caption = (f"{total:,.2f} spent in all, expected to bring {revenue:,.2f} in revenue (ROAS {revenue / total:,.1f}x); "
                   f"{top} takes {per_channel['budget'].iloc[0] / total:.0%}.")
    else:
        caption = "No budget was allocated on this date."
    by_channel = _chart("budget-channel", "Budget by channel", caption, figure)

    cells = budget.pivot_table(index="segment", columns="channel", values="budget", aggfunc="sum", fill_value=0.0)
    order = cells.sum(axis=1).sort_values(ascending=False)
    shown = cells.loc[order.index[:TOP_SEGMENTS]]
    if len(order) > TOP_SEGMENTS:
        rest = cells.loc[order.index[TOP_SEGMENTS:]].sum().rename(f"other {len(order) - TOP_SEGMENTS} segments")
        shown = pd.concat([shown, rest.to_frame().T])
    figure, axis = _figure(8.0, 0.3 * len(shown) + 1.4)
    left = np.zeros(len(shown))
    labels = list(shown.index)[::-1]
    for channel in shown.columns:
        values = shown[channel].to_numpy()[::-1]
        axis.barh(labels, values, left=left, color=colours[channel], label=channel)
        left += values
    axis.set(xlabel="budget (order currency)", ylabel="segment")
    axis.legend(title="channel", frameon=False, loc="lower right")
    best = order.iloc[:3].sum() / total if total > 0 else 0.0
    caption = (f"The {min(3, len(order))} best-funded of {len(order)} segments take {best:.0%} of the budget; "
               "each bar is split by channel.")
    return [by_channel, _chart("budget-segment", "Budget by segment", caption, figure)]


def _segment_bars(rows: pd.DataFrame, labels: list[str], key: str, title: str, caption: str) -> Chart:
    figure, axis = _figure(7.0, 0.26 * len(rows) + 1.3)
    axis.barh(labels[::-1], rows["size"].to_numpy()[::-1], color=MODEL)
    axis.set(xlabel="consented persons", ylabel="segment")
    return _chart(key, title, caption, figure)


def _segments(segments: pd.DataFrame) -> list[Chart]:
    charts = []
    micro = segments[segments["kind"] == "micro"].sort_values("size", ascending=False)
    if len(micro):
        caption = (f"{len(micro)} micro-segments of {int(micro['size'].sum()):,} consented persons, from behaviour alone: "
                   f"the largest holds {int(micro['size'].max()):,} persons ({micro['share'].max():.0%}), "
                   f"the smallest {int(micro['size'].min()):,}.")
        labels = [f"#{s} {n}" for s, n in zip(micro["segment"], micro["name"])]
        charts.append(_segment_bars(micro, labels, "segments-micro", "Micro-segment sizes", caption))
    rfm = segments[segments["kind"] == "rfm"].sort_values("size", ascending=False)
    if len(rfm):
        largest = rfm.iloc[0]
        caption = (f"Segments by recency, frequency and money spent: the largest is {largest['name']} "
                   f"({largest['share']:.0%}); prospects have never ordered.")
        charts.append(_segment_bars(rfm, list(rfm["name"]), "segments-rfm", "RFM segment sizes", caption))
    return charts


def _status_colours(statuses: pd.Series) -> list[str]:
    return [STATUS_COLOURS.get(str(s).lower(), GREY) for s in statuses]


def _status_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _drift(drift: Drift) -> list[Chart]:
    charts = []
    scores = drift.scores
    if len(scores):
        labels = [m if m == n else f"{m}: {n}" for m, n in zip(scores["model"], scores["name"])]
        figure, axis = _figure(6.0, 3.4)
        axis.bar(labels, scores["psi"], color=_status_colours(scores["status"]))
        axis.set(xlabel="model score", ylabel="PSI (population stability index)")
        axis.tick_params(axis="x", labelrotation=20)
        caption = (f"How far each score's distribution on {drift.monitor_date} moved from its training reference: "
                   f"{_status_counts(scores['status'].value_counts().to_dict())} (colour: the status presage monitor gave).")
        charts.append(_chart("drift-scores", "Score drift", caption, figure))
    features = drift.features
    if len(features):
        figure, axis = _figure(7.0, 0.26 * len(features) + 1.3)
        axis.barh(list(features["name"])[::-1], features["psi"].to_numpy()[::-1],
                  color=_status_colours(features["status"])[::-1])
        axis.set(xlabel="PSI (the largest over the models using the feature)", ylabel="feature")
        caption = (f"The {len(features)} features that moved most on {drift.monitor_date}; over all models and features: "
                   f"{_status_counts(drift.features_by_status)}.")
        charts.append(_chart("drift-features", "Feature drift", caption, figure))
    return charts


def build(data: ReportData) -> Charts:
    """Every chart the data allows: a model without logged curves, an empty table or no drift
    measurement leaves its charts out (the page says why)."""
    with matplotlib.rc_context(STYLE):
        return Charts(
            models={e.goal: [_gain(e), _lift(e), _calibration(e)] if e.curves else [] for e in data.models},
            leads=[_leads(data.leads)] if len(data.leads) else [],
            budget=_budget(data.budget) if len(data.budget) else [],
            segments=_segments(data.segments),
            drift=_drift(data.drift) if data.drift else [],
        )
