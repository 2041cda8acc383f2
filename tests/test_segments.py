"""Micro-segments find planted behaviour groups and describe them; RFM follows its rule table."""

from __future__ import annotations

import itertools

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import SegmentSettings
from presage.features.catalog import BEHAVIOUR, ENTITY
from presage.lakehouse import Lakehouse
from presage.scoring.segments import PROSPECT, RFM_ORDER, rfm_segment_name, segment, with_rfm

_TYPES = {"long": T.LongType(), "double": T.DoubleType(), "string": T.StringType()}
SCHEMA = T.StructType(
    [T.StructField(ENTITY, T.StringType())]
    + [T.StructField(f.name, _TYPES[f.dtype]) for f in BEHAVIOUR]
)


def snapshot(spark, rows: list[dict]):
    """A gold-shaped feature snapshot; columns a row does not name are null."""
    values = [tuple(r.get(f.name) for f in SCHEMA.fields) for r in rows]
    return spark.createDataFrame(values, SCHEMA)


def _buyer(i: int) -> dict:
    """Frequent, recent, big spenders who ignore email."""
    orders = 8 + i % 5
    return {ENTITY: f"a{i:02d}", "orders_total": orders + 2, "orders_365d": orders,
            "revenue_total": 900.0 + 7 * i, "revenue_365d": 800.0 + 7 * i,
            "days_since_last_order": 3.0 + i % 10, "avg_order_value_365d": 90.0 + i % 7,
            "email_open_rate_90d": 0.05 + (i % 3) / 100, "tenure_days": 400.0 + i}


def _browser(i: int) -> dict:
    """Heavy browsing, never ordered."""
    return {ENTITY: f"b{i:02d}", "orders_total": 0, "days_since_last_visit": 1.0 + i % 5,
            "web_sessions_30d": 15 + i % 5, "product_views_30d": 40 + i % 7,
            "searches_30d": 6 + i % 3, "email_open_rate_90d": 0.04 + (i % 4) / 100,
            "tenure_days": 60.0 + i}


def _reader(i: int) -> dict:
    """One old order, opens most emails."""
    return {ENTITY: f"c{i:02d}", "orders_total": 1, "revenue_total": 50.0 + i % 9,
            "days_since_last_order": 300.0 + i, "email_open_rate_90d": 0.7 + (i % 5) / 20,
            "campaign_sends_30d": 8 + i % 3, "tenure_days": 500.0 + i}


@pytest.fixture(scope="module")
def planted(spark):
    rows = [make(i) for make in (_buyer, _browser, _reader) for i in range(40)]
    return segment(snapshot(spark, rows), SegmentSettings(micro_segments=3, seed=3))


def _segment_of_group(planted) -> dict[str, str]:
    pairs = planted.members.select(F.substring(ENTITY, 1, 1).alias("group"), "micro_segment")
    return {r["group"]: str(r["micro_segment"]) for r in pairs.distinct().collect()}


def test_clusters_recover_the_planted_groups(planted):
    members = planted.members.withColumn("group", F.substring(ENTITY, 1, 1))
    counts = members.groupBy("group", "micro_segment").count().collect()
    assert sorted(r["count"] for r in counts) == [40, 40, 40]
    # one segment per group and one group per segment
    assert len({r["group"] for r in counts}) == len({r["micro_segment"] for r in counts}) == 3


def test_profiles_name_what_separates_the_groups(planted):
    micro = {r["segment"]: r for r in planted.profiles.where("kind = 'micro'").collect()}
    assert [r["size"] for r in micro.values()] == [40, 40, 40]
    assert sum(r["share"] for r in micro.values()) == pytest.approx(1.0)
    assert len({r["name"] for r in micro.values()}) == 3

    of = _segment_of_group(planted)
    readers, browsers, buyers = micro[of["c"]], micro[of["b"]], micro[of["a"]]
    assert "email-engaged" in readers["name"] and "of emails" in readers["profile"]
    email = next(f for f in readers["features"] if f["feature"] == "email_open_rate_90d")
    assert email["z"] > 1 and email["segment_mean"] == pytest.approx(0.8)
    assert email["overall_mean"] < 0.4
    assert "never bought" in browsers["name"]
    assert "has_ordered" in {f["feature"] for f in browsers["features"]}
    assert {"frequent buyers", "high spenders", "recent buyers"} & set(buyers["name"].split(", "))
    names = {r["micro_segment"]: r["micro_segment_name"] for r in planted.members.collect()}
    assert {str(k): v for k, v in names.items()} == {k: r["name"] for k, r in micro.items()}


def test_rfm_beside_the_micro_segments(planted):
    members = {r[ENTITY]: r for r in planted.members.collect()}
    browsers = [m for k, m in members.items() if k[0] == "b"]
    assert all(m["rfm_segment"] == PROSPECT and m["recency_score"] is None for m in browsers)
    assert all(1 <= m["recency_score"] <= 5 for k, m in members.items() if k[0] != "b")
    rfm = planted.profiles.where("kind = 'rfm'").collect()
    assert sum(r["size"] for r in rfm) == 120
    assert {r["segment"] for r in rfm} == {m["rfm_segment"] for m in members.values()}


