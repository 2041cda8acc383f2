"""Top-N product recommendations per person from implicit feedback (Spark ML ALS).

Views, add-to-carts and purchases before ``as_of`` become one implicit rating per (person, product):
the kind's weight times an exponential time decay, summed. ALS factorizes those ratings. Persons it
cannot score (no interactions in the period), and lists shortened by exclusions, are filled with the
period's most popular products, so every person of the population gets ``top_n`` rows while the
catalog holds enough products. Products a person bought recently are left out unless they are
repeat-purchase items (coffee comes back, a sofa does not).
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from presage.config import RecommendationSettings
from presage.features.calendar import during
from presage.features.catalog import ENTITY
from presage.lakehouse import Lakehouse

log = logging.getLogger(__name__)

ID_BUCKETS = 256  # dense ids are numbered within hash buckets: no single-partition window over all persons
MAX_EXTRA_CANDIDATES = 50  # ALS candidates fetched beyond top_n so that exclusions leave enough; heavier buyers get popular fill
WEB_KINDS = ("product_view", "add_to_cart")
COLUMNS = (ENTITY, "rank", "product_id", "product_name", "category", "score", "source")


def catalog(spark: SparkSession, lake: Lakehouse, as_of: dt.datetime) -> DataFrame:
    """Products on sale before ``as_of``: (product_id, product_name, category, is_repeat_purchase)."""
    launched = F.col("launched_at").isNull() | (F.col("launched_at").cast("timestamp") < F.lit(as_of))
    return lake.read_silver(spark, "products").where(F.col("product_id").isNotNull() & launched).select(
        "product_id",
        F.col("name").alias("product_name"),
        "category",
        F.coalesce("is_repeat_purchase", F.lit(False)).alias("is_repeat_purchase"),
    )


def purchases(spark: SparkSession, lake: Lakehouse, start: dt.datetime, end: dt.datetime) -> DataFrame:
    """(person_id, product_id, ts) of the lines of non-cancelled orders placed in [start, end)."""
    orders = lake.read_silver(spark, "orders").where(
        F.col("person_id").isNotNull() & ~F.col("status").eqNullSafe("cancelled") & during("order_ts", start, end)
    )
    items = lake.read_silver(spark, "order_items").where(F.col("product_id").isNotNull())
    return orders.select("order_id", "person_id", F.col("order_ts").alias("ts")).join(
        items.select("order_id", "product_id"), "order_id"
    ).select("person_id", "product_id", "ts")


def ratings(
    spark: SparkSession, lake: Lakehouse, as_of: dt.datetime, settings: RecommendationSettings, products: DataFrame
) -> DataFrame:
    """Implicit ratings (person_id, product_id, rating) of catalog products from [as_of - lookback_days, as_of).

    rating = sum over interactions of weight(kind) * 0.5 ** (age_days / half_life_days).
    """
    start = as_of - dt.timedelta(days=settings.lookback_days)
    events = lake.read_silver(spark, "web_events").where(
        F.col("event_type").isin(*WEB_KINDS) & F.col("person_id").isNotNull() & F.col("product_id").isNotNull()
        & during("event_ts", start, as_of)
    ).select("person_id", "product_id", F.col("event_ts").alias("ts"), F.col("event_type").alias("kind"))
    bought = purchases(spark, lake, start, as_of).withColumn("kind", F.lit("purchase"))
    weight = F.create_map(*[x for kind, w in settings.weights.items() for x in (F.lit(kind), F.lit(float(w)))])[F.col("kind")]
    age_days = (F.unix_micros(F.lit(as_of)) - F.unix_micros(F.col("ts"))) / 86_400_000_000.0
    decayed = weight * F.pow(F.lit(0.5), age_days / F.lit(settings.half_life_days))
    rows = events.unionByName(bought).join(products.select("product_id"), "product_id", "left_semi")
    return (
        rows.select("person_id", "product_id", decayed.alias("w"))
        .where(F.col("w") > 0)
        .groupBy("person_id", "product_id")
        .agg(F.sum("w").alias("rating"))
    )


def dense_ids(keys: DataFrame, column: str, id_column: str) -> DataFrame:
    """(column, id_column): the distinct keys numbered 0..n-1, as ALS needs integer ids.

    StringIndexer would bring every key to the driver; here keys are numbered within hash buckets and
    shifted by the sizes of the buckets before them (only the bucket sizes are aggregated).
    """
    keyed = keys.select(column).distinct().withColumn("_bucket", F.pmod(F.xxhash64(column), F.lit(ID_BUCKETS)))
    local = F.row_number().over(Window.partitionBy("_bucket").orderBy(column)) - 1
    sizes = keyed.groupBy("_bucket").count()
    offsets = sizes.select("_bucket", (F.sum("count").over(Window.orderBy("_bucket")) - F.col("count")).alias("_offset"))
    return keyed.withColumn("_local", local).join(F.broadcast(offsets), "_bucket").select(
        column, (F.col("_offset") + F.col("_local")).cast("int").alias(id_column)
    )


def _als_candidates(rated: DataFrame, population: DataFrame, settings: RecommendationSettings, k: int) -> DataFrame:
    """(person_id, product_id, score) of the ``k`` best ALS items of each population person with ratings."""
    users = dense_ids(rated, "person_id", "user")
    items = dense_ids(rated, "product_id", "item")
    train = rated.join(users, "person_id").join(F.broadcast(items), "product_id").select(
        "user", "item", F.col("rating").cast("float").alias("rating")
    )
    als = ALS(
        userCol="user", itemCol="item", ratingCol="rating", implicitPrefs=True, rank=settings.rank,
        regParam=settings.reg_param, alpha=settings.alpha, maxIter=settings.max_iterations, seed=settings.seed,
        coldStartStrategy="drop",
    )
    model = als.fit(train)
    subset = population.join(users, "person_id").select("user")
    recs = model.recommendForUserSubset(subset, k).select("user", F.explode("recommendations").alias("r"))
    return recs.select("user", F.col("r.item").alias("item"), F.col("r.rating").cast("double").alias("score")).join(
        users, "user"
    ).join(F.broadcast(items), "item").select("person_id", "product_id", "score")


def _popular(products: DataFrame, rated: DataFrame, k: int) -> DataFrame:
    """(product_id, score) of the ``k`` most popular catalog products: share of the period's rating weight.

    Products nobody touched follow with score 0, so a small period still fills lists from the catalog.
    """
    per_product = rated.groupBy("product_id").agg(F.sum("rating").alias("weight"))
    total = rated.agg(F.sum("rating").alias("total"))
    share = F.coalesce(F.try_divide(F.col("weight"), F.col("total")), F.lit(0.0))
    scored = products.select("product_id").join(per_product, "product_id", "left").crossJoin(total)
    return scored.select("product_id", share.alias("score")).orderBy(F.desc("score"), "product_id").limit(k)


def recommend(
    spark: SparkSession, lake: Lakehouse, as_of: dt.datetime, settings: RecommendationSettings, persons: DataFrame
) -> DataFrame:
    """Top ``top_n`` products for each person of ``persons`` (column customer_id), from data before ``as_of``.

    Returns:
        customer_id, rank (1..top_n), product_id, product_name, category, score (double),
        source ("als": ALS preference; "popular": the product's share of the period's interaction weight).

    Raises:
        ValueError: ``persons`` has no customer_id column.
        FileNotFoundError: a silver table is missing.
    """
    if ENTITY not in persons.columns:
        raise ValueError(f"persons must have a {ENTITY} column, got {persons.columns}")
    population = persons.select(F.col(ENTITY).alias("person_id")).where(F.col("person_id").isNotNull()).distinct()
    products = catalog(spark, lake, as_of)
    rated = ratings(spark, lake, as_of, settings, products).localCheckpoint()

    recent = purchases(spark, lake, as_of - dt.timedelta(days=settings.exclude_bought_days), as_of)
    excluded = recent.join(products.where(~F.col("is_repeat_purchase")), "product_id", "left_semi").select(
        "person_id", "product_id"
    ).distinct()
    most_excluded = excluded.groupBy("person_id").count().agg(F.max("count")).first()[0] or 0
    k = settings.top_n + min(most_excluded, MAX_EXTRA_CANDIDATES)

    if rated.isEmpty():
        log.warning("recommendations: no interactions in the %d days before %s; popular products only", settings.lookback_days, as_of)
        als_rows = population.limit(0).select("person_id", F.lit("").alias("product_id"), F.lit(0.0).alias("score"))
    else:
        als_rows = _als_candidates(rated, population, settings, k)
    pair = ["person_id", "product_id"]
    als_rows = als_rows.join(excluded, pair, "left_anti").select(
        "*", F.lit("als").alias("source"), F.lit(0).alias("_priority")
    ).localCheckpoint()  # read three times below: scored once
    # Only persons whose ALS list came out short are crossed with the popular list.
    full = als_rows.groupBy("person_id").count().where(F.col("count") >= settings.top_n)
    popular_rows = (
        population.join(full, "person_id", "left_anti")
        .crossJoin(F.broadcast(_popular(products, rated, k)))
        .join(als_rows.select(*pair), pair, "left_anti")
        .join(excluded, pair, "left_anti")
        .select("*", F.lit("popular").alias("source"), F.lit(1).alias("_priority"))
    )

    candidates = als_rows.unionByName(popular_rows)
    order = Window.partitionBy("person_id").orderBy("_priority", F.desc("score"), "product_id")
    ranked = candidates.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= settings.top_n)
    named = ranked.join(F.broadcast(products.select("product_id", "product_name", "category")), "product_id")
    return named.withColumnRenamed("person_id", ENTITY).select(*COLUMNS)
