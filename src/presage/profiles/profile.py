"""Person attributes over time (SCD type 2) and the one-row-per-person customer profile.

History: every CRM record version of a person's CRM ids, and every unsubscribe the person sent, is
a statement about the person at a time. The person's state at time t takes, per attribute, the
latest non-null statement made up to t, whichever of the person's records made it (recency wins;
the CRM is the only source of demographics). Consecutive identical states collapse into one row
valid over ``[valid_from, valid_to)``; the open row (``valid_to`` null) is the current state.

Consent is opt-in: no statement means no consent, a channel needs the general marketing consent
too, and an unsubscribe withdraws the channel's consent until a later CRM record grants it again.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from presage.profiles.facts import latest_per_key

CHANNEL_CONSENT = {"email": "consent_email", "sms": "consent_sms", "push": "consent_push"}
CONSENTS = ["consent_marketing", *CHANNEL_CONSENT.values()]
TIMESTAMPS = ["created_at", "updated_at"]
NOT_ATTRIBUTES = {"customer_id", *TIMESTAMPS}


def history_attributes(customers: DataFrame) -> list[str]:
    """Columns of the CRM that history tracks (everything but its key, timestamps and lineage)."""
    return [c for c in customers.columns if c not in NOT_ATTRIBUTES and not c.startswith("_")]


def statements(customers: DataFrame, campaign_events: DataFrame, persons: DataFrame) -> DataFrame:
    """What was said about each person when: (person_id, at, attributes...), one row per statement.

    ``customers`` are bronze CRM rows, ``campaign_events`` silver ones, ``persons`` the identity
    map rows of the persons in scope.
    """
    attributes = history_attributes(customers)
    crm_ids = persons.where(F.col("kind") == "customer_id").select(F.col("value").alias("customer_id"), "person_id")
    crm = latest_per_key(customers, "customers").join(crm_ids, "customer_id")
    crm = crm.select("person_id", F.col("updated_at").alias("at"), F.col("customer_id").alias("said_by"), *attributes)
    unsubscribes = campaign_events.where(
        (F.col("event_type") == "unsubscribe") & F.col("channel").isin(*CHANNEL_CONSENT) & F.col("person_id").isNotNull()
    ).join(persons.select("person_id").distinct(), "person_id", "left_semi")
    withdrawn = unsubscribes.select(
        "person_id",
        F.col("event_ts").alias("at"),
        F.concat(F.lit("unsubscribe:"), F.col("event_id")).alias("said_by"),
        *[F.when(F.col("channel") == ch, F.lit(False)).alias(col) for ch, col in CHANNEL_CONSENT.items()],
    )
    return crm.unionByName(withdrawn, allowMissingColumns=True).where(F.col("at").isNotNull())


def _state_hash(attributes: list[str]) -> Column:
    return F.sha2(F.to_json(F.struct(*[F.col(a) for a in attributes])), 256)


def history(said: DataFrame, attributes: list[str]) -> DataFrame:
    """SCD2 rows (person_id, valid_from, valid_to, is_current, attributes...) from ``statements``."""
    so_far = Window.partitionBy("person_id").orderBy("at", "said_by").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    state = said.select("person_id", "at", "said_by", *[F.last(a, ignorenulls=True).over(so_far).alias(a) for a in attributes])
    # Several statements at the same instant: the state after the last of them holds.
    last_at = Window.partitionBy("person_id", "at").orderBy(F.desc("said_by"))
    state = state.withColumn("_n", F.row_number().over(last_at)).where("_n = 1").drop("_n", "said_by")
    in_time = Window.partitionBy("person_id").orderBy("at")
    state = state.withColumn("_hash", _state_hash(attributes))
    state = state.withColumn("_same", F.lag("_hash").over(in_time).eqNullSafe(F.col("_hash")))
    changes = state.where(~F.col("_same"))
    return changes.select(
        "person_id",
        F.col("at").alias("valid_from"),
        F.lead("at").over(in_time).alias("valid_to"),
        F.lead("at").over(in_time).isNull().alias("is_current"),
        *[effective_consent(a) if a in CONSENTS else F.col(a) for a in attributes],
    )


def effective_consent(column: str) -> Column:
    """Opt-in consent: unknown is no; a channel also needs the general marketing consent."""
    general = F.coalesce(F.col("consent_marketing"), F.lit(False))
    own = F.coalesce(F.col(column), F.lit(False))
    return (own if column == "consent_marketing" else own & general).alias(column)


def as_of(history_table: DataFrame, when: Column) -> DataFrame:
    """Each person's attributes as they were at ``when`` (persons not yet known are absent)."""
    valid = (F.col("valid_from") <= when) & (F.col("valid_to").isNull() | (when < F.col("valid_to")))
    return history_table.where(valid).drop("valid_to", "is_current")


