"""Recommendations on a hand-made lakehouse: two product clusters, planted purchases and edge events.

Cluster 1 (A, B, C) is viewed together by 5 persons, cluster 2 (X, Y, R) by 10, so popularity points to
cluster 2 while co-occurrence points a cluster-1 person to cluster 1. R is a repeat-purchase item,
G is not in the catalog, F is only touched at or after ``as_of`` or before the lookback window.
"""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from presage.config import RecommendationSettings
from presage.lakehouse import Lakehouse
from presage.scoring.recommend import COLUMNS, dense_ids, recommend

UTC = dt.UTC
AS_OF = dt.datetime(2024, 6, 1, tzinfo=UTC)
VIEWED = dt.datetime(2024, 5, 20, 12, tzinfo=UTC)
SETTINGS = RecommendationSettings(
    top_n=3, lookback_days=60, half_life_days=30.0, rank=4, max_iterations=10, exclude_bought_days=30, seed=7
)
CLUSTER_1 = [f"c{i}" for i in range(1, 6)]
CLUSTER_2 = [f"d{i}" for i in range(1, 11)]
COLD = ["p_future", "p_new", "p_ancient"]
POPULATION = CLUSTER_1 + CLUSTER_2[:-1] + ["p_ab", "p_bought", "p_old", "p_cancel"] + COLD  # d10 is not asked for
# (order_id, person, placed at, status, product)
ORDERS = [
    ("o1", "p_bought", dt.datetime(2024, 5, 25, tzinfo=UTC), "completed", "X"),  # non-repeat, 7 days ago: excluded
    ("o2", "p_bought", dt.datetime(2024, 5, 28, tzinfo=UTC), "completed", "R"),  # repeat-purchase: allowed
    ("o3", "p_old", dt.datetime(2024, 4, 17, tzinfo=UTC), "completed", "A"),  # 45 days ago: allowed again
    ("o4", "p_cancel", dt.datetime(2024, 5, 25, tzinfo=UTC), "cancelled", "C"),  # cancelled: no purchase
]


def _views(person: str, products: str, ts: dt.datetime = VIEWED, kind: str = "product_view") -> list[tuple]:
    return [(person, p, ts, kind) for p in products]


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Lakehouse:
    lake = Lakehouse(str(tmp_path_factory.mktemp("recommend_lake")))
    products = [(p, f"product {p}", "home" if p in "ABCF" else "food", p == "R", dt.date(2024, 1, 1)) for p in "ABCXYRF"]
    spark.createDataFrame(products, "product_id string, name string, category string, is_repeat_purchase boolean, "
                          "launched_at date").write.format("delta").save(lake.silver("products"))
    events = [e for p in CLUSTER_1 for e in _views(p, "ABC")] + [e for p in CLUSTER_2 for e in _views(p, "XYR")]
    events += _views("p_ab", "AB") + _views("p_ab", "GGG", kind="add_to_cart")
    events += _views("p_bought", "XYR") + _views("p_old", "BC") + _views("p_cancel", "ABC")
    for person in CLUSTER_1 + CLUSTER_2 + ["p_future"]:  # F is everybody's favourite from as_of on
        events += _views(person, "F", AS_OF) + _views(person, "F", AS_OF + dt.timedelta(days=1), "add_to_cart")
    events += _views("p_ancient", "F" * 30, dt.datetime(2024, 3, 1, tzinfo=UTC), "add_to_cart")  # before lookback
    rows = [(f"e{i}", ts, kind, person, product) for i, (person, product, ts, kind) in enumerate(events)]
    spark.createDataFrame(rows, "event_id string, event_ts timestamp, event_type string, person_id string, "
                          "product_id string").write.format("delta").save(lake.silver("web_events"))
    spark.createDataFrame([o[:4] for o in ORDERS], "order_id string, person_id string, order_ts timestamp, status string") \
        .write.format("delta").save(lake.silver("orders"))
    spark.createDataFrame([(o[0], 1, o[4], o[1]) for o in ORDERS], "order_id string, line_number int, product_id string, "
                          "person_id string").write.format("delta").save(lake.silver("order_items"))
    return lake


