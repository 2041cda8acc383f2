"""``presage erase``: remove one person from the whole lakehouse, and record that it was done.

The request names a CRM customer id, an email address (normalized and pseudonymized as ingestion
does) or a person id. The identity map turns it into the person, the person ids it held before
merges, and every identifier it was seen with that is not shared with others; the orders in its
rows bring their order lines along. Then, in an order that lets a crashed run be redone:

1. every Delta table under the lakehouse (found by its ``_delta_log``, so that a new table is not
   forgotten) loses the rows whose identifier or person columns name the subject, quarantined
   record text included. The deletes are MERGEs against a small table of the subject's keys, so
   the table history records ``t.customer_id = s.value``, never the values (a DELETE would write
   its predicate, ids included, into the log);
2. raw drop files holding the subject's records are rewritten without them under the same name
   (ingestion plans files by name, so the next run neither re-reads nor misses them);
3. the subject's entity rows leave Feast's online store (SQLite or Redis, in Feast's own layout);
4. CSV artifacts of the embedded MLflow store that list customers lose the subject's rows;
5. the identity map and merge records go last, so that a crashed run still resolves the subject
   when it is run again;
6. every table touched is vacuumed with zero retention, so no readable version holds the subject.

The audit table ``audit/erasures`` gets a row when a run starts and one when it ends, with a keyed
hash of the request (never the id itself) and the rows removed per table or file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from presage import fs
from presage.config import Settings
from presage.features.catalog import ENTITY
from presage.ingest.read import file_format
from presage.lakehouse import Lakehouse
from presage.maintenance import (
    delta_tables,
    hadoop_path,
    record_consumed,
    relative,
    require_silver_current,
    vacuum_now,
)
from presage.privacy import EMAIL_PATTERN, load_key, pseudonymize, pseudonymize_column
from presage.profiles.identity import blocked_nodes
from presage.schemas import RAW_SOURCES, load_schema
from presage.streaming import STREAMED

log = logging.getLogger(__name__)

AUDIT = "erasures"
PERSON_ID = re.compile(r"^P[0-9A-F]{16}$")
IDENTITY_TABLES = ("silver/identity_map", "silver/identity_merges")

# Which of the subject's key sets a Delta column is compared with. ``customer_id`` is the CRM id in
# bronze and silver but the person id in gold, training sets and outputs, so it takes both.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer_id", "person"),
    "primary_customer_id": ("customer_id",),
    "person_id": ("person",),
    "merged_person_id": ("person",),
    "into_person_id": ("person",),
    "email_hash": ("email",),
    "phone_hash": ("phone",),
    "device_id": ("device_id",),
    "social_handle": ("social_handle",),
    "order_id": ("order",),
    "identifier": ("node",),
}
# The same for raw records, whose emails and phones are clear (hashed before comparing).
RAW_COLUMNS: dict[str, str] = {
    "customer_id": "customer_id",
    "email": "email",
    "phone": "phone",
    "device_id": "device_id",
    "social_handle": "social_handle",
    "order_id": "order",
}
# Opaque ids, safe to look for as whole tokens anywhere in a line (handles are not: people mention them).
TOKEN_KINDS = ("customer_id", "person", "device_id", "order")
EMAIL_IN_TEXT = r"[^@\s\"',;{}<>]+@[^@\s\"',;{}<>]+\.[A-Za-z]{2,}"
CODECS = {"gz": "gzip", "bz2": "bzip2", "snappy": "snappy"}

AUDIT_SCHEMA = StructType(
    [
        StructField("erasure_id", StringType(), False),
        StructField("subject_hash", StringType(), False),
        StructField("subject_kind", StringType(), False),
        StructField("status", StringType(), False),
        StructField("at", TimestampType(), False),
        StructField("persons", IntegerType(), False),
        StructField("rows_removed", MapType(StringType(), LongType()), False),
        StructField("vacuumed", ArrayType(StringType()), False),
        StructField("notes", ArrayType(StringType()), False),
    ]
)


@dataclass(frozen=True)
class Subject:
    """Whom an erasure is about: the request (hashed) and the keys that find the person's rows."""

    kind: str  # customer_id, email or person_id: what the request named
    node: str  # the request as an identity-map node (kind:value, emails hashed)
    digest: str  # keyed hash of ``node``: the only trace of the request the audit keeps
    keys: dict[str, frozenset[str]]  # key set (the values of TABLE_COLUMNS) -> values
    ambiguous: str | None = None  # why the request does not name one person

    @property
    def persons(self) -> frozenset[str]:
        return self.keys.get("person", frozenset())

    def with_orders(self, orders: set[str]) -> Subject:
        keys = {**self.keys, "order": self.keys.get("order", frozenset()) | frozenset(orders)}
        return Subject(self.kind, self.node, self.digest, keys, self.ambiguous)


