"""Social interactions and product reviews, with text whose tone follows the person's loyalty.

Comments and mentions turn negative in the weeks before a person churns, and review ratings follow
loyalty, so sentiment carries real (noisy) signal about churn risk.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.generate.activity import hashed_id, random_days, sigmoid
from presage.generate.params import NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS, SOCIAL_PLATFORMS, GenParams
from presage.generate.rand import Draws
from presage.generate.timeline import timestamp


def _words(words: list[str], d: Draws, tag: str, key: Column) -> Column:
    return Draws.choice_from(d.uniform(tag, key), words)


def _sentence(tone: Column, d: Draws, key: Column) -> Column:
    """A short text: positive, negative or neutral words around neutral ones."""
    pos = F.concat_ws(" ", _words(POSITIVE_WORDS, d, "w1", key), _words(NEUTRAL_WORDS, d, "w2", key), _words(POSITIVE_WORDS, d, "w3", key))
    neg = F.concat_ws(" ", _words(NEGATIVE_WORDS, d, "w1", key), _words(NEUTRAL_WORDS, d, "w2", key), _words(NEGATIVE_WORDS, d, "w3", key))
    neu = F.concat_ws(" ", _words(NEUTRAL_WORDS, d, "w1", key), _words(NEUTRAL_WORDS, d, "w2", key))
    return F.when(tone > 0, pos).when(tone < 0, neg).otherwise(neu)


def _tone(d: Draws, tag: str, key: Column, negativity: Column) -> Column:
    u = d.uniform(tag, key)
    p_neg = sigmoid(negativity)
    return F.when(u < p_neg, -1).when(u < p_neg + 0.35, 0).otherwise(1)


def social_events(people: DataFrame, accts: DataFrame, idents: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    social = people.where(F.col("has_social")).withColumn("last_day", F.least(F.col("last_day") + 30, F.lit(p.days - 1)))
    social = social.withColumn("active_days", F.greatest(F.lit(0), F.col("last_day") - F.col("first_day") + 1))
    df = random_days(social, "social", 0.012 * F.exp(0.5 * F.col("z_engagement")), d, thin_by_season=False, p=p)
    eid = hashed_id("X", d, F.col("person_id").cast("string"), F.col("k").cast("string"))
    df = df.withColumn("event_id", eid)
    event_type = Draws.choice_from(d.uniform("stype", "event_id"), ["like", "share", "comment", "mention"], [55, 10, 25, 10])
    near_churn = (F.col("end_day") - F.col("day") < 45).cast("double")
    tone = _tone(d, "stone", F.col("event_id"), -1.5 - 0.8 * F.col("z_loyalty") + 2.0 * near_churn)
    text = F.when(event_type.isin("comment", "mention"), F.concat(_sentence(tone, d, F.col("event_id")), F.lit(" @presagestore")))
    df = df.join(accts.where(F.col("account") == 0).select("person_id", "customer_id"), "person_id").join(idents.select("person_id", "social_handle"), "person_id")
    return df.select(
        "event_id",
        timestamp(p, F.col("day"), 3600 * F.col("pref_hour") + d.pick("ssec", 7200, "event_id")).alias("event_ts"),
        Draws.choice_from(d.uniform("platform", "person_id"), SOCIAL_PLATFORMS).alias("platform"),
        event_type.alias("event_type"),
        "social_handle",
        F.when(d.uniform("linked", "person_id") < 0.15, F.col("customer_id")).alias("customer_id"),
        F.concat(F.lit("post-"), d.pick("post", 400, "event_id").cast("string")).alias("post_id"),
        text.alias("text"),
        "day", "person_id",
    )


def reviews(orders: DataFrame, items: DataFrame, people: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """About 8% of completed orders get a review of their first line, days after delivery."""
    oid = F.col("order_id")
    first_lines = items.where(F.col("line_number") == 1).select("order_id", "product_id")
    df = orders.where((F.col("status") != "cancelled") & F.col("customer_id").isNotNull()).join(first_lines, "order_id")
    df = df.join(people.select("person_id", "z_loyalty", "end_day"), "person_id")
    df = df.where(d.uniform("review", oid) < 0.08)
    df = df.withColumn("day", F.col("day") + 3 + d.pick("review_day", 18, oid).cast("int")).where(F.col("day") < p.days)
    near_churn = (F.col("end_day") - F.col("day") < 60).cast("double")
    score = 3.8 + 0.9 * F.col("z_loyalty") - 1.2 * near_churn + 0.9 * d.normal("rating", oid)
    rating = F.least(F.lit(5), F.greatest(F.lit(1), F.round(score))).cast("int")
    tone = F.when(rating >= 4, 1).when(rating <= 2, -1).otherwise(0)
    return df.select(
        hashed_id("R", d, oid).alias("review_id"),
        timestamp(p, F.col("day"), 3600 * 18 + d.pick("rsec", 14400, oid)).alias("review_ts"),
        "customer_id", "product_id", "order_id",
        rating.alias("rating"),
        F.element_at(F.array(*[F.lit(t) for t in ["Awful", "Poor", "Okay", "Good", "Great"]]), rating).alias("title"),
        _sentence(tone, d, oid).alias("text"),
        "day", "person_id",
    )
