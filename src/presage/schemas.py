"""Raw input schemas: Spark StructType JSON files shipped inside the package (``schemas/``).

Field metadata carries the contract: ``key`` (part of the source's primary key), ``pii`` (``email``
or ``phone``: pseudonymized at ingestion), ``identifier`` (used by identity resolution) and
``event_time`` (the column whose time must be plausible).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from pyspark.sql.types import StructField, StructType

RAW_SOURCES: tuple[str, ...] = (
    "customers",
    "products",
    "orders",
    "order_items",
    "web_events",
    "campaign_events",
    "social_events",
    "reviews",
)

# Columns a source's schema does not know go to the rescue column, except for ``customers``, where
# every extra column is a CRM attribute that must reach the features without code changes.
RESCUE_COLUMN = "_rescued_data"
ATTRIBUTES_COLUMN = "attributes"
SOURCES_WITH_ATTRIBUTES = frozenset({"customers"})


@cache
def load_schema(name: str) -> StructType:
    """Return the StructType of a raw source.

    Raises:
        KeyError: not a known source; the message lists the known ones.
    """
    file = resources.files("presage") / "schemas" / f"{name}.json"
    if not file.is_file():
        raise KeyError(f"no schema for {name!r}; known schemas: {list(RAW_SOURCES)}")
    return StructType.fromJson(json.loads(file.read_text()))


def key_columns(schema: StructType) -> list[str]:
    return [f.name for f in schema.fields if f.metadata.get("key")]


def pii_columns(schema: StructType) -> dict[str, str]:
    """Column name -> kind of personal identifier (``email`` or ``phone``)."""
    return {f.name: f.metadata["pii"] for f in schema.fields if f.metadata.get("pii")}


def event_time_column(schema: StructType) -> str | None:
    names = [f.name for f in schema.fields if f.metadata.get("event_time")]
    return names[0] if names else None


def hashed_name(column: str) -> str:
    """Name a pseudonymized column takes in bronze (``email`` -> ``email_hash``)."""
    return f"{column}_hash"


def bronze_fields(source: str) -> list[StructField]:
    """Data columns of a bronze table: the raw schema with PII columns replaced by their hashes."""
    schema = load_schema(source)
    pii = pii_columns(schema)
    fields = []
    for field in schema.fields:
        if field.name in pii:
            fields.append(StructField(hashed_name(field.name), field.dataType, True, field.metadata))
        else:
            fields.append(field)
    return fields
