"""Anomalies on a hand-made lakehouse: one planted case per kind, near misses, and events outside the window."""

from __future__ import annotations

import datetime as dt

import pytest

from presage.config import AnomalySettings
from presage.lakehouse import Lakehouse
from presage.scoring.anomalies import COLUMNS, anomalies, order_amounts

UTC = dt.UTC
AS_OF = dt.datetime(2024, 6, 1, tzinfo=UTC)  # window: [2024-05-02, 2024-06-01)
SETTINGS = AnomalySettings(
    lookback_days=30, amount_robust_z=5.0, history_days=365, min_history_orders=5, velocity_orders_per_day=4,
    max_devices_per_day=4, max_persons_per_identifier=2, max_returned_orders=2,
)


def t(month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, tzinfo=UTC)


# (order_id, person, placed at, status, amount, device, email_hash)
ORDERS = [
    # p_amount: usual 80 (history 60..110, MAD 10), then 200 in the window; 5,000 at as_of is not read
    *[(f"h{i}", "p_amount", t(3, i + 1), "completed", a, "d-amount", "e-amount")
      for i, a in enumerate([60.0, 70.0, 80.0, 80.0, 90.0, 100.0, 110.0])],
    ("a1", "p_amount", t(5, 20), "completed", 200.0, "d-amount", "e-amount"),
    ("a2", "p_amount", t(5, 21), "completed", 95.0, "d-amount", "e-amount"),
    ("a3", "p_amount", AS_OF, "completed", 5000.0, "d-amount", "e-amount"),
    # p_newcomer: no history, compared with everyone's orders (median 80, MAD 0, unit 10% of 80)
    ("n1", "p_newcomer", t(5, 15), "completed", 5000.0, None, None),
    # p_velocity: 4 orders in 3.5 hours across midnight (two calendar days)
    ("v1", "p_velocity", t(5, 10, 22), "completed", 80.0, None, None),
    ("v2", "p_velocity", t(5, 10, 23), "completed", 80.0, None, None),
    ("v3", "p_velocity", t(5, 11, 0, 30), "completed", 80.0, None, None),
    ("v4", "p_velocity", t(5, 11, 1, 30), "completed", 80.0, None, None),
    # p_normal: 3 orders within 24 hours, one return, ordinary amounts: nothing to flag
    ("m1", "p_normal", t(5, 5), "completed", 80.0, "d-n1", None),
    ("m2", "p_normal", t(5, 20, 9), "completed", 90.0, "d-n1", None),
    ("m3", "p_normal", t(5, 20, 15), "completed", 70.0, "d-n2", None),
    ("m4", "p_normal", t(5, 21, 8), "completed", 85.0, "d-n1", None),
    ("m5", "p_normal", t(5, 25), "returned", 100.0, "d-n1", None),
    # p_returns: 3 returned and 1 cancelled of 5; p_oldreturns returned 3 before the window
    *[(f"r{i}", "p_returns", t(5, 3 + 5 * i), s, 80.0, None, None)
      for i, s in enumerate(["returned", "completed", "returned", "cancelled", "returned"])],
    *[(f"or{i}", "p_oldreturns", t(4, 10 + i), "returned", 80.0, None, None) for i in range(3)],
    # p_shared orders from a shared device three persons used in the window
    ("s1", "p_shared", t(5, 18), "completed", 80.0, "d-shared", None),
    # a blocked placeholder device (not in the identity map) used by three persons
    *[(f"u{i}", f"p_unknown{i}", t(5, 12), "completed", 80.0, "unknown", None) for i in range(3)],
    # a shared device used by others only before the window
    ("x1", "p_x", t(5, 12), "completed", 80.0, "d-old", None),
]
# (person, device, at)
WEB = [
    *[("p_devices", f"d-pd{i}", t(5, 15, 8 + i)) for i in range(5)], ("p_devices", "k-1", t(5, 15, 20)),
    *[("p_devices_old", f"d-po{i}", t(4, 10, 8 + i)) for i in range(6)],  # before the window
    *[("p_normal", f"d-n{i}", t(5, 15, 8 + i)) for i in range(1, 5)], ("p_normal", "k-1", t(5, 15, 20)),
    ("p_shared", "d-shared", t(5, 17)), ("q1", "d-shared", t(5, 19)), ("q2", "d-shared", t(5, 22)),
    ("q1", "k-1", t(5, 9)), ("q2", "k-1", t(5, 9)),
    ("r1", "d-old", t(4, 20)), ("r2", "d-old", t(4, 21)),
]
SHARED = ["device_id:d-shared", "device_id:k-1", "device_id:d-old"]


