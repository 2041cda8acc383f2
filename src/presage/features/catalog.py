"""The names, types and meanings of the gold features: the contract Feast and the models read.

Pure data (no Spark), so that the Feast repository can import it to declare its fields. Per-channel
features follow the channels of the campaign_events suite, so a new channel there is a new feature
here without code changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from presage.ingest.expectations import value_set

WINDOWS = (7, 30, 90, 365)
CHANNELS: tuple[str, ...] = tuple(value_set("campaign_events", "channel"))
SOCIAL_TYPES: tuple[str, ...] = tuple(value_set("social_events", "event_type"))
ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
PARTITION = "snapshot_date"
ATTRIBUTE_PREFIX = "attr_"

DType = Literal["long", "double", "string"]


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: DType
    description: str


def _windowed(stem: str, dtype: DType, what: str, windows: tuple[int, ...] = WINDOWS) -> list[Feature]:
    return [Feature(f"{stem}_{w}d", dtype, f"{what} in the {w} days before the snapshot") for w in windows]


def _channel(channel: str) -> list[Feature]:
    return [
        Feature(f"{channel}_sends_90d", "long", f"{channel} contacts sent in the last 90 days"),
        Feature(f"{channel}_open_rate_90d", "double", f"{channel} opens / deliveries (sends when no deliveries are reported), 90 days"),
        Feature(f"{channel}_click_rate_90d", "double", f"{channel} clicks / deliveries, 90 days"),
        Feature(f"{channel}_conversion_rate_365d", "double", f"{channel} conversions / sends, 365 days"),
        Feature(f"{channel}_days_since_engagement", "double", f"days since the last {channel} open, click or conversion"),
    ]


BEHAVIOUR: tuple[Feature, ...] = (
    # recency, frequency, monetary
    Feature("days_since_last_order", "double", "days since the last order (null: never ordered)"),
    Feature("days_since_first_order", "double", "days since the first order (null: never ordered)"),
    Feature("orders_total", "long", "orders placed (not cancelled) before the snapshot"),
    Feature("revenue_total", "double", "revenue of completed orders before the snapshot"),
    *_windowed("orders", "long", "orders placed (not cancelled)"),
    *_windowed("revenue", "double", "revenue of completed orders"),
    Feature("avg_order_value_365d", "double", "mean completed order value, 365 days"),
    Feature("max_order_value_365d", "double", "largest completed order value, 365 days"),
    Feature("std_order_value_365d", "double", "standard deviation of completed order values, 365 days"),
    Feature("avg_days_between_orders", "double", "mean gap between order days (null: fewer than two)"),
    Feature("returns_365d", "long", "orders returned, 365 days"),
    Feature("return_rate_365d", "double", "returned / placed orders, 365 days"),
    Feature("discount_rate_365d", "double", "discount / gross order value, 365 days"),
    Feature("units_365d", "long", "units bought, 365 days"),
    # category affinity
    Feature("top_category_365d", "string", "category with the most spend, 365 days"),
    Feature("top_category_share_365d", "double", "share of spend in the top category, 365 days"),
    Feature("categories_365d", "long", "distinct categories bought, 365 days"),
    # browsing intent and cart abandonment
    *_windowed("web_sessions", "long", "web/app sessions", (7, 30, 90)),
    *_windowed("product_views", "long", "product views", (7, 30, 90)),
    *_windowed("searches", "long", "searches", (7, 30)),
    *_windowed("add_to_carts", "long", "add-to-cart events", (7, 30, 90)),
    *_windowed("checkouts", "long", "checkout events", (7, 30, 90)),
    Feature("page_views_30d", "long", "page views in the 30 days before the snapshot"),
    Feature("days_since_last_visit", "double", "days since the last web/app event"),
    Feature("days_since_last_cart", "double", "days since the last add-to-cart"),
    Feature("open_cart", "long", "1 when a cart was filled after the last order (abandoned cart)"),
    Feature("cart_abandonment_rate_90d", "double", "1 - checkouts / add-to-carts, 90 days (null: no carts)"),
    # campaign engagement
    *[f for channel in CHANNELS for f in _channel(channel)],
    Feature("campaign_sends_30d", "long", "contacts sent on any channel, 30 days"),
    Feature("unsubscribes_total", "long", "unsubscribes on any channel before the snapshot"),
    Feature("bounces_365d", "long", "bounced contacts, 365 days"),
    Feature("preferred_send_hour", "double", "hour of day (UTC) around which the person engages (circular mean)"),
    Feature("preferred_send_weekday", "double", "weekday (0 = Monday) around which the person engages"),
    Feature("send_time_confidence", "double", "how concentrated engagement times are (0 spread, 1 always the same hour)"),
    # social and reviews
    Feature("social_events_90d", "long", "social interactions, 90 days"),
    *[Feature(f"social_{t}s_365d", "long", f"social {t}s, 365 days") for t in SOCIAL_TYPES],
    Feature("social_sentiment_365d", "double", "mean sentiment (-1..1) of comments and mentions, 365 days"),
    Feature("reviews_total", "long", "product reviews written"),
    Feature("review_rating_avg", "double", "mean review rating"),
    Feature("review_sentiment_avg", "double", "mean sentiment (-1..1) of review texts"),
    # lifecycle
    Feature("tenure_days", "double", "days since the person was first seen (CRM record or first event)"),
    Feature("bgnbd_frequency", "long", "repeat purchase days (BG/NBD x)"),
    Feature("bgnbd_recency_weeks", "double", "weeks between first and last purchase day (BG/NBD t_x)"),
    Feature("bgnbd_age_weeks", "double", "weeks between first purchase day and the snapshot (BG/NBD T)"),
    Feature("p_alive", "double", "BG/NBD probability the customer is still active"),
    Feature("expected_purchases_horizon", "double", "BG/NBD expected purchase days over the configured horizon"),
)

ATTRIBUTES: tuple[Feature, ...] = (
    Feature("is_known", "long", "1 when the person has a CRM record"),
    Feature("age_years", "double", "age at the snapshot, from the birth date"),
    Feature("gender", "string", "gender as recorded"),
    Feature("country", "string", "country as of the snapshot"),
    Feature("region", "string", "region as of the snapshot"),
    Feature("city", "string", "city as of the snapshot"),
    Feature("latitude", "double", "latitude as of the snapshot"),
    Feature("longitude", "double", "longitude as of the snapshot"),
    Feature("consent_marketing", "long", "1 when marketing consent held at the snapshot"),
    Feature("consent_email", "long", "1 when email consent held at the snapshot"),
    Feature("consent_sms", "long", "1 when SMS consent held at the snapshot"),
    Feature("consent_push", "long", "1 when push consent held at the snapshot"),
)


def names(features: tuple[Feature, ...]) -> list[str]:
    return [f.name for f in features]


def attribute_column(key: str) -> str:
    """Gold column name of an extra CRM attribute: ``attr_`` + its key in snake case."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in key.strip().lower()).strip("_")
    return ATTRIBUTE_PREFIX + (cleaned or "unnamed")
