"""``presage generate``: build every raw source with Spark and write drops plus the ground truth."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage import fs
from presage.generate import activity, campaigns, catalog, crm, population, social
from presage.generate.dirty import DIRTY_COLUMN, plant
from presage.generate.drops import write_source
from presage.generate.params import GenParams
from presage.generate.rand import Draws
from presage.generate.timeline import drop_of
from presage.lakehouse import Lakehouse
from presage.privacy import normalize_column
from presage.schemas import RAW_SOURCES, key_columns, load_schema

log = logging.getLogger(__name__)


def _columns(source: str) -> list[str]:
    names = [f.name for f in load_schema(source).fields]
    return names + crm.EXTRA_ATTRIBUTES if source == "customers" else names


def build(spark: SparkSession, p: GenParams) -> dict[str, DataFrame]:
    """Every raw source as a DataFrame with ``day`` and ``person_id`` (truth) columns, before dirt."""
    d = Draws(p.seed)
    people = activity.with_window(population.persons(spark, p, d), p).persist()
    idents = population.identities(people, p, d).persist()
    devs = population.devices(people, d).persist()
    accts = crm.accounts(people, d).persist()
    changed = crm.changes(people, p, d).persist()
    products = catalog.products(spark, p, d).persist()

    camps = campaigns.campaigns(spark, p, d)
    responses = campaigns.funnel(people, idents, devs, changed, camps, p, d).persist()
    browse = activity.browse_sessions(people, devs, p, d).persist()
    plan = activity.order_plan(people, devs, browse, campaigns.conversion_orders(responses, p, d), p, d)
    items = activity.order_items(plan, people, products, p, d).persist()
    orders = activity.orders_table(plan, items, accts, idents, p, d).persist()
    sessions = browse.unionByName(activity.purchase_sessions(orders), allowMissingColumns=True)
    return {
        "people": people,
        "identities": idents,
        "devices": devs,
        "accounts": accts,
        "customers": crm.records(people, idents, accts, changed, p, d),
        "products": products,
        "orders": orders,
        "order_items": items,
        "web_events": activity.web_events(sessions, accts, p, d),
        "campaign_events": campaigns.campaign_events(responses, orders, p, d),
        "social_events": social.social_events(people, accts, idents, p, d),
        "reviews": social.reviews(orders, items, people, p, d),
    }


def _truth_identities(frames: dict[str, DataFrame]) -> DataFrame:
    """Identifier -> person, for every identifier value the drops contain (before dirt)."""
    parts = [
        frames["accounts"].select(F.lit("customer_id").alias("kind"), F.col("customer_id").alias("value"), "person_id"),
        frames["customers"].select(F.lit("email").alias("kind"), normalize_column("email", F.col("email")).alias("value"), "person_id"),
        frames["customers"].select(F.lit("phone").alias("kind"), normalize_column("phone", F.col("phone")).alias("value"), "person_id"),
        frames["identities"].select(F.lit("email").alias("kind"), normalize_column("email", F.col("email")).alias("value"), "person_id"),
        frames["identities"].select(F.lit("phone").alias("kind"), F.concat("phone_prefix", "phone_digits").alias("value"), "person_id"),
        frames["identities"].select(F.lit("social_handle").alias("kind"), F.col("social_handle").alias("value"), "person_id"),
        frames["web_events"].select(F.lit("device_id").alias("kind"), F.col("device_id").alias("value"), "person_id"),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.where(F.col("value").isNotNull()).distinct()


def generate(spark: SparkSession, p: GenParams, lake: Lakehouse) -> dict:
    """Write all raw drops and the truth; return the manifest (rows and dirty rows per source)."""
    frames = build(spark, p)
    d = Draws(p.seed)
    buckets = max(1, p.customers // 500_000)
    manifest: dict = {"params": {k: str(v) for k, v in asdict(p).items()}, "sources": {}}
    for source in RAW_SOURCES:
        keys = key_columns(load_schema(source))
        df = frames[source].withColumn("drop", drop_of(p, F.col("day")))
        row_key = F.concat_ws("|", *[F.col(k).cast("string") for k in keys])
        df = plant(df, source, p.dirty_rate, d, row_key).persist()
        columns = _columns(source)
        write_source(spark, df, source, columns, keys, lake.raw(source), buckets)
        stats = df.groupBy(DIRTY_COLUMN).count().collect()
        dirty = {r[DIRTY_COLUMN]: r["count"] for r in stats if r[DIRTY_COLUMN] is not None}
        # A duplicate is written twice; only the second copy is dirty.
        if "duplicate" in dirty:
            dirty["duplicate"] //= 2
        drops = sorted(r["drop"] for r in df.select("drop").distinct().collect())
        manifest["sources"][source] = {"rows": sum(r["count"] for r in stats), "dirty": dirty, "drops": drops}
        log.info("generated %s: %s rows in %d drops", source, manifest["sources"][source]["rows"], len(drops))
        df.unpersist()
    truth = lake.truth
    frames["people"].write.mode("overwrite").parquet(f"{truth}/persons")
    _truth_identities(frames).write.mode("overwrite").parquet(f"{truth}/identities")
    manifest_path = f"{truth}/manifest.json"
    spark.createDataFrame([(json.dumps(manifest, indent=2),)], "value string").coalesce(1).write.mode("overwrite").text(f"{truth}/_manifest_tmp")
    fs.delete(spark, manifest_path)
    [part] = [f.path for f in fs.list_files(spark, f"{truth}/_manifest_tmp") if f.path.rsplit("/", 1)[-1].startswith("part-")]
    fs.rename(spark, part, manifest_path)
    fs.delete(spark, f"{truth}/_manifest_tmp")
    return manifest
