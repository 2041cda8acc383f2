"""Marketing campaigns and their funnel: send, deliver or bounce, open, click, convert, unsubscribe.

Targeting is random within the eligible audience (consent for the channel, already a customer), so
the data carries an honest treatment effect. Responses depend on the person's engagement, the match
between the campaign's channel and the person's preferred one, the campaign's category, and how far
the send hour is from the hour the person usually reads messages. Churned persons rarely respond
and never convert.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.generate.activity import hashed_id, sigmoid
from presage.generate.crm import customer_id
from presage.generate.params import CATEGORIES, CHANNEL_COST, CHANNELS, GenParams
from presage.generate.population import phone_formats
from presage.generate.rand import Draws
from presage.generate.timeline import timestamp

MESSAGING = ("email", "sms", "push")


def campaigns(spark: SparkSession, p: GenParams, d: Draws) -> DataFrame:
    n = F.col("id")
    return spark.range(p.campaigns).select(
        F.concat(F.lit("CMP-"), F.lpad((n + 1).cast("string"), 4, "0")).alias("campaign_id"),
        Draws.choice_from(d.uniform("cmp_channel", n), CHANNELS, [35, 20, 15, 15, 15]).alias("channel"),
        d.pick("cmp_day", p.days, n).cast("int").alias("campaign_day"),
        (7 + d.pick("cmp_hour", 15, n)).cast("int").alias("send_hour"),
        Draws.choice_from(d.uniform("cmp_cat", n), CATEGORIES).alias("campaign_category"),
        (0.15 + 0.25 * d.uniform("cmp_reach", n)).alias("reach"),
    )


def _eligible(channel: F.Column) -> F.Column:
    withdrawn = (F.col("update_kind") == "withdraw") & (F.col("update_day") <= F.col("campaign_day"))
    consent = (
        F.when(channel == "email", F.col("consent_email"))
        .when(channel == "sms", F.col("consent_sms"))
        .when(channel == "push", F.col("consent_push"))
        .otherwise(F.col("consent_marketing"))
    )
    return consent & ~F.coalesce(withdrawn, F.lit(False)) & (F.col("start_day") <= F.col("campaign_day"))


def funnel(people: DataFrame, idents: DataFrame, devs: DataFrame, changed: DataFrame, camps: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """One row per (campaign, targeted person) with the time of each funnel step reached (or null)."""
    pid = F.col("person_id")
    first_device = devs.where(F.col("device_index") == 0).select("person_id", "device_id", "platform")
    base = people.join(changed, "person_id", "left").join(idents, "person_id").join(first_device, "person_id")
    df = base.crossJoin(F.broadcast(camps))
    cid = F.col("campaign_id")
    df = df.where(_eligible(F.col("channel")) & (d.uniform("target", cid, pid) < F.col("reach")))

    alive = F.col("campaign_day") <= F.col("end_day")
    hour_gap = F.least(F.lit(8), F.abs(F.col("send_hour") - F.col("pref_hour")))
    affinity = F.when(F.col("channel") == F.col("pref_channel"), 1.0).otherwise(0.0)
    category = F.when(F.col("campaign_category") == F.col("pref_category"), 1.0).otherwise(0.0)
    dead = F.when(alive, 0.0).otherwise(-2.5)
    messaging = F.col("channel").isin(*MESSAGING)
    bounce_p = F.when(F.col("channel") == "email", 0.03).when(F.col("channel") == "sms", 0.02).otherwise(0.0)
    bounced = messaging & (d.uniform("bounce", cid, pid) < bounce_p)
    delivered = messaging & ~bounced
    open_p = sigmoid(-1.0 + 0.7 * F.col("z_engagement") + 1.0 * affinity - 0.3 * hour_gap + 0.3 * category + dead)
    opened = delivered & (d.uniform("open", cid, pid) < open_p)
    click_p = F.when(messaging, sigmoid(-1.3 + 0.5 * F.col("z_engagement") + 0.8 * category)).otherwise(
        sigmoid(-4.0 + 0.8 * affinity + 0.6 * category + 0.4 * F.col("z_engagement") + dead)
    )
    clicked = F.when(messaging, opened).otherwise(F.lit(True)) & (d.uniform("click", cid, pid) < click_p)
    convert_p = sigmoid(-1.0 + 0.5 * F.col("z_affluence") + 0.6 * category + 0.3 * F.col("z_loyalty"))
    converted = clicked & alive & (d.uniform("convert", cid, pid) < convert_p)
    unsubscribed = delivered & (d.uniform("unsub", cid, pid) < sigmoid(-5.5 - 0.6 * F.col("z_loyalty") + F.when(alive, 0.0).otherwise(1.5)))

    send = F.col("send_hour") * 3600 + d.pick("send_s", 1800, cid, pid)
    # Opens happen soon when the send hour suits the person, else at their usual hour (next day if past).
    habit = F.col("pref_hour") * 3600 + d.pick("open_h", 3600, cid, pid)
    open_at = F.when(hour_gap <= 1, send + 300 + d.pick("open_s", 3000, cid, pid)).otherwise(
        F.when(habit > send, habit).otherwise(habit + 86400)
    )
    click_at = F.when(messaging, open_at).otherwise(send) + 30 + d.pick("click_s", 600, cid, pid)
    convert_at = click_at + 60 + d.pick("convert_s", 7200, cid, pid)
    return df.select(
        "person_id", "campaign_id", "channel", "campaign_day", "device_id", "platform",
        customer_id(d, pid, F.lit(0)).alias("customer_id"),
        F.col("email"),
        phone_formats(F.col("phone_prefix"), F.col("phone_digits"), d.uniform("cmp_fmt", pid)).alias("phone"),
        send.alias("send_at"),
        F.when(delivered, send + 5 + d.pick("deliver_s", 600, cid, pid)).alias("deliver_at"),
        F.when(bounced, send + 5 + d.pick("bounce_s", 600, cid, pid)).alias("bounce_at"),
        F.when(opened, open_at).alias("open_at"),
        F.when(clicked, click_at).alias("click_at"),
        F.when(converted, convert_at).alias("convert_at"),
        F.when(unsubscribed, send + 600 + d.pick("unsub_s", 86400, cid, pid)).alias("unsubscribe_at"),
    )


def conversion_orders(responses: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Orders placed through campaign clicks (they join the order plan)."""
    day = F.col("campaign_day") + F.floor(F.col("convert_at") / 86400)
    return responses.where(F.col("convert_at").isNotNull() & (day < p.days)).select(
        "person_id",
        hashed_id("O", d, F.col("campaign_id"), F.col("person_id")).alias("order_id"),
        day.cast("int").alias("day"),
        (F.col("convert_at") % 86400).alias("secs"),
        "device_id", "platform", "campaign_id", "channel",
    )