def _kind_values(identity_map: DataFrame, kind: str) -> Column:
    return F.array_sort(F.collect_set(F.when(F.col("kind") == kind, F.col("value"))))


def customer_profile(
    identity_map: DataFrame, current: DataFrame, facts: dict[str, DataFrame], customers: DataFrame
) -> DataFrame:
    """One row per person of ``identity_map``: identifiers, current attributes, consent, activity.

    ``current`` holds the open history rows, ``facts`` the silver fact tables and ``customers``
    the bronze CRM rows, all restricted to the persons wanted.
    """
    ids = identity_map.where(F.col("person_id").isNotNull()).groupBy("person_id").agg(
        _kind_values(identity_map, "customer_id").alias("customer_ids"),
        _kind_values(identity_map, "email").alias("email_hashes"),
        _kind_values(identity_map, "phone").alias("phone_hashes"),
        _kind_values(identity_map, "device_id").alias("device_ids"),
        _kind_values(identity_map, "social_handle").alias("social_handles"),
    )
    orders = facts["orders"].where(F.col("person_id").isNotNull())
    completed = F.col("status") == "completed"
    order_stats = orders.groupBy("person_id").agg(
        F.count(F.when(F.col("status") != "cancelled", True)).alias("orders"),
        F.count(F.when(F.col("status") == "returned", True)).alias("returned_orders"),
        F.round(F.sum(F.when(completed, F.col("total_amount"))), 2).alias("lifetime_revenue"),
        F.min(F.when(completed, F.col("order_ts"))).alias("first_order_at"),
        F.max(F.when(completed, F.col("order_ts"))).alias("last_order_at"),
        F.max_by("email_hash", F.when(F.col("email_hash").isNotNull(), F.col("order_ts"))).alias("_order_email"),
    )
    web = facts["web_events"].where(F.col("person_id").isNotNull()).groupBy("person_id").agg(
        F.countDistinct("session_id").alias("web_sessions"), F.count("*").alias("web_events")
    )
    campaigns = facts["campaign_events"].where(F.col("person_id").isNotNull()).groupBy("person_id").agg(
        *[F.count(F.when(F.col("event_type") == t, True)).alias(f"campaign_{t}s") for t in ("send", "open", "click", "conversion")],
        F.count(F.when(F.col("event_type") == "unsubscribe", True)).alias("unsubscribes"),
    )
    social = facts["social_events"].where(F.col("person_id").isNotNull()).groupBy("person_id").agg(F.count("*").alias("social_events"))
    reviews = facts["reviews"].where(F.col("person_id").isNotNull()).groupBy("person_id").agg(
        F.count("*").alias("reviews"), F.round(F.avg("rating"), 3).alias("avg_rating")
    )
    seen = [
        facts[source].where(F.col("person_id").isNotNull()).select("person_id", F.col(column).alias("at"))
        for source, column in (("orders", "order_ts"), ("web_events", "event_ts"), ("campaign_events", "event_ts"),
                               ("social_events", "event_ts"), ("reviews", "review_ts"))
    ]
    crm_ids = identity_map.where(F.col("kind") == "customer_id").select(F.col("value").alias("customer_id"), "person_id")
    crm = customers.join(crm_ids, "customer_id")
    seen.append(crm.select("person_id", F.col("created_at").alias("at")))
    primary = crm.groupBy("person_id").agg(F.max_by("customer_id", F.struct("updated_at", "customer_id")).alias("primary_customer_id"))
    span = seen[0]
    for part in seen[1:]:
        span = span.unionByName(part)
    span = span.groupBy("person_id").agg(F.min("at").alias("first_seen_at"), F.max("at").alias("last_seen_at"))

    profile = ids
    for part in (primary, current.drop("valid_from", "valid_to", "is_current"), order_stats, web, campaigns, social, reviews, span):
        profile = profile.join(part, "person_id", "left")
    counts = ["orders", "returned_orders", "web_sessions", "web_events", "campaign_sends", "campaign_opens",
              "campaign_clicks", "campaign_conversions", "unsubscribes", "social_events", "reviews"]
    profile = profile.fillna(0, subset=counts).fillna(0.0, subset=["lifetime_revenue"]).fillna(False, subset=CONSENTS)
    return profile.select(
        "person_id",
        (F.size("customer_ids") > 0).alias("is_known"),
        "primary_customer_id",
        F.coalesce(F.col("email_hash"), F.col("_order_email")).alias("email_hash"),
        *[c for c in profile.columns if c not in {"person_id", "primary_customer_id", "email_hash", "_order_email"}],
    )
