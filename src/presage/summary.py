"""What the pipeline has left in a lakehouse: every Delta table with its rows, the champion models
and their MLflow runs, and the newest report page.

``presage where`` prints it, so the end of ``make demo`` says where everything is and how much of
it there is. Read without Spark (``deltalake`` and MLflow's client), so it answers in a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable

from presage.config import Settings
from presage.lakehouse import Lakehouse

HEADLINE = ("auc", "baseline_auc", "gini", "baseline_gini", "mae")  # holdout metrics worth a glance


@dataclass(frozen=True)
class TableSummary:
    name: str  # path under the lakehouse root, e.g. outputs/lead_priority
    version: int
    rows: int


@dataclass(frozen=True)
class ModelSummary:
    goal: str
    version: str
    run_id: str
    metrics: dict[str, float]


def delta_tables(root: str) -> list[TableSummary]:
    """Every Delta table below ``root`` (a local lakehouse), sorted by path."""
    found = []
    for folder, subfolders, _ in os.walk(root):
        if "_delta_log" in subfolders:
            table = DeltaTable(folder)
            found.append(TableSummary(os.path.relpath(folder, root), table.version(), table.count()))
            subfolders.clear()  # a table's partitions are not tables
    return sorted(found, key=lambda t: t.name)


def champions(settings: Settings, goals: tuple[str, ...]) -> list[ModelSummary]:
    """The champion of each goal that has one, with the headline metrics of its training run."""
    from mlflow.tracking import MlflowClient

    from presage.models import tracking

    tracking.configure(settings)
    client = MlflowClient()
    result = []
    for goal in goals:
        version = tracking.champion(tracking.registered_name(settings, goal))
        if version is None:
            continue
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        headline = {k: metrics[k] for k in HEADLINE if k in metrics}
        result.append(ModelSummary(goal, str(version.version), version.run_id or "", headline))
    return result


def newest_report(lake: Lakehouse) -> str | None:
    pages = sorted(Path(lake.path("reports")).glob("presage_*.html"))
    return str(pages[-1]) if pages else None
