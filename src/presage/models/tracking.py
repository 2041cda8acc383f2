"""MLflow tracking and registry for presage: where runs go, and the champion alias.

Default: a SQLite database and an artifact folder under ``<home>/mlflow``, so a laptop run needs no
server; ``mlflow.tracking_uri`` points at a real server (``http://...``) or any database MLflow
accepts. Each goal has its experiment ``<experiment>/<model>`` and registered model
``<registered_prefix><model>``; the alias ``champion`` names the version that scoring uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from presage.config import Settings

CHAMPION = "champion"


def configure(settings: Settings) -> str:
    """Point MLflow (tracking and registry) at the configured store; returns its URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls home from jobs or CI
    uri = settings.mlflow.tracking_uri
    if uri is None:
        if "://" in settings.root:
            raise ValueError(f"the lakehouse {settings.root} is remote: set mlflow.tracking_uri to a server or database")
        folder = Path(settings.root) / "mlflow"
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(settings: Settings, model: str) -> str:
    """The experiment of a model, created on first use (artifacts under <home>/mlflow with SQLite)."""
    name = f"{settings.mlflow.experiment}/{model}"
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if settings.mlflow.tracking_uri is None:
        location = (Path(settings.root) / "mlflow" / "artifacts").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def registered_name(settings: Settings, model: str) -> str:
    return f"{settings.mlflow.registered_prefix}{model}"


def champion(name: str) -> ModelVersion | None:
    """The version holding the champion alias, or None (no registered model, or no alias yet)."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(name: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
