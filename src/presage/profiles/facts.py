"""Clean silver fact tables: bronze rows deduplicated on their keys and keyed by person id.

A row belongs to the person of its most trusted identifier that the identity map resolves (a
shared or blocked identifier is skipped, the next one is used); a row none of whose identifiers
resolves keeps a null person id rather than being dropped. Order lines take the person of their
order. When a later batch brings a row with a key already seen (a resend or a late correction),
the most recently ingested version wins.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, MapType, StringType

from presage.config import Settings
from presage.profiles.identity import identifier_columns, node
from presage.schemas import ATTRIBUTES_COLUMN, SOURCES_WITH_ATTRIBUTES, bronze_fields, key_columns, load_schema

FACT_SOURCES: tuple[str, ...] = ("orders", "order_items", "web_events", "campaign_events", "social_events", "reviews")
LINEAGE = ["_batch_id", "_ingested_at"]


def keys_of(source: str) -> list[str]:
    return key_columns(load_schema(source))


def data_columns(source: str) -> list[str]:
    """Bronze columns that carry data (not lineage), extra CRM attributes included."""
    extra = [ATTRIBUTES_COLUMN] if source in SOURCES_WITH_ATTRIBUTES else []
    return [*[f.name for f in bronze_fields(source)], *extra]


def bronze_type(source: str, column: str) -> DataType:
    """Spark type of a data column of a bronze table."""
    if column == ATTRIBUTES_COLUMN:
        return MapType(StringType(), StringType())
    return {f.name: f.dataType for f in bronze_fields(source)}[column]


def latest_per_key(rows: DataFrame, source: str) -> DataFrame:
    """One row per key: the last ingested version (ties broken on content, so the choice is stable)."""
    keys = keys_of(source)
    content = F.sha2(F.to_json(F.struct(*[F.col(c) for c in data_columns(source)])), 256)
    order = Window.partitionBy(*keys).orderBy(F.desc("_ingested_at"), F.desc("_batch_id"), F.desc(content))
    ranked = rows.withColumn("_rank", F.row_number().over(order))
    return ranked.where("_rank = 1").select(*data_columns(source), *LINEAGE)


def identifier_nodes(source: str, settings: Settings) -> Column:
    """The graph nodes of a row's identifiers, most trusted kind first."""
    columns = identifier_columns(source)
    ordered = [kind for kind in settings.identity.priority if kind in columns]
    return F.array(*[node(kind, F.col(columns[kind])) for kind in ordered])


def attach_person(rows: DataFrame, source: str, settings: Settings, identity_map: DataFrame) -> DataFrame:
    """``rows`` with a ``person_id`` column from the identity map (null when nothing resolves)."""
    keys = keys_of(source)
    resolved = identity_map.where(F.col("person_id").isNotNull()).select("identifier", "person_id")
    candidates = rows.select(*keys, F.posexplode(identifier_nodes(source, settings)).alias("rank", "identifier"))
    best = (
        candidates.where(F.col("identifier").isNotNull())
        .join(resolved, "identifier")
        .groupBy(*keys)
        .agg(F.min_by("person_id", "rank").alias("person_id"))
    )
    return rows.join(best, keys, "left")


def touched_by(silver: DataFrame, source: str, settings: Settings, identifiers: DataFrame) -> DataFrame:
    """Keys of silver rows carrying any of ``identifiers`` (identity changes re-key those rows)."""
    keys = keys_of(source)
    nodes = silver.select(*keys, F.explode(identifier_nodes(source, settings)).alias("identifier"))
    return nodes.join(identifiers.select("identifier"), "identifier", "left_semi").select(*keys).distinct()


def with_order_person(items: DataFrame, orders: DataFrame) -> DataFrame:
    """Order lines with the person of their order (null for a line whose order is unknown)."""
    return items.join(orders.select("order_id", "person_id"), "order_id", "left")
