"""The MLflow model presage registers: raw Feast features in, scores out.

An MLflow ``PythonModel`` around the XGBoost booster and its :class:`ModelSpec`, so whoever loads
``models:/presage_<model>@champion`` (batch scoring, ``presage serve``, a notebook) feeds the
feature frame Feast returns and gets the same scores as training computed.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb

from presage.models.spec import ModelSpec, encode_pandas


def predict(booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Probabilities (binary goals) or expected spend (regression) for an encoded matrix."""
    if len(matrix) == 0:
        return np.empty(0, dtype=np.float64)
    return booster.inplace_predict(matrix, missing=np.nan).astype(np.float64)


def score(booster: xgb.Booster, spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities (binary goals) or expected spend (regression) for the rows of ``frame``."""
    return predict(booster, encode_pandas(frame, spec))


class PresageModel(mlflow.pyfunc.PythonModel):
    """Artifacts: ``booster`` (XGBoost JSON) and ``spec`` (ModelSpec JSON)."""

    def load_context(self, context) -> None:
        self.spec = ModelSpec.from_json(Path(context.artifacts["spec"]).read_text())
        self.booster = xgb.Booster()
        self.booster.load_model(context.artifacts["booster"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"score": score(self.booster, self.spec, pd.DataFrame(model_input))})