@dataclass
class ErasureResult:
    erasure_id: str
    subject_hash: str
    status: str  # erased, not_found, already_erased or ambiguous
    persons: int
    rows_removed: dict[str, int] = field(default_factory=dict)  # table, raw/<source>, feast/online, artifact
    vacuumed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the subject


def subject_hash(key: bytes, node: str) -> str:
    """Keyed hash of a request: stable for one lakehouse key, useless without it."""
    return hmac.new(key, f"erasure:{node}".encode(), hashlib.sha256).hexdigest()


def _merged_into(spark: SparkSession, lake: Lakehouse, persons: set[str]) -> set[str]:
    """``persons`` and every person id merged into one of them, transitively."""
    path = lake.silver("identity_merges")
    if not persons or not DeltaTable.isDeltaTable(spark, path):
        return persons
    merges = spark.read.format("delta").load(path)
    found, frontier = set(persons), set(persons)
    while frontier:
        rows = merges.where(F.col("into_person_id").isin(*frontier)).select("merged_person_id").distinct().collect()
        frontier = {r[0] for r in rows if r[0]} - found
        found |= frontier
    return found


def resolve(spark: SparkSession, settings: Settings, lake: Lakehouse, value: str) -> Subject:
    """The subject of a request and the keys that find its rows (order ids come later).

    An email looks like one; a value shaped like a person id that the identity map knows is one;
    anything else is a CRM customer id. A request the map knows as shared, or a blocked
    placeholder, names no single person and is refused.

    Raises:
        ValueError: an empty request.
    """
    value = value.strip()
    if not value:
        raise ValueError("name the person to erase: a customer id, an email address or a person id")
    key = load_key(settings)
    path = lake.silver("identity_map")
    identity = spark.read.format("delta").load(path) if DeltaTable.isDeltaTable(spark, path) else None
    if re.match(EMAIL_PATTERN, value):
        kind, node = "email", f"email:{pseudonymize('email', value, key)}"
    elif PERSON_ID.match(value) and identity is not None and not identity.where(F.col("person_id") == value).isEmpty():
        kind, node = "person_id", f"person_id:{value}"
    else:
        kind, node = "customer_id", f"customer_id:{value}"
    digest = subject_hash(key, node)
    if node in blocked_nodes(settings):
        return Subject(kind, node, digest, {}, "a blocked placeholder (identity.blocked) that many people typed")
    persons: set[str] = {value} if kind == "person_id" else set()
    if identity is not None and kind != "person_id":
        row = identity.where(F.col("identifier") == node).select("person_id", "is_shared").first()
        if row is not None and row["is_shared"]:
            return Subject(kind, node, digest, {}, f"a {kind} shared by several customers (a household, a kiosk); erase by customer id")
        persons = {row["person_id"]} if row is not None else set()
    keys: dict[str, set[str]] = {"person": _merged_into(spark, lake, persons)}
    if kind != "person_id":
        keys["node"] = {node}
        keys[kind] = {node.split(":", 1)[1]}
    if identity is not None and keys["person"]:
        owned = identity.where(F.col("person_id").isin(*keys["person"]) & ~F.col("is_shared"))
        for row in owned.select("identifier", "kind", "value").collect():
            keys.setdefault("node", set()).add(row["identifier"])
            keys.setdefault(row["kind"], set()).add(row["value"])
    return Subject(kind, node, digest, {k: frozenset(v) for k, v in keys.items() if v})


