"""Orders, order lines and web sessions, driven by each person's latent traits.

Organic orders follow a person's purchase rate, thinned by seasonality, while the person is alive
(between sign-up and churn). Browsing sessions are more frequent for engaged persons; some put
items in a cart and leave, and about a third of those come back to buy within days (recovery).
Every web or app order is preceded by a purchase session on the same device.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.generate.catalog import product_id
from presage.generate.crm import customer_id
from presage.generate.params import CATEGORIES, UTM_SOURCES, GenParams
from presage.generate.rand import Draws
from presage.generate.timeline import SEASON_PEAK, season, timestamp

RECOVERY_RATE = 0.35


def sigmoid(x: Column) -> Column:
    return F.lit(1.0) / (1.0 + F.exp(-x))


def hashed_id(prefix: str, d: Draws, *parts: Column | str) -> Column:
    digest = F.sha2(F.concat_ws(":", F.lit(d.seed), F.lit(prefix), *parts), 256)
    return F.concat(F.lit(prefix), F.upper(F.substring(digest, 1, 12)))


def with_window(people: DataFrame, p: GenParams) -> DataFrame:
    """Adds ``first_day``/``last_day``: the part of the window in which the person is alive."""
    return people.withColumn("first_day", F.greatest(F.col("start_day"), F.lit(0))).withColumn(
        "last_day", F.least(F.col("end_day"), F.lit(p.days - 1))
    ).withColumn("active_days", F.greatest(F.lit(0), F.col("last_day") - F.col("first_day") + 1))


def random_days(people: DataFrame, tag: str, rate: Column, d: Draws, thin_by_season: bool, p: GenParams) -> DataFrame:
    pid = F.col("person_id")
    peak = SEASON_PEAK if thin_by_season else 1.0
    count = d.poisson(tag, rate * F.col("active_days") * peak, pid)
    df = people.where(F.col("active_days") > 0).withColumn("n", count).where(F.col("n") > 0)
    df = df.withColumn("k", F.explode(F.sequence(F.lit(1), F.col("n"))))
    day = F.col("first_day") + F.floor(d.uniform(tag + ":day", pid, "k") * F.col("active_days"))
    df = df.withColumn("day", day.cast("int"))
    if thin_by_season:
        df = df.where(d.uniform(tag + ":thin", pid, "k") < season(p, F.col("day")) / SEASON_PEAK)
    return df


def _device(people_devices: DataFrame, df: DataFrame, d: Draws, tag: str, key: str) -> DataFrame:
    index = d.pick(tag + ":dev", F.col("n_devices"), F.col("person_id"), F.col(key))
    df = df.withColumn("device_index", index.cast("int"))
    return df.join(people_devices, ["person_id", "device_index"])


def browse_sessions(people: DataFrame, devs: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Sessions that do not end in an order: browsing, or a cart left behind."""
    rate = 0.03 * F.exp(0.6 * F.col("z_engagement"))
    df = random_days(people, "browse", rate, d, thin_by_season=False, p=p)
    df = df.withColumn("session_id", hashed_id("S", d, F.col("person_id"), F.lit("b"), F.col("k")))
    df = _device(devs, df, d, "browse", "k")
    is_cart = d.uniform("cart", "session_id") < 0.6 * F.col("p_abandon")
    return df.select(
        "person_id", "session_id", "day", "device_id", "platform",
        F.when(is_cart, "cart").otherwise("browse").alias("kind"),
        (3600 * F.col("pref_hour") + d.pick("bs", 7200, "session_id") - 3600).alias("secs"),
        (d.uniform("kiosk", "session_id") < 0.01).alias("on_kiosk"),
        F.lit(None).cast("string").alias("campaign_id"),
        F.lit(None).cast("string").alias("utm_source"),
    )


