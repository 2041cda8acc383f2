"""Which registered model version scores, and the booster and spec inside it.

Today that is the version holding the ``champion`` alias. A backtest (``--as-of D``) uses the model
as it was then: the newest version whose training data ended by D (its ``as_of`` tag, or its
creation time for a version trained on everything), so scoring the past never uses a model that
saw the future.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import mlflow
import xgboost as xgb
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from presage.config import Settings
from presage.models import tracking
from presage.models.spec import ModelSpec


@dataclass(frozen=True)
class Champion:
    """A registered model ready to score: its booster (raw bytes, cheap to ship to executors) and spec."""

    goal: str
    name: str
    version: str
    booster_raw: bytes
    spec: ModelSpec

    def booster(self, threads: int = 1) -> xgb.Booster:
        booster = xgb.Booster(model_file=bytearray(self.booster_raw))
        booster.set_param({"nthread": threads})
        return booster


def _training_cutoff(version: ModelVersion) -> dt.datetime:
    tag = (version.tags or {}).get("as_of", "now")
    if tag != "now":
        return dt.datetime.fromisoformat(tag)
    return dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC)


def _version_at(name: str, as_of: dt.datetime) -> ModelVersion | None:
    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    eligible = [v for v in versions if _training_cutoff(v) <= as_of]
    return max(eligible, key=lambda v: (_training_cutoff(v), int(v.version)), default=None)


def load(settings: Settings, goal: str, as_of: dt.datetime | None = None) -> Champion:
    """The model of ``goal`` that scores today (its champion) or on ``as_of`` (a backtest).

    Raises:
        LookupError: no such model, with the command that trains one.
    """
    tracking.configure(settings)
    name = tracking.registered_name(settings, goal)
    version = tracking.champion(name) if as_of is None else _version_at(name, as_of)
    if version is None:
        when = f"trained by {as_of:%Y-%m-%d}" if as_of else "with the champion alias"
        hint = f"presage train --model {goal}" + (f" --as-of {as_of:%Y-%m-%d}" if as_of else "")
        raise LookupError(f"no registered version of {name} {when}; run `{hint}` first")
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}").unwrap_python_model()
    return Champion(goal, name, str(version.version), bytes(model.booster.save_raw("ubj")), model.spec)
