"""`presage erase` and `presage retention` on a copy of the scored model lakehouse.

After an erasure the person is absent from every Delta table and every version still readable, from
the raw drops, the online store, the identity map and the lakehouse's MLflow artifacts; everybody
else's rows are all still there; the audit holds a keyed hash, never the id. A rerun, an unknown
person and a placeholder email are handled without a crash, and the pipeline carries on: ingestion
re-reads nothing, build-profiles runs incrementally. Retention removes planted old events.

The checks read the tables with delta-rs, independently of the Spark code under test, and look for
the person's ids anywhere in a row (nested values included), not only in the columns erasure uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from presage.features.catalog import ENTITY
from tests.conftest import redis_server, use_home

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- reading a lakehouse without Spark


def _tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if "_delta_log" not in p.parent.parts)


def _strings(array: pa.Array) -> list[pa.Array]:
    """Every string leaf of an Arrow column (struct fields, list items, map keys and values)."""
    if isinstance(array, pa.ChunkedArray):
        return [s for chunk in array.chunks for s in _strings(chunk)]
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [array]
    if pa.types.is_map(kind):
        return _strings(array.keys) + _strings(array.items)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _strings(pc.list_flatten(array))
    if pa.types.is_struct(kind):
        return [s for k in range(kind.num_fields) for s in _strings(array.field(k))]
    return []


def _naming(table: pa.Table, pattern: str) -> pa.Array:
    """Per row: does any string in it (at the top level) match ``pattern``?"""
    hit = pa.array([False] * table.num_rows, type=pa.bool_())
    for column in table.columns:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            found = pc.fill_null(pc.match_substring_regex(column, pattern), False)
        elif _strings(column):
            texts = pa.array([json.dumps(v, default=str) for v in column.to_pylist()], type=pa.string())
            found = pc.match_substring_regex(texts, pattern)
        else:
            continue
        hit = pc.or_(hit, found)
    return hit


def _rows(path: Path, pattern: str, version: int | None = None) -> tuple[int, int]:
    """(rows, rows naming the subject) of a Delta table's version."""
    table = DeltaTable(str(path), version=version).to_pyarrow_table()
    return table.num_rows, pc.sum(_naming(table, pattern)).as_py() or 0


def _readable(path: Path, version: int) -> bool:
    files = DeltaTable(str(path), version=version).file_uris()
    return all(Path(f.removeprefix("file://")).exists() for f in files)


def _audit(path: Path) -> list[dict]:
    """An audit table's rows in the order they were written (a Delta read has no row order)."""
    return sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=lambda r: r["at"])


def _raw_texts(root: Path) -> dict[Path, list[str]]:
    return {p: p.read_text().splitlines() for p in sorted((root / "raw").rglob("*")) if p.suffix in (".csv", ".jsonl")}


# ---------------------------------------------------------------- the erased lakehouse


@pytest.fixture(scope="module")
def lake(spark, scored_lake, model_lake: str, lake_home: str, model_settings, tmp_path_factory):
    """A copy of the scored model lakehouse, with its online store materialized; PRESAGE_HOME
    points at the copy for the module."""
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    copy = tmp_path_factory.mktemp("erasure") / "lake"
    shutil.copytree(model_lake, copy)
    with use_home(str(copy), lake_home):
        materialize(spark, open_store(model_settings))
        yield copy


