"""Identity resolution: identifiers seen together belong to one person (connected components).

Every bronze row links the identifiers it carries (CRM id, hashed email and phone, device or cookie
id, social handle). The graph of those links is split into connected components in Spark, with the
guard rails of customer-data platforms: blocked values (placeholders) never link, and an identifier
seen with more CRM ids than its limit is *shared* (a household address, a store kiosk) and links
nobody. Person ids are stable: a component keeps the id its members had, two persons that become
linked merge into the one that had more members (the merge is recorded), and a rerun on the same
data changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from presage.config import Settings
from presage.lakehouse import Lakehouse
from presage.privacy import load_key, pseudonymize
from presage.schemas import RAW_SOURCES, hashed_name, load_schema, pii_columns

log = logging.getLogger(__name__)

MAX_ITERATIONS = 60


def identifier_columns(source: str) -> dict[str, str]:
    """Identifier kind -> bronze column of a source (PII columns are stored hashed)."""
    schema = load_schema(source)
    pii = pii_columns(schema)
    return {
        f.metadata["identifier"]: hashed_name(f.name) if f.name in pii else f.name
        for f in schema.fields
        if f.metadata.get("identifier")
    }


def node(kind: str, value: Column) -> Column:
    """The graph node of an identifier: ``kind:value`` (null for null or blank values)."""
    return F.when(value.isNotNull() & (F.trim(value) != ""), F.concat(F.lit(f"{kind}:"), value))


def kind_of(node_col: Column) -> Column:
    return F.substring_index(node_col, ":", 1)


def observations(spark: SparkSession, lake: Lakehouse) -> DataFrame:
    """Distinct sets of identifiers seen together in one bronze row, as ``nodes`` arrays."""
    frames = []
    for source in RAW_SOURCES:
        columns = identifier_columns(source)
        if len(columns) == 0 or not DeltaTable.isDeltaTable(spark, lake.bronze(source)):
            continue
        bronze = spark.read.format("delta").load(lake.bronze(source))
        nodes = F.array_compact(F.array(*[node(kind, F.col(column)) for kind, column in columns.items()]))
        frames.append(bronze.select(nodes.alias("nodes")))
    if not frames:
        raise FileNotFoundError(f"no bronze tables under {lake.path('bronze')}: run `presage ingest` first")
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out.where(F.size("nodes") > 0).distinct()


def blocked_nodes(settings: Settings) -> list[str]:
    """Blocked identifier values as graph nodes (emails and phones hashed like bronze)."""
    key = load_key(settings)
    out = []
    for kind, values in settings.identity.blocked.items():
        for value in values:
            stored = pseudonymize(kind, value, key) if kind in ("email", "phone") else value
            out.append(f"{kind}:{stored}")
    return out


def shared_nodes(obs: DataFrame, settings: Settings) -> DataFrame:
    """Identifiers seen with more distinct CRM ids than their kind's limit: (node)."""
    limits = settings.identity.max_customers_per_identifier
    with_customer = obs.select(
        F.filter("nodes", lambda n: n.startswith("customer_id:")).alias("customers"),
        F.filter("nodes", lambda n: ~n.startswith("customer_id:")).alias("others"),
    ).where(F.size("customers") > 0)
    pairs = with_customer.select(F.explode("customers").alias("customer"), "others").select(
        "customer", F.explode("others").alias("node")
    )
    counts = pairs.groupBy("node").agg(F.countDistinct("customer").alias("customers"))
    limit = F.element_at(F.create_map(*[x for k, v in limits.items() for x in (F.lit(k), F.lit(v))]), kind_of(F.col("node")))
    return counts.where(limit.isNotNull() & (F.col("customers") > limit)).select("node")


def components(edges: DataFrame, nodes: DataFrame) -> DataFrame:
    """Connected components by min-label propagation: (node, label), label = smallest node key.

    Raises:
        RuntimeError: no convergence in ``MAX_ITERATIONS`` rounds (a pathological graph).
    """
    both = edges.select("src", "dst").unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    both = both.localCheckpoint()
    labels = nodes.select("node", F.col("node").alias("label")).localCheckpoint()
    for iteration in range(1, MAX_ITERATIONS + 1):
        messages = both.join(labels, both.src == labels.node).select(F.col("dst").alias("node"), "label")
        updated = labels.unionByName(messages).groupBy("node").agg(F.min("label").alias("label")).localCheckpoint()
        changed = updated.join(labels.withColumnRenamed("label", "old"), "node").where(F.col("label") != F.col("old")).count()
        labels = updated
        log.info("identity components: iteration %d, %d labels changed", iteration, changed)
        if changed == 0:
            return labels
    raise RuntimeError(f"identity graph did not converge in {MAX_ITERATIONS} iterations")


def _oversized(labels: DataFrame, cap: int) -> DataFrame:
    """Labels of components holding more than ``cap`` CRM ids: (label)."""
    crm = labels.where(kind_of(F.col("node")) == "customer_id").groupBy("label").count()
    return crm.where(F.col("count") > cap).select("label")


