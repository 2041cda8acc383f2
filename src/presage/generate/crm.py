"""CRM records as a company's CRM exports them: accounts, duplicates, placeholders, changes.

Each person has one account; some open a second one (sharing the email or the phone), some type a
placeholder address, and some records change inside the window (a move, a consent withdrawal, a
loyalty tier change), which arrive as new versions of the record in a later drop.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.generate.params import COUNTRIES, PLACEHOLDER_EMAILS, GenParams
from presage.generate.population import phone_formats
from presage.generate.rand import Draws
from presage.generate.timeline import timestamp

DUPLICATE_ACCOUNT_RATE = 0.04
PLACEHOLDER_RATE = 0.006
UPDATE_RATE = 0.12
TIERS = ["basic", "silver", "gold", "platinum"]
EXTRA_ATTRIBUTES = ["loyalty_tier", "loyalty_points", "household_size", "income_band", "preferred_store", "marketing_source"]


def customer_id(d: Draws, person: Column, account: Column) -> Column:
    digest = F.sha2(F.concat_ws(":", F.lit(d.seed), F.lit("cid"), person, account), 256)
    return F.concat(F.lit("C"), F.upper(F.substring(digest, 1, 10)))


def changes(people: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Per person, the one change to the CRM record inside the window, if any."""
    pid = F.col("person_id")
    first = F.greatest(F.col("start_day"), F.lit(0)) + 1
    day = first + F.floor(d.uniform("upd_day", pid) * (F.lit(p.days) - first))
    kind = Draws.choice_from(d.uniform("upd_kind", pid), ["move", "withdraw", "tier"], [4, 3, 3])
    return people.where((d.uniform("upd", pid) < UPDATE_RATE) & (first < p.days)).select(
        "person_id", day.cast("int").alias("update_day"), kind.alias("update_kind")
    )


def accounts(people: DataFrame, d: Draws) -> DataFrame:
    """(person_id, account, customer_id): account 1 is a duplicate account of the same person."""
    pid = F.col("person_id")
    dup = d.uniform("dup_account", pid) < DUPLICATE_ACCOUNT_RATE
    df = people.select("person_id", F.explode(F.when(dup, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0)))).alias("account"))
    return df.withColumn("customer_id", customer_id(d, pid, F.col("account")))


def _city(field: int, country: Column, index: Column) -> Column:
    entries = [x for code, v in COUNTRIES.items() for i, c in enumerate(v[2]) for x in (F.lit(f"{code}{i}"), F.lit(c[field]))]
    return F.element_at(F.create_map(*entries), F.concat(country, index.cast("string")))


