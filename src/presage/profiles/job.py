"""``presage build-profiles``: the silver layer, incrementally.

Order of a run: resolve identities (MERGE into ``identity_map``), bring the bronze rows that arrived
since the last run (Change Data Feed) into the clean fact tables and re-key the facts whose
identifiers changed person, then recompute history and profile for exactly the persons touched.
A run ends by appending the versions it consumed to ``silver/_build_log``; a run that crashed
before that is simply redone, and every write is a MERGE that leaves equal rows alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from presage.config import Settings
from presage.lakehouse import Lakehouse
from presage.profiles.facts import (
    FACT_SOURCES,
    LINEAGE,
    attach_person,
    bronze_type,
    data_columns,
    keys_of,
    latest_per_key,
    touched_by,
    with_order_person,
)
from presage.profiles.identity import observations, resolve
from presage.profiles.merge import changed_rows, replace_scope, table_version, upsert
from presage.profiles.profile import customer_profile, history, history_attributes, statements

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityResult:
    persons: int
    identifiers: int
    shared: int
    merges: int
    changed: int


def build_identity_map(spark: SparkSession, settings: Settings, lake: Lakehouse) -> IdentityResult:
    """Resolve identities and MERGE the changes into ``silver/identity_map``; record merges."""
    path = lake.silver("identity_map")
    exists = DeltaTable.isDeltaTable(spark, path)
    previous = None
    version = -1
    if exists:
        table = DeltaTable.forPath(spark, path)
        version = table_version(table)
        previous = spark.read.format("delta").option("versionAsOf", version).load(path).select(
            F.col("identifier").alias("node"), "person_id"
        )
    resolution = resolve(observations(spark, lake), settings, previous)
    new_map = resolution.identity_map.localCheckpoint()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    merges = resolution.merges.withColumn("merged_at", F.lit(now).cast("timestamp")).localCheckpoint()
    n_merges = merges.count()
    # Recorded before the map changes, once per map version (a rerun after a crash does not repeat it).
    (
        merges.write.format("delta").mode("append")
        .option("txnAppId", "presage-identity-merges").option("txnVersion", version + 1)
        .save(lake.silver("identity_merges"))
    )
    if not exists:
        new_map.write.format("delta").option("delta.enableChangeDataFeed", "true").save(path)
        changed = new_map.count()
    else:
        before = DeltaTable.forPath(spark, path)
        last = table_version(before)
        (
            before.alias("t")
            .merge(new_map.alias("s"), "t.identifier = s.identifier")
            .whenMatchedUpdate(
                condition="NOT (t.person_id <=> s.person_id) OR t.is_shared <> s.is_shared",
                set={"person_id": "s.person_id", "is_shared": "s.is_shared"},
            )
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete()
            .execute()
        )
        changed = changed_rows(before, last)
    stats = new_map.agg(
        F.countDistinct("person_id").alias("persons"), F.count("*").alias("identifiers"), F.sum(F.col("is_shared").cast("int")).alias("shared")
    ).first()
    result = IdentityResult(int(stats["persons"]), int(stats["identifiers"]), int(stats["shared"] or 0), n_merges, changed)
    log.info("identity map: %s", result)
    return result


BUILD_LOG = "_build_log"
DIMENSIONS = ("products",)


@dataclass(frozen=True)
class SilverResult:
    identity: IdentityResult
    written: dict[str, int]  # silver table -> rows inserted, updated or deleted
    persons_in_scope: int
    full: bool


def _version(spark: SparkSession, path: str) -> int | None:
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return table_version(DeltaTable.forPath(spark, path))


def _last_build(spark: SparkSession, lake: Lakehouse) -> dict[str, int]:
    path = lake.silver(BUILD_LOG)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    last = spark.read.format("delta").load(path).orderBy(F.desc("run")).first()
    return dict(last["versions"]) if last else {}


def _table(spark: SparkSession, path: str, source: str, person: bool, version: int | None = None) -> DataFrame:
    """A bronze or silver table, or an empty frame of its columns when no run has created it yet."""
    if DeltaTable.isDeltaTable(spark, path):
        reader = spark.read.format("delta")
        return (reader.option("versionAsOf", version) if version is not None else reader).load(path)
    fields = [StructField(c, bronze_type(source, c)) for c in data_columns(source)]
    fields += [StructField("_batch_id", StringType()), StructField("_ingested_at", TimestampType())]
    if person:
        fields.append(StructField("person_id", StringType()))
    return spark.createDataFrame([], StructType(fields))


def _arrived(spark: SparkSession, path: str, after: int | None, upto: int) -> DataFrame | None:
    """Rows of a table added in versions (after, upto]: the whole snapshot when ``after`` is None."""
    reader = spark.read.format("delta")
    if after is None:
        return reader.option("versionAsOf", upto).load(path)
    if after >= upto:
        return None
    cdf = reader.option("readChangeFeed", "true").option("startingVersion", after + 1).option("endingVersion", upto).load(path)
    return cdf.where(F.col("_change_type").isin("insert", "update_postimage")).drop("_change_type", "_commit_version", "_commit_timestamp")


def _identity_changes(spark: SparkSession, lake: Lakehouse, after: int, upto: int) -> DataFrame | None:
    """(identifier, person_id) of every row the identity map changed in (after, upto], old and new ids."""
    if after >= upto:
        return None
    cdf = (
        spark.read.format("delta").option("readChangeFeed", "true")
        .option("startingVersion", after + 1).option("endingVersion", upto).load(lake.silver("identity_map"))
    )
    return cdf.select("identifier", "person_id")


def _fact_rows(
    spark: SparkSession, settings: Settings, lake: Lakehouse, source: str, new: DataFrame | None,
    changed: DataFrame | None, identity_map: DataFrame, orders_changed: DataFrame | None,
) -> DataFrame | None:
    """The rows of one silver fact table this run writes: arrivals plus rows to re-key."""
    path = lake.silver(source)
    keys = keys_of(source)
    columns = [*data_columns(source), *LINEAGE]
    rows = latest_per_key(new, source) if new is not None else None
    silver = spark.read.format("delta").load(path) if DeltaTable.isDeltaTable(spark, path) else None
    redo = None
    if silver is not None and source == "order_items" and orders_changed is not None:
        redo = silver.join(orders_changed, "order_id", "left_semi")
    elif silver is not None and source != "order_items" and changed is not None:
        redo = silver.join(touched_by(silver, source, settings, changed), keys, "left_semi")
    if redo is not None:
        redo = redo.select(*columns)
        rows = redo if rows is None else rows.unionByName(redo.join(rows.select(*keys), keys, "left_anti"))
    if rows is None:
        return None
    if source == "order_items":
        return with_order_person(rows, _table(spark, lake.silver("orders"), "orders", person=True))
    return attach_person(rows, source, settings, identity_map)


def build_silver(spark: SparkSession, settings: Settings, lake: Lakehouse) -> SilverResult:
    """One incremental run of the silver layer (the first run, or a new source, reads everything)."""
    done = _last_build(spark, lake)
    identity = build_identity_map(spark, settings, lake)
    versions = {s: v for s in (*FACT_SOURCES, *DIMENSIONS, "customers") if (v := _version(spark, lake.bronze(s))) is not None}
    versions["identity_map"] = _version(spark, lake.silver("identity_map"))
    identity_map = spark.read.format("delta").option("versionAsOf", versions["identity_map"]).load(lake.silver("identity_map"))
    identity_map = identity_map.localCheckpoint()
    full = "identity_map" not in done
    changed = None if full else _identity_changes(spark, lake, done["identity_map"], versions["identity_map"])
    if changed is not None:
        changed = changed.localCheckpoint()
    touched: list[DataFrame] = [] if changed is None else [changed.select("person_id")]
    written: dict[str, int] = {}

    orders_changed = None
    for source in FACT_SOURCES:
        if source not in versions:
            continue
        new = _arrived(spark, lake.bronze(source), done.get(source), versions[source])
        rows = _fact_rows(spark, settings, lake, source, new, changed, identity_map, orders_changed)
        if rows is None:
            continue
        rows = rows.localCheckpoint()
        keys = keys_of(source)
        path = lake.silver(source)
        if DeltaTable.isDeltaTable(spark, path):
            before = spark.read.format("delta").load(path).join(rows.select(*keys), keys, "left_semi")
            touched.append(before.select("person_id").localCheckpoint())
        touched.append(rows.select("person_id"))
        written[source] = upsert(spark, path, rows, keys)
        if source == "orders":
            orders_changed = rows.select("order_id")
    for source in DIMENSIONS:
        if source in versions:
            new = _arrived(spark, lake.bronze(source), done.get(source), versions[source])
            if new is not None:
                written[source] = upsert(spark, lake.silver(source), latest_per_key(new, source), keys_of(source))

    customers = _table(spark, lake.bronze("customers"), "customers", person=False, version=versions.get("customers"))
    crm_new = None
    if "customers" in versions:
        crm_new = _arrived(spark, lake.bronze("customers"), done.get("customers"), versions["customers"])
    if crm_new is not None and not full:
        crm_nodes = crm_new.select(F.concat(F.lit("customer_id:"), "customer_id").alias("identifier"))
        touched.append(identity_map.join(crm_nodes, "identifier", "left_semi").select("person_id"))

    everyone = identity_map.select("person_id")
    scope_parts = [everyone] if full else touched
    scope = scope_parts[0]
    for part in scope_parts[1:]:
        scope = scope.unionByName(part)
    scope = scope.where(F.col("person_id").isNotNull()).distinct().localCheckpoint()
    in_scope = identity_map.join(scope, "person_id", "left_semi")
    facts = {s: _table(spark, lake.silver(s), s, person=True).join(scope, "person_id", "left_semi") for s in FACT_SOURCES}
    said = statements(customers, facts["campaign_events"], in_scope)
    hist = history(said, history_attributes(customers)).localCheckpoint()
    written["customer_profile_history"] = replace_scope(spark, lake.silver("customer_profile_history"), hist, ["person_id", "valid_from"], scope)
    current = hist.where("is_current")
    profile = customer_profile(in_scope, current, facts, customers).localCheckpoint()
    written["customer_profile"] = replace_scope(spark, lake.silver("customer_profile"), profile, ["person_id"], scope)

    n_scope = scope.count()
    log_row = spark.createDataFrame(
        [(int(dt.datetime.now(dt.UTC).timestamp() * 1000), versions, n_scope)], "run long, versions map<string,long>, persons_in_scope long"
    )
    log_row.write.format("delta").mode("append").save(lake.silver(BUILD_LOG))
    result = SilverResult(identity, written, n_scope, full)
    log.info("silver: %s", result)
    return result