@pytest.fixture(scope="module")
def subject(spark, lake: Path, model_settings) -> dict:
    """A person with a CRM record, orders, web events, scores, an online row and a place in a
    training run's top-200 explanations, whose email is not shared; their ids, as the test sees them."""
    from presage.privacy import load_key, pseudonymize

    read = lambda name: spark.read.format("delta").load(str(lake / name))
    explained = set()
    for path in (lake / "mlflow").rglob("explanations_top200.csv"):
        with path.open() as fh:
            explained |= {row[ENTITY] for row in csv.DictReader(fh)}
    identity = read("silver/identity_map").where(~F.col("is_shared"))
    kinds = identity.groupBy("person_id").pivot("kind", ["customer_id", "email"]).count()
    persons = (
        kinds.where((F.col("customer_id") == 1) & (F.col("email") == 1))
        .join(read("silver/orders").select("person_id").distinct(), "person_id")
        .join(read("silver/web_events").select("person_id").distinct(), "person_id")
        .join(read("outputs/lead_priority").select(F.col(ENTITY).alias("person_id")), "person_id")
        .where(F.col("person_id").isin(*explained))
    )
    key = load_key(model_settings)
    for person in sorted({r[0] for r in persons.select("person_id").collect()}):
        ids: dict[str, set[str]] = {}
        for r in identity.where(F.col("person_id") == person).collect():
            ids.setdefault(r["kind"], set()).add(r["value"])
        crm = next(iter(ids["customer_id"]))
        emails = set()
        for path in (lake / "raw" / "customers").rglob("*.csv"):
            with path.open() as fh:
                emails |= {row["email"] for row in csv.DictReader(fh) if row["customer_id"] == crm and row["email"]}
        email = next((e for e in sorted(emails) if pseudonymize("email", e, key) in ids["email"]), None)
        if email:
            break
    assert email, "a person whose CRM record carries their (unshared) email"
    merged = {r[0] for r in read("silver/identity_merges").where(F.col("into_person_id") == person).select("merged_person_id").collect()}
    orders = {r[0] for r in read("silver/orders").where(F.col("person_id") == person).select("order_id").collect()}
    tokens = {person, *merged, *ids["customer_id"], *ids.get("device_id", ()), *ids["email"], *ids.get("phone", ()), *orders}
    clear = {crm, email, *ids.get("device_id", ()), *orders}
    return {
        "person": person, "crm": crm, "email": email, "orders": orders,
        # RE2 (pyarrow) has no lookbehind: the boundaries are matched as characters.
        "pattern": rf"(?:^|[^A-Za-z0-9_-])(?:{'|'.join(re.escape(t) for t in sorted(tokens))})(?:$|[^A-Za-z0-9_-])",
        "clear": clear,
        "handles": ids.get("social_handle", set()),
    }


@pytest.fixture(scope="module")
def before(lake: Path, subject: dict) -> dict:
    """Row counts (all, naming the subject) and versions of every table, and the raw text files."""
    return {
        "tables": {p: _rows(p, subject["pattern"]) for p in _tables(lake)},
        "versions": {p: DeltaTable(str(p)).version() for p in _tables(lake)},
        "raw": _raw_texts(lake),
    }


@pytest.fixture(scope="module")
def erased(spark, lake: Path, subject: dict, before: dict) -> None:
    """`presage erase --customer <crm id>` through the CLI, in this process."""
    from presage.cli import main

    assert main(["erase", "--customer", subject["crm"]]) == 0


def test_the_person_was_everywhere_before(before: dict, lake: Path) -> None:
    named = {p.relative_to(lake).as_posix() for p, (_, hits) in before["tables"].items() if hits}
    assert {"bronze/orders", "bronze/web_events", "bronze/customers", "bronze/order_items", "silver/identity_map",
            "silver/orders", "silver/customer_profile", "gold/customer_features", "outputs/lead_priority"} <= named


def test_absent_from_every_table_and_every_readable_version(erased, lake: Path, subject: dict, before: dict) -> None:
    unreadable = 0
    for path in _tables(lake):
        for entry in DeltaTable(str(path)).history():
            version = entry["version"]
            if not _readable(path, version):
                unreadable += 1
                continue
            _, hits = _rows(path, subject["pattern"], version)
            assert hits == 0, (path.relative_to(lake).as_posix(), version)
    assert unreadable > 0, "old versions holding the person were vacuumed"


def test_everybody_else_is_untouched(erased, lake: Path, subject: dict, before: dict) -> None:
    from presage.erasure import AUDIT

    removed = dict(_audit(lake / "audit" / AUDIT)[-1]["rows_removed"])
    for path, (rows, hits) in before["tables"].items():
        name = path.relative_to(lake).as_posix()
        after, after_hits = _rows(path, subject["pattern"])
        assert after_hits == 0, name
        if name == "silver/_build_log":
            assert after == rows + 1, "erasure records the versions it wrote as consumed by silver"
            continue
        assert after - after_hits == rows - hits, f"{name}: other rows changed"
        assert rows - after == removed.get(name, 0), f"{name}: the audit counts what went"


def _subjects_line(line: str, clear: re.Pattern, handles: set[str]) -> bool:
    if clear.search(line):
        return True
    try:
        return json.loads(line).get("social_handle") in handles
    except (ValueError, AttributeError):
        return False


