"""Selection-rate ratio and true-positive-rate gap across groups of each sensitive attribute.

The decision audited is the one marketers take from a score: contact the top decile. Groups come
from the attribute's value (numbers such as age in bands); a group smaller than ``min_rows`` is
listed but left out of the ratio and gap, which it would make noise of, and so is "unknown" (no
recorded value: mostly people without a CRM record, not a group of people). A ratio below 0.8 (the
"four-fifths rule") is flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, selection_rate, true_positive_rate

FOUR_FIFTHS = 0.8
AGE_BANDS = [0, 25, 35, 45, 55, 65, 200]
UNKNOWN = "unknown"


def groups(values: pd.Series) -> pd.Series:
    """Group label of each row: numbers in bands (age bands for age-like ranges), else the value."""
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().any() and numeric.notna().sum() == values.notna().sum():
        if numeric.dropna().between(0, 130).all():
            bands = pd.cut(numeric, AGE_BANDS, right=False, labels=["<25", "25-34", "35-44", "45-54", "55-64", "65+"])
        else:
            bands = pd.qcut(numeric, 5, duplicates="drop")
        return bands.astype("string").fillna(UNKNOWN)
    return values.astype("string").fillna(UNKNOWN)


def report(
    outcome: np.ndarray, scores: np.ndarray, attributes: pd.DataFrame, min_rows: int
) -> dict[str, dict]:
    """Per attribute: per-group selection rate and TPR, the min/max selection-rate ratio, the TPR gap
    and a flag. ``outcome`` is 1 for a positive outcome (bought, churned, top spender)."""
    threshold = np.quantile(scores, 0.9)
    selected = (scores >= threshold).astype(int)
    result = {}
    for attribute in attributes.columns:
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate, "rows": count},
            y_true=outcome.astype(int), y_pred=selected, sensitive_features=groups(attributes[attribute]),
        )
        table = frame.by_group
        sized = table[(table["rows"] >= min_rows) & (table.index.astype(str) != UNKNOWN)]
        rates = sized["selection_rate"]
        tpr = sized["true_positive_rate"].dropna()
        ratio = float(rates.min() / rates.max()) if len(rates) > 1 and rates.max() > 0 else float("nan")
        result[attribute] = {
            "groups": {str(g): {k: float(v) for k, v in row.items()} for g, row in table.iterrows()},
            "selection_rate_ratio": ratio,
            "true_positive_rate_gap": float(tpr.max() - tpr.min()) if len(tpr) > 1 else float("nan"),
            "flagged": bool(ratio < FOUR_FIFTHS) if not np.isnan(ratio) else False,
        }
    return result
