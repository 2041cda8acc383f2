"""Labels by horizon on hand-made silver and gold rows: events exactly at the window's edges."""

from __future__ import annotations

import datetime as dt

import pytest

from presage.features.catalog import ENTITY, TIMESTAMP
from presage.lakehouse import Lakehouse
from presage.models.goals import BUILT_IN
from presage.models.labels import LABEL, VALUE, Window, built_in_labels, custom_labels

T = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # the snapshot instant
H = 30
END = T + dt.timedelta(days=H)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Lakehouse:
    """Each person has one order (or contact pattern) at a chosen instant around [T, T+H)."""
    lake = Lakehouse(str(tmp_path_factory.mktemp("labels_lake")))
    order_at = {"before": T - SECOND, "at_start": T, "last_second": END - SECOND, "at_end": END,
                "cancelled": T + dt.timedelta(days=1), "none": None}
    persons = list(order_at)
    gold = [(p, T, 10.0 if p != "none" else None) for p in persons]
    spark.createDataFrame(gold, f"{ENTITY} string, {TIMESTAMP} timestamp, days_since_last_order double") \
        .write.format("delta").save(lake.gold("customer_features"))
    orders = [(f"o_{p}", p, ts, "cancelled" if p == "cancelled" else "completed", 100.0)
              for p, ts in order_at.items() if ts is not None]
    orders.append(("o_returned", "at_start", T + dt.timedelta(days=2), "returned", 40.0))
    spark.createDataFrame(orders, "order_id string, person_id string, order_ts timestamp, status string, total_amount double") \
        .write.format("delta").save(lake.silver("orders"))
    contacts = [
        ("c1", "at_start", T + dt.timedelta(days=1), "send", "email", None),
        ("c2", "at_start", T + dt.timedelta(days=2), "conversion", "email", 55.0),  # after the contact: 1
        ("c3", "before", T + dt.timedelta(days=1), "conversion", "sms", 20.0),  # before the contact: 0
        ("c4", "before", T + dt.timedelta(days=3), "send", "sms", None),
        ("c5", "last_second", T + dt.timedelta(days=1), "send", "push", None),
        ("c6", "last_second", END, "conversion", "push", 30.0),  # after the window: 0
        ("c7", "at_end", END, "send", "email", None),  # contacted after the window: no row
    ]
    spark.createDataFrame(contacts, "event_id string, person_id string, event_ts timestamp, event_type string, "
                          "channel string, revenue double").write.format("delta").save(lake.silver("campaign_events"))
    return lake


def _by_person(frame) -> dict:
    return {r[ENTITY]: r.asDict() for r in frame.collect()}


def test_purchase_and_spend_see_only_the_window(spark, lake):
    window = Window(H, END + dt.timedelta(days=1))
    purchase = _by_person(built_in_labels(spark, lake, BUILT_IN["purchase_propensity"], window, 365))
    assert {p: r[LABEL] for p, r in purchase.items()} == {
        "before": 0, "at_start": 1, "last_second": 1, "at_end": 0, "cancelled": 0, "none": 0}
    spend = _by_person(built_in_labels(spark, lake, BUILT_IN["expected_spend"], window, 365))
    # completed revenue only (the returned order counts as a purchase, not as revenue)
    assert spend["at_start"][LABEL] == 100.0 and spend["last_second"][LABEL] == 100.0
    assert spend["before"][LABEL] == 0.0 and spend["at_end"][LABEL] == 0.0


def test_nothing_from_the_as_of_instant_on_is_read(spark, lake):
    window = Window(H, END - SECOND)  # as of the last second: the window of T is not complete
    assert built_in_labels(spark, lake, BUILT_IN["purchase_propensity"], window, 365).count() == 0
    window = Window(H, END)  # as of END exactly: the window is complete, the order at END is not read
    purchase = _by_person(built_in_labels(spark, lake, BUILT_IN["purchase_propensity"], window, 365))
    assert purchase["last_second"][LABEL] == 1 and purchase["at_end"][LABEL] == 0


def test_churn_only_for_active_customers(spark, lake):
    churn = _by_person(built_in_labels(spark, lake, BUILT_IN["churn_risk"], Window(H, END + SECOND), 365))
    assert "none" not in churn  # never ordered: not an active customer
    assert churn["before"][LABEL] == 1 and churn["at_start"][LABEL] == 0


def test_channel_response_needs_a_conversion_after_a_contact_in_the_window(spark, lake):
    rows = built_in_labels(spark, lake, BUILT_IN["channel_response"], Window(H, END + SECOND), 365).collect()
    got = {(r[ENTITY], r["channel"]): (r[LABEL], r[VALUE]) for r in rows}
    assert got == {("at_start", "email"): (1, 55.0), ("before", "sms"): (0, 20.0), ("last_second", "push"): (0, 0.0)}


def test_custom_labels_are_checked(spark):
    good = spark.createDataFrame([("a", "2026-01-01", "true"), ("b", "2026-01-02", "0")], f"{ENTITY} string, {TIMESTAMP} string, label string")
    assert sorted(r[LABEL] for r in custom_labels(good, None).collect()) == [0, 1]
    bad = spark.createDataFrame([("a", "2026-01-01", "yes"), ("b", "2026-01-02", "0")], f"{ENTITY} string, {TIMESTAMP} string, label string")
    with pytest.raises(ValueError, match="0/1 label"):
        custom_labels(bad, None)
    one_class = spark.createDataFrame([("a", "2026-01-01", 1)], f"{ENTITY} string, {TIMESTAMP} string, label int")
    with pytest.raises(ValueError, match="both classes"):
        custom_labels(one_class, None)
    with pytest.raises(ValueError, match="missing"):
        custom_labels(good.drop("label"), None)