def order_plan(people: DataFrame, devs: DataFrame, sessions: DataFrame, conversions: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Every order: organic, recovered carts and campaign conversions, with its device if online."""
    organic = random_days(people, "order", F.col("order_rate"), d, thin_by_season=True, p=p)
    organic = organic.withColumn("order_id", hashed_id("O", d, F.col("person_id"), F.lit("o"), F.col("k")))
    organic = _device(devs, organic, d, "order", "k").select(
        "person_id", "order_id", "day",
        (3600 * F.col("pref_hour") + d.pick("os", 10800, "order_id") - 5400).alias("secs"),
        F.when(d.uniform("store", "order_id") < 0.3, None).otherwise(F.col("device_id")).alias("device_id"),
        F.when(d.uniform("store", "order_id") < 0.3, None).otherwise(F.col("platform")).alias("platform"),
        F.lit(None).cast("string").alias("campaign_id"),
        F.lit(None).cast("string").alias("channel"),
    )
    carts = sessions.where(F.col("kind") == "cart").join(people.select("person_id", "last_day"), "person_id")
    back = carts.withColumn("day", F.col("day") + 1 + d.pick("back", 3, "session_id").cast("int"))
    recovered = back.where((d.uniform("recover", "session_id") < RECOVERY_RATE) & (F.col("day") <= F.col("last_day"))).select(
        "person_id",
        hashed_id("O", d, F.col("session_id"), F.lit("r")).alias("order_id"),
        "day", (F.col("secs") + 600).alias("secs"), "device_id", "platform",
        F.lit(None).cast("string").alias("campaign_id"),
        F.lit(None).cast("string").alias("channel"),
    )
    converted = conversions.select("person_id", "order_id", "day", "secs", "device_id", "platform", "campaign_id", "channel")
    orders = organic.unionByName(recovered).unionByName(converted)
    secs = F.least(F.lit(86399), F.greatest(F.lit(0), F.col("secs")))
    return orders.withColumn("secs", secs.cast("long"))


def order_items(orders: DataFrame, people: DataFrame, catalog: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Order lines: the preferred category half of the time, bigger baskets for the affluent."""
    oid = F.col("order_id")
    n_lines = 1 + d.poisson("lines", 0.5 + 0.3 * F.greatest(F.col("z_affluence"), F.lit(0.0)), oid)
    df = orders.join(people.select("person_id", "pref_category", "z_affluence"), "person_id")
    df = df.withColumn("line_number", F.explode(F.sequence(F.lit(1), n_lines)))
    cat_index = F.when(
        d.uniform("line_pref", oid, "line_number") < 0.5,
        F.array_position(F.array(*[F.lit(c) for c in CATEGORIES]), F.col("pref_category")) - 1,
    ).otherwise(d.pick("line_cat", len(CATEGORIES), oid, "line_number"))
    per_category = max(1, p.products // len(CATEGORIES))
    number = cat_index + len(CATEGORIES) * d.pick("line_prod", per_category, oid, "line_number")
    df = df.withColumn("product_number", F.least(number, F.lit(p.products - 1)).cast("long"))
    df = df.join(F.broadcast(catalog.select("product_number", "product_id", "price", "is_repeat_purchase")), "product_number")
    quantity = 1 + d.poisson("qty", F.when(F.col("is_repeat_purchase"), 0.8).otherwise(0.15), oid, "line_number")
    discount = F.when(F.col("campaign_id").isNotNull(), F.round(0.1 * F.col("price") * quantity, 2)).otherwise(0.0)
    return df.select(
        "order_id", "person_id", "day",
        F.col("line_number").cast("int").alias("line_number"),
        "product_id",
        quantity.cast("int").alias("quantity"),
        F.col("price").alias("unit_price"),
        discount.alias("discount_amount"),
    )


def orders_table(plan: DataFrame, items: DataFrame, accts: DataFrame, idents: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Order headers with totals from their lines, identified as the sales channel allows."""
    oid, pid = F.col("order_id"), F.col("person_id")
    totals = items.groupBy("order_id").agg(
        F.sum(F.col("quantity") * F.col("unit_price")).alias("subtotal"), F.sum("discount_amount").alias("discount")
    )
    account = accts.groupBy("person_id").agg(F.max("account").alias("max_account"))
    df = plan.join(totals, "order_id").join(account, "person_id").join(idents.select("person_id", "email"), "person_id")
    online = F.col("device_id").isNotNull()
    sales_channel = F.when(~online, "store").when(F.col("platform") == "web", "web").otherwise("app")
    use_dup = (F.col("max_account") == 1) & (d.uniform("use_dup", oid) < 0.3)
    guest = (online & (F.col("platform") == "web") & (d.uniform("guest", oid) < 0.12)) | (
        ~online & (d.uniform("no_card", oid) < 0.1)
    )
    customer = F.when(guest, None).otherwise(customer_id(d, pid, F.when(use_dup, 1).otherwise(0)))
    email = F.when(online | (d.uniform("receipt", oid) < 0.4), F.col("email"))
    shipping = F.when(~online | (F.col("subtotal") >= 50), 0.0).otherwise(4.95)
    status = Draws.choice_from(d.uniform("status", oid), ["completed", "returned", "cancelled"], [92, 5, 3])
    return df.select(
        "order_id",
        customer.alias("customer_id"),
        email.alias("email"),
        "device_id",
        timestamp(p, F.col("day"), F.col("secs")).alias("order_ts"),
        sales_channel.alias("sales_channel"),
        status.alias("status"),
        F.lit("EUR").alias("currency"),
        F.round(F.col("subtotal") - F.col("discount") + shipping, 2).alias("total_amount"),
        F.round(F.col("discount"), 2).alias("discount_amount"),
        shipping.alias("shipping_amount"),
        "campaign_id",
        "day", "secs", "person_id", "platform", "channel",
    )


def purchase_sessions(orders: DataFrame) -> DataFrame:
    """The session that ends in each online order, on the order's device, shortly before it."""
    return orders.where(F.col("device_id").isNotNull()).select(
        "person_id",
        F.concat(F.lit("S"), F.substring(F.col("order_id"), 2, 12)).alias("session_id"),
        "day", "device_id", "platform",
        F.lit("purchase").alias("kind"),
        F.col("secs").alias("secs"),
        F.lit(False).alias("on_kiosk"),
        "campaign_id",
        F.col("channel").alias("utm_source"),
        F.col("customer_id").alias("order_customer_id"),
    )


def web_events(sessions: DataFrame, accts: DataFrame, p: GenParams, d: Draws) -> DataFrame:
    """Clickstream rows of every session; logged-in events carry the CRM id, others only the device."""
    sid = F.col("session_id")
    primary = accts.where(F.col("account") == 0).select("person_id", F.col("customer_id").alias("primary_id"))
    df = sessions.join(primary, "person_id")
    n = 2 + d.poisson("events", F.lit(3.0), sid)
    df = df.withColumn("n", n.cast("int")).withColumn("i", F.explode(F.sequence(F.lit(0), F.col("n") - 1)))
    last = F.col("i") == F.col("n") - 1
    kind = F.col("kind")
    browse_type = Draws.choice_from(d.uniform("etype", sid, "i"), ["page_view", "product_view", "search"], [2, 6, 2])
    event_type = (
        F.when((kind == "purchase") & last, "checkout")
        .when((kind == "purchase") & (F.col("i") == F.col("n") - 2), "add_to_cart")
        .when((kind == "cart") & last, "add_to_cart")
        .when((kind == "cart") & (F.col("i") == F.col("n") - 2) & (d.uniform("remove", sid) < 0.2), "remove_from_cart")
        .otherwise(browse_type)
    )
    kiosk = F.concat(F.lit("k-"), d.pick("kiosk_id", max(3, p.customers // 5000), sid).cast("string"))
    device = F.when(F.col("on_kiosk"), kiosk).otherwise(F.col("device_id"))
    platform = F.when(F.col("on_kiosk"), "web").otherwise(F.col("platform"))
    logged_in = (
        F.col("on_kiosk")
        | (platform != "web")
        | ((kind == "purchase") & F.col("order_customer_id").isNotNull())
        | (d.uniform("login", sid) < 0.35)
    )
    customer = F.when(kind == "purchase", F.col("order_customer_id")).otherwise(F.col("primary_id"))
    product_number = d.pick("viewed", p.products, sid, "i")
    product = F.when(event_type.isin("product_view", "add_to_cart", "remove_from_cart"), product_id(product_number))
    query = F.when(event_type == "search", Draws.choice_from(d.uniform("query", sid, "i"), CATEGORIES))
    page = (
        F.when(product.isNotNull(), F.concat(F.lit("/p/"), product))
        .when(event_type == "search", F.concat(F.lit("/search?q="), query))
        .when(event_type == "checkout", F.lit("/checkout"))
        .otherwise(Draws.choice_from(d.uniform("page", sid, "i"), ["/", "/sale", "/new", "/account"]))
    )
    first_secs = F.greatest(F.lit(0), F.col("secs") - F.col("n") * 75)
    secs = F.least(F.lit(86399), first_secs + F.col("i") * 75 + d.pick("gap", 60, sid, "i"))
    utm_source = F.coalesce(F.col("utm_source"), F.when(d.uniform("has_utm", sid) < 0.6, Draws.choice_from(d.uniform("utm", sid), UTM_SOURCES)))
    return df.select(
        hashed_id("W", d, sid, F.col("i").cast("string")).alias("event_id"),
        timestamp(p, F.col("day"), secs).alias("event_ts"),
        event_type.alias("event_type"),
        sid.alias("session_id"),
        device.alias("device_id"),
        F.when(logged_in, customer).alias("customer_id"),
        platform.alias("platform"),
        page.alias("page_url"),
        product.alias("product_id"),
        query.alias("search_query"),
        F.when(F.col("i") == 0, utm_source).alias("utm_source"),
        F.when(F.col("i") == 0, F.col("campaign_id")).alias("utm_campaign"),
        "day", "person_id",
    )
