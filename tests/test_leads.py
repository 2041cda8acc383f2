"""The decision rules of lead_priority on hand-made scored rows: consent, tiers, actions, channel, send time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from presage.config import ChannelSettings, LeadSettings
from presage.scoring.leads import Thresholds, decide

CHANNELS = {"email": ChannelSettings(cost_per_contact=0.01), "sms": ChannelSettings(cost_per_contact=0.5),
            "display": ChannelSettings(cost_per_contact=0.02)}
THRESHOLDS = Thresholds(hot=0.6, warm=0.3, order_value=50.0, send_hour=10, send_weekday=2)


def _row(**overrides) -> dict:
    row = {"purchase_propensity": 0.7, "churn_risk": 0.1, "expected_spend": 40.0,
           "response_email": 0.02, "response_sms": 0.05, "response_display": 0.001,
           "consent_marketing": 1, "consent_email": 1, "consent_sms": 1, "consent_push": 0,
           "avg_order_value_365d": 80.0, "revenue_365d": 160.0, "orders_total": 3,
           "preferred_send_hour": 18.6, "preferred_send_weekday": 4.2}
    return row | overrides


def _decide(*rows: dict) -> pd.DataFrame:
    return decide(pd.DataFrame(list(rows)), THRESHOLDS, CHANNELS, LeadSettings())


def test_consent_is_absolute():
    out = _decide(_row(consent_marketing=0), _row(consent_marketing=None, consent_email=None, consent_sms=None),
                  _row(consent_email=0, consent_sms=0))
    assert list(out["next_best_action"]) == ["do_not_contact", "do_not_contact", "contact_now"]
    assert out["best_channel"].iloc[0] is None and out["best_channel"].iloc[1] is None
    assert out["best_send_hour"].isna().iloc[:2].all() and not out["contactable"].iloc[:2].any()
    assert out["best_channel"].iloc[2] == "display"  # paid media needs only the general consent


def test_best_channel_is_the_largest_expected_return_after_cost():
    # email: 0.02 * 80 - 0.01 = 1.59; sms: 0.05 * 80 - 0.5 = 3.5; display 0.08 - 0.02 = 0.06
    out = _decide(_row(), _row(consent_sms=0), _row(avg_order_value_365d=None, response_sms=0.011))
    assert list(out["best_channel"]) == ["sms", "email", "email"]  # third: value 50 -> sms 0.05 < email 0.99
    assert out["expected_contact_value"].iloc[0] == np.float64(0.05 * 80 - 0.5)
    assert out["best_channel_response"].iloc[1] == 0.02


def test_tiers_and_actions_follow_the_rules_in_order():
    out = _decide(
        _row(purchase_propensity=0.9),                                  # hot
        _row(purchase_propensity=0.9, churn_risk=0.8),                  # valuable and at risk first
        _row(purchase_propensity=0.9, churn_risk=0.8, revenue_365d=0),  # at risk but no recent spend
        _row(purchase_propensity=0.4),                                  # warm with orders
        _row(purchase_propensity=0.4, orders_total=0, revenue_365d=0),  # warm prospect
        _row(purchase_propensity=0.1),                                  # cold
        _row(purchase_propensity=0.6),                                  # exactly the hot threshold
    )
    assert list(out["tier"]) == ["hot", "hot", "hot", "warm", "warm", "cold", "hot"]
    assert list(out["next_best_action"]) == ["contact_now", "retention_offer", "contact_now", "upsell_cross_sell",
                                             "nurture", "nurture", "contact_now"]


def test_send_time_rounds_the_preference_and_falls_back_to_the_population():
    out = _decide(_row(), _row(preferred_send_hour=23.7, preferred_send_weekday=6.6),
                  _row(preferred_send_hour=None, preferred_send_weekday=np.nan))
    assert list(out["best_send_hour"]) == [19, 0, 10]
    assert list(out["best_send_weekday"]) == [4, 0, 2]