@pytest.fixture(scope="module")
def findings(spark, tmp_path_factory) -> dict[tuple[str, str], dict]:
    lake = Lakehouse(str(tmp_path_factory.mktemp("anomalies_lake")))
    orders = [(o, p, ts, s, "EUR", a, d, e) for o, p, ts, s, a, d, e in ORDERS]
    spark.createDataFrame(orders, "order_id string, person_id string, order_ts timestamp, status string, currency string, "
                          "total_amount double, device_id string, email_hash string").write.format("delta").save(lake.silver("orders"))
    web = [(f"w{i}", ts, "page_view", p, d) for i, (p, d, ts) in enumerate(WEB)]
    spark.createDataFrame(web, "event_id string, event_ts timestamp, event_type string, person_id string, device_id string") \
        .write.format("delta").save(lake.silver("web_events"))
    identity = [(i, "device_id", i.split(":", 1)[1], None, True) for i in SHARED]
    identity += [("device_id:d-amount", "device_id", "d-amount", "p_amount", False)]
    spark.createDataFrame(identity, "identifier string, kind string, value string, person_id string, is_shared boolean") \
        .write.format("delta").save(lake.silver("identity_map"))
    frame = anomalies(spark, lake, AS_OF, SETTINGS)
    assert tuple(frame.columns) == COLUMNS
    assert dict(frame.dtypes) == {
        "customer_id": "string", "kind": "string", "reason": "string", "severity": "double",
        "observed_at": "timestamp", "order_id": "string", "evidence": "map<string,double>",
    }
    rows = [r.asDict() for r in frame.collect()]
    keyed = {(r["customer_id"], r["kind"]): r for r in rows}
    assert len(keyed) == len(rows), "one finding per person and kind here"
    return keyed


def test_exactly_the_planted_cases_are_found(findings):
    assert {k: r["order_id"] for k, r in findings.items()} == {
        ("p_amount", "order_amount"): "a1",
        ("p_newcomer", "order_amount"): "n1",
        ("p_velocity", "order_velocity"): "v4",
        ("p_devices", "many_devices"): None,
        ("p_shared", "shared_identifier"): "s1",
        ("p_returns", "returns"): "r4",
    }


def test_amount_against_own_history(findings):
    f = findings[("p_amount", "order_amount")]
    z = 120.0 / (1.4826 * 10.0)
    assert f["reason"] == "order of 200.00 EUR is 8.1 robust deviations above this customer's usual 80.00"
    assert f["severity"] == pytest.approx(z / 5.0)
    assert f["observed_at"].replace(tzinfo=UTC) == t(5, 20)
    assert f["evidence"] == pytest.approx(
        {"amount": 200.0, "median": 80.0, "mad": 10.0, "unit": 14.826, "robust_z": z, "history_orders": 7.0,
         "threshold": 5.0})


def test_amount_against_everyone_without_history(findings):
    f = findings[("p_newcomer", "order_amount")]
    assert f["reason"] == "order of 5,000.00 EUR is 615.0 robust deviations above the usual 80.00 of all customers' orders"
    assert f["evidence"]["history_orders"] == 0.0 and f["evidence"]["mad"] == 0.0
    assert f["evidence"]["unit"] == pytest.approx(8.0)  # MAD 0: the unit is 10% of the median


def test_amount_unit_never_narrower_than_everyones_relative_spread(spark):
    """p_steady always paid 50.00 (own MAD 0); everyone's spread is MAD 50 on a median of 100 (half the
    median), so p_steady's unit is 1.4826 * 0.5 * 50: 200.00 is ordinary, 300.00 is not."""
    start = AS_OF - dt.timedelta(days=SETTINGS.lookback_days)
    rows = [(f"h{i}", "p_steady", t(3, 1 + i), 50.0) for i in range(5)]
    rows += [(f"o{i}", f"p{i}", t(3, 10), a) for i, a in enumerate([100.0] * 3 + [150.0] * 4)]
    rows += [("w200", "p_steady", t(5, 10), 200.0), ("w300", "p_steady", t(5, 11), 300.0)]
    orders = spark.createDataFrame([(*r, "EUR") for r in rows],
                                   "order_id string, person_id string, order_ts timestamp, total_amount double, currency string")
    found = order_amounts(orders, start, SETTINGS).collect()
    assert [(r["order_id"], r["reason"]) for r in found] == [
        ("w300", "order of 300.00 EUR is 6.7 robust deviations above this customer's usual 50.00")]
    assert found[0]["evidence"]["unit"] == pytest.approx(1.4826 * 0.5 * 50.0)


def test_velocity_uses_a_sliding_24_hours(findings):
    f = findings[("p_velocity", "order_velocity")]
    assert f["reason"] == "4 orders within 3.5 hours (alert at 4 within 24 hours)"
    assert f["severity"] == pytest.approx(1.0)
    assert f["evidence"] == pytest.approx({"orders_24h": 4.0, "span_hours": 3.5, "threshold": 4.0})


def test_devices_not_counting_shared_kiosks(findings):
    f = findings[("p_devices", "many_devices")]
    assert f["reason"] == "5 distinct devices on 2024-05-15 (more than 4 in a day); 1 such day(s) in the last 30 days"
    assert f["severity"] == pytest.approx(5 / 4)
    assert f["observed_at"].replace(tzinfo=UTC) == t(5, 15, 12)  # the last own device of the day, not the kiosk


def test_shared_identifier_counts_persons_in_the_window(findings):
    f = findings[("p_shared", "shared_identifier")]
    assert f["reason"] == "order placed with a device that 3 customers used in the last 30 days (more than 2); 1 such order(s)"
    assert f["evidence"] == {"persons": 3.0, "orders": 1.0, "threshold": 2.0}


def test_returns(findings):
    f = findings[("p_returns", "returns")]
    assert f["reason"] == ("4 of 5 orders in the last 30 days were returned or cancelled "
                           "(3 returned, 1 cancelled; more than 2)")
    assert f["severity"] == pytest.approx(2.0)
    assert f["observed_at"].replace(tzinfo=UTC) == t(5, 23)