# ---------------------------------------------------------------- which rows and lines are the subject's


def _alternatives(values: frozenset[str]) -> str:
    # re.escape escapes punctuation only, which Java regexes read the same way.
    return "|".join(re.escape(v) for v in sorted(values))


def token_pattern(subject: Subject) -> str | None:
    """Regex of the subject's opaque ids as whole tokens (``C12`` does not match inside ``C123``)."""
    tokens = frozenset().union(*(subject.keys.get(k, frozenset()) for k in TOKEN_KINDS))
    return rf"(?<![A-Za-z0-9_-])(?:{_alternatives(tokens)})(?![A-Za-z0-9_-])" if tokens else None


def record_pattern(subject: Subject) -> str | None:
    """Regex for quarantined record text: ids as tokens, emails and phones as ingestion wrote them."""
    parts = [p for p in [token_pattern(subject)] if p]
    parts += [f"<{kind}:(?:{_alternatives(subject.keys[kind])})>" for kind in ("email", "phone") if subject.keys.get(kind)]
    if subject.keys.get("social_handle"):
        parts.append(rf'"social_handle"\s*:\s*"(?:{_alternatives(subject.keys["social_handle"])})"')
    return "|".join(f"(?:{p})" for p in parts) or None


def _any(parts: list[Column]) -> Column:
    return reduce(lambda a, b: a | b, parts, F.lit(False))


def _compared(columns: Sequence[str], subject: Subject) -> list[tuple[str, str]]:
    return [(c, name) for c in columns if c in TABLE_COLUMNS for name in TABLE_COLUMNS[c] if subject.keys.get(name)]


def table_match(columns: Sequence[str], subject: Subject) -> Column | None:
    """Predicate on the rows of a Delta table that name the subject; None when no column can."""
    parts = [F.col(f"`{c}`").isin(*sorted(subject.keys[name])) for c, name in _compared(columns, subject)]
    pattern = record_pattern(subject)
    if "record" in columns and pattern:
        parts.append(F.col("record").rlike(pattern))
    return _any(parts) if parts else None


def raw_match(get: Callable[[str], Column | None], subject: Subject, key: bytes, text: Column | None = None) -> Column:
    """Predicate on raw records: their fields parsed as ingestion parses them (emails and phones
    hashed first) and, for lines of text, the subject's ids as tokens and any email in the line."""
    parts = []
    for column, name in RAW_COLUMNS.items():
        value = get(column)
        if value is not None and subject.keys.get(name):
            hashed = pseudonymize_column(column, value, key) if column in ("email", "phone") else value
            parts.append(hashed.isin(*sorted(subject.keys[name])))
    if text is not None:
        tokens = token_pattern(subject)
        if tokens:
            parts.append(text.rlike(tokens))
        if subject.keys.get("email"):
            found = F.regexp_extract_all(text, F.lit(EMAIL_IN_TEXT), F.lit(0))
            hashed = F.transform(found, lambda e: pseudonymize_column("email", e, key))
            parts.append(F.arrays_overlap(hashed, F.array(*[F.lit(h) for h in sorted(subject.keys["email"])])))
    # A record whose compared fields are all null gives a null predicate: it is not the subject's,
    # and must stay (``where(~hit)`` would otherwise drop it silently).
    return F.coalesce(_any(parts), F.lit(False))


# ---------------------------------------------------------------- Delta tables


def _order_ids(spark: SparkSession, lake: Lakehouse, tables: list[str], subject: Subject) -> set[str]:
    """Order ids in the subject's rows (quarantined orders included), for the order lines."""
    found: set[str] = set()
    for name in tables:
        df = spark.read.format("delta").load(lake.path(name))
        match = table_match(df.columns, subject)
        if match is None:
            continue
        if "order_id" in df.columns:
            ids = df.where(match).select("order_id")
        elif {"record", "source"} <= set(df.columns):
            ids = df.where((F.col("source") == "orders") & match).select(F.get_json_object("record", "$.order_id"))
        else:
            continue
        found |= {r[0] for r in ids.distinct().collect() if r[0]}
    return found


