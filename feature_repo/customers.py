"""Feast definitions of presage: the customer entity, views over the gold Delta tables, services.

The fields come from ``presage.features.catalog`` (the contract the feature job writes), plus the
extra CRM attribute columns ``attr_<key>`` read from the Delta log of the attributes table, so a new
CRM attribute becomes a feature on the next ``feast apply`` without code changes. Reading the log
needs no Spark, which keeps ``feast plan`` fast.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from deltalake import DeltaTable
from feast import Entity, FeatureService, FeatureView, Field, PushSource, ValueType
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, Int64, String

from presage.features.activity import ACTIVITY, TABLE
from presage.features.catalog import (
    ATTRIBUTE_PREFIX,
    ATTRIBUTES,
    BEHAVIOUR,
    CHANNELS,
    ENTITY,
    PARTITION,
    TIMESTAMP,
    Feature,
)

HOME = os.environ.get("PRESAGE_HOME")
if not HOME:
    raise RuntimeError("set PRESAGE_HOME to the lakehouse root before running feast in this folder")
GOLD = Path(HOME).resolve() / "gold"
FEAST_TYPES = {"long": Int64, "double": Float64, "string": String}
DELTA_TYPES = {"double": "double", "float": "double", "long": "long", "integer": "long", "string": "string"}


def _fields(features: tuple[Feature, ...] | list[Feature]) -> list[Field]:
    """The entity column, then the features (declaring the entity column keeps `feast plan` quiet)."""
    return [Field(name=ENTITY, dtype=String)] + [
        Field(name=f.name, dtype=FEAST_TYPES[f.dtype], description=f.description) for f in features
    ]


def _extra_attributes(path: Path) -> list[Feature]:
    """attr_<key> columns present in the gold attributes table (none before its first build)."""
    if not (path / "_delta_log").is_dir():
        return []
    return [
        Feature(field.name, DELTA_TYPES[field.type.type], f"CRM attribute {field.name[len(ATTRIBUTE_PREFIX):]} as of the snapshot")
        for field in DeltaTable(str(path)).schema().fields
        if field.name.startswith(ATTRIBUTE_PREFIX)
    ]


customer = Entity(
    name="customer",
    join_keys=[ENTITY],
    value_type=ValueType.STRING,
    description="a resolved person (silver identity map person_id)",
)

def _gold_source(table: str, description: str) -> SparkSource:
    return SparkSource(
        name=f"gold_{table}",
        path=str(GOLD / table),
        table_format=DeltaFormat(),
        timestamp_field=TIMESTAMP,
        date_partition_column=PARTITION,
        description=description,
    )


behaviour_source = _gold_source("customer_features", "weekly (or daily) point-in-time behaviour snapshots")
attributes_source = _gold_source("customer_attributes", "CRM attributes as of each snapshot date, from the SCD2 profile history")

# Behaviour is recency-driven: a snapshot older than two weekly runs misstates "days since" and the
# windowed counts, so a training row that far from any snapshot gets nulls rather than stale values.
customer_behaviour = FeatureView(
    name="customer_behaviour",
    entities=[customer],
    ttl=timedelta(days=15),
    schema=_fields(BEHAVIOUR),
    source=behaviour_source,
    online=True,
    description="RFM, windowed activity, affinity, intent, channel engagement, send time, sentiment, BG/NBD",
)

# CRM attributes change slowly; a value up to a quarter old is still the person's best description.
customer_attributes = FeatureView(
    name="customer_attributes",
    entities=[customer],
    ttl=timedelta(days=90),
    schema=_fields(list(ATTRIBUTES) + _extra_attributes(GOLD / "customer_attributes")),
    source=attributes_source,
    online=True,
    description="demographics, location, consent and extra CRM attributes as of the snapshot",
)

# Real-time activity: pushed by `presage stream` for the persons each micro-batch touches (Feast's push
# source); the Delta table behind it is the same rows, for history and training sets.
customer_activity_push = PushSource(
    name="customer_activity_push",
    batch_source=SparkSource(
        name="gold_customer_activity",
        path=str(GOLD / TABLE),
        table_format=DeltaFormat(),
        timestamp_field=TIMESTAMP,
        description="each person's latest short-window activity, written by the stream",
    ),
    description="presage stream pushes each touched person's activity here",
)

# A week without events leaves no activity worth serving: the windows are an hour and a day long.
customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=7),
    schema=_fields(ACTIVITY),
    source=customer_activity_push,
    online=True,
    description="views, searches, carts and checkouts in the last hour and day, recency, activity since the snapshot",
)

_MODEL_SERVICES = {
    "purchase_propensity": "features of the purchase propensity model (ready to buy)",
    "churn_risk": "features of the churn risk model",
    "expected_spend": "features of the expected spend model",
    "channel_response": "features of the per-channel campaign response models",
    "custom_goal": "features of user-defined propensity goals (custom label tables)",
}
# One service per model, so that a model's feature set is versioned on its own; today every model
# reads every feature and excludes its sensitive attributes at training time (see the models docs).
purchase_propensity, churn_risk, expected_spend, channel_response, custom_goal = (
    FeatureService(name=name, features=[customer_behaviour, customer_attributes], description=text)
    for name, text in _MODEL_SERVICES.items()
)

APP_BEHAVIOUR = [
    "days_since_last_order", "orders_total", "revenue_total", "orders_30d", "orders_90d", "orders_365d",
    "revenue_30d", "revenue_90d", "revenue_365d", "avg_order_value_365d", "avg_days_between_orders",
    "return_rate_365d", "top_category_365d", "top_category_share_365d", "web_sessions_7d",
    "web_sessions_30d", "product_views_7d", "product_views_30d", "searches_7d", "add_to_carts_7d",
    "add_to_carts_30d", "checkouts_30d", "days_since_last_visit", "days_since_last_cart", "open_cart",
    "cart_abandonment_rate_90d",
    *[f"{channel}_{what}" for channel in CHANNELS for what in ("click_rate_90d", "days_since_engagement")],
    "unsubscribes_total", "preferred_send_hour", "preferred_send_weekday", "send_time_confidence",
    "social_sentiment_365d", "review_rating_avg", "tenure_days", "p_alive", "expected_purchases_horizon",
]
APP_ATTRIBUTES = ["is_known", "country", "region", "consent_marketing", "consent_email", "consent_sms", "consent_push"]

# What an app (site personalisation, call centre, onboarding) needs in one lookup: about 50 features.
customer_app = FeatureService(
    name="customer_app",
    features=[customer_behaviour[APP_BEHAVIOUR], customer_attributes[APP_ATTRIBUTES]],
    description="one customer's current state for online applications",
)

# What happened in the last minutes, for apps and `presage serve` (which folds it into the model features).
customer_realtime = FeatureService(
    name="customer_realtime",
    features=[customer_activity],
    description="one customer's activity of the last hour and day, from the stream",
)
