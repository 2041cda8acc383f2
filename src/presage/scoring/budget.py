"""Budget over (segment, channel): response curves in Spark, an exact greedy on the driver.

Method (see docs "Budget allocation"):

1. Response curves, in Spark. In each (segment, channel) cell the candidates are ranked by expected
   revenue per contact, ``p_response * value``, best first, and cut by rank into at most ``points``
   consecutive groups. Each group is a linear piece of the cell's curve: buying a share of it buys
   that share of its contacts, cost, expected conversions and revenue. Ranked groups make each
   piece's return on ad spend (ROAS = revenue / cost, the slope) no higher than the one before it:
   the curve is concave, returns diminish. A cell with at most ``points`` persons has one piece per
   person and its curve is exact; a larger cell values part of a group at the group's average, a
   chord under the exact curve (an underestimate, never an overestimate).

2. Allocation, on the driver (only cells x points rows). Every channel first buys its minimum from
   its best pieces across segments; the rest of the budget then goes to the remaining pieces in
   decreasing ROAS, never past a channel's maximum, and never to pieces below ``target_roas`` when
   one is set. The last piece is bought fractionally, so the total is spent exactly unless the
   audience (or the target) stops earlier.

Why the greedy is the optimum of the linear program. Let x_j in [0, c_j] be the money put on piece
j with slope r_j. The LP is: maximise sum r_j x_j subject to sum x_j = B (<= B when the audience or
the target stops earlier) and m_k <= sum_{j in channel k} x_j <= M_k. For any spend S_k of channel
k, filling its pieces by decreasing r_j is best (fractional knapsack), which gives a concave,
piecewise linear channel return R_k(S_k) whose slopes are the channel's sorted r_j; concavity of
each cell means the LP never needs to be told to fill a cell's pieces in order. What remains is
maximise sum R_k(S_k) with m_k <= S_k <= M_k and sum S_k = B: separable concave maximisation under
one resource constraint, whose optimum is reached by starting at the minimums and giving each next
unit of money to the highest marginal return (Gross 1956; Ibaraki & Katoh 1988). At the end, with
lambda the slope of the last piece bought, every channel above its minimum was filled only with
slopes >= lambda and every channel with room left has no unbought slope > lambda: the KKT
conditions of the concave program. With a target t the objective is sum (r_j - t) x_j with
sum x_j <= B, and the same greedy stops at the first slope below t.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from presage.config import BudgetSettings, ChannelSettings

log = logging.getLogger(__name__)

CANDIDATE_COLUMNS = ("customer_id", "segment", "channel", "p_response", "value")
CURVE_COLUMNS = (
    "segment",
    "channel",
    "piece",
    "contacts",
    "conversions",
    "revenue",
    "cost",
    "roas",
)
CELL = ["segment", "channel"]
ALLOCATION_SCHEMA = StructType(
    [
        StructField("segment", StringType(), False),
        StructField("channel", StringType(), False),
        StructField("eligible", LongType(), False),
        StructField("audience", DoubleType(), False),
        StructField("budget", DoubleType(), False),
        StructField("expected_conversions", DoubleType(), False),
        StructField("expected_revenue", DoubleType(), False),
        StructField("expected_roas", DoubleType(), True),
        StructField("marginal_roas", DoubleType(), False),
    ]
)
FULL = 1e-9  # a piece whose unbought cost is below this share of its cost counts as fully bought


def response_curves(
    candidates: DataFrame, channels: Mapping[str, ChannelSettings], points: int
) -> DataFrame:
    """Concave response curve of each (segment, channel) cell: one row per linear piece.

    Args:
        candidates: one row per possible contact: customer_id, segment, channel, p_response
            (P(conversion | contacted on that channel)) and value (revenue of a conversion). Rows
            without a segment, channel, p_response or value are not candidates.
        channels: cost per contact of each channel; a channel missing here gets a null cost
            (``solve`` rejects it).
        points: most pieces per cell (persons are grouped by rank).

    Returns:
        segment, channel, piece (increasing along the curve), contacts, conversions, revenue
        (expected), cost, roas (revenue / cost, non-increasing with ``piece`` within a cell).
    """
    missing = [name for name in CANDIDATE_COLUMNS if name not in candidates.columns]
    if missing:
        raise ValueError(
            f"candidates lack the columns {missing}; expected {list(CANDIDATE_COLUMNS)}"
        )
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    cost_map = F.create_map(
        *[
            part
            for name, channel in sorted(channels.items())
            for part in (F.lit(name), F.lit(float(channel.cost_per_contact)))
        ]
    )
    cell = Window.partitionBy(*CELL)
    ranked = cell.orderBy(F.col("expected").desc(), F.col("customer_id"))
    return (
        candidates.select(
            "customer_id",
            F.col("segment").cast("string").alias("segment"),
            F.col("channel").cast("string").alias("channel"),
            F.col("p_response").cast("double").alias("p_response"),
            F.col("value").cast("double").alias("value"),
        )
        .dropna(subset=["segment", "channel", "p_response", "value"])
        .withColumn("expected", F.col("p_response") * F.col("value"))
        .withColumn("rank", F.row_number().over(ranked))
        .withColumn("size", F.count(F.lit(1)).over(cell))
        # integer division: equal-sized rank groups, one per person when the cell is small
        .withColumn("piece", F.expr(f"CAST(((rank - 1) * {int(points)}) div size AS INT)"))
        .groupBy(*CELL, "piece")
        .agg(
            F.count(F.lit(1)).alias("contacts"),
            F.sum("p_response").alias("conversions"),
            F.sum("expected").alias("revenue"),
        )
        .withColumn("cost", F.col("contacts") * F.try_element_at(cost_map, F.col("channel")))
        .withColumn("roas", F.col("revenue") / F.col("cost"))
        .select(*CURVE_COLUMNS)
    )


def _ceiling(channel: ChannelSettings) -> float:
    return math.inf if channel.max_budget is None else channel.max_budget


def _check(
    curves: pd.DataFrame, channels: Mapping[str, ChannelSettings], budget: BudgetSettings
) -> None:
    """Reject requests no allocation can honour, naming the channel and the amounts."""
    missing = [name for name in CURVE_COLUMNS if name not in curves.columns]
    if missing:
        raise ValueError(f"curves lack the columns {missing}; expected {list(CURVE_COLUMNS)}")
    unknown = sorted(set(curves["channel"]) - set(channels))
    if unknown:
        raise ValueError(
            f"candidates on channels missing from the channels configuration: {unknown}; "
            f"configured: {sorted(channels)}"
        )
    for name, channel in sorted(channels.items()):
        if channel.min_budget > _ceiling(channel):
            raise ValueError(
                f"channel {name!r}: max_budget {channel.max_budget} is below "
                f"min_budget {channel.min_budget}"
            )
    minimums = sum(channel.min_budget for channel in channels.values())
    if minimums > budget.total:
        raise ValueError(
            f"infeasible budget: channel minimums add up to {minimums:g}, above the total budget "
            f"{budget.total:g}"
        )
    for name, channel in sorted(channels.items()):
        if channel.min_budget <= 0:
            continue
        pieces = curves[curves["channel"] == name]
        if pieces.empty:
            raise ValueError(
                f"channel {name!r} has min_budget {channel.min_budget:g} but no candidates"
            )
        reachable, contacts = float(pieces["cost"].sum()), int(pieces["contacts"].sum())
        if channel.min_budget > reachable:
            raise ValueError(
                f"channel {name!r}: min_budget {channel.min_budget:g} is above the cost of "
                f"its whole eligible audience ({contacts} contacts, {reachable:g})"
            )


def solve(
    curves: pd.DataFrame, channels: Mapping[str, ChannelSettings], budget: BudgetSettings
) -> pd.DataFrame:
    """Allocate the budget over the pieces of the curves by marginal ROAS (exact LP optimum).

    Args:
        curves: the pieces of ``response_curves`` as pandas (small: cells x points rows).
        channels: cost and budget bounds per channel.
        budget: total and optional target_roas.

    Returns:
        One row per (segment, channel) of the curves, also those given nothing: segment, channel,
        eligible (persons), audience (contacts bought; fractional in at most a few cells),
        budget, expected_conversions, expected_revenue, expected_roas (NaN at zero budget) and
        marginal_roas (ROAS of the next unit of money in the cell; 0 when its audience is spent).

    Raises:
        ValueError: unknown channels, max below min, minimums above the total, or a minimum
            above what the channel's eligible audience costs.
    """
    _check(curves, channels, budget)
    pieces = curves.sort_values(
        ["roas", "channel", "segment", "piece"],
        ascending=[False, True, True, True],
        kind="mergesort",
    ).reset_index(drop=True)
    cost = pieces["cost"].astype(float)
    channel = pieces["channel"]
    floor = channel.map(lambda name: float(channels[name].min_budget)).astype(float)
    ceiling = channel.map(lambda name: _ceiling(channels[name])).astype(float)
    # phase 1: each channel's minimum from its best pieces
    before = cost.groupby(channel).cumsum() - cost
    minimum = (floor - before).clip(lower=0.0, upper=cost)
    # phase 2: what is left of each piece, within the channel's maximum, then the total
    left = cost - minimum
    if budget.target_roas is not None:
        left = left.where(pieces["roas"] >= budget.target_roas, 0.0)
    before = left.groupby(channel).cumsum() - left
    room = (ceiling - floor - before).clip(lower=0.0, upper=left)
    rest = budget.total - sum(ch.min_budget for ch in channels.values())
    extra = (rest - (room.cumsum() - room)).clip(lower=0.0, upper=room)
    spend = minimum + extra
    share = spend / cost
    pieces = pieces.assign(
        spend=spend,
        audience=share * pieces["contacts"],
        bought_conversions=share * pieces["conversions"],
        bought_revenue=share * pieces["revenue"],
        open=(cost - spend) > FULL * cost,
    )
    _report(float(spend.sum()), budget)
    cells = pieces.groupby(CELL, as_index=False, sort=True).agg(
        eligible=("contacts", "sum"),
        audience=("audience", "sum"),
        budget=("spend", "sum"),
        expected_conversions=("bought_conversions", "sum"),
        expected_revenue=("bought_revenue", "sum"),
    )
    marginal = (
        pieces[pieces["open"]]
        .sort_values("piece")
        .groupby(CELL)["roas"]
        .first()
        .rename("marginal_roas")
    )
    cells = cells.merge(marginal, on=CELL, how="left").fillna({"marginal_roas": 0.0})
    positive = cells["budget"] > 0
    cells["expected_roas"] = (cells["expected_revenue"] / cells["budget"]).where(positive)
    cells["eligible"] = cells["eligible"].astype("int64")
    return cells[[field.name for field in ALLOCATION_SCHEMA.fields]]


def _report(spent: float, budget: BudgetSettings) -> None:
    unspent = budget.total - spent
    if unspent <= FULL * budget.total:
        log.info("allocated the whole budget %.2f", budget.total)
    elif budget.target_roas is not None:
        log.info(
            "target ROAS %g leaves %.2f of %.2f unspent", budget.target_roas, unspent, budget.total
        )
    else:
        log.warning(
            "the eligible audience within channel maximums costs only %.2f: %.2f of %.2f unspent",
            spent,
            unspent,
            budget.total,
        )


def allocate(
    candidates: DataFrame, channels: Mapping[str, ChannelSettings], budget: BudgetSettings
) -> DataFrame:
    """Budget per (segment, channel) maximising expected revenue; columns of ``ALLOCATION_SCHEMA``.

    Curves are built in Spark; only their pieces (cells x ``budget.curve_points`` rows) reach the
    driver, where ``solve`` allocates.

    Example::

        allocation = allocate(candidates, settings.channels, settings.scoring.budget)
    """
    curves = response_curves(candidates, channels, budget.curve_points).toPandas()
    cells = solve(curves, channels, budget)
    return candidates.sparkSession.createDataFrame(cells, schema=ALLOCATION_SCHEMA)
