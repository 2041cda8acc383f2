"""Population stability index (PSI) of columns between a reference and a current population.

Bins are cut on the reference: a numeric column at its quantiles (``approxQuantile``; equal cut
points merge, so a mass point such as "no orders" is one bin of its own), a text column by value
(its most frequent reference values, every other value in one bin), and a missing value (null or
NaN) always in a bin of its own. Each population is counted per (column, bin) in one Spark pass;
only those counts reach the driver. PSI = sum over bins of (a - e) x ln(a / e), where e and a are
the reference and current shares, floored at ``EPSILON`` so that an empty bin stays finite.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

EPSILON = 1e-4
MISSING = "missing"
OTHER = "other"
QUANTILE_ERROR = 1e-3  # approxQuantile's relative error: bins within 0.1 % of the exact quantiles


@dataclass(frozen=True)
class Bins:
    """How one column is binned. Bin 0 is missing; numeric bin i (1-based) holds
    (edges[i-2], edges[i-1]]; text bin i holds categories[i-1], the last bin every other value."""

    column: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] | None = None

    @property
    def labels(self) -> list[str]:
        if self.categories is not None:
            return [MISSING, *self.categories, OTHER]
        if not self.edges:
            return [MISSING, "any value"]
        cuts = [f"{e:.6g}" for e in self.edges]
        middle = [f"({low}, {high}]" for low, high in itertools.pairwise(cuts)]
        return [MISSING, f"<= {cuts[0]}", *middle, f"> {cuts[-1]}"]

    def index(self) -> Column:
        """The bin number of each row, as a Spark expression."""
        if self.categories is not None:
            value = F.col(self.column).cast("string")
            codes = F.create_map(*[item for i, v in enumerate(self.categories, 1) for item in (F.lit(v), F.lit(i))])
            known = F.coalesce(codes[value], F.lit(len(self.categories) + 1)) if self.categories else F.lit(1)
            return F.when(value.isNull(), F.lit(0)).otherwise(known)
        value = _number(self.column)
        above = sum((F.when(value > F.lit(edge), 1).otherwise(0) for edge in self.edges), F.lit(1))
        return F.when(value.isNull(), F.lit(0)).otherwise(above)


@dataclass(frozen=True)
class Drift:
    column: str
    psi: float
    bins: list[tuple[str, float, float]]  # (bin label, reference share, current share)
    reference_rows: int
    current_rows: int


def _number(column: str) -> Column:
    """A numeric column as double, NaN read as missing."""
    value = F.col(column).cast("double")
    return F.nanvl(value, F.lit(None).cast("double"))


def _is_text(frame: DataFrame, column: str) -> bool:
    return isinstance(frame.schema[column].dataType, (T.StringType, T.BooleanType))


def fit_bins(reference: DataFrame, columns: Sequence[str], bins: int, max_categories: int) -> list[Bins]:
    """Bins of every column, cut on ``reference``: quantiles for numbers, frequent values for text."""
    numeric = [c for c in columns if not _is_text(reference, c)]
    text = [c for c in columns if _is_text(reference, c)]
    result: dict[str, Bins] = {}
    if numeric:
        probabilities = [i / bins for i in range(1, bins)]
        cleaned = reference.select(*[_number(c).alias(c) for c in numeric])
        for column, cuts in zip(numeric, cleaned.approxQuantile(numeric, probabilities, QUANTILE_ERROR)):
            result[column] = Bins(column, tuple(sorted(set(cuts))))
    if text:
        pairs = reference.select(F.explode(F.array(*[
            F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in text
        ])).alias("p")).select("p.column", "p.value").where(F.col("value").isNotNull())
        ranked = pairs.groupBy("column", "value").count().withColumn(
            "rank", F.row_number().over(Window.partitionBy("column").orderBy(F.desc("count"), F.asc("value"))))
        kept: dict[str, list[tuple[int, str]]] = {c: [] for c in text}
        for row in ranked.where(F.col("rank") <= max_categories).collect():
            kept[row["column"]].append((row["rank"], row["value"]))
        for column in text:
            result[column] = Bins(column, categories=tuple(v for _, v in sorted(kept[column])))
    return [result[c] for c in columns]


def counts(frame: DataFrame, specs: Sequence[Bins]) -> tuple[int, dict[str, list[int]]]:
    """(rows, column -> rows per bin) of ``frame``, in one pass: each row emits one (column, bin)
    pair per column, which Spark sums per partition before the shuffle."""
    if not specs:
        return frame.count(), {}
    pairs = frame.select(F.explode(F.array(*[
        F.struct(F.lit(i).alias("c"), spec.index().alias("b")) for i, spec in enumerate(specs)
    ])).alias("p"))
    result = {spec.column: [0] * len(spec.labels) for spec in specs}
    for row in pairs.groupBy("p.c", "p.b").count().collect():
        result[specs[row["c"]].column][row["b"]] = row["count"]
    rows = sum(result[specs[0].column])
    return rows, result


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI of two histograms over the same bins (counts or shares; each is normalised).

    Raises:
        ValueError: different numbers of bins, or an empty histogram.
    """
    if len(expected) != len(actual):
        raise ValueError(f"histograms with {len(expected)} and {len(actual)} bins cannot be compared")
    total_e, total_a = float(sum(expected)), float(sum(actual))
    if total_e <= 0 or total_a <= 0:
        raise ValueError("PSI needs a non-empty reference and current population")
    value = 0.0
    for e, a in zip(expected, actual):
        e_share, a_share = max(e / total_e, epsilon), max(a / total_a, epsilon)
        value += (a_share - e_share) * math.log(a_share / e_share)
    return value


def compare(reference: DataFrame, current: DataFrame, columns: Sequence[str], bins: int,
            max_categories: int) -> list[Drift]:
    """PSI of each column of ``current`` against ``reference``, binned on the reference.

    Raises:
        ValueError: the reference or the current population is empty.
    """
    specs = fit_bins(reference, columns, bins, max_categories)
    reference_rows, expected = counts(reference, specs)
    current_rows, actual = counts(current, specs)
    if reference_rows == 0 or current_rows == 0:
        raise ValueError(f"cannot compare populations of {reference_rows} reference and {current_rows} current rows")
    result = []
    for spec in specs:
        e, a = expected[spec.column], actual[spec.column]
        shares = [(label, x / reference_rows, y / current_rows) for label, x, y in zip(spec.labels, e, a)]
        result.append(Drift(spec.column, psi(e, a), shares, reference_rows, current_rows))
    return result


def status(value: float, warn: float, alert: float) -> str:
    """'alert' from ``alert`` on, 'warn' from ``warn`` on, else 'ok' (the usual 0.1 / 0.25 for PSI)."""
    if value >= alert:
        return "alert"
    return "warn" if value >= warn else "ok"