def records(people: DataFrame, idents: DataFrame, accts: DataFrame, changed: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Every CRM record version, with schema columns plus the extra attribute columns, and ``day``."""
    pid, acc = F.col("person_id"), F.col("account")
    df = accts.join(people, "person_id").join(idents, "person_id").join(changed, "person_id", "left")
    created_day = F.when(acc == 0, F.col("start_day")).otherwise(
        F.greatest(F.col("start_day"), F.lit(-30)) + 30 + d.pick("dup_created", 400, pid)
    )
    df = df.withColumn("created_day", created_day.cast("int")).where(F.col("created_day") < p.days)
    # A second version for accounts of persons whose record changes (account 0 only).
    has_update = F.col("update_day").isNotNull() & (acc == 0) & (F.col("update_day") > F.col("created_day"))
    df = df.withColumn("version", F.explode(F.when(has_update, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0)))))
    updated = F.col("version") == 1
    kind = F.col("update_kind")

    shares_email = d.uniform("dup_shares", pid) < 0.5
    work_email = F.concat(F.regexp_extract(F.col("email"), r"^([a-z]+\.[a-z]+)", 1), F.lit(".work"), pid.cast("string"), F.lit("@work.example"))
    email = F.when((acc == 1) & ~shares_email, work_email).otherwise(F.col("email"))
    email = F.when(d.uniform("placeholder", pid, acc) < PLACEHOLDER_RATE, Draws.choice_from(d.uniform("ph_which", pid, acc), PLACEHOLDER_EMAILS)).otherwise(email)
    email = F.when(d.uniform("email_case", pid, acc) < 0.1, F.concat(F.upper(email), F.lit(" "))).otherwise(email)
    has_phone = F.when(acc == 1, ~shares_email).otherwise(d.uniform("has_phone", pid) < 0.75)
    phone = F.when(has_phone, phone_formats(F.col("phone_prefix"), F.col("phone_digits"), d.uniform("ph_fmt", pid, acc)))

    moved = updated & (kind == "move")
    city_index = F.when(moved, (F.col("city_index") + 1 + d.pick("move_to", 3, pid)) % 4).otherwise(F.col("city_index"))
    withdrawn = updated & (kind == "withdraw")
    tier_score = 0.6 * F.col("z_loyalty") + 0.4 * F.col("z_affluence") + 0.5 * d.normal("tier", pid)
    tier_index = F.when(tier_score < -0.3, 0).when(tier_score < 0.5, 1).when(tier_score < 1.2, 2).otherwise(3)
    tier_index = F.least(F.lit(3), tier_index + F.when(updated & (kind == "tier"), 1).otherwise(0))
    income = 0.8 * F.col("z_affluence") + 0.6 * d.normal("income", pid)
    event_day = F.when(updated, F.col("update_day")).otherwise(F.col("created_day"))
    created_secs = 8 * 3600 + d.pick("created_s", 12 * 3600, pid, acc)
    updated_secs = 8 * 3600 + d.pick("updated_s", 12 * 3600, pid, acc, F.col("version"))
    birth = F.date_sub(F.lit(p.end_date), (F.col("age") * 365.25 + d.pick("birth", 365, pid)).cast("int"))
    return df.select(
        F.col("customer_id"),
        email.alias("email"),
        phone.alias("phone"),
        F.when((acc == 0) & (d.uniform("crm_handle", pid) < 0.5), F.col("social_handle")).alias("social_handle"),
        F.col("gender"),
        birth.alias("birth_date"),
        F.col("country"),
        _city(1, F.col("country"), city_index).alias("region"),
        _city(0, F.col("country"), city_index).alias("city"),
        F.lpad((d.pick("postal", 90000, pid, city_index) + 10000).cast("string"), 5, "0").alias("postal_code"),
        F.round(_city(2, F.col("country"), city_index) + 0.05 * d.normal("lat", pid), 5).alias("latitude"),
        F.round(_city(3, F.col("country"), city_index) + 0.05 * d.normal("lon", pid), 5).alias("longitude"),
        timestamp(p, F.col("created_day"), created_secs).alias("created_at"),
        timestamp(p, event_day, F.when(updated, updated_secs).otherwise(created_secs)).alias("updated_at"),
        (F.col("consent_marketing") & ~withdrawn).alias("consent_marketing"),
        (F.col("consent_email") & ~withdrawn).alias("consent_email"),
        (F.col("consent_sms") & ~withdrawn).alias("consent_sms"),
        (F.col("consent_push") & ~withdrawn).alias("consent_push"),
        F.element_at(F.array(*[F.lit(t) for t in TIERS]), tier_index + 1).alias("loyalty_tier"),
        F.floor(F.exp(4.0 + 0.8 * F.col("z_loyalty") + 0.5 * d.normal("points", pid, F.col("version")))).cast("int").alias("loyalty_points"),
        (1 + d.pick("household", 5, pid)).cast("int").alias("household_size"),
        F.when(income < -0.8, "<25k").when(income < 0.2, "25-50k").when(income < 1.0, "50-100k").otherwise(">100k").alias("income_band"),
        F.concat(F.lit("S-"), F.col("country"), city_index.cast("string")).alias("preferred_store"),
        Draws.choice_from(d.uniform("source", pid), ["organic", "paid_search", "social", "referral", "affiliate"], [40, 25, 15, 12, 8]).alias("marketing_source"),
        event_day.alias("day"),
        pid.alias("person_id"),
    )