def _erase_table(spark: SparkSession, path: str, subject: Subject) -> int:
    """Delete the subject's rows with a MERGE against its keys (values stay out of the log)."""
    table = DeltaTable.forPath(spark, path)
    columns = table.toDF().columns
    condition = [f"(s.kind = '{name}' AND t.`{c}` = s.value)" for c, name in _compared(columns, subject)]
    keys = [(name, value) for name, values in sorted(subject.keys.items()) for value in sorted(values)]
    pattern = record_pattern(subject)
    if "record" in columns and pattern:
        condition.append("(s.kind = 'pattern' AND t.record RLIKE s.value)")
        keys.append(("pattern", pattern))
    source = F.broadcast(spark.createDataFrame(keys, "kind string, value string"))
    table.alias("t").merge(source.alias("s"), " OR ".join(condition)).whenMatchedDelete().execute()
    return int((table.history(1).first()["operationMetrics"] or {}).get("numTargetRowsDeleted", 0))


# ---------------------------------------------------------------- raw drop files


def _lines(spark: SparkSession, paths: list[str], fmt: str, subject: Subject, key: bytes) -> DataFrame:
    """Every line of text drops: file, position, whether it is the subject's, its order id.

    Lines are parsed as ingestion parses them: JSON lines as a map, CSV by the header of its file.
    """
    if fmt == "json":
        groups = [(paths, None)]
    else:
        by_header: dict[str, list[str]] = {}
        for path in paths:
            by_header.setdefault(fs.first_line(spark, path), []).append(path)
        groups = [(group, next(csv.reader([header]))) for header, group in by_header.items()]
    frames = []
    for group, header in groups:
        lines = spark.read.text(group).select(
            "value",
            F.col("_metadata.file_path").alias("_file"),
            F.col("_metadata.file_block_start").alias("_block"),
            F.monotonically_increasing_id().alias("_pos"),
        )
        if header is None:
            parsed = F.from_json("value", MapType(StringType(), StringType()))

            def get(c: str, parsed: Column = parsed) -> Column | None:
                return parsed.getItem(c)
        else:
            ddl = ", ".join(f"`{n.replace('`', '``')}` STRING" for n in header)
            parsed = F.from_csv(F.col("value"), ddl, {"escape": '"'})

            def get(c: str, parsed: Column = parsed, names: frozenset = frozenset(header)) -> Column | None:
                return parsed[c] if c in names else None
        order = get("order_id")
        frames.append(lines.select(
            "*",
            raw_match(get, subject, key, F.col("value")).alias("_hit"),
            (order if order is not None else F.lit(None).cast("string")).alias("_order"),
        ))
    return reduce(lambda a, b: a.unionByName(b), frames)


def _parquet_rows(spark: SparkSession, paths: list[str], subject: Subject, key: bytes) -> DataFrame:
    df = spark.read.option("mergeSchema", True).parquet(*paths)
    columns = set(df.columns)

    def get(c: str) -> Column | None:
        return F.col(f"`{c}`").cast("string") if c in columns else None

    order = get("order_id")
    return df.select(
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.row_index").alias("_pos"),
        raw_match(get, subject, key).alias("_hit"),
        (order if order is not None else F.lit(None).cast("string")).alias("_order"),
    )


def _local(path: str) -> Path | None:
    parsed = urlparse(path)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else None


def _replace(spark: SparkSession, staged: str | None, target: str) -> None:
    """Put ``staged`` in place of ``target`` (an empty file when ``staged`` is None).

    On a local disk this is a POSIX rename, atomic, with Hadoop's checksum file following (the
    target's is removed first, and a file without one is read unchecked). Hadoop's rename refuses
    an existing target, so on other stores it is a delete then a rename.
    """
    hfs, dst = hadoop_path(spark, target)
    if staged is None:
        hfs.create(dst, True).close()
        return
    source, destination = _local(staged), _local(target)
    if source is not None and destination is not None:
        checksum = lambda p: p.with_name(f".{p.name}.crc")
        checksum(destination).unlink(missing_ok=True)
        os.replace(source, destination)
        if checksum(source).exists():
            os.replace(checksum(source), checksum(destination))
        return
    hfs.delete(dst, False)
    if not hfs.rename(hadoop_path(spark, staged)[1], dst):
        raise OSError(f"could not replace {target} with {staged}")


