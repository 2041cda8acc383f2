"""Category affinity: where a person's money went in the year before each snapshot."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from presage.features.daily import day_index


def category_days(orders: DataFrame, items: DataFrame, products: DataFrame) -> DataFrame:
    """(person_id, category, day, spend) of completed orders' lines (unknown products: 'unknown')."""
    completed = orders.where(F.col("person_id").isNotNull() & (F.col("status") == "completed")).select(
        "order_id", "person_id", day_index(F.col("order_ts")).alias("day")
    )
    lines = items.select("order_id", "product_id", "quantity", "unit_price", "discount_amount").join(completed, "order_id").join(products.select("product_id", "category"), "product_id", "left")
    spend = F.col("quantity") * F.col("unit_price") - F.coalesce(F.col("discount_amount"), F.lit(0.0))
    return lines.groupBy("person_id", F.coalesce("category", F.lit("unknown")).alias("category"), "day").agg(
        F.sum(F.greatest(spend, F.lit(0.0))).alias("spend")
    )


def affinity(spend: DataFrame, snapshots: DataFrame, window_days: int = 365) -> DataFrame:
    """(person_id, snapshot_day, top_category_365d, top_category_share_365d, categories_365d).

    ``snapshots`` holds (person_id, day) marker rows; a person without spend in the window is absent.
    """
    pairs = spend.groupBy("person_id", "category").agg(F.min("day").alias("_first"))
    markers = snapshots.join(pairs, "person_id").where(F.col("_first") < F.col("day")).select("person_id", "category", "day")
    stacked = spend.withColumn("_marker", F.lit(False)).unionByName(markers.withColumn("_marker", F.lit(True)), allowMissingColumns=True)
    frame = Window.partitionBy("person_id", "category").orderBy("day").rangeBetween(-window_days, -1)
    windowed = stacked.select("person_id", "category", "day", "_marker", F.sum("spend").over(frame).alias("spend"))
    per = windowed.where(F.col("_marker") & (F.col("spend") > 0))
    return per.groupBy("person_id", F.col("day").alias("snapshot_day")).agg(
        F.max_by("category", F.struct("spend", F.col("category"))).alias("top_category_365d"),
        (F.max("spend") / F.sum("spend")).alias("top_category_share_365d"),
        F.count("*").cast("long").alias("categories_365d"),
    )