def campaign_events(responses: DataFrame, orders: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """The funnel as the marketing platform exports it: one row per event."""
    steps = ["send", "deliver", "bounce", "open", "click", "conversion", "unsubscribe"]
    columns = ["send_at", "deliver_at", "bounce_at", "open_at", "click_at", "convert_at", "unsubscribe_at"]
    events = F.array(*[F.struct(F.lit(s).alias("event_type"), F.col(c).alias("at")) for s, c in zip(steps, columns)])
    df = responses.select("*", F.explode(events).alias("e")).where(F.col("e.at").isNotNull())
    order_of = orders.where(F.col("campaign_id").isNotNull()).select(
        "campaign_id", "person_id", F.col("order_id").alias("conv_order_id"), F.col("total_amount").alias("conv_revenue")
    )
    df = df.join(order_of, ["campaign_id", "person_id"], "left")
    day = F.col("campaign_day") + F.floor(F.col("e.at") / 86400)
    df = df.withColumn("day", day.cast("int")).where(F.col("day") < p.days)
    channel, event = F.col("channel"), F.col("e.event_type")
    conversion = event == "conversion"
    cost = F.create_map(*[x for k, v in CHANNEL_COST.items() for x in (F.lit(k), F.lit(v))])
    messaging = channel.isin(*MESSAGING)
    return df.select(
        hashed_id("E", d, F.col("campaign_id"), F.col("person_id").cast("string"), event).alias("event_id"),
        timestamp(p, F.col("campaign_day"), F.col("e.at")).alias("event_ts"),
        event.alias("event_type"),
        channel.alias("channel"),
        "campaign_id",
        F.when(messaging, F.col("customer_id")).alias("customer_id"),
        F.when(channel == "email", F.col("email")).alias("email"),
        F.when(channel == "sms", F.col("phone")).alias("phone"),
        F.when(~channel.isin("email", "sms"), F.col("device_id")).alias("device_id"),
        F.when(event == "send", F.element_at(cost, channel)).otherwise(0.0).alias("cost"),
        F.when(conversion, F.col("conv_revenue")).alias("revenue"),
        F.when(conversion, F.col("conv_order_id")).alias("order_id"),
        "day", "person_id",
    )