@pytest.fixture(scope="module")
def result(spark, lake):
    persons = spark.createDataFrame([(p,) for p in POPULATION], "customer_id string")
    return recommend(spark, lake, AS_OF, SETTINGS, persons)


@pytest.fixture(scope="module")
def lists(result) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in result.orderBy("customer_id", "rank").collect():
        out.setdefault(row["customer_id"], []).append(row.asDict())
    return out


def _products(rows: list[dict]) -> list[str]:
    return [r["product_id"] for r in rows]


def test_every_person_asked_for_gets_top_n_ranked_rows(result, lists):
    assert tuple(result.columns) == COLUMNS
    assert dict(result.dtypes)["score"] == "double"
    assert sorted(lists) == sorted(POPULATION)
    for person, rows in lists.items():
        assert [r["rank"] for r in rows] == [1, 2, 3], person
        assert len(set(_products(rows))) == 3, person
        assert "G" not in _products(rows)  # not in the catalog


def test_co_occurrence_beats_popularity(lists):
    # p_ab viewed A and B only; C comes from the persons who viewed A, B and C, although X, Y, R are more popular
    assert set(_products(lists["p_ab"])) == {"A", "B", "C"}
    assert {r["source"] for r in lists["p_ab"]} == {"als"}
    assert set(_products(lists["c1"])) == {"A", "B", "C"}
    assert set(_products(lists["d1"])) == {"X", "Y", "R"}


def test_recent_purchases_excluded_unless_repeat_or_cancelled_or_old(lists):
    bought = _products(lists["p_bought"])
    assert "X" not in bought  # bought 7 days ago, not a repeat-purchase item
    assert {"R", "Y"} <= set(bought)  # R is bought again and again
    assert "A" in _products(lists["p_old"])  # bought 45 days ago, outside exclude_bought_days
    assert "C" in _products(lists["p_cancel"])  # the order was cancelled


def _weight(kind_weight: float, ts: dt.datetime) -> float:
    return kind_weight * 0.5 ** ((AS_OF - ts).total_seconds() / 86400 / SETTINGS.half_life_days)


def test_cold_start_persons_get_popular_products_of_the_period_only(lists):
    view = _weight(1.0, VIEWED)
    weights = {
        "A": 7 * view + _weight(5.0, ORDERS[2][2]), "B": 8 * view, "C": 7 * view,
        "X": 11 * view + _weight(5.0, ORDERS[0][2]), "Y": 11 * view, "R": 11 * view + _weight(5.0, ORDERS[1][2]),
    }
    total = sum(weights.values())
    for person in COLD:  # F (at/after as_of, or before the lookback) would top the list if it leaked
        rows = lists[person]
        assert _products(rows) == ["R", "X", "Y"], person
        assert {r["source"] for r in rows} == {"popular"}
        assert [r["score"] for r in rows] == pytest.approx([weights[p] / total for p in "RXY"], rel=1e-9)


def test_deterministic_for_a_fixed_seed(spark, lake, result):
    persons = spark.createDataFrame([(p,) for p in POPULATION], "customer_id string")
    assertDataFrameEqual(recommend(spark, lake, AS_OF, SETTINGS, persons), result, rtol=1e-6)


def test_dense_ids_are_consecutive_and_unique(spark):
    keys = spark.createDataFrame([(f"k{i % 37}",) for i in range(100)], "key string")
    ids = sorted(r["id"] for r in dense_ids(keys, "key", "id").collect())
    assert ids == list(range(37))


def test_persons_without_customer_id_rejected(spark, lake):
    with pytest.raises(ValueError, match="customer_id"):
        recommend(spark, lake, AS_OF, SETTINGS, spark.createDataFrame([("x",)], "person_id string"))


def test_unknown_interaction_kind_rejected():
    with pytest.raises(ValueError, match="unknown interaction kinds"):
        RecommendationSettings(weights={"click": 1.0})