def prioritized_components(edges: DataFrame, nodes: DataFrame, settings: Settings) -> DataFrame:
    """Components where no person holds more CRM ids than allowed: (node, label).

    An oversized component (a chain of weak links through many customers) is recomputed without the
    links of its least-trusted identifier kind, then the next one, until it falls apart enough.
    """
    rules = settings.identity
    labels = components(edges, nodes)
    dropped: list[str] = []
    for kind in reversed(rules.priority):
        oversized = _oversized(labels, rules.max_customer_ids_per_person)
        if kind == "customer_id" or oversized.isEmpty():
            break
        dropped.append(kind)
        inside = labels.join(oversized, "label").select("node").localCheckpoint()
        log.info("identity: %d identifiers in oversized persons, dropping %s links", inside.count(), dropped)
        kept = edges.where(~kind_of(F.col("src")).isin(dropped) & ~kind_of(F.col("dst")).isin(dropped))
        kept = kept.join(inside.withColumnRenamed("node", "src"), "src").join(inside.withColumnRenamed("node", "dst"), "dst")
        labels = labels.join(inside, "node", "left_anti").unionByName(components(kept, inside)).localCheckpoint()
    return labels


def _new_id(seed: Column) -> Column:
    return F.concat(F.lit("P"), F.upper(F.substring(F.sha2(seed, 256), 1, 16)))


def assign_person_ids(labels: DataFrame, previous: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """Stable person ids for components: (node, person_id), and the merges: (merged, into).

    A previous id stays with the component holding most of its former members; a component holding
    several previous ids keeps the one with most members and records the others as merged into it.
    A new component gets an id derived from its smallest identifier, so a rebuild from scratch on
    the same data gives the same ids.
    """
    spark = labels.sparkSession
    no_merges = spark.createDataFrame([], "merged_person_id string, into_person_id string")
    if previous is None:
        return labels.select("node", _new_id(F.col("label")).alias("person_id")), no_merges
    prev = previous.where(F.col("person_id").isNotNull()).select("node", F.col("person_id").alias("prev_id"))
    counts = labels.join(prev, "node").groupBy("label", "prev_id").agg(F.count("*").alias("members"))
    by_id = Window.partitionBy("prev_id").orderBy(F.desc("members"), "label")
    owned = counts.withColumn("rank", F.row_number().over(by_id)).where("rank = 1").drop("rank")
    by_label = Window.partitionBy("label").orderBy(F.desc("members"), "prev_id")
    ranked = owned.withColumn("rank", F.row_number().over(by_label))
    survivors = ranked.where("rank = 1").select("label", F.col("prev_id").alias("person_id"))
    merges = ranked.where("rank > 1").join(survivors, "label").select(
        F.col("prev_id").alias("merged_person_id"), F.col("person_id").alias("into_person_id")
    )
    taken = prev.select(F.col("prev_id").alias("candidate"), F.lit(True).alias("taken")).distinct()
    fresh = labels.select("label").distinct().join(survivors, "label", "left_anti")
    fresh = fresh.withColumn("candidate", _new_id(F.col("label"))).join(taken, "candidate", "left").select(
        "label",
        # The split-off part of a former person whose id was derived from this same identifier.
        F.when(F.col("taken"), _new_id(F.concat(F.col("label"), F.lit("#split")))).otherwise(F.col("candidate")).alias("person_id"),
    )
    return labels.join(survivors.unionByName(fresh), "label").select("node", "person_id"), merges


@dataclass(frozen=True)
class Resolution:
    identity_map: DataFrame  # identifier, kind, value, person_id (null when shared), is_shared
    merges: DataFrame  # merged_person_id, into_person_id


def resolve(obs: DataFrame, settings: Settings, previous: DataFrame | None) -> Resolution:
    """Resolve the identifiers of ``obs`` (``nodes`` arrays) to persons, keeping the ids of ``previous``.

    ``previous`` is the former map as (node, person_id); None on the first run.
    """
    blocked = blocked_nodes(settings)
    if blocked:
        obs = obs.select(F.array_except("nodes", F.array(*[F.lit(b) for b in blocked])).alias("nodes"))
    obs = obs.where(F.size("nodes") > 0).localCheckpoint()
    shared = shared_nodes(obs, settings).localCheckpoint()
    members = obs.select(F.col("nodes").alias("observed"), F.explode("nodes").alias("node"))
    kept = members.join(shared, "node", "left_anti")
    groups = kept.groupBy("observed").agg(F.array_sort(F.collect_set("node")).alias("nodes")).select("nodes").distinct()
    edges = groups.where(F.size("nodes") > 1).select(
        F.col("nodes")[0].alias("src"), F.explode(F.slice("nodes", 2, F.size("nodes"))).alias("dst")
    ).distinct().localCheckpoint()
    labels = prioritized_components(edges, kept.select("node").distinct(), settings)
    mapped, merges = assign_person_ids(labels, previous)
    shared_rows = shared.select("node", F.lit(None).cast("string").alias("person_id"))
    everything = mapped.withColumn("is_shared", F.lit(False)).unionByName(shared_rows.withColumn("is_shared", F.lit(True)))
    identity_map = everything.select(
        F.col("node").alias("identifier"),
        kind_of(F.col("node")).alias("kind"),
        F.expr("substring(node, length(substring_index(node, ':', 1)) + 2)").alias("value"),
        "person_id",
        "is_shared",
    )
    return Resolution(identity_map, merges)