def _staged(spark: SparkSession, folder: str) -> str | None:
    """The single data file Spark wrote into ``folder``, or None when it wrote none."""
    if not fs.exists(spark, folder):
        return None
    parts = [f.path for f in fs.list_files(spark, folder) if f.path.rsplit("/", 1)[-1].startswith("part-")]
    if len(parts) > 1:
        raise OSError(f"expected one file in {folder}, found {len(parts)}")
    return parts[0] if parts else None


def _rewrite_text(spark: SparkSession, targets: dict[str, str], fmt: str, subject: Subject, key: bytes, staging: str) -> None:
    """Write the other lines of each target (in order, same compression) to staging, then swap."""
    index = {spark_path: n for n, spark_path in enumerate(sorted(targets))}
    number = F.create_map(*[x for p, n in index.items() for x in (F.lit(p), F.lit(n))])[F.col("_file")]
    kept = _lines(spark, sorted(targets.values()), fmt, subject, key).where(~F.col("_hit")).withColumn("_n", number)
    codecs: dict[str, list[str]] = {}
    for spark_path, target in targets.items():
        codecs.setdefault(CODECS.get(target.rsplit(".", 1)[-1].lower(), "none"), []).append(spark_path)
    for codec, paths in sorted(codecs.items()):
        (
            kept.where(F.col("_file").isin(*paths)).repartition("_n").sortWithinPartitions("_n", "_block", "_pos")
            .select("value", "_n").write.mode("overwrite").partitionBy("_n").option("compression", codec)
            .text(f"{staging}/{codec}")
        )
        for spark_path in paths:
            _replace(spark, _staged(spark, f"{staging}/{codec}/_n={index[spark_path]}"), targets[spark_path])


def _rewrite_parquet(spark: SparkSession, target: str, subject: Subject, key: bytes, staging: str) -> None:
    """Write one Parquet drop again without the subject's rows (its own schema, rows in order)."""
    df = spark.read.parquet(target)
    columns = df.columns

    def get(c: str) -> Column | None:
        return F.col(f"`{c}`").cast("string") if c in columns else None

    kept = df.select("*", F.col("_metadata.row_index").alias("_pos")).where(~raw_match(get, subject, key))
    folder = f"{staging}/{uuid.uuid4().hex}"
    kept.repartition(1).sortWithinPartitions("_pos").select(*[F.col(f"`{c}`") for c in columns]).write.parquet(folder)
    _replace(spark, _staged(spark, folder), target)


def erase_raw(spark: SparkSession, lake: Lakehouse, subject: Subject, key: bytes) -> tuple[dict[str, int], Subject]:
    """Rewrite every raw drop holding the subject's records; records removed per source.

    Orders come before order lines in ``RAW_SOURCES``, so order ids found only in raw orders (not
    ingested yet) take their lines along; the subject is returned with them.
    """
    removed: dict[str, int] = {}
    # The stream's landing files are raw records too (docs/streaming.md), kept after they are read.
    roots = [(source, lake.raw(source)) for source in RAW_SOURCES] + [(source, lake.landing(source)) for source in STREAMED]
    for source, root in roots:
        if not set(load_schema(source).fieldNames()) & set(RAW_COLUMNS) or not fs.exists(spark, root):
            continue
        staging = f"{root}/_erasure"  # hidden from ingestion's listing by its leading underscore
        fs.delete(spark, staging)
        by_relative = {relative(root, f.path): f.path for f in fs.list_files(spark, root)}
        formats: dict[str, list[str]] = {}
        for path in by_relative.values():
            formats.setdefault(file_format(path), []).append(path)
        count = 0
        for fmt, paths in sorted(formats.items()):
            rows = _parquet_rows(spark, paths, subject, key) if fmt == "parquet" else _lines(spark, paths, fmt, subject, key)
            found = rows.where("_hit").groupBy("_file").agg(F.count("*").alias("n"), F.collect_set("_order").alias("orders")).collect()
            if not found:
                continue
            subject = subject.with_orders({o for r in found for o in r["orders"] if o})
            targets = {r["_file"]: by_relative[relative(root, r["_file"])] for r in found}
            if fmt == "parquet":
                for target in targets.values():
                    _rewrite_parquet(spark, target, subject, key, staging)
            else:
                _rewrite_text(spark, targets, fmt, subject, key, staging)
            count += sum(r["n"] for r in found)
        fs.delete(spark, staging)
        if count:
            label = root[len(lake.root):].strip("/")
            removed[label] = count
            log.info("%s: %d records of the subject removed", label, count)
    return removed, subject


