"""Write a source's rows as the files a company would drop: CSV, JSON lines or Parquet per drop.

Files are written by Spark (``partitionBy`` the drop), then moved to
``raw/<source>/<drop>/<source>-<drop>-<n>.<ext>``. Rows are hash-partitioned and sorted, so the
same seed gives byte-identical files at any cluster size.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from presage import fs
from presage.generate.dirty import DIRTY_COLUMN, as_text
from presage.generate.timeline import is_daily

FORMATS = {
    "customers": "csv",
    "products": "csv",
    "orders": "csv",
    "order_items": "csv",
    "web_events": "json",
    "social_events": "json",
    "reviews": "json",
    "campaign_events": "parquet",
}
EXTENSIONS = {"csv": "csv", "json": "jsonl", "parquet": "parquet"}

# Columns that appear only in the latest (daily) drops: a feed that grew a field the schema lacks.
NEW_COLUMNS: dict[str, tuple[str, Callable[[], Column]]] = {
    "orders": ("gift_wrap", lambda: F.when(F.xxhash64(F.col("order_id")) % 5 == 0, "true").otherwise("false")),
    "web_events": ("experiment_arm", lambda: F.when(F.xxhash64(F.col("session_id")) % 2 == 0, "A").otherwise("B")),
    "campaign_events": (
        "creative_id",
        lambda: F.concat(F.lit("cr-"), (F.abs(F.xxhash64(F.col("campaign_id"))) % 9).cast("string")),
    ),
}


def _render(df: DataFrame, source: str, columns: list[str], fmt: str, daily: bool) -> DataFrame:
    """The frame to write: ``drop`` plus either typed columns (Parquet) or text."""
    new = NEW_COLUMNS.get(source) if daily else None
    extra = (new[0], new[1]()) if new else None
    if fmt == "parquet":
        cols = [F.col(c) for c in columns] + ([extra[1].alias(extra[0])] if extra else [])
        return df.select("drop", "_bucket", *cols)
    text = as_text(df, source, columns)
    if fmt == "csv":
        cols = [text[c].alias(c) for c in columns] + ([extra[1].alias(extra[0])] if extra else [])
        return df.select("drop", "_bucket", *cols)
    # JSON lines: typed values, except bad_type rows which carry text; malformed rows are cut short.
    typed = F.to_json(F.struct(*[F.col(c) for c in columns], *([extra[1].alias(extra[0])] if extra else [])))
    texts = F.to_json(F.struct(*[text[c].alias(c) for c in columns], *([extra[1].alias(extra[0])] if extra else [])))
    kind = F.col(DIRTY_COLUMN)
    line = F.when(kind == "bad_type", texts).otherwise(typed)
    line = F.when(kind == "malformed_record", F.substring(line, 1, F.floor(F.length(line) / 2).cast("int"))).otherwise(line)
    return df.select("drop", "_bucket", line.alias("value"))


def write_source(spark: SparkSession, df: DataFrame, source: str, columns: list[str], sort_by: list[str], target: str, buckets: int) -> None:
    """Write ``df`` (with ``drop`` and ``_dirty`` columns) as files under ``target`` (replaced)."""
    fmt = FORMATS[source]
    ext = EXTENSIONS[fmt]
    fs.delete(spark, target)
    staging = f"{target}/.staging"
    df = df.withColumn("_bucket", F.abs(F.xxhash64(*[F.col(c) for c in sort_by])) % buckets)
    for daily in (False, True):
        part = df.where(is_daily(F.col("drop")) == daily)
        rendered = _render(part, source, columns, fmt, daily)
        sort_cols = [c for c in rendered.columns if c not in ("drop", "_bucket")]
        ordered = (
            rendered.repartition(max(2, buckets * 4), F.col("drop"), F.col("_bucket"))
            .drop("_bucket")
            .sortWithinPartitions(*sort_cols)
        )
        out = f"{staging}/{'daily' if daily else 'history'}"
        writer = ordered.write.mode("overwrite").partitionBy("drop")
        if fmt == "csv":
            writer.option("header", True).option("escape", '"').csv(out)
        elif fmt == "json":
            writer.text(out)
        else:
            writer.parquet(out)
    _publish(spark, staging, target, source, ext)
    fs.delete(spark, staging)


def _publish(spark: SparkSession, staging: str, target: str, source: str, ext: str) -> None:
    by_drop: dict[str, list[str]] = {}
    for info in fs.list_files(spark, staging):
        name = info.path.rsplit("/", 1)[-1]
        if not name.startswith("part-"):
            continue
        drop = info.path.rsplit("/", 2)[-2].removeprefix("drop=")
        by_drop.setdefault(drop, []).append(info.path)
    for drop, paths in by_drop.items():
        for n, path in enumerate(sorted(paths)):
            fs.rename(spark, path, f"{target}/{drop}/{source}-{drop}-{n:03d}.{ext}")
