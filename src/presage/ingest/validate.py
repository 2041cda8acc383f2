"""Type, check and split a batch: every row either lands in bronze or goes to quarantine with reasons.

Checks, in order: the record parses (``malformed_record``), each value has its schema type
(``type_mismatch``), the source's expectation suite holds, and the key is unique within the batch
(``duplicate_key``, the first occurrence is kept). Personal identifiers are pseudonymized here, so
neither bronze nor quarantine ever holds a clear email or phone number.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructType

from presage.ingest.expectations import expectations, violation
from presage.privacy import EMAIL_PATTERN, pseudonymize_column
from presage.schemas import (
    ATTRIBUTES_COLUMN,
    RESCUE_COLUMN,
    SOURCES_WITH_ATTRIBUTES,
    hashed_name,
    key_columns,
    load_schema,
    pii_columns,
)

FAILURES = "_failures"
# International numbers as written in exports (+44 ..., 0044 ...): redacted from quarantined text.
PHONE_PATTERN = r"(\+|\b00)\d[\d \-().]{6,}\d"


def _failure(check: str, column: str | None) -> Column:
    return F.struct(F.lit(check).alias("check"), F.lit(column).cast("string").alias("column"))


def typed(df: DataFrame, schema: StructType) -> DataFrame:
    """Cast the text columns to the schema's types, keeping which casts failed."""
    out = []
    mismatches = []
    for field in schema.fields:
        text = F.col(field.name)
        if isinstance(field.dataType, StringType):
            out.append(text.alias(field.name))
            continue
        cleaned = F.nullif(F.trim(text), F.lit(""))
        value = cleaned.try_cast(field.dataType)
        out.append(value.alias(field.name))
        mismatches.append(F.when(cleaned.isNotNull() & value.isNull(), _failure("type_mismatch", field.name)))
    return df.select(*out, "_extra", "_malformed", "_raw", "_source_file", "_row", F.array(*mismatches).alias("_mismatch"))


def check(df: DataFrame, source: str, parameters: dict[str, Any]) -> DataFrame:
    """Add ``_failures`` (check, column) to each typed row; empty when the row is good."""
    schema = load_schema(source)
    rules = [F.when(violation(exp, schema, parameters), _failure(exp.type, exp.column)) for exp in expectations(source, schema)]
    found = F.filter(F.concat(F.col("_mismatch"), F.array(*rules)), lambda f: f.isNotNull())
    failures = F.when(F.col("_malformed"), F.array(_failure("malformed_record", None))).otherwise(found)
    df = df.withColumn(FAILURES, failures).drop("_mismatch")
    keys = key_columns(schema)
    order = Window.partitionBy(*keys, F.size(FAILURES) == 0).orderBy("_source_file", "_row")
    duplicate = (F.size(FAILURES) == 0) & (F.row_number().over(order) > 1)
    return df.withColumn(
        FAILURES,
        F.when(duplicate, F.array(_failure("duplicate_key", ",".join(keys)))).otherwise(F.col(FAILURES)),
    )


def _hash_identifiers(value: Column, key: bytes) -> Column:
    """Pseudonymize a free value if it looks like an email or an international phone number."""
    return (
        F.when(value.rlike(EMAIL_PATTERN), pseudonymize_column("email", value, key))
        .when(value.rlike(f"^{PHONE_PATTERN}$"), pseudonymize_column("phone", value, key))
        .otherwise(value)
    )


def bronze_rows(df: DataFrame, source: str, key: bytes) -> DataFrame:
    """Good rows in bronze shape: PII hashed, unknown columns in the rescue (or attributes) map."""
    schema = load_schema(source)
    pii = pii_columns(schema)
    cols = []
    for field in schema.fields:
        if field.name in pii:
            cols.append(pseudonymize_column(pii[field.name], F.col(field.name), key).alias(hashed_name(field.name)))
        else:
            cols.append(F.col(field.name))
    extra_name = ATTRIBUTES_COLUMN if source in SOURCES_WITH_ATTRIBUTES else RESCUE_COLUMN
    extra = F.transform_values(F.col("_extra"), lambda k, v: _hash_identifiers(v, key))
    return df.where(F.size(FAILURES) == 0).select(*cols, extra.alias(extra_name), "_source_file")


def redacted(text: Column) -> Column:
    """Text with anything that looks like an email address or a phone number masked."""
    text = F.regexp_replace(text, r"[^@\s\"',;{}]+@[^@\s\"',;{}]+\.[A-Za-z]{2,}", "<email:redacted>")
    return F.regexp_replace(text, PHONE_PATTERN, "<phone:redacted>")


def quarantine_rows(df: DataFrame, source: str, key: bytes) -> DataFrame:
    """Rejected rows: the checks that failed and the record as received, identifiers pseudonymized."""
    schema = load_schema(source)
    raw = F.col("_raw")
    for column, kind in pii_columns(schema).items():
        value = F.col(column)
        token = F.concat(F.lit(f"<{kind}:"), pseudonymize_column(kind, value, key), F.lit(">"))
        raw = F.when(value.isNotNull() & (F.length(value) > 0), F.replace(raw, value, token)).otherwise(raw)
    raw = redacted(raw)
    return df.where(F.size(FAILURES) > 0).select(
        F.lit(source).alias("source"),
        F.col(FAILURES)[0]["check"].alias("reason"),
        F.col(FAILURES)[0]["column"].alias("column"),
        F.col(FAILURES).alias("failed_checks"),
        raw.alias("record"),
        "_source_file",
    )