# ---------------------------------------------------------------- Feast online store and MLflow


def check_online_store(settings: Settings) -> None:
    """Fail before anything is deleted when the online store is one erasure cannot reach.

    Raises:
        ValueError: an online store other than SQLite or Redis.
        FileNotFoundError: no Feast repository at ``feast.repo``.
    """
    from presage.featurestore.store import open_store

    kind = open_store(settings).config.online_store.type
    if kind not in ("sqlite", "redis"):
        raise ValueError(f"online store {kind!r}: presage erase removes entities from SQLite and Redis stores only")


def erase_online(settings: Settings, persons: frozenset[str]) -> int:
    """Remove the persons' entities from Feast's online store; returns how many were there.

    Feast has no per-entity delete, so this uses Feast's own key encoding and table names: on
    SQLite the rows of the entity key in every view's table, then a VACUUM that rebuilds the file
    (deleted cells, even with ``secure_delete``, can survive in the free space of index pages that
    were rebalanced); on Redis the entity's hash, which holds every view.
    """
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key, compute_table_id
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from presage.featurestore.store import open_store

    if not persons:
        return 0
    store = open_store(settings)
    config = store.config
    version = config.entity_key_serialization_version
    keys = [EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=p)]) for p in sorted(persons)]
    if isinstance(config.online_store, RedisOnlineStoreConfig):
        client = RedisOnlineStore()._get_client(config.online_store)
        return sum(int(client.delete(_redis_key(store.project, k, version))) for k in keys)
    path = Path(SqliteOnlineStore._get_db_path(config))
    if not path.exists():
        return 0
    blobs = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    marks = ", ".join("?" * len(blobs))
    views = [v for v in store.list_feature_views() if v.online and list(v.join_keys) == [ENTITY]]
    found: set[bytes] = set()
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with conn:
            for view in views:
                table = compute_table_id(store.project, view, config.registry.enable_online_feature_view_versioning)
                if table in tables:
                    quoted = '"' + table.replace('"', '""') + '"'
                    found |= {r[0] for r in conn.execute(f"SELECT DISTINCT entity_key FROM {quoted} WHERE entity_key IN ({marks})", blobs)}
                    conn.execute(f"DELETE FROM {quoted} WHERE entity_key IN ({marks})", blobs)
        if found:
            conn.execute("VACUUM")
    finally:
        conn.close()
    return len(found)


