"""Persons with latent traits, and the CRM records and devices through which they are seen.

A person (truth) can hold two CRM records, share a household email, type a placeholder address or
log in on a shared store kiosk: the identity puzzles a real customer base poses.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.generate.params import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    GenParams,
)
from presage.generate.rand import Draws


def _element(options: list, index: Column) -> Column:
    return F.element_at(F.array(*[F.lit(o) for o in options]), F.pmod(index, F.lit(len(options))).cast("int") + 1)


def persons(spark: SparkSession, p: GenParams, d: Draws) -> DataFrame:
    """One row per real person with the latent traits that drive all behaviour."""
    pid = F.col("person_id")
    codes = list(COUNTRIES)
    base = spark.range(0, p.customers, numPartitions=max(2, p.customers // 250_000)).withColumnRenamed(
        "id", "person_id"
    )
    df = base.select(
        "person_id",
        d.normal("affluence", pid).alias("z_affluence"),
        d.normal("engagement", pid).alias("z_engagement"),
        d.normal("loyalty", pid).alias("z_loyalty"),
        d.uniform("age", pid).alias("u_age"),
        Draws.choice_from(d.uniform("country", pid), codes, [COUNTRIES[c][0] for c in codes]).alias("country"),
        d.pick("city", 4, pid).alias("city_index"),
    )
    age = F.floor(18 + 62 * F.pow(F.col("u_age"), 1.3)).cast("int")
    df = df.withColumn("age", age)
    # Purchase rate (orders/day): lognormal, driven by affluence and engagement, plus noise that
    # nothing observable explains, so the signal is real but not trivially separable.
    df = df.withColumn(
        "order_rate",
        F.exp(
            -5.0
            + 0.45 * F.col("z_affluence")
            + 0.55 * F.col("z_engagement")
            + 0.45 * d.normal("rate_noise", pid)
        ),
    )
    # Start: 65% were customers before the window opened, the rest sign up inside it.
    old = d.uniform("old", pid) < 0.65
    df = df.withColumn(
        "start_day",
        F.when(old, -F.floor(d.uniform("tenure", pid) * 5 * 365) - 1).otherwise(
            F.floor(d.uniform("signup", pid) * p.days)
        ).cast("int"),
    )
    # Lifetime: exponential, longer for loyal customers; churn ends orders, visits and opens.
    mean_life = 520.0 * F.exp(0.55 * F.col("z_loyalty"))
    life = F.greatest(F.lit(20.0), d.exponential("life", pid) * mean_life)
    start_in_window = F.greatest(F.col("start_day"), F.lit(0))
    df = df.withColumn("end_day", (start_in_window + life).cast("int"))
    df = df.withColumn(
        "pref_channel",
        F.when(F.col("age") < 30, Draws.choice_from(d.uniform("ch", pid), CHANNELS, [2, 1, 3, 1, 3]))
        .when(F.col("age") < 50, Draws.choice_from(d.uniform("ch", pid), CHANNELS, [4, 2, 2, 1, 1]))
        .otherwise(Draws.choice_from(d.uniform("ch", pid), CHANNELS, [5, 3, 1, 1, 0.3])),
    )
    hour_centre = Draws.choice_from(d.uniform("hour_type", pid), ["8", "12", "19", "21"], [3, 2, 4, 2]).cast("double")
    df = df.withColumn(
        "pref_hour",
        F.least(F.lit(23), F.greatest(F.lit(6), F.round(hour_centre + 1.2 * d.normal("hour", pid)))).cast("int"),
    )
    df = df.withColumn("pref_category", Draws.choice_from(d.uniform("cat", pid), CATEGORIES))
    df = df.withColumn("app_user", d.uniform("app", pid) < F.when(F.col("age") < 40, 0.6).otherwise(0.3))
    df = df.withColumn("has_social", d.uniform("social", pid) < F.when(F.col("age") < 35, 0.55).otherwise(0.25))
    df = df.withColumn("p_abandon", 0.25 + 0.5 * d.uniform("abandon", pid))
    df = df.withColumn("gender", Draws.choice_from(d.uniform("gender", pid), ["F", "M", "X"], [49, 49, 2]))
    df = df.withColumn("n_devices", 1 + (d.uniform("dev2", pid) < 0.45).cast("int") + (d.uniform("dev3", pid) < 0.15).cast("int"))
    consent = d.uniform("consent", pid) < 0.92
    df = df.select(
        "*",
        consent.alias("consent_marketing"),
        (consent & (d.uniform("c_email", pid) < 0.88)).alias("consent_email"),
        (consent & (d.uniform("c_sms", pid) < 0.45)).alias("consent_sms"),
        (consent & F.col("app_user") & (d.uniform("c_push", pid) < 0.6)).alias("consent_push"),
    )
    return df.drop("u_age")


def _email(pid: Column, d: Draws) -> Column:
    first = _element(FIRST_NAMES, F.xxhash64(F.lit(d.seed), F.lit("fn"), pid))
    last = _element(LAST_NAMES, F.xxhash64(F.lit(d.seed), F.lit("ln"), pid))
    domain = _element(EMAIL_DOMAINS, F.xxhash64(F.lit(d.seed), F.lit("dom"), pid))
    return F.concat(first, F.lit("."), last, pid.cast("string"), F.lit("@"), domain)


def _phone_digits(pid: Column) -> Column:
    return F.concat(F.lit("7"), F.lpad(pid.cast("string"), 9, "0"))


def phone_formats(prefix: Column, digits: Column, u: Column) -> Column:
    """The same number written as people and systems write it; all normalize to one value."""
    return (
        F.when(u < 0.4, F.concat(F.lit("+"), prefix, digits))
        .when(u < 0.7, F.concat(F.lit("+"), prefix, F.lit(" "), F.substring(digits, 1, 4), F.lit(" "), F.substring(digits, 5, 3), F.lit(" "), F.substring(digits, 8, 3)))
        .otherwise(F.concat(F.lit("00"), prefix, F.lit(" "), F.substring(digits, 1, 4), F.lit("-"), F.substring(digits, 5, 6)))
    )


def identities(people: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Per person: clear email, phone digits and social handle (before placeholders or sharing)."""
    pid = F.col("person_id")
    prefix = F.element_at(
        F.create_map(*[x for code, v in COUNTRIES.items() for x in (F.lit(code), F.lit(v[1]))]), F.col("country")
    )
    # Household sharing: a few persons use the email of the person next to them.
    shares = d.uniform("household", pid) < 0.003
    email_owner = F.when(shares & (pid > 0), pid - 1).otherwise(pid)
    return people.select(
        "person_id",
        _email(email_owner, d).alias("email"),
        prefix.alias("phone_prefix"),
        _phone_digits(pid).alias("phone_digits"),
        F.when(F.col("has_social"), F.concat(F.lit("@"), F.substring(F.sha2(F.concat(F.lit(f"{d.seed}:h:"), pid.cast("string")), 256), 1, 10))).alias("social_handle"),
    )


def devices(people: DataFrame, d: Draws) -> DataFrame:
    """Devices and cookies per person: (person_id, device_index, device_id, platform)."""
    pid = F.col("person_id")
    df = people.select("person_id", "app_user", F.explode(F.sequence(F.lit(0), F.col("n_devices") - 1)).alias("device_index"))
    dev = F.concat(F.lit("d-"), F.substring(F.sha2(F.concat_ws(":", F.lit(d.seed), F.lit("dev"), pid, F.col("device_index")), 256), 1, 16))
    platform = F.when(
        F.col("app_user") & (F.col("device_index") == 0),
        Draws.choice_from(d.uniform("os", pid), ["ios", "android"], [45, 55]),
    ).otherwise(F.lit("web"))
    return df.select("person_id", "device_index", dev.alias("device_id"), platform.alias("platform"))


def kiosk_ids(p: GenParams) -> int:
    """Number of shared in-store kiosk devices: each is used by many persons."""
    return max(3, p.customers // 5000)
