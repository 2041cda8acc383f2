"""Budget allocation: the greedy equals scipy's LP optimum, bounds hold, bad requests fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from presage.config import BudgetSettings, ChannelSettings
from presage.scoring.budget import (
    CANDIDATE_COLUMNS,
    CELL,
    CURVE_COLUMNS,
    allocate,
    response_curves,
    solve,
)

TOL = 1e-6


def pandas_curves(
    frame: pd.DataFrame, channels: dict[str, ChannelSettings], points: int
) -> pd.DataFrame:
    """The reference the Spark curves are held to: rank groups of p * value, best first."""
    f = frame.assign(expected=frame["p_response"] * frame["value"]).sort_values(
        ["segment", "channel", "expected", "customer_id"], ascending=[True, True, False, True]
    )
    rank = f.groupby(CELL).cumcount()
    size = f.groupby(CELL)["customer_id"].transform("size")
    f = f.assign(piece=(rank * points // size).astype("int32"))
    curves = f.groupby([*CELL, "piece"], as_index=False).agg(
        contacts=("customer_id", "size"),
        conversions=("p_response", "sum"),
        revenue=("expected", "sum"),
    )
    curves["cost"] = curves["contacts"] * curves["channel"].map(
        lambda c: channels[c].cost_per_contact
    )
    curves["roas"] = curves["revenue"] / curves["cost"]
    return curves[list(CURVE_COLUMNS)]


def lp_optimum(channel, cost, gain, channels, total, target=None) -> float:
    """Best sum(gain * x) - target * sum(cost * x), x in [0, 1], under budget and channel bounds."""
    channel, cost, gain = np.asarray(channel), np.asarray(cost, float), np.asarray(gain, float)
    a_ub, b_ub = [], []
    spendable = 0.0
    for name, ch in channels.items():
        row = np.where(channel == name, cost, 0.0)
        a_ub.append(-row)
        b_ub.append(-ch.min_budget)
        if ch.max_budget is not None:
            a_ub.append(row)
            b_ub.append(ch.max_budget)
        spendable += min(row.sum(), np.inf if ch.max_budget is None else ch.max_budget)
    exact = target is None and spendable >= total
    if exact:
        a_eq, b_eq = [cost], [total]
    else:
        a_eq = b_eq = None
        a_ub.append(cost)
        b_ub.append(total)
    result = linprog(
        -(gain - (target or 0.0) * cost),
        A_ub=np.array(a_ub),
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=(0, 1),
        method="highs",
    )
    assert result.status == 0, result.message
    return -result.fun


def random_case(
    seed: int, budget_share: float
) -> tuple[pd.DataFrame, dict[str, ChannelSettings], float]:
    """2-4 segments, 2-3 channels, ~75% of (person, channel) pairs consented, random bounds."""
    rng = np.random.default_rng(seed)
    segments = int(rng.integers(2, 5))
    names = ["email", "sms", "push"][: int(rng.integers(2, 4))]
    costs = dict(zip(names, rng.uniform(0.5, 3.0, len(names))))
    rows = []
    for i in range(int(rng.integers(20, 45))):
        segment = f"s{rng.integers(segments)}"
        for name in names:
            if rng.random() < 0.75:
                rows.append(
                    (
                        f"c{i:03d}",
                        segment,
                        name,
                        float(rng.beta(1, 6)),
                        float(rng.lognormal(3, 0.8)),
                    )
                )
    frame = pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))
    channels = {}
    for name in names:
        audience = costs[name] * int((frame["channel"] == name).sum())
        low = float(rng.choice([0.0, 0.2, 0.4])) * audience
        high = [None, 0.7 * audience][int(rng.integers(2))]
        channels[name] = ChannelSettings(
            cost_per_contact=costs[name], min_budget=low, max_budget=high
        )
    audience_cost = sum(costs[c] for c in frame["channel"])
    total = max(budget_share * audience_cost, 1.1 * sum(ch.min_budget for ch in channels.values()))
    return frame, channels, total


def check_bounds(cells: pd.DataFrame, channels: dict[str, ChannelSettings], total: float) -> None:
    spent = cells.groupby("channel")["budget"].sum()
    for name, ch in channels.items():
        assert spent.get(name, 0.0) >= ch.min_budget - TOL
        if ch.max_budget is not None:
            assert spent.get(name, 0.0) <= ch.max_budget + TOL
    assert cells["budget"].sum() <= total + TOL
    assert (cells["budget"] >= -TOL).all() and (cells["audience"] <= cells["eligible"] + TOL).all()


CASES = [
    (seed, target, share)
    for seed, (target, share) in enumerate(
        [
            (None, 0.5),
            (None, 0.3),
            ("median", 0.6),
            (None, 0.8),
            ("median", 0.4),
            (None, 1.5),
            ("median", 1.5),
            (None, 0.65),
        ]
    )
]


@pytest.mark.parametrize("seed,target,share", CASES)
def test_solve_equals_the_lp_over_individual_contacts(seed, target, share):
    frame, channels, total = random_case(seed, share)
    per_contact = frame["channel"].map(lambda c: channels[c].cost_per_contact)
    target_roas = (
        float((frame["p_response"] * frame["value"] / per_contact).median()) if target else None
    )
    budget = BudgetSettings(total=total, target_roas=target_roas, curve_points=1000)
    cells = solve(pandas_curves(frame, channels, 1000), channels, budget)

    optimum = lp_optimum(
        frame["channel"],
        per_contact,
        frame["p_response"] * frame["value"],
        channels,
        total,
        target_roas,
    )
    achieved = cells["expected_revenue"].sum() - (target_roas or 0.0) * cells["budget"].sum()
    assert achieved == pytest.approx(optimum, rel=TOL)
    check_bounds(cells, channels, total)
    spendable = sum(
        min(
            per_contact[frame["channel"] == n].sum(),
            np.inf if ch.max_budget is None else ch.max_budget,
        )
        for n, ch in channels.items()
    )
    if target_roas is None:  # the whole budget, or all the audience allows
        assert cells["budget"].sum() == pytest.approx(min(total, spendable), rel=1e-9)
    assert len(cells) == frame.groupby(CELL).ngroups
    assert cells["eligible"].sum() == len(frame)


def test_coarse_curves_are_the_lp_over_their_pieces_and_never_overestimate():
    frame, channels, total = random_case(3, 0.5)
    budget = BudgetSettings(total=total, curve_points=3)
    curves = pandas_curves(frame, channels, 3)
    assert curves.groupby(CELL)["piece"].nunique().max() == 3
    cells = solve(curves, channels, budget)
    over_pieces = lp_optimum(curves["channel"], curves["cost"], curves["revenue"], channels, total)
    per_contact = frame["channel"].map(lambda c: channels[c].cost_per_contact)
    exact = lp_optimum(
        frame["channel"], per_contact, frame["p_response"] * frame["value"], channels, total
    )
    assert cells["expected_revenue"].sum() == pytest.approx(over_pieces, rel=TOL)
    assert over_pieces <= exact + TOL
    assert cells["budget"].sum() == pytest.approx(total, rel=1e-9)


def hand_curves(rows: list[tuple], cost: float = 1.0) -> pd.DataFrame:
    """Pieces (segment, channel, piece, contacts, revenue) of channel costs `cost` per contact."""
    curves = pd.DataFrame(rows, columns=["segment", "channel", "piece", "contacts", "revenue"])
    curves["conversions"] = curves["revenue"] / 100
    curves["cost"] = curves["contacts"] * cost
    curves["roas"] = curves["revenue"] / curves["cost"]
    return curves[list(CURVE_COLUMNS)]


# one channel, two segments; slopes a: 5, 3, 1 and b: 4, 0.5 (10 contacts each, cost 1)
PIECES = hand_curves(
    [
        ("a", "email", 0, 10, 50.0),
        ("a", "email", 1, 10, 30.0),
        ("a", "email", 2, 10, 10.0),
        ("b", "email", 0, 10, 40.0),
        ("b", "email", 1, 10, 5.0),
    ]
)


def test_greedy_by_marginal_roas_on_hand_made_pieces():
    cells = solve(
        PIECES, {"email": ChannelSettings(cost_per_contact=1.0)}, BudgetSettings(total=25.0)
    )
    a, b = (cells.set_index("segment").loc[s] for s in "ab")
    # slopes 5 (10), 4 (10), then 3 for the last 5: a gets 15, b gets 10
    assert (a["budget"], b["budget"]) == (15.0, 10.0)
    assert (a["audience"], a["expected_revenue"], a["expected_conversions"]) == pytest.approx(
        (15.0, 65.0, 0.65)
    )
    assert (a["marginal_roas"], b["marginal_roas"]) == (
        3.0,
        0.5,
    )  # a: inside its piece 1; b: next piece
    assert a["expected_roas"] == pytest.approx(65 / 15) and b["eligible"] == 20


def test_target_roas_stops_below_the_target_but_keeps_minimums():
    email = {"email": ChannelSettings(cost_per_contact=1.0)}
    cells = solve(PIECES, email, BudgetSettings(total=45.0, target_roas=2.0)).set_index("segment")
    assert cells["budget"].to_dict() == {"a": 20.0, "b": 10.0}  # slopes 5, 4, 3; not 1 nor 0.5
    assert cells["marginal_roas"].to_dict() == {"a": 1.0, "b": 0.5}
    floor = {"email": ChannelSettings(cost_per_contact=1.0, min_budget=35.0)}
    cells = solve(PIECES, floor, BudgetSettings(total=45.0, target_roas=2.0)).set_index("segment")
    assert cells["budget"].sum() == pytest.approx(35.0)  # the minimum reaches into slope 1
    assert cells["budget"].to_dict() == {"a": 25.0, "b": 10.0}


def test_channel_maximum_and_zero_cells():
    channels = {
        "email": ChannelSettings(cost_per_contact=1.0, max_budget=12.0),
        "sms": ChannelSettings(cost_per_contact=2.0),
    }
    sms = hand_curves([("a", "sms", 0, 10, 20.0)], cost=2.0)  # slope 1
    cells = solve(pd.concat([PIECES, sms]), channels, BudgetSettings(total=30.0)).set_index(CELL)
    assert cells["budget"].to_dict() == {
        ("a", "email"): 10.0,
        ("b", "email"): 2.0,
        ("a", "sms"): 18.0,
    }
    assert cells.loc[("a", "sms"), "audience"] == 9.0
    cells = solve(pd.concat([PIECES, sms]), channels, BudgetSettings(total=50.0)).set_index(CELL)
    assert cells.loc[("a", "sms"), "marginal_roas"] == 0.0  # its whole audience is bought
    assert cells["budget"].sum() == 32.0  # audience within maximums: 12 + 20, the rest unspent
    cells = solve(
        PIECES,
        {"email": ChannelSettings(cost_per_contact=1.0, max_budget=0.0)},
        BudgetSettings(total=5.0),
    ).set_index("segment")
    assert cells["budget"].tolist() == [0.0, 0.0] and cells["expected_roas"].isna().all()


@pytest.mark.parametrize(
    "channels,total,message",
    [
        (
            {
                "email": ChannelSettings(cost_per_contact=1.0, min_budget=30.0),
                "sms": ChannelSettings(cost_per_contact=1.0, min_budget=0.0),
            },
            20.0,
            "minimums add up to 30, above the total",
        ),
        (
            {"email": ChannelSettings(cost_per_contact=1.0, min_budget=60.0)},
            100.0,
            "'email': min_budget 60 is above the cost",
        ),
        (
            {
                "email": ChannelSettings(cost_per_contact=1.0),
                "sms": ChannelSettings(cost_per_contact=1.0, min_budget=5.0),
            },
            100.0,
            "'sms' has min_budget 5 but no candidates",
        ),
        (
            {"email": ChannelSettings(cost_per_contact=1.0, min_budget=5.0, max_budget=4.0)},
            100.0,
            "max_budget 4.0 is below min_budget 5.0",
        ),
        (
            {"sms": ChannelSettings(cost_per_contact=1.0)},
            100.0,
            "missing from the channels configuration: ['email']",
        ),
    ],
)
def test_impossible_requests_fail_with_the_reason(channels, total, message):
    with pytest.raises(ValueError) as error:
        solve(PIECES, channels, BudgetSettings(total=total))
    assert message in str(error.value)


def test_spark_curves_equal_the_pandas_reference(spark):
    channels = {
        "email": ChannelSettings(cost_per_contact=0.5),
        "sms": ChannelSettings(cost_per_contact=2.0),
    }
    # expected revenue 8, 6, 6, 3, 1 (p6 has no score) -> 2 points: ranks 0-2 and 3-4
    hand = pd.DataFrame(
        [
            ("p1", "x", "email", 0.1, 30.0),
            ("p2", "x", "email", 0.2, 40.0),
            ("p3", "x", "email", 0.3, 20.0),
            ("p4", "x", "email", 0.5, 2.0),
            ("p5", "x", "email", 0.05, 120.0),
            ("p6", "x", "email", None, 10.0),
        ],
        columns=list(CANDIDATE_COLUMNS),
    )
    got = response_curves(spark.createDataFrame(hand), channels, 2).toPandas()
    assert got[["piece", "contacts"]].values.tolist() == [[0, 3], [1, 2]]
    assert got["revenue"].tolist() == pytest.approx([20.0, 4.0])  # p2 8, p3 6, p5 6 | p1 3, p4 1
    assert got["conversions"].tolist() == pytest.approx([0.55, 0.6])
    assert got["cost"].tolist() == [1.5, 1.0] and got["roas"].tolist() == pytest.approx(
        [20 / 1.5, 4.0]
    )

    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "segment": rng.choice(["s0", "s1", "s2"], n),
            "channel": rng.choice(["email", "sms"], n),
            "p_response": rng.beta(1, 5, n).round(3),
            "value": rng.choice([10.0, 20.0, 50.0], n),
        }
    )
    for points in (7, 1000):
        got = response_curves(spark.createDataFrame(frame), channels, points).toPandas()
        want = pandas_curves(frame, channels, points)
        got = got.sort_values([*CELL, "piece"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
        assert (
            got.groupby(CELL)["roas"].diff().dropna() <= 1e-12
        ).all()  # concave: diminishing returns


def test_allocate_in_spark_matches_the_lp(spark):
    frame, channels, total = random_case(11, 0.5)
    budget = BudgetSettings(total=total, curve_points=1000)
    result = allocate(spark.createDataFrame(frame), channels, budget)
    assert result.columns == [
        "segment",
        "channel",
        "eligible",
        "audience",
        "budget",
        "expected_conversions",
        "expected_revenue",
        "expected_roas",
        "marginal_roas",
    ]
    cells = result.toPandas()
    per_contact = frame["channel"].map(lambda c: channels[c].cost_per_contact)
    optimum = lp_optimum(
        frame["channel"], per_contact, frame["p_response"] * frame["value"], channels, total
    )
    assert cells["expected_revenue"].sum() == pytest.approx(optimum, rel=TOL)
    assert cells["budget"].sum() == pytest.approx(total, abs=TOL)
    check_bounds(cells, channels, total)
    assert cells["expected_roas"].isna().tolist() == (cells["budget"] == 0).tolist()


def test_allocate_gives_null_roas_to_cells_without_budget(spark):
    frame = spark.createDataFrame(
        [
            ("p1", "x", "email", 0.5, 10.0),
            ("p1", "x", "sms", 0.2, 10.0),
            ("p2", "x", "sms", 0.1, 10.0),
        ],
        list(CANDIDATE_COLUMNS),
    )
    channels = {
        "email": ChannelSettings(cost_per_contact=1.0, max_budget=0.0),
        "sms": ChannelSettings(cost_per_contact=1.0),
    }
    rows = {
        r["channel"]: r.asDict()
        for r in allocate(frame, channels, BudgetSettings(total=1.5)).collect()
    }
    assert rows["email"]["budget"] == 0.0 and rows["email"]["expected_roas"] is None
    assert rows["email"]["marginal_roas"] == 5.0
    assert (
        rows["sms"]["budget"],
        rows["sms"]["audience"],
        rows["sms"]["expected_revenue"],
    ) == pytest.approx((1.5, 1.5, 2.5))
    assert rows["sms"]["marginal_roas"] == pytest.approx(1.0)