def test_rfm_scores_are_quintiles_among_buyers(spark):
    rows = [{ENTITY: f"p{i}", "orders_total": i, "revenue_total": 10.0 * i,
             "days_since_last_order": float(i)} for i in range(1, 11)]
    rows.append({ENTITY: "nobody", "orders_total": 0})
    got = {r[ENTITY]: r for r in with_rfm(snapshot(spark, rows)).collect()}
    pairs = [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [got[f"p{i}"]["recency_score"] for i in range(1, 11)] == pairs
    assert [got[f"p{i}"]["frequency_score"] for i in range(1, 11)] == pairs[::-1]
    assert [got[f"p{i}"]["monetary_score"] for i in range(1, 11)] == pairs[::-1]
    assert got["p1"]["rfm_segment"] == "new customers"
    assert got["p10"]["rfm_segment"] == "cannot lose them"
    nobody = got["nobody"]
    assert nobody["rfm_segment"] == PROSPECT
    assert nobody["recency_score"] is None and nobody["frequency_score"] is None


def test_rfm_ties_share_a_score(spark):
    orders = [1, 1, 1, 1, 1, 1, 2, 3, 4, 5]  # 60 % tied at one order
    rows = [{ENTITY: f"t{i}", "orders_total": o, "revenue_total": 1.0,
             "days_since_last_order": 1.0} for i, o in enumerate(orders)]
    got = with_rfm(snapshot(spark, rows)).orderBy(ENTITY).collect()
    assert [r["frequency_score"] for r in got] == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


RULES = [  # (R, F, M) -> segment; FM = ceil((F + M) / 2)
    ((5, 5, 4), "champions"), ((4, 5, 5), "loyal"), ((3, 4, 4), "loyal"),
    ((5, 1, 1), "new customers"), ((4, 1, 1), "promising"), ((5, 2, 3), "potential loyalists"),
    ((4, 3, 2), "potential loyalists"), ((3, 3, 3), "need attention"),
    ((3, 1, 2), "about to sleep"), ((2, 3, 4), "at risk"), ((1, 4, 3), "at risk"),
    ((1, 5, 5), "cannot lose them"), ((2, 5, 4), "cannot lose them"), ((2, 2, 1), "hibernating"),
    ((1, 2, 1), "hibernating"), ((1, 1, 1), "lost"),
]


def test_rfm_rules_name_every_score_combination(spark):
    unscored = [(None, None, None), (3, None, 2)]
    combos = spark.createDataFrame(
        [*itertools.product(range(1, 6), repeat=3), *unscored], "r int, f int, m int"
    )
    name = rfm_segment_name(F.col("r"), F.col("f"), F.col("m")).alias("name")
    rows = combos.select("r", "f", "m", name).collect()
    named = {(r["r"], r["f"], r["m"]): r["name"] for r in rows}
    assert {scores: named[scores] for scores, _ in RULES} == dict(RULES)
    assert [named.pop(scores) for scores in unscored] == [None, None]
    # all 125 combinations are named, and every name is reachable
    assert set(named.values()) == set(RFM_ORDER) - {PROSPECT}


def test_fewer_persons_than_segments_and_bad_input(spark):
    two = segment(snapshot(spark, [_buyer(1), _browser(1)]), SegmentSettings(micro_segments=30))
    assert sorted(r["micro_segment"] for r in two.members.collect()) == [1, 2]
    one = segment(snapshot(spark, [_reader(1)]), SegmentSettings())
    micro = one.profiles.where("kind = 'micro'").collect()
    assert [(r["size"], r["share"]) for r in micro] == [(1, 1.0)]
    with pytest.raises(ValueError, match="duplicate"):
        segment(snapshot(spark, [_reader(1), _reader(1)]), SegmentSettings())
    with pytest.raises(ValueError, match="p_alive"):
        segment(snapshot(spark, [_reader(1)]).drop("p_alive"), SegmentSettings())


def test_gold_snapshot_gets_dozens_of_segments(spark, settings, gold):
    table = spark.read.format("delta").load(Lakehouse.of(settings).gold("customer_features"))
    latest = table.agg(F.max("snapshot_date")).first()[0]
    features = table.where(F.col("snapshot_date") == latest)
    result = segment(features, settings.scoring.segments)
    n = features.count()
    members = result.members.join(features.select(ENTITY, "orders_total"), ENTITY)
    assert members.count() == n == result.members.select(ENTITY).distinct().count()
    micro = result.profiles.where("kind = 'micro'").collect()
    assert 10 <= len(micro) <= 30 and sum(r["size"] for r in micro) == n
    assert len({r["name"] for r in micro}) == len(micro) and all(r["profile"] for r in micro)
    assert members.select("micro_segment").distinct().count() == len(micro)
    prospects = members.where(F.col("rfm_segment") == PROSPECT)
    no_orders = members.where(F.coalesce("orders_total", F.lit(0)) == 0)
    assert prospects.count() == no_orders.count() > 0
    assert prospects.where(F.col("orders_total") > 0).count() == 0
