"""Dirty rows planted in the raw drops, a few percent per source, each of one known kind.

The kinds are those real feeds carry: a missing key, a value of the wrong type, a negative amount,
a timestamp in the future, a value outside its vocabulary, an exact duplicate and, in JSON feeds, a
truncated line. The generator's manifest counts them so tests can check every one is quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from presage.generate.rand import Draws


@dataclass(frozen=True)
class DirtSpec:
    key: str  # the column nulled by ``missing_key``
    bad_type: tuple[str, str] | None = None  # column, unparseable text
    negative: str | None = None  # amount made negative
    future: str | None = None  # timestamp moved to 2099
    invalid: tuple[str, object] | None = None  # column, value outside its vocabulary or range
    malformed: bool = False  # JSON line cut in half

    @property
    def kinds(self) -> list[str]:
        kinds = ["missing_key", "duplicate"]
        kinds += ["bad_type"] if self.bad_type else []
        kinds += ["negative_amount"] if self.negative else []
        kinds += ["future_timestamp"] if self.future else []
        kinds += ["invalid_value"] if self.invalid else []
        kinds += ["malformed_record"] if self.malformed else []
        return kinds


SPECS: dict[str, DirtSpec] = {
    "customers": DirtSpec("customer_id", ("birth_date", "31/02/1990"), None, "updated_at", ("country", "Narnia")),
    "products": DirtSpec("product_id", ("price", "N/A"), "price"),
    "orders": DirtSpec("order_id", ("total_amount", "12,50 EUR"), "total_amount", "order_ts", ("status", "lost_in_space")),
    "order_items": DirtSpec("product_id", ("quantity", "two"), "unit_price"),
    "web_events": DirtSpec("event_id", ("event_ts", "yesterday"), None, "event_ts", ("event_type", "hover"), True),
    "campaign_events": DirtSpec("event_id", None, "cost", "event_ts", ("channel", "fax")),
    "social_events": DirtSpec("event_id", ("event_ts", "last week"), None, "event_ts", ("platform", "myspace"), True),
    "reviews": DirtSpec("review_id", ("rating", "five"), None, "review_ts", ("rating", 7), True),
}

DIRTY_COLUMN = "_dirty"


def plant(df: DataFrame, source: str, rate: float, d: Draws, row_key: Column) -> DataFrame:
    """Mark about ``rate`` of the rows dirty (column ``_dirty``) and damage them accordingly.

    ``bad_type`` and ``malformed_record`` rows are damaged when rendered to text (see drops);
    ``duplicate`` rows are emitted twice.
    """
    spec = SPECS[source]
    kinds = spec.kinds
    chosen = Draws.choice_from(d.uniform(f"dirty_kind:{source}", row_key), kinds)
    df = df.withColumn(DIRTY_COLUMN, F.when(d.uniform(f"dirty:{source}", row_key) < rate, chosen))
    kind = F.col(DIRTY_COLUMN)
    df = df.withColumn(spec.key, F.when(kind == "missing_key", F.lit(None)).otherwise(F.col(spec.key)))
    if spec.negative:
        df = df.withColumn(spec.negative, F.when(kind == "negative_amount", -F.abs(F.col(spec.negative)) - 1).otherwise(F.col(spec.negative)))
    if spec.future:
        future = F.col(spec.future) + F.make_interval(F.lit(2099) - F.year(F.col(spec.future)))
        df = df.withColumn(spec.future, F.when(kind == "future_timestamp", future).otherwise(F.col(spec.future)))
    if spec.invalid:
        column, value = spec.invalid
        df = df.withColumn(column, F.when(kind == "invalid_value", F.lit(value)).otherwise(F.col(column)))
    copies = F.when(kind == "duplicate", F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0)))
    return df.withColumn("_copy", F.explode(copies)).drop("_copy")


def as_text(df: DataFrame, source: str, columns: list[str]) -> dict[str, Column]:
    """Each column rendered as text, with ``bad_type`` rows carrying their unparseable value."""
    spec = SPECS[source]
    out = {}
    for name in columns:
        dtype = dict(df.dtypes)[name]
        text = F.date_format(F.col(name), "yyyy-MM-dd HH:mm:ss") if dtype == "timestamp" else F.col(name).cast("string")
        if spec.bad_type and spec.bad_type[0] == name:
            text = F.when(F.col(DIRTY_COLUMN) == "bad_type", F.lit(spec.bad_type[1])).otherwise(text)
        out[name] = text
    return out
