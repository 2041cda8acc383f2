"""From scores to what a marketer does next: tier, next best action, best channel and send time.

One pandas function decides for a batch of scored persons, given thresholds measured on the whole
scored population (``Thresholds``); batch scoring runs it in Spark tasks and ``presage serve`` on
one person with the thresholds of the latest batch, so both give the same answer.

Consent is opt-in and absolute: a person without marketing consent, or without consent for every
channel, gets ``do_not_contact`` and no channel. email, sms and push need their own consent (which
already implies the general one); paid channels (display, social_ads) need the general marketing consent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from presage.config import ChannelSettings, LeadSettings
from presage.profiles.profile import CHANNEL_CONSENT
from presage.scoring.predict import CHURN, PURCHASE, response_column

GENERAL_CONSENT = "consent_marketing"
DECISION_INPUTS = [GENERAL_CONSENT, *CHANNEL_CONSENT.values(), "avg_order_value_365d", "revenue_365d", "orders_total",
                   "preferred_send_hour", "preferred_send_weekday"]
DO_NOT_CONTACT, RETENTION, CONTACT_NOW, UPSELL, NURTURE = (
    "do_not_contact", "retention_offer", "contact_now", "upsell_cross_sell", "nurture")


@dataclass(frozen=True)
class Thresholds:
    """Population facts of one scoring run, kept beside lead_priority for the online server."""

    hot: float  # lowest purchase propensity of the hot tier
    warm: float  # lowest purchase propensity of the warm tier
    order_value: float  # value of a conversion for a person with no order history (median order value)
    send_hour: int  # most common preferred send hour, for persons with none
    send_weekday: int

    def as_row(self) -> dict[str, float | int]:
        return asdict(self)


def consent_column(channel: str) -> str:
    return CHANNEL_CONSENT.get(channel, GENERAL_CONSENT)


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").fillna(0).to_numpy() >= 1


def _number(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy()


def decide(scored: pd.DataFrame, thresholds: Thresholds, channels: dict[str, ChannelSettings],
           leads: LeadSettings) -> pd.DataFrame:
    """Columns tier, next_best_action, best_channel, best_channel_response, expected_contact_value,
    best_send_hour, best_send_weekday, contactable for each scored row.

    Best channel: among consented channels, the largest expected return of one contact,
    P(response) x order value - cost per contact. Action, first rule that holds: no consented
    channel -> do_not_contact; churn risk >= leads.retention_churn_risk for a customer who bought in
    the last year -> retention_offer; hot -> contact_now; warm customer with orders -> upsell_cross_sell;
    otherwise nurture.
    """
    propensity = _number(scored, PURCHASE)
    tier = np.where(propensity >= thresholds.hot, "hot", np.where(propensity >= thresholds.warm, "warm", "cold"))
    value = _number(scored, "avg_order_value_365d")
    value = np.where(np.isfinite(value) & (value > 0), value, thresholds.order_value)
    general = _flag(scored, GENERAL_CONSENT)
    names = list(channels)
    responses = np.column_stack([_number(scored, response_column(c)) for c in names])
    costs = np.array([channels[c].cost_per_contact for c in names])
    allowed = np.column_stack([general & _flag(scored, consent_column(c)) for c in names])
    returns = np.where(allowed, responses * value[:, None] - costs, -np.inf)
    contactable = allowed.any(axis=1)
    best = returns.argmax(axis=1)
    rows = np.arange(len(scored))
    best_channel = np.where(contactable, np.array(names, dtype=object)[best], None)
    best_response = np.where(contactable, responses[rows, best], np.nan)
    churn = _number(scored, CHURN)
    recent_buyer = np.nan_to_num(_number(scored, "revenue_365d")) > 0
    has_orders = np.nan_to_num(_number(scored, "orders_total")) > 0
    action = np.select(
        [~contactable, (churn >= leads.retention_churn_risk) & recent_buyer, tier == "hot", (tier == "warm") & has_orders],
        [DO_NOT_CONTACT, RETENTION, CONTACT_NOW, UPSELL], NURTURE)
    hour = _number(scored, "preferred_send_hour")
    weekday = _number(scored, "preferred_send_weekday")
    send_hour = np.where(np.isfinite(hour), np.round(np.nan_to_num(hour)) % 24, thresholds.send_hour)
    send_weekday = np.where(np.isfinite(weekday), np.round(np.nan_to_num(weekday)) % 7, thresholds.send_weekday)
    return pd.DataFrame({
        "tier": tier,
        "next_best_action": action,
        "best_channel": best_channel,
        "best_channel_response": best_response,
        "expected_contact_value": np.where(contactable, returns[rows, best], np.nan),
        "best_send_hour": pd.array(np.where(contactable, send_hour, np.nan), dtype="Float64").astype("Int32"),
        "best_send_weekday": pd.array(np.where(contactable, send_weekday, np.nan), dtype="Float64").astype("Int32"),
        "contactable": contactable,
    }, index=scored.index)
