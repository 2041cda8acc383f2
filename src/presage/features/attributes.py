"""Who the person was at each snapshot: CRM attributes as of that date, from the SCD2 history.

Extra CRM attribute columns (the ``attributes`` map) become typed gold columns ``attr_<key>``
without code changes: a key whose every value parses as a number is numeric, otherwise it is
categorical text. Once a column exists in gold its type is kept, so old and new snapshots agree.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.features.catalog import ATTRIBUTES, attribute_column

log = logging.getLogger(__name__)

CONSENT_COLUMNS = ("consent_marketing", "consent_email", "consent_sms", "consent_push")


def snapshot_instant(day: Column) -> Column:
    """00:00 UTC of a day index (the session time zone is UTC)."""
    return F.date_add(F.lit("1970-01-01").cast("date"), day).cast("timestamp")


def attribute_types(history: DataFrame, existing: dict[str, str]) -> dict[str, str]:
    """key -> 'double' or 'string' for every extra attribute key in the history."""
    entries = history.select(F.explode("attributes").alias("key", "value")).where(F.col("value").isNotNull())
    stats = entries.groupBy("key").agg(
        F.count("*").alias("n"), F.count(F.col("value").try_cast("double")).alias("numeric")
    ).collect()
    types = {row["key"]: "double" if row["n"] == row["numeric"] else "string" for row in stats}
    for key, column in attribute_columns(types).items():
        if column in existing and existing[column] != types[key]:
            log.warning("attribute %s keeps gold type %s (values now look %s)", key, existing[column], types[key])
            types[key] = existing[column]
    return types


def attribute_columns(types: dict[str, str]) -> dict[str, str]:
    """key -> gold column; keys that clean to the same name get a numeric suffix, in key order."""
    columns: dict[str, str] = {}
    for key in sorted(types):
        base = candidate = attribute_column(key)
        n = 2
        while candidate in columns.values():
            candidate, n = f"{base}_{n}", n + 1
        columns[key] = candidate
    return columns


def attributes(history: DataFrame, known_since: DataFrame, markers: DataFrame, types: dict[str, str]) -> DataFrame:
    """(person_id, snapshot_day, catalog attributes..., attr_<key>...) per marker (person_id, day).

    ``known_since``: (person_id, known_since) the creation time of the person's first CRM record.
    """
    at = snapshot_instant(F.col("day"))
    state = markers.select("person_id", "day", at.alias("_at")).join(history, "person_id").where(
        (F.col("valid_from") < F.col("_at")) & (F.col("valid_to").isNull() | (F.col("valid_to") >= F.col("_at")))
    )
    known = markers.select("person_id", "day", at.alias("_at")).join(known_since, "person_id", "left")
    rows = known.join(state.drop("_at"), ["person_id", "day"], "left")
    values = {
        "is_known": F.when(F.col("known_since") < F.col("_at"), 1).otherwise(0).cast("long"),
        "age_years": F.floor(F.months_between(F.col("_at"), F.col("birth_date")) / 12).cast("double"),
        "gender": F.col("gender"),
        "country": F.col("country"),
        "region": F.col("region"),
        "city": F.col("city"),
        "latitude": F.col("latitude"),
        "longitude": F.col("longitude"),
        **{c: F.coalesce(F.col(c), F.lit(False)).cast("long") for c in CONSENT_COLUMNS},
    }
    extra = []
    for key, column in attribute_columns(types).items():
        value = F.col("attributes").getItem(key)
        extra.append((value.try_cast("double") if types[key] == "double" else value).alias(column))
    return rows.select("person_id", F.col("day").alias("snapshot_day"), *[values[f.name].alias(f.name) for f in ATTRIBUTES], *extra)