def test_raw_drops_no_longer_hold_the_person(erased, lake: Path, subject: dict, before: dict) -> None:
    alternatives = "|".join(re.escape(t) for t in sorted(subject["clear"]))
    clear = re.compile(rf"(?<![\w.+-])(?:{alternatives})(?![\w.-])", re.IGNORECASE)
    after = _raw_texts(lake)
    assert set(after) == set(before["raw"]), "same files, same names"
    changed = 0
    for path, lines in before["raw"].items():
        kept = [line for line in lines if not _subjects_line(line, clear, subject["handles"])]
        assert after[path] == kept, f"{path}: exactly the person's lines left, the others kept in order"
        changed += len(kept) != len(lines)
    assert changed >= 3
    for path in (lake / "raw").rglob("*.parquet"):
        values = {v.lower() for column in pq.read_table(path).columns for s in _strings(column) for v in s.to_pylist() if v}
        assert not values & {c.lower() for c in subject["clear"]}, path
    leftovers = [p for p in (lake / "raw").rglob("*") if "_erasure" in p.parts]
    assert not leftovers


def test_online_store_and_identity_map(erased, spark, lake: Path, subject: dict, model_settings) -> None:
    from presage.featurestore.store import open_store

    store = open_store(model_settings)
    others = spark.read.format("delta").load(str(lake / "outputs/lead_priority")).where(F.col(ENTITY) != subject["person"])
    other = others.orderBy(ENTITY).first()[ENTITY]
    got = store.get_online_features(features=store.get_feature_service("customer_app"),
                                    entity_rows=[{ENTITY: subject["person"]}, {ENTITY: other}]).to_dict()
    names = [n for n in got if n != ENTITY]
    assert all(got[n][0] is None for n in names), "the erased person gets nulls"
    assert any(got[n][1] is not None for n in names), "another person still gets features"
    assert subject["person"].encode() not in (lake / "feast" / "online.db").read_bytes(), "no trace left in the SQLite file"
    identity = spark.read.format("delta").load(str(lake / "silver/identity_map"))
    assert identity.where(F.col("person_id") == subject["person"]).isEmpty()
    assert identity.where(F.col("identifier") == f"customer_id:{subject['crm']}").isEmpty()


def test_mlflow_artifacts_of_the_copy(erased, lake: Path, subject: dict, model_lake: str) -> None:
    copies = list((lake / "mlflow").rglob("explanations_top200.csv"))
    assert copies
    for path in copies:
        assert subject["person"] not in path.read_text(), path
    # The copy's MLflow database still names the original lakehouse's artifact folders (absolute
    # URIs): erasure works on the files under its own lakehouse, so the original keeps its rows.
    with sqlite3.connect(lake / "mlflow" / "mlflow.db") as db:
        uris = [r[0] for r in db.execute("SELECT artifact_uri FROM runs")]
    assert uris and all(model_lake in uri for uri in uris)
    originals = "".join(p.read_text() for p in Path(model_lake, "mlflow").rglob("explanations_top200.csv"))
    assert subject["person"] in originals


def test_audit_keeps_a_hash_and_the_history_no_ids(erased, lake: Path, subject: dict, before: dict, model_settings) -> None:
    from presage.erasure import AUDIT, subject_hash
    from presage.privacy import load_key

    digest = subject_hash(load_key(model_settings), f"customer_id:{subject['crm']}")
    audit = _audit(lake / "audit" / AUDIT)
    mine = [r for r in audit if r["subject_hash"] == digest]
    assert [r["status"] for r in mine] == ["started", "erased"]
    removed = dict(mine[-1]["rows_removed"])
    assert {"bronze/orders", "silver/orders", "gold/customer_features", "outputs/lead_priority", "raw/orders",
            "feast/online"} <= set(removed)
    assert any(name.startswith("mlflow/") for name in removed)
    assert subject["crm"] not in json.dumps(audit, default=str)
    # The commits erasure wrote (MERGE, VACUUM) record column names, never the values.
    for path, version in before["versions"].items():
        for entry in DeltaTable(str(path)).history():
            if entry["version"] > version:
                assert not re.search(subject["pattern"], json.dumps(entry, default=str)), (path, entry["version"])


def test_rerun_unknown_and_placeholder_are_harmless(erased, spark, lake: Path, subject: dict, model_settings, capsys) -> None:
    from presage.cli import main
    from presage.erasure import erase

    versions = {p: DeltaTable(str(p)).version() for p in _tables(lake) if "audit" not in p.parts}
    again = erase(spark, model_settings, subject["crm"])
    assert (again.status, again.rows_removed, again.vacuumed) == ("already_erased", {}, [])
    assert erase(spark, model_settings, "C-NOBODY-0000").status == "not_found"
    assert main(["erase", "--customer", "Test@Test.com"]) == 2
    assert "blocked placeholder" in capsys.readouterr().out
    assert {p: DeltaTable(str(p)).version() for p in versions} == versions, "nothing else was written"
    statuses = [r["status"] for r in _audit(lake / "audit/erasures")]
    assert statuses[-3:] == ["already_erased", "not_found", "ambiguous"]


