"""The product catalog."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.generate.params import BRANDS, CATEGORIES, CATEGORY_PRICE, REPEAT_CATEGORIES, GenParams
from presage.generate.rand import Draws


def product_id(number) -> F.Column:
    return F.concat(F.lit("P"), F.lpad(number.cast("string"), 6, "0"))


def products(spark: SparkSession, p: GenParams, d: Draws) -> DataFrame:
    """Products: category = number modulo the category count, log-normal prices around a median."""
    n = F.col("id")
    category = F.element_at(F.array(*[F.lit(c) for c in CATEGORIES]), (n % len(CATEGORIES)).cast("int") + 1)
    median = F.element_at(F.create_map(*[x for c, v in CATEGORY_PRICE.items() for x in (F.lit(c), F.lit(v))]), category)
    price = F.round(median * F.exp(0.55 * d.normal("price", n)), 2) - 0.01
    return spark.range(p.products).select(
        n.alias("product_number"),
        product_id(n).alias("product_id"),
        F.concat_ws(" ", Draws.choice_from(d.uniform("brand", n), BRANDS), category, n.cast("string")).alias("name"),
        category.alias("category"),
        F.concat(category, F.lit("-"), (d.pick("sub", 4, n) + 1).cast("string")).alias("subcategory"),
        Draws.choice_from(d.uniform("brand", n), BRANDS).alias("brand"),
        F.greatest(F.lit(0.99), price).alias("price"),
        category.isin(*REPEAT_CATEGORIES).alias("is_repeat_purchase"),
        F.date_sub(F.lit(p.start_date), d.pick("launch", 900, n).cast("int")).alias("launched_at"),
        F.lit(0).alias("day"),
    )
