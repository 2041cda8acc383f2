"""Gold feature snapshots: hand-made windows, BG/NBD against a known model, calendar, no leakage."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from presage.config import FeatureSettings, Settings
from presage.features import btyd
from presage.features.behaviour import behaviour
from presage.features.calendar import grid
from presage.features.catalog import ATTRIBUTES, BEHAVIOUR, ENTITY, PARTITION, TIMESTAMP, names
from presage.features.daily import person_days
from presage.features.sentiment import polarity
from presage.profiles.facts import FACT_SOURCES, bronze_type, data_columns

EPOCH = dt.date(1970, 1, 1)


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _facts(spark, source: str, rows: list[dict]) -> DataFrame:
    """A silver fact table of hand-made rows (unnamed columns null)."""
    fields = [StructField(c, bronze_type(source, c)) for c in data_columns(source)]
    fields += [StructField("_batch_id", StringType()), StructField("_ingested_at", TimestampType()), StructField("person_id", StringType())]
    schema = StructType(fields)
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)


def _order(oid: str, ts: str, status: str, amount: float) -> dict:
    return {"order_id": oid, "order_ts": _ts(ts), "status": status, "total_amount": amount, "person_id": "P1"}


def _campaign(eid: str, ts: str, kind: str, channel: str) -> dict:
    return {"event_id": eid, "event_ts": _ts(ts), "event_type": kind, "channel": channel, "person_id": "P1"}


def _web(eid: str, ts: str, kind: str) -> dict:
    return {"event_id": eid, "event_ts": _ts(ts), "event_type": kind, "session_id": f"S-{ts[:10]}", "person_id": "P1"}


@pytest.fixture(scope="module")
def hand_made(spark) -> dict[str, dict]:
    """Behaviour rows of person P1 at two snapshots, keyed by snapshot date."""
    facts = {source: _facts(spark, source, []) for source in FACT_SOURCES}
    facts["orders"] = _facts(spark, "orders", [
        _order("O1", "2026-01-01T10:00:00", "completed", 100.0),
        _order("O2", "2026-01-20T10:00:00", "completed", 50.0),
        _order("O3", "2026-01-25T10:00:00", "returned", 30.0),
        _order("O5", "2026-01-28T10:00:00", "cancelled", 500.0),
        _order("O4", "2026-02-01T00:00:00", "completed", 999.0),  # at the snapshot instant: not before it
    ])
    facts["order_items"] = _facts(spark, "order_items", [
        {"order_id": "O1", "line_number": 1, "quantity": 2, "unit_price": 50.0, "person_id": "P1"},
        {"order_id": "O2", "line_number": 1, "quantity": 1, "unit_price": 50.0, "person_id": "P1"},
    ])
    facts["web_events"] = _facts(spark, "web_events", [
        _web("W1", "2026-01-29T12:00:00", "add_to_cart"),
        _web("W2", "2026-01-30T12:00:00", "product_view"),
        _web("W3", "2026-02-01T08:00:00", "search"),
    ])
    facts["campaign_events"] = _facts(spark, "campaign_events", [
        _campaign("E1", "2026-01-10T09:00:00", "send", "email"),
        _campaign("E2", "2026-01-10T09:01:00", "deliver", "email"),
        _campaign("E3", "2026-01-10T19:00:00", "open", "email"),
        _campaign("E4", "2026-01-11T19:30:00", "click", "email"),
        _campaign("E5", "2026-01-15T09:00:00", "send", "email"),
        _campaign("E6", "2026-01-15T09:01:00", "deliver", "email"),
        _campaign("E7", "2026-01-12T09:00:00", "send", "sms"),
        _campaign("E8", "2026-01-12T19:00:00", "conversion", "sms"),
        _campaign("E9", "2026-01-13T09:00:00", "bounce", "push"),
        _campaign("E10", "2026-01-20T09:00:00", "unsubscribe", "email"),
        _campaign("E11", "2026-01-20T09:00:00", "send", "fax"),  # not a channel of the catalog: counted nowhere
    ])
    markers = spark.createDataFrame(
        [("P1", (dt.date(2026, 1, 15) - EPOCH).days, (dt.date(2025, 12, 1) - EPOCH).days),
         ("P1", (dt.date(2026, 2, 1) - EPOCH).days, (dt.date(2025, 12, 1) - EPOCH).days)],
        "person_id string, day int, first_seen_day int",
    )
    rows = behaviour(person_days(facts), markers).collect()
    return {str(EPOCH + dt.timedelta(days=r["snapshot_day"])): r.asDict() for r in rows}


def test_windows_count_only_what_happened_before_the_snapshot(hand_made: dict) -> None:
    f = hand_made["2026-02-01"]
    assert (f["orders_7d"], f["orders_30d"], f["orders_90d"], f["orders_total"]) == (1, 2, 3, 3)
    assert (f["revenue_7d"], f["revenue_30d"], f["revenue_total"]) == (0.0, 50.0, 150.0)
    assert (f["days_since_last_order"], f["days_since_first_order"]) == (7.0, 31.0)
    assert f["avg_order_value_365d"] == 75.0 and f["max_order_value_365d"] == 100.0
    assert f["std_order_value_365d"] == pytest.approx(25.0)
    assert f["avg_days_between_orders"] == pytest.approx(12.0)
    assert f["returns_365d"] == 1 and f["return_rate_365d"] == pytest.approx(1 / 3)
    assert f["units_365d"] == 3
    assert f["searches_7d"] == 0  # the search happened on the snapshot day itself
    assert (f["add_to_carts_7d"], f["product_views_7d"], f["web_sessions_7d"]) == (1, 1, 2)
    assert (f["days_since_last_cart"], f["days_since_last_visit"], f["open_cart"]) == (3.0, 2.0, 1)
    assert f["tenure_days"] == 62.0

    early = hand_made["2026-01-15"]
    assert (early["orders_total"], early["revenue_total"], early["days_since_last_order"]) == (1, 100.0, 14.0)
    assert early["open_cart"] == 0 and early["days_since_last_cart"] is None
    assert early["avg_days_between_orders"] is None and early["std_order_value_365d"] is None


def test_channel_engagement_and_send_time(hand_made: dict) -> None:
    f = hand_made["2026-02-01"]
    assert f["email_sends_90d"] == 2
    assert f["email_open_rate_90d"] == 0.5 and f["email_click_rate_90d"] == 0.5
    assert f["email_days_since_engagement"] == 21.0
    # No deliveries reported for SMS: rates are per send.
    assert f["sms_sends_90d"] == 1 and f["sms_open_rate_90d"] == 0.0 and f["sms_conversion_rate_365d"] == 1.0
    assert f["display_sends_90d"] == 0 and f["display_open_rate_90d"] is None
    assert (f["campaign_sends_30d"], f["bounces_365d"], f["unsubscribes_total"]) == (3, 1, 1)
    assert f["preferred_send_hour"] == 19.0 and f["send_time_confidence"] > 0.99
    early = hand_made["2026-01-15"]
    assert early["email_sends_90d"] == 1  # the second send is on the snapshot day
    assert (early["campaign_sends_30d"], early["bounces_365d"], early["unsubscribes_total"]) == (2, 1, 0)


def test_bgnbd_recovers_the_parameters_it_simulated() -> None:
    rng = np.random.default_rng(3)
    true = btyd.BgNbd(r=0.6, alpha=5.0, a=1.6, b=3.0)
    n, horizon = 20_000, 52.0
    lam = rng.gamma(true.r, 1 / true.alpha, n)
    p = rng.beta(true.a, true.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):  # purchases as a Poisson process; after each, the customer drops out with p
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > horizon:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    T = np.full(n, horizon)
    fitted = btyd.fit(x, t_x, T, np.ones(n))
    shuffled = rng.permutation(n)  # Spark's groupBy returns the points in any order: same fit
    assert btyd.fit(x[shuffled], t_x[shuffled], T[shuffled], np.ones(n)) == fitted
    assert fitted.r == pytest.approx(true.r, rel=0.15) and fitted.alpha == pytest.approx(true.alpha, rel=0.2)
    assert fitted.a == pytest.approx(true.a, rel=0.3) and fitted.b == pytest.approx(true.b, rel=0.3)
    # Expected purchases: a customer who bought often and recently beats one who stopped long ago.
    hot, cold = btyd.expected_purchases(fitted, 13.0, np.array([8.0, 8.0]), np.array([51.0, 10.0]), np.array([52.0, 52.0]))
    assert hot > 1.0 > cold >= 0.0


def test_sentiment_reads_tone_without_downloads() -> None:
    scores = polarity(pd.Series(["I love it, excellent quality", "terrible, broken and awful", None, ""]))
    assert scores[0] > 0.5 and scores[1] < -0.5 and pd.isna(scores[2]) and pd.isna(scores[3])


def test_weekly_grid_is_anchored_on_mondays() -> None:
    settings = FeatureSettings(frequency="weekly", lookback_days=60, min_history_days=7)
    dates = grid(dt.datetime(2026, 1, 1, 8), dt.datetime(2026, 3, 31, 23), settings)
    assert all(d.weekday() == 0 for d in dates)
    assert dates[-1] == dt.date(2026, 3, 30) and dates[0] >= dt.date(2026, 1, 31)
    daily = grid(dt.datetime(2026, 1, 1, 8), dt.datetime(2026, 1, 20, 23), FeatureSettings(frequency="daily", min_history_days=10))
    assert daily[0] == dt.date(2026, 1, 11) and daily[-1] == dt.date(2026, 1, 21) and len(daily) == 11


@pytest.mark.slow
def test_gold_tables_match_the_catalog_and_reruns_add_nothing(spark, settings: Settings, gold) -> None:
    from presage.features.job import ATTRIBUTES_TABLE, FEATURES_TABLE, build_features
    from presage.lakehouse import Lakehouse

    lake = Lakehouse.of(settings)
    features = spark.read.format("delta").load(lake.gold(FEATURES_TABLE))
    who = spark.read.format("delta").load(lake.gold(ATTRIBUTES_TABLE))
    assert features.columns == [ENTITY, TIMESTAMP, PARTITION, *names(BEHAVIOUR)]
    assert who.columns[: 3 + len(ATTRIBUTES)] == [ENTITY, TIMESTAMP, PARTITION, *names(ATTRIBUTES)]
    assert gold.attribute_columns and set(gold.attribute_columns) <= set(who.columns)
    assert features.count() == gold.feature_rows == features.select(ENTITY, TIMESTAMP).distinct().count()
    assert who.count() == features.count()
    assert features.where("p_alive IS NOT NULL").count() > 0

    assert build_features(spark, settings, lake).dates == []
    # Recomputing a date replaces its rows with the same values.
    last = max(gold.dates)
    before = features.where(F.col(PARTITION) == last).localCheckpoint()
    again = build_features(spark, settings, lake, as_of=last)
    after = spark.read.format("delta").load(lake.gold(FEATURES_TABLE)).where(F.col(PARTITION) == last)
    assert again.feature_rows == before.count()
    assert before.exceptAll(after).count() == 0 and after.exceptAll(before).count() == 0


@pytest.mark.slow
def test_no_feature_reads_data_from_after_its_snapshot(spark, settings: Settings, gold) -> None:
    """Removing everything at or after a snapshot changes none of its values (leakage would)."""
    from presage.features.job import Inputs, read_inputs, snapshots
    from presage.lakehouse import Lakehouse

    inputs = read_inputs(spark, Lakehouse.of(settings))
    at = gold.dates[len(gold.dates) // 2]
    cut = F.lit(dt.datetime.combine(at, dt.time()))
    times = {"orders": "order_ts", "web_events": "event_ts", "campaign_events": "event_ts", "social_events": "event_ts", "reviews": "review_ts"}
    past = {s: df.where(F.col(times[s]) < cut) for s, df in inputs.facts.items() if s in times}
    past["order_items"] = inputs.facts["order_items"].join(past["orders"].select("order_id"), "order_id", "left_semi")
    truncated = Inputs(past, inputs.products, inputs.profile, inputs.history, inputs.known_since)

    full, _, _ = snapshots(spark, settings, inputs, [at], {})
    cut_only, _, _ = snapshots(spark, settings, truncated, [at], {})
    assert full.count() > 0
    assert full.exceptAll(cut_only).count() == 0 and cut_only.exceptAll(full).count() == 0
