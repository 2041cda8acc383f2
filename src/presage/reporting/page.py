"""The report as one HTML file: inline CSS and SVG, no script and no link to anything outside it, so it
opens from a mail attachment or a bucket on a machine without internet."""

from __future__ import annotations

import datetime as dt
from html import escape

from presage.reporting.charts import Chart, Charts
from presage.reporting.data import ModelEvaluation, ReportData

CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 8px; }
nav a { margin-right: 16px; }
section { margin-top: 32px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 24px; align-items: start; }
figure.chart { margin: 0; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.92em; }
.chart-title { font-size: 1em; margin: 0 0 4px; }
.metrics, .meta { color: #555; }
.missing { background: #fff6e0; border-left: 4px solid #e0a030; padding: 8px 12px; }
"""

METRICS = {  # holdout metric -> label, in the order shown
    "auc": "AUC", "pr_auc": "PR AUC", "top_decile_lift": "top-decile lift", "brier": "Brier",
    "gini": "Gini", "spearman": "Spearman", "top_decile_revenue_capture": "top-decile revenue share", "mae": "MAE",
    "baseline_auc": "baseline AUC", "baseline_gini": "baseline Gini", "rows": "holdout rows",
}


def _figure(chart: Chart) -> str:
    return (f'<figure class="chart" id="{chart.key}">\n<h3 class="chart-title">{escape(chart.title)}</h3>\n'
            f"{chart.svg}\n<figcaption>{escape(chart.caption)}</figcaption>\n</figure>")


def _grid(charts: list[Chart]) -> str:
    return '<div class="grid">\n' + "\n".join(_figure(c) for c in charts) + "\n</div>"


def _missing(text: str, key: str) -> str:
    return f'<p class="missing" id="{key}-missing">{text}</p>'


def _metrics(e: ModelEvaluation) -> str:
    shown = [f"{label} {e.metrics[k]:,.0f}" if k == "rows" else f"{label} {e.metrics[k]:.3f}"
             for k, label in METRICS.items() if k in e.metrics]
    return " · ".join(shown)


def _model(e: ModelEvaluation, charts: list[Chart]) -> str:
    body = _grid(charts) if charts else _missing(escape(e.note), f"model-{e.goal}")
    return (f'<article class="model" id="model-{e.goal}">\n<h3>{escape(e.goal)} v{escape(e.version)}</h3>\n'
            f'<p class="metrics">{escape(_metrics(e))}</p>\n{body}\n</article>')


def _section(key: str, title: str, intro: str, content: str) -> str:
    return f'<section id="{key}">\n<h2>{title}</h2>\n<p>{intro}</p>\n{content}\n</section>'


def render(data: ReportData, charts: Charts, generated: dt.datetime) -> str:
    """The whole page; sections without charts say why and what to run."""
    day = data.score_date.isoformat()
    versions = ", ".join(f"{escape(e.goal)} v{escape(e.version)}" for e in data.models)
    models = "\n".join(_model(e, charts.models.get(e.goal, [])) for e in data.models)
    leads = _grid(charts.leads) if charts.leads else _missing(f"No lead_priority rows on {day}.", "leads")
    budget = _grid(charts.budget) if charts.budget else _missing(
        f"No budget_allocation rows on {day}: run <code>presage score --as-of {day}</code>.", "budget")
    segments = _grid(charts.segments) if charts.segments else _missing(
        f"No segments on {day}: nobody scored that day has marketing consent, or the run predates segments.", "segments")
    if charts.drift:
        drift = _grid(charts.drift)
    else:
        drift = _missing(f"No drift measured on or before {day}: run <code>presage monitor</code>, then this report again.",
                         "drift")
    sections = [
        _section("models", "Models on their holdout",
                 "Each model version that scored this date, as its training run measured it on later snapshots it never "
                 "saw (numbers logged in MLflow).", models),
        _section("leads", "Leads", "Everyone scored, by tier and the action lead_priority recommends.", leads),
        _section("budget", "Budget", "How budget_allocation spreads the period's budget, and what it expects back.", budget),
        _section("segments", "Segments", "Sizes of the segments in the segments table.", segments),
        _section("drift", "Drift", "Population stability from presage monitor: how far today's scores and features moved "
                 "from what the models were trained on.", drift),
    ]
    nav = " ".join(f'<a href="#{key}">{key}</a>' for key in ("models", "leads", "budget", "segments", "drift"))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>presage report {day}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>presage: scores of {day}</h1>
<p class="meta">{data.persons:,} persons scored from the feature snapshot of {data.feature_snapshot:%Y-%m-%d} with {versions}.
Generated {generated:%Y-%m-%d %H:%M} UTC by <code>presage report</code>; docs/report.md says where each number comes from.</p>
<nav>{nav}</nav>
</header>
<main>
{chr(10).join(sections)}
</main>
</body>
</html>
"""
