"""Read a batch of raw files into one shape: every schema column as text, plus what did not fit.

Whatever the format, the result has the schema's columns as strings, ``_extra`` (a map of the
columns the schema does not know), ``_malformed`` (the record could not be parsed), ``_raw`` (the
record as it came, for quarantine) and ``_source_file``. Typing happens later, in one place, so a
bad value is caught the same way in CSV, JSON or Parquet.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType

from presage import fs

FORMATS = {"csv": "csv", "jsonl": "json", "json": "json", "ndjson": "json", "parquet": "parquet"}
CORRUPT = "_corrupt_record"


class RawReadError(RuntimeError):
    """A raw file that is missing or cannot be read; the message names it."""


def file_format(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".bz2", ".snappy"):
        name = name.removesuffix(suffix)
    ext = name.rsplit(".", 1)[-1]
    if ext not in FORMATS:
        raise RawReadError(f"{path}: unknown file type {ext!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[ext]


def _extra_map(columns: dict[str, Column]) -> Column:
    """A map of the non-null values of unknown columns (an empty map when there are none)."""
    if not columns:
        return F.create_map().cast(MapType(StringType(), StringType()))
    entries = F.array(*[F.struct(F.lit(k).alias("key"), v.cast("string").alias("value")) for k, v in columns.items()])
    return F.map_from_entries(F.filter(entries, lambda e: e["value"].isNotNull()))


def _shape(df: DataFrame, schema: StructType, present: list[str], malformed: Column, raw: Column) -> DataFrame:
    known = set(schema.fieldNames())
    cols = [
        (F.col(f"`{f.name}`").cast("string") if f.name in present else F.lit(None).cast("string")).alias(f.name)
        for f in schema.fields
    ]
    extra = {name: F.col(f"`{name}`") for name in present if name not in known}
    return df.select(
        *cols,
        _extra_map(extra).alias("_extra"),
        malformed.alias("_malformed"),
        raw.alias("_raw"),
        F.col("_metadata.file_path").alias("_source_file"),
    )


def _read_csv(spark: SparkSession, files: list[str], schema: StructType) -> DataFrame:
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in files:
        header = fs.first_line(spark, path)
        if not header.strip():
            raise RawReadError(f"{path}: empty CSV file or no header line")
        groups[tuple(next(csv.reader(io.StringIO(header))))].append(path)
    frames = []
    for header, paths in groups.items():
        text_schema = StructType([StructField(name, StringType()) for name in header] + [StructField(CORRUPT, StringType())])
        df = (
            spark.read.schema(text_schema)
            .option("header", True)
            .option("enforceSchema", True)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("escape", '"')
            .csv(paths)
        )
        malformed = F.col(CORRUPT).isNotNull()
        raw = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[F.col(f"`{n}`") for n in header])))
        frames.append(_shape(df, schema, list(header), malformed, raw))
    return _union(frames)


def _read_json(spark: SparkSession, files: list[str], schema: StructType) -> DataFrame:
    lines = spark.read.text(files).select("value", "_metadata")
    return json_lines(lines, schema, F.col("_metadata.file_path"))


def json_lines(lines: DataFrame, schema: StructType, origin: Column) -> DataFrame:
    """JSON-lines text (column ``value``) in the text shape; ``origin`` says where each line came
    from (``_source_file``). Shared by the batch reader and the streaming job."""
    lines = lines.where(F.trim(F.col("value")) != "")
    parsed = lines.withColumn("_map", F.from_json("value", MapType(StringType(), StringType()), {"mode": "PERMISSIVE"}))
    known = schema.fieldNames()
    cols = [F.col("_map").getItem(name).alias(name) for name in known]
    extra = F.map_filter(F.col("_map"), lambda k, v: ~k.isin(*known) & v.isNotNull())
    return parsed.select(
        *cols,
        F.coalesce(extra, F.create_map().cast(MapType(StringType(), StringType()))).alias("_extra"),
        F.col("_map").isNull().alias("_malformed"),
        F.col("value").alias("_raw"),
        origin.alias("_source_file"),
    )


def _read_parquet(spark: SparkSession, files: list[str], schema: StructType) -> DataFrame:
    df = spark.read.option("mergeSchema", True).parquet(*files)
    present = df.columns
    df = df.select("*", "_metadata")
    text = [F.to_json(F.col(f"`{c}`")) if _is_nested(df, c) else F.col(f"`{c}`") for c in present]
    df = df.select(*[t.alias(c) for t, c in zip(text, present)], "_metadata")
    raw = F.to_json(F.struct(*[F.col(f"`{c}`") for c in present]))
    return _shape(df, schema, present, F.lit(False), raw)


def _is_nested(df: DataFrame, column: str) -> bool:
    return df.schema[column].dataType.typeName() in ("struct", "array", "map")


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


_READERS = {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet}


def read_batch(spark: SparkSession, files: list[str], schema: StructType) -> DataFrame:
    """All ``files`` (any mix of formats) as one text-shaped frame.

    Raises:
        RawReadError: a file is missing, of unknown type or unreadable; the message names it.
    """
    by_format: dict[str, list[str]] = defaultdict(list)
    for path in files:
        if not fs.exists(spark, path):
            raise RawReadError(f"{path}: file not found (it was listed for this batch)")
        by_format[file_format(path)].append(path)
    frames = []
    for fmt, paths in sorted(by_format.items()):
        try:
            frames.append(_READERS[fmt](spark, paths, schema))
        except RawReadError:
            raise
        except Exception as exc:  # reported with the file that caused it
            raise RawReadError(find_unreadable(spark, paths, schema) or f"cannot read {paths}: {exc}") from exc
    return _union(frames)


def find_unreadable(spark: SparkSession, paths: list[str], schema: StructType) -> str | None:
    """Read files one by one to name the one that fails (Spark reads lazily, so errors come late)."""
    for path in paths:
        try:
            _READERS[file_format(path)](spark, [path], schema).count()
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            return f"{path}: cannot be read as {file_format(path)}: {first}"
    return None
