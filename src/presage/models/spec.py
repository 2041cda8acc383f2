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
import pyarrow as pa
import pyarrow.compute as pc
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
    def from_json(cls, text: str) -> ModelSpec:
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


def encode_arrow(table: pa.Table | pa.RecordBatch, spec: ModelSpec) -> np.ndarray:
    """The float32 matrix (rows x spec.features, NaN for missing) the booster predicts on.

    Batch scoring hands Spark's Arrow batches here without a pandas detour; ``encode_pandas`` and
    therefore pyfunc, training metrics and ``presage serve`` come through here too.

    Raises:
        KeyError: a model feature is absent from ``table``.
    """
    missing = [name for name in spec.features if name not in table.schema.names]
    if missing:
        raise KeyError(f"model {spec.name} needs the features {missing}")
    # Feature-major first (each column one contiguous write), then one transposing copy to the
    # row-major matrix: column-by-column writes into a row-major matrix cost as much as the
    # prediction itself in batch scoring.
    columns = np.empty((len(spec.features), table.num_rows), dtype=np.float32)
    for k, name in enumerate(spec.features):
        column = table.column(name)
        vocabulary = spec.categories.get(name)
        if vocabulary is None:
            columns[k] = pc.cast(column, pa.float32(), safe=False).to_numpy(zero_copy_only=False)
        else:
            # Code of the value in the vocabulary, the code after it for any other value, NaN for null.
            codes = pc.index_in(pc.cast(column, pa.string()), value_set=pa.array(vocabulary, pa.string()))
            codes = pc.if_else(pc.is_valid(column), pc.coalesce(codes, len(vocabulary)), None)
            columns[k] = pc.cast(codes, pa.float32()).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(columns.T)


def encode_pandas(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """``encode_arrow`` for a pandas frame; a numeric feature that arrives as text (an online store
    returning objects) is read as a number, unreadable text as missing.

    Raises:
        KeyError: a model feature is absent from ``frame``.
    """
    missing = [name for name in spec.features if name not in frame.columns]
    if missing:
        raise KeyError(f"model {spec.name} needs the features {missing}")
    columns = {}
    for name in spec.features:
        column = frame[name]
        if name in spec.categories:
            columns[name] = pa.array(column.astype("string"), pa.string(), from_pandas=True)
        else:
            if not pd.api.types.is_numeric_dtype(column.dtype):
                column = pd.to_numeric(column, errors="coerce")
            columns[name] = pa.array(column.astype("float64"), pa.float64(), from_pandas=True)
    return encode_arrow(pa.table(columns), spec)
