"""Per-person reasons in words from XGBoost's own SHAP contributions (``pred_contribs``).

Tree SHAP values are exact for tree ensembles and come with XGBoost, so no extra package is needed.
A reason names the feature in the words of the feature catalog, its value for this person, and
whether it raised or lowered the score; the strongest raising reasons come first.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xgboost as xgb

from presage.features.catalog import ATTRIBUTE_PREFIX, ATTRIBUTES, BEHAVIOUR
from presage.models.spec import ModelSpec, encode_pandas

DESCRIPTIONS = {f.name: f.description for f in (*BEHAVIOUR, *ATTRIBUTES)} | {"channel": "contact channel"}


def describe(feature: str) -> str:
    """The catalog's words for a feature (CRM attributes by their key)."""
    if feature in DESCRIPTIONS:
        return DESCRIPTIONS[feature]
    if feature.startswith(ATTRIBUTE_PREFIX):
        return f"CRM attribute {feature[len(ATTRIBUTE_PREFIX):].replace('_', ' ')}"
    return feature.replace("_", " ")


def _value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "none"
    if isinstance(value, float | np.floating):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def contributions(booster: xgb.Booster, spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """SHAP contributions (rows x features, margin units), bias column dropped."""
    matrix = xgb.DMatrix(encode_pandas(frame, spec), feature_names=list(spec.features), missing=np.nan)
    return booster.predict(matrix, pred_contribs=True)[:, :-1]


def reasons(booster: xgb.Booster, spec: ModelSpec, frame: pd.DataFrame, top: int = 3) -> list[list[dict]]:
    """For each row, up to ``top`` reasons: feature, value, contribution and a sentence.

    Raising reasons (positive contributions) come first, strongest first; when fewer than ``top``
    features raise the score, the strongest lowering ones follow.
    """
    shap = contributions(booster, spec, frame)
    result = []
    for row, values in zip(shap, frame.itertuples(index=False)):
        record = dict(zip(frame.columns, values))
        order = [k for k in np.argsort(-row) if row[k] > 0][:top]
        order += [k for k in np.argsort(row) if row[k] < 0][: top - len(order)]
        result.append([
            {
                "feature": spec.features[k],
                "value": _value(record.get(spec.features[k])),
                "contribution": float(row[k]),
                "text": f"{describe(spec.features[k])}: {_value(record.get(spec.features[k]))} "
                        f"({'raises' if row[k] > 0 else 'lowers'} the score)",
            }
            for k in order
        ])
    return result
