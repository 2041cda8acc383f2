"""The model input encoding is one mapping whichever way the rows arrive: Spark columns (training),
Arrow batches (batch scoring) and pandas frames (pyfunc, ``presage serve``) give the same matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from presage.models.spec import ModelSpec, encode_arrow, encode_pandas, encode_spark

SPEC = ModelSpec("m", "purchase", "binary", "svc", 90, ("amount", "orders", "active", "city"),
                 {"city": ("paris", "lyon")})
ROWS = pd.DataFrame({
    "amount": [12.5, None, 1e9, -3.25],
    "orders": pd.array([3, None, 0, 7], dtype="Int64"),
    "active": pd.array([True, False, None, True], dtype="boolean"),
    "city": ["lyon", None, "nice", "paris"],  # nice: outside the vocabulary
})
EXPECTED = np.array([
    [12.5, 3, 1, 1],
    [np.nan, np.nan, 0, np.nan],
    [1e9, 0, np.nan, 2],
    [-3.25, 7, 1, 0],
], dtype=np.float32)


def test_arrow_and_pandas_give_the_expected_matrix():
    np.testing.assert_array_equal(encode_arrow(pa.Table.from_pandas(ROWS), SPEC), EXPECTED)
    np.testing.assert_array_equal(encode_arrow(pa.RecordBatch.from_pandas(ROWS), SPEC), EXPECTED)
    np.testing.assert_array_equal(encode_pandas(ROWS, SPEC), EXPECTED)
    assert encode_pandas(ROWS, SPEC).dtype == np.float32 and encode_pandas(ROWS, SPEC).flags.c_contiguous


def test_spark_gives_the_same_matrix(spark):
    frame = spark.createDataFrame(ROWS.astype(object).where(ROWS.notna(), None),
                                  "amount double, orders long, active boolean, city string")
    encoded = encode_spark(frame, SPEC).toPandas()[list(SPEC.features)].to_numpy(dtype=np.float32, na_value=np.nan)
    np.testing.assert_array_equal(encoded, EXPECTED)


def test_pandas_reads_numbers_sent_as_text_and_unreadable_text_as_missing():
    frame = ROWS.assign(amount=["12.5", "n/a", None, "-3.25"])
    matrix = encode_pandas(frame, SPEC)
    np.testing.assert_array_equal(matrix[:, 0], np.array([12.5, np.nan, np.nan, -3.25], dtype=np.float32))


def test_a_missing_feature_is_named():
    with pytest.raises(KeyError, match="city"):
        encode_arrow(pa.Table.from_pandas(ROWS.drop(columns=["city"])), SPEC)
    with pytest.raises(KeyError, match="city"):
        encode_pandas(ROWS.drop(columns=["city"]), SPEC)