def erase_artifacts(lake: Lakehouse, subject: Subject) -> dict[str, int]:
    """Drop the subject's rows from CSV artifacts under ``<home>/mlflow`` (the top-200 explanations
    of each training run list persons); rows removed per file, relative to the lakehouse."""
    import pandas as pd

    folder = Path(lake.path("mlflow"))
    if "://" in lake.root or not folder.is_dir():
        return {}
    names = sorted(subject.persons | subject.keys.get("customer_id", frozenset()))
    removed = {}
    for path in sorted(folder.rglob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        columns = [c for c in frame.columns if c in ("customer_id", "person_id")]
        hit = frame[columns].isin(names).any(axis=1) if columns else None
        if hit is not None and hit.any():
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            frame[~hit].to_csv(temporary, index=False)
            temporary.replace(path)
            removed[str(path.relative_to(Path(lake.root)))] = int(hit.sum())
    return removed


# ---------------------------------------------------------------- audit and the job


def _audit(spark: SparkSession, lake: Lakehouse, result: ErasureResult, kind: str, status: str) -> None:
    row = [(result.erasure_id, result.subject_hash, kind, status, dt.datetime.now(dt.UTC),
            result.persons, result.rows_removed, result.vacuumed, result.notes)]
    spark.createDataFrame(row, AUDIT_SCHEMA).write.format("delta").mode("append").save(lake.audit(AUDIT))


def _audit_history(spark: SparkSession, lake: Lakehouse, digest: str) -> list:
    path = lake.audit(AUDIT)
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    return spark.read.format("delta").load(path).where(F.col("subject_hash") == digest).orderBy("at").collect()


def erase(spark: SparkSession, settings: Settings, value: str) -> ErasureResult:
    """Erase the person named by ``value`` (CRM customer id, email address or person id).

    A request that finds nothing is recorded (``not_found``, or ``already_erased`` after an
    earlier erasure); a run that finds the interrupted erasure of the same subject finishes it.

    Raises:
        ValueError: an empty request, silver behind bronze (run ``presage build-profiles``), or an
            online store erasure cannot reach.
    """
    lake = Lakehouse.of(settings)
    require_silver_current(spark, lake, "erase")
    check_online_store(settings)
    key = load_key(settings)
    subject = resolve(spark, settings, lake, value)
    result = ErasureResult(uuid.uuid4().hex, subject.digest, "erased", len(subject.persons))
    if subject.ambiguous:
        result.status, result.notes = "ambiguous", [f"not erased: {subject.ambiguous}"]
        _audit(spark, lake, result, subject.kind, result.status)
        return result

    tables = [t for t in delta_tables(spark, lake) if not t.startswith("audit/")]
    subject = subject.with_orders(_order_ids(spark, lake, tables, subject))
    planned = {}
    for name in tables:
        df = spark.read.format("delta").load(lake.path(name))
        match = table_match(df.columns, subject)
        rows = df.where(match).count() if match is not None else 0
        if rows:
            planned[name] = rows
    history = _audit_history(spark, lake, subject.digest)
    interrupted = sorted(history[-1]["vacuumed"]) if history and history[-1]["status"] == "started" else []
    if planned:
        result.rows_removed, result.vacuumed = dict(planned), sorted(planned)
        _audit(spark, lake, result, subject.kind, "started")

    removed = {name: _erase_table(spark, lake.path(name), subject) for name in planned if name not in IDENTITY_TABLES}
    raw, subject = erase_raw(spark, lake, subject, key)
    online = erase_online(settings, subject.persons)
    artifacts = erase_artifacts(lake, subject)
    removed |= {name: _erase_table(spark, lake.path(name), subject) for name in planned if name in IDENTITY_TABLES}
    vacuumed = sorted(set(planned) | {t for t in interrupted if DeltaTable.isDeltaTable(spark, lake.path(t))})
    if vacuumed:
        vacuum_now(spark, [lake.path(t) for t in vacuumed])
        record_consumed(spark, lake)

    result.rows_removed = {**removed, **raw, **({"feast/online": online} if online else {}), **artifacts}
    result.vacuumed = vacuumed
    if interrupted:
        result.notes.append(f"finished the interrupted erasure {history[-1]['erasure_id']}")
    elif not result.rows_removed:
        result.status = "already_erased" if any(r["status"] == "erased" for r in history) else "not_found"
    if settings.mlflow.tracking_uri is not None:
        result.notes.append(f"artifacts of the MLflow store {settings.mlflow.tracking_uri} were not searched")
    _audit(spark, lake, result, subject.kind, result.status)
    log.info("erasure %s: %s, %d tables and files", result.erasure_id, result.status, len(result.rows_removed))
    return result