# ---------------------------------------------------------------- the pipeline after erasure, and retention


def _web_event(event_id: str, when: str, customer: str) -> str:
    return json.dumps({"event_id": event_id, "event_ts": when, "event_type": "page_view", "session_id": f"s-{event_id}",
                       "device_id": f"d-{event_id}", "customer_id": customer, "platform": "web", "page_url": "/"})


def test_pipeline_carries_on_and_retention_drops_old_events(erased, spark, lake: Path, subject: dict, model_settings) -> None:
    from presage.ingest.job import run as ingest
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver
    from presage.retention import run as retention

    assert ingest(spark, model_settings) == [], "rewritten drops are not ingested again"
    other = spark.read.format("delta").load(str(lake / "bronze/customers")).orderBy("customer_id").first()["customer_id"]
    planted = lake / "raw" / "web_events" / "2020-01" / "web_events-2020-01-000.jsonl"
    planted.parent.mkdir()
    planted.write_text("\n".join(_web_event(f"old-{k}", f"2020-01-0{k} 10:00:00", other) for k in (1, 2, 3)) + "\n")
    [batch] = ingest(spark, model_settings, ["web_events"])
    assert (batch.files, batch.bronze_rows) == (1, 3)
    with pytest.raises(ValueError, match="build-profiles"):
        retention(spark, model_settings, 365)

    build_silver(spark, model_settings, Lakehouse.of(model_settings))  # incremental, after an erasure
    for name in ("silver/identity_map", "silver/orders", "silver/web_events", "silver/customer_profile"):
        assert _rows(lake / name, subject["pattern"])[1] == 0, f"{name}: the person did not come back"
    web = lake / "bronze/web_events"
    rows_before = DeltaTable(str(web)).to_pyarrow_table().num_rows
    raw_before = {p for p in (lake / "raw").rglob("*") if p.is_file()}

    result = retention(spark, model_settings, 365)
    assert result.rows_removed == {"bronze/web_events": 3}
    assert result.files_removed == ["web_events/2020-01/web_events-2020-01-000.jsonl"]
    assert DeltaTable(str(web)).to_pyarrow_table().num_rows == rows_before - 3
    assert {p for p in (lake / "raw").rglob("*") if p.is_file()} == raw_before - {planted}
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    for entry in DeltaTable(str(web)).history():
        if _readable(web, entry["version"]):
            times = DeltaTable(str(web), version=entry["version"]).to_pyarrow_table(columns=["event_ts"])["event_ts"]
            assert pc.min(times).as_py().replace(tzinfo=dt.UTC) >= cutoff, entry["version"]
    silver = spark.read.format("delta").load(str(lake / "silver/web_events"))
    assert silver.where(F.col("event_id").startswith("old-")).count() == 3, "silver keeps its clean facts"
    audit = _audit(lake / "audit/retention")
    assert audit[-1]["days"] == 365 and audit[-1]["files_removed"] == result.files_removed
    assert ingest(spark, model_settings) == []


# ---------------------------------------------------------------- Redis online store


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory):
    """A redis-server of its own for this module."""
    with redis_server(tmp_path_factory.mktemp("redis-erasure")) as port:
        yield port


def test_redis_online_store_forgets_the_person(spark, lake: Path, model_settings, redis_port: int, monkeypatch) -> None:
    from presage.erasure import erase_online
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    monkeypatch.setenv("PRESAGE_REDIS", f"127.0.0.1:{redis_port}")
    settings = model_settings.model_copy(update={"feast": model_settings.feast.model_copy(update={"yaml": "feature_store.redis.yaml"})})
    store = open_store(settings)
    materialize(spark, store)
    leads = spark.read.format("delta").load(str(lake / "outputs/lead_priority")).orderBy(ENTITY).limit(2).collect()
    gone, kept = leads[0][ENTITY], leads[1][ENTITY]
    assert erase_online(settings, frozenset({gone})) == 1
    got = store.get_online_features(features=store.get_feature_service("customer_app"),
                                    entity_rows=[{ENTITY: gone}, {ENTITY: kept}]).to_dict()
    names = [n for n in got if n != ENTITY]
    assert all(got[n][0] is None for n in names)
    assert any(got[n][1] is not None for n in names)
    assert erase_online(settings, frozenset({gone})) == 0, "a rerun finds nothing"
