"""Buy-till-you-die features: a BG/NBD model (Fader, Hardie & Lee 2005) fitted per snapshot.

Fitting at scale: Spark reduces the customers of a snapshot to counts per distinct (x, t_x, T)
rounded to whole weeks, and the driver maximises the likelihood over those few thousand weighted
points; each snapshot's model sees only purchases before it. Predictions run back in Spark:
P(alive) in SQL, the conditional expected purchases (which need the Gauss hypergeometric function)
in a pandas UDF with scipy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType
from scipy import optimize, special

log = logging.getLogger(__name__)

MIN_REPEATERS = 20  # fewer customers with a repeat purchase than this: no model for the snapshot


@dataclass(frozen=True)
class BgNbd:
    """Parameters: floats for one model, or arrays (one model per row) when scoring in bulk."""

    r: float | np.ndarray
    alpha: float | np.ndarray
    a: float | np.ndarray
    b: float | np.ndarray


def log_likelihood(params: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (equation 6 of the paper)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weight: np.ndarray) -> BgNbd:
    """Maximum-likelihood parameters; a > 1 keeps the expected-purchases formula finite.

    The points are sorted first: the order of the likelihood's sum moves the optimum found in the
    fifth digit, and Spark hands the grouped points over in no fixed order, so unsorted the same
    data gave different features run to run.
    """
    order = np.lexsort((weight, T, t_x, x))
    x, t_x, T, weight = x[order], t_x[order], T[order], weight[order]

    def unpack(theta: np.ndarray) -> BgNbd:
        return BgNbd(float(np.exp(theta[0])), float(np.exp(theta[1])), 1.0 + float(np.exp(theta[2])), float(np.exp(theta[3])))

    def loss(theta: np.ndarray) -> float:
        return -float(np.sum(weight * log_likelihood(unpack(theta), x, t_x, T))) / float(np.sum(weight))

    start = np.log([0.5, max(float(np.average(T, weights=weight)), 1.0), 0.5, 1.0])
    result = optimize.minimize(loss, start, method="L-BFGS-B", bounds=[(-8, 8)] * 4)
    return unpack(result.x)


def expected_purchases(params: BgNbd, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (equation 10 of the paper)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return np.clip(head * tail / (1 + odds), 0.0, None)


def p_alive(r: Column, alpha: Column, a: Column, b: Column, x: Column, t_x: Column, T: Column) -> Column:
    """P(alive | x, t_x, T) as a Spark expression (equation 11 of the paper)."""
    odds = a / (b + x - 1) * F.pow((alpha + T) / (alpha + t_x), r + x)
    return F.when(x > 0, 1 / (1 + odds)).otherwise(F.lit(1.0))


def fit_per_snapshot(spark: SparkSession, buyers: DataFrame) -> DataFrame:
    """(snapshot_day, r, alpha, a, b) for each snapshot with enough repeat buyers.

    ``buyers``: (snapshot_day, x, t_x, T) in weeks, one row per customer with a purchase.
    """
    grouped = (
        buyers.groupBy("snapshot_day", "x", F.round("t_x").alias("t_x"), F.round("T").alias("T"))
        .agg(F.count("*").alias("n"))
        .toPandas()
    )
    rows = []
    for day, part in grouped.groupby("snapshot_day"):
        if part.loc[part["x"] > 0, "n"].sum() < MIN_REPEATERS:
            log.info("BG/NBD: snapshot day %s has too few repeat buyers; no model", day)
            continue
        params = fit(*(part[c].to_numpy(float) for c in ("x", "t_x", "T", "n")))
        rows.append((int(day), params.r, params.alpha, params.a, params.b))
    return spark.createDataFrame(rows, "snapshot_day int, r double, alpha double, a double, b double")


def predictions(buyers: DataFrame, params: DataFrame, horizon_weeks: float) -> DataFrame:
    """(person_id, snapshot_day, p_alive, expected_purchases_horizon) for buyers of fitted snapshots."""

    @F.pandas_udf(DoubleType())
    def expected(r: pd.Series, alpha: pd.Series, a: pd.Series, b: pd.Series, x: pd.Series, t_x: pd.Series, T: pd.Series) -> pd.Series:
        params = BgNbd(*(s.to_numpy(float) for s in (r, alpha, a, b)))  # numpy broadcasts per-row parameters
        return pd.Series(expected_purchases(params, horizon_weeks, *(s.to_numpy(float) for s in (x, t_x, T))))

    joined = buyers.join(F.broadcast(params), "snapshot_day")
    cols = [F.col(c) for c in ("r", "alpha", "a", "b", "x", "t_x", "T")]
    return joined.select(
        "person_id", "snapshot_day", p_alive(*cols).alias("p_alive"), expected(*cols).alias("expected_purchases_horizon")
    )
