"""What a trained model expects as input, and the one encoding of those inputs.

A model reads the raw features Feast returns (numbers and strings). Strings become codes from a
vocabulary fitted on the training rows: the most frequent values by rank, every other value the
code after them, null stays missing (XGBoost learns where missing goes). The same mapping runs in
Spark (training, batch scoring) and in pandas (MLflow pyfunc, online scoring), from this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

MAX_CATEGORIES = 50


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    objective: str  # "binary" | "regression"
    service: str
    horizon_days: int
    features: tuple[str, ...]  # model inputs in booster order
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # string feature -> vocabulary
    # every other feature is numeric: int, float or missing, read as a double

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        data = json.loads(text)
        data["features"] = tuple(data["features"])
        data["categories"] = {k: tuple(v) for k, v in data["categories"].items()}
        return cls(**data)


def vocabularies(rows: DataFrame, columns: list[str]) -> dict[str, tuple[str, ...]]:
    """The MAX_CATEGORIES most frequent values of each string column (ties by value, for stability)."""
    result = {}
    for column in columns:
        top = (rows.where(F.col(column).isNotNull()).groupBy(column).count()
               .orderBy(F.desc("count"), F.asc(column)).limit(MAX_CATEGORIES).collect())
        result[column] = tuple(str(r[0]) for r in top)
    return result


def encode_spark(rows: DataFrame, spec: ModelSpec) -> DataFrame:
    """``rows`` with every model feature as a double column (strings coded), other columns kept."""
    encoded = []
    for name in spec.features:
        vocabulary = spec.categories.get(name)
        if vocabulary is None:
            encoded.append(F.col(name).cast("double").alias(name))
            continue
        codes = F.create_map(*[item for k, v in enumerate(vocabulary) for item in (F.lit(v), F.lit(float(k)))])
        other = F.lit(float(len(vocabulary)))
        value = F.col(name).cast("string")
        encoded.append(F.when(value.isNull(), F.lit(None).cast("double"))
                       .otherwise(F.coalesce(codes[value], other)).alias(name))
    kept = [c for c in rows.columns if c not in spec.features]
    return rows.select(*kept, *encoded)


def encode_pandas(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """The float32 matrix (rows x spec.features, NaN for missing) the booster predicts on.

    Raises:
        KeyError: a model feature is absent from ``frame``.
    """
    missing = [name for name in spec.features if name not in frame.columns]
    if missing:
        raise KeyError(f"model {spec.name} needs the features {missing}")
    # Feature-major first (each column a contiguous write), then one transposing copy to the
    # row-major float32 matrix: column-by-column writes into a row-major matrix cost as much as the
    # prediction itself in batch scoring.
    columns = np.empty((len(spec.features), len(frame)), dtype=np.float64)
    for k, name in enumerate(spec.features):
        column = frame[name]
        vocabulary = spec.categories.get(name)
        if vocabulary is None:
            if pd.api.types.is_numeric_dtype(column.dtype):
                columns[k] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                columns[k] = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        else:
            lookup = {value: float(code) for code, value in enumerate(vocabulary)}
            present = column.notna()
            codes = column.astype("string").map(lookup).astype("float64").fillna(float(len(vocabulary)))
            columns[k] = np.where(present.to_numpy(), codes.to_numpy(), np.nan)
    return np.ascontiguousarray(columns.T, dtype=np.float32)
