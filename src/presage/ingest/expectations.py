"""Great Expectations suites kept as files (``expectations/<source>.json``), applied row by row.

The suites are GX's own JSON format, so GX validates each batch with them (results kept in the
quality table) and the same file decides which rows go to quarantine: each expectation is compiled
to a Spark predicate that is true when a row violates it. Only column-map expectations can quarantine
rows; the compiler refuses any other type rather than ignore it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructType

PARAMETER = "$PARAMETER"


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict[str, Any]

    @property
    def column(self) -> str:
        return self.kwargs["column"]

    @property
    def check(self) -> str:
        """The reason written to quarantine: expectation type and column."""
        return f"{self.type}({self.column})"


@cache
def load_suite(source: str) -> dict[str, Any]:
    """The suite of a source as GX's JSON dict.

    Raises:
        FileNotFoundError: the source has no suite file.
    """
    file = resources.files("presage") / "expectations" / f"{source}.json"
    if not file.is_file():
        raise FileNotFoundError(f"no expectation suite for {source!r} (expected {file})")
    return json.loads(file.read_text())


def value_set(source: str, column: str) -> list[str]:
    """The values a column may hold, as its suite's ``expect_column_values_to_be_in_set`` says.

    Later layers derive per-value features (one per channel, per event type) from this list, so the
    suite stays the one place that names them.

    Raises:
        KeyError: the suite has no value set for the column.
    """
    for item in load_suite(source)["expectations"]:
        kwargs = item.get("kwargs", {})
        if item["type"] == "expect_column_values_to_be_in_set" and kwargs.get("column") == column:
            return list(kwargs["value_set"])
    raise KeyError(f"expectations/{source}.json has no value set for column {column!r}")


def expectations(source: str, schema: StructType) -> list[Expectation]:
    """The suite's expectations, checked against the source's schema.

    Raises:
        ValueError: an expectation on an unknown column or of a type that cannot run per row.
    """
    names = set(schema.fieldNames())
    out = []
    for item in load_suite(source)["expectations"]:
        exp = Expectation(item["type"], dict(item.get("kwargs", {})))
        if exp.type not in _COMPILERS:
            raise ValueError(f"expectations/{source}.json: {exp.type} cannot be applied per row; use one of {sorted(_COMPILERS)}")
        if exp.column not in names:
            raise ValueError(f"expectations/{source}.json: {exp.type} names unknown column {exp.column!r}")
        out.append(exp)
    return out


def resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """Replace a ``{"$PARAMETER": name}`` reference by its value.

    Raises:
        KeyError: a parameter the caller did not supply.
    """
    if isinstance(value, dict) and PARAMETER in value:
        name = value[PARAMETER]
        if name not in parameters:
            raise KeyError(f"expectation parameter {name!r} is not set; known: {sorted(parameters)}")
        return parameters[name]
    return value


def _literal(value: Any, dtype: DataType) -> Column:
    return F.lit(value).cast(dtype)


def _not_null(col: Column, exp: Expectation, dtype: DataType, params: dict[str, Any]) -> Column:
    return col.isNull()


def _between(col: Column, exp: Expectation, dtype: DataType, params: dict[str, Any]) -> Column:
    low = resolve(exp.kwargs.get("min_value"), params)
    high = resolve(exp.kwargs.get("max_value"), params)
    bad = F.lit(False)
    if low is not None:
        bound = _literal(low, dtype)
        bad = bad | (col <= bound if exp.kwargs.get("strict_min") else col < bound)
    if high is not None:
        bound = _literal(high, dtype)
        bad = bad | (col >= bound if exp.kwargs.get("strict_max") else col > bound)
    return col.isNotNull() & bad


def _in_set(col: Column, exp: Expectation, dtype: DataType, params: dict[str, Any]) -> Column:
    values = resolve(exp.kwargs["value_set"], params)
    return col.isNotNull() & ~col.isin(*[_literal(v, dtype) for v in values])


def _match_regex(col: Column, exp: Expectation, dtype: DataType, params: dict[str, Any]) -> Column:
    return col.isNotNull() & ~col.cast("string").rlike(resolve(exp.kwargs["regex"], params))


_COMPILERS = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_match_regex": _match_regex,
}


def violation(exp: Expectation, schema: StructType, parameters: dict[str, Any]) -> Column:
    """A predicate true for rows that violate ``exp`` (nulls only violate ``not_be_null``, as in GX)."""
    dtype = schema[exp.column].dataType
    return _COMPILERS[exp.type](F.col(exp.column), exp, dtype, parameters)
