"""Feast over gold: the committed repository applies cleanly, online stores (SQLite, a real Redis)
serve the latest snapshot, the HTTP feature server answers, training sets are point-in-time."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from presage.config import Settings
from presage.features.catalog import ATTRIBUTES, BEHAVIOUR, ENTITY, TIMESTAMP
from tests.conftest import redis_server

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT / "feature_repo"
FEAST = str(Path(sys.executable).parent / "feast")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _feast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FEAST, *args], cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="session")
def applied(gold, lake_home: str) -> Path:
    """`feast apply` (with source validation, as a user runs it) on the committed repository."""
    before = sorted(p.name for p in REPO.iterdir() if p.name != "__pycache__")
    result = _feast("apply")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in REPO.iterdir() if p.name != "__pycache__") == before, "apply wrote into the repository"
    return Path(lake_home) / "feast" / "registry.db"


def test_key_order_is_the_byte_order_of_feasts_serialized_key(spark) -> None:
    """Long (>= 256 bytes, where the little-endian length's bytes disagree with its value) and
    non-ASCII ids included: Spark's sort by key_order equals Python's sort of Feast's bytes."""
    from feast import Entity, FeatureView, Field
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float64, String

    from presage.featurestore.materialize import key_order

    ids = ["b", "a", "ab", "é", "z" * 255, "a" * 256, "b" * 257, "y" * 300, "C0000012", "P0F3A9"] + [
        f"P{k * 7919 % 1000:03d}" for k in range(40)]
    view = FeatureView(name="v", entities=[Entity(name="c", join_keys=[ENTITY])], ttl=dt.timedelta(days=1),
                       schema=[Field(name=ENTITY, dtype=String), Field(name="x", dtype=Float64)])
    frame = spark.createDataFrame([(i,) for i in ids], [ENTITY])
    ordered = [row[0] for row in frame.orderBy(*key_order(view, 3)).collect()]

    def key(customer: str) -> bytes:
        return serialize_entity_key(EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=customer)]), 3)

    assert ordered == sorted(ids, key=key)
    assert ordered != sorted(ids)  # the length's bytes come first: not the plain string order


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory):
    """A real redis-server on 127.0.0.1 for the session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as port:
        yield port


def _latest(spark, lake_home: str, table: str, columns: list[str]):
    frame = spark.read.format("delta").load(f"{lake_home}/gold/{table}")
    latest = frame.agg(F.max(TIMESTAMP)).first()[0]
    rows = frame.where(F.col(TIMESTAMP) == latest).orderBy(ENTITY).limit(25).select(ENTITY, *columns).collect()
    return {row[ENTITY]: row.asDict() for row in rows}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def _assert_online_equals_latest(spark, store, lake_home: str) -> None:
    behaviour = [f.name for f in BEHAVIOUR]
    attributes = [f.name for f in ATTRIBUTES]
    expected = _latest(spark, lake_home, "customer_features", behaviour)
    expected_attrs = _latest(spark, lake_home, "customer_attributes", attributes)
    ids = sorted(expected)
    refs = [f"customer_behaviour:{n}" for n in behaviour] + [f"customer_attributes:{n}" for n in attributes]
    got = store.get_online_features(features=refs, entity_rows=[{ENTITY: i} for i in [*ids, "P-nobody"]]).to_dict()
    for k, customer in enumerate(ids):
        for name in behaviour:
            assert _close(got[name][k], expected[customer][name]), (customer, name, got[name][k], expected[customer][name])
        for name in attributes:
            assert _close(got[name][k], expected_attrs[customer][name]), (customer, name)
    assert all(got[name][-1] is None for name in behaviour + attributes), "an unknown customer gets nulls"


@pytest.mark.slow
def test_plan_after_apply_changes_nothing(applied, lake_home: str) -> None:
    result = _feast("plan")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "No changes to infrastructure" in out
    assert not [line for line in out.splitlines() if line.startswith(("Created", "Deleted"))], out[-2000:]
    # Feast 0.67 reports views and services over a SparkSource as "Updated" on every plan (SparkOptions
    # compare by identity, source timestamps are set at import). Check that this is all there is.
    sys.path.insert(0, str(REPO))
    try:
        import customers
        from feast import FeatureStore

        store = FeatureStore(repo_path=str(REPO))
        for name in ("customer_behaviour", "customer_attributes", "customer_activity"):
            current = store.get_feature_view(name).to_proto().spec
            new = getattr(customers, name).to_proto().spec
            for spec in (current, new):
                spec.batch_source.ClearField("meta")
                spec.stream_source.batch_source.ClearField("meta")
                spec.stream_source.ClearField("meta")
            assert current == new, name
        assert {s.name for s in store.list_feature_services()} == {
            "purchase_propensity", "churn_risk", "expected_spend", "channel_response", "custom_goal", "customer_app",
            "customer_realtime"}
    finally:
        sys.path.remove(str(REPO))


@pytest.mark.slow
def test_sqlite_online_store_serves_the_latest_snapshot(spark, settings: Settings, applied, lake_home: str) -> None:
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    store = open_store(settings)
    results = materialize(spark, store)
    assert {r.view for r in results} == {"customer_behaviour", "customer_attributes"}
    assert all(r.rows > 0 and r.writer.startswith("Feast") for r in results)
    _assert_online_equals_latest(spark, store, lake_home)
    intervals = store.get_feature_view("customer_behaviour").materialization_intervals
    assert intervals and intervals[-1][1] == results[0].snapshot
    # Written in primary-key order, so that SQLite's B-tree fills page after page (materialize.py).
    with sqlite3.connect(store.config.online_store.path) as db:
        keys = [row[0] for row in db.execute("SELECT entity_key FROM presage_customer_behaviour ORDER BY rowid")]
    assert len(keys) > 1000 and keys == sorted(keys)


@pytest.fixture(scope="session")
def redis_store(spark, settings: Settings, applied, redis_port: int):
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    os.environ["PRESAGE_REDIS"] = f"127.0.0.1:{redis_port}"
    store = open_store(settings.model_copy(update={"feast": settings.feast.model_copy(update={"yaml": "feature_store.redis.yaml"})}))
    results = materialize(spark, store)
    assert all(r.writer.startswith("redis bulk") for r in results)
    return store


@pytest.mark.slow
def test_redis_online_store_serves_the_latest_snapshot(spark, redis_store, lake_home: str, redis_port: int) -> None:
    import redis

    _assert_online_equals_latest(spark, redis_store, lake_home)
    client = redis.Redis(port=redis_port)
    key = client.randomkey()
    assert 0 < client.ttl(key) <= redis_store.config.online_store.key_ttl_seconds


@pytest.mark.slow
def test_bulk_writer_writes_the_bytes_feast_writes(spark, redis_store, lake_home: str, redis_port: int) -> None:
    """Rows written by Feast's own writer (into db 1) and by the bulk writer (db 0) are identical."""
    import redis

    from presage.featurestore.materialize import latest_snapshot
    from presage.featurestore.redis_bulk import entity_key
    from presage.featurestore.store import open_store

    os.environ["PRESAGE_REDIS"] = f"127.0.0.1:{redis_port},db=1"
    try:
        feast_store = open_store(Settings(spark={"profile": "test"}, feast={"yaml": "feature_store.redis.yaml"}))
        for name in ("customer_behaviour", "customer_attributes"):
            view = feast_store.get_feature_view(name)
            rows, _ = latest_snapshot(spark, view, dt.datetime.now(dt.UTC))
            sample = rows.orderBy(ENTITY).limit(40).toPandas()
            feast_store.write_to_online_store(name, sample)
    finally:
        os.environ["PRESAGE_REDIS"] = f"127.0.0.1:{redis_port}"
    bulk, feast = redis.Redis(port=redis_port, db=0), redis.Redis(port=redis_port, db=1)
    ids = list(sample[ENTITY])
    assert ids
    for customer in ids:
        key = entity_key(ENTITY, customer, "presage")
        assert bulk.hgetall(key) == feast.hgetall(key), customer


@pytest.mark.slow
def test_http_feature_server_answers(spark, settings: Settings, applied, lake_home: str) -> None:
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    store = open_store(settings)
    if not store.get_feature_view("customer_behaviour").materialization_intervals:
        materialize(spark, store)
    customer = min(_latest(spark, lake_home, "customer_features", ["orders_total"]))
    port = _free_port()
    server = subprocess.Popen([FEAST, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        body = json.dumps({"feature_service": "customer_app", "entities": {ENTITY: [customer, "P-nobody"]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                         headers={"Content-Type": "application/json"})
        for _ in range(240):
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.load(response)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-3000:]
                time.sleep(0.5)
        else:
            pytest.fail("feast serve did not answer within 2 minutes")
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = answer["metadata"]["feature_names"]
    column = {name: answer["results"][i] for i, name in enumerate(names)}
    assert len(names) > 40
    sdk = store.get_online_features(features=store.get_feature_service("customer_app"),
                                    entity_rows=[{ENTITY: customer}]).to_dict()
    assert column["orders_total"]["values"][0] == sdk["orders_total"][0]
    assert column["orders_total"]["statuses"] == ["PRESENT", "NOT_FOUND"]
    assert all(column[name]["values"][1] is None for name in names if name != ENTITY)


@pytest.mark.slow
def test_training_set_is_point_in_time(spark, settings: Settings, applied, lake_home: str, tmp_path: Path) -> None:
    """Entity rows just before, at and after snapshot instants get the snapshot they may see.

    tenure_days grows by the snapshot spacing for every known person, so a value from the next
    snapshot (leakage) or the previous one (a lag) would not match.
    """
    from presage.cli import main

    gold = spark.read.format("delta").load(f"{lake_home}/gold/customer_features")
    instants = sorted(r[0] for r in gold.select(TIMESTAMP).distinct().collect())
    assert len(instants) >= 4
    customers = [r[0] for r in gold.where(F.col(TIMESTAMP) == instants[0]).orderBy(ENTITY).limit(12).collect()]
    second = dt.timedelta(seconds=1)
    probes = [(c, instants[0] - second, None) for c in customers[:3]]
    for k in (1, 2, 3):
        probes += [(c, instants[k] - second, instants[k - 1]) for c in customers]
        probes += [(c, instants[k], instants[k]) for c in customers]
        probes += [(c, instants[k] + dt.timedelta(days=3), instants[k]) for c in customers]
    entities = spark.createDataFrame(
        [(c, at, seen, i) for i, (c, at, seen) in enumerate(probes)],
        f"{ENTITY} string, {TIMESTAMP} timestamp, expected_snapshot timestamp, label long",
    )
    entities.write.parquet(str(tmp_path / "entities.parquet"))
    output = str(tmp_path / "training_set")
    assert main(["training-set", "--entities", str(tmp_path / "entities.parquet"), "--service", "purchase_propensity", "--output", output]) == 0
    got = spark.read.format("delta").load(output)
    assert got.count() == len(probes)
    assert {"label", "tenure_days", "orders_total", "country"} <= set(got.columns)
    truth = gold.select(ENTITY, F.col(TIMESTAMP).alias("expected_snapshot"), *[F.col(f.name).alias(f"truth_{f.name}") for f in BEHAVIOUR])
    joined = got.join(truth, [ENTITY, "expected_snapshot"], "left").collect()
    checked = 0
    for row in joined:
        for f in BEHAVIOUR:
            if row["expected_snapshot"] is None:
                assert row[f.name] is None, (row[ENTITY], row[TIMESTAMP], f.name)
            else:
                assert _close(row[f.name], row[f"truth_{f.name}"]), (row[ENTITY], row[TIMESTAMP], f.name, row[f.name], row[f"truth_{f.name}"])
                checked += 1
    assert checked > 1000
    tenure = gold.where(F.col(ENTITY).isin(customers)).groupBy(ENTITY).agg(F.countDistinct("tenure_days").alias("n")).collect()
    assert all(r["n"] > 1 for r in tenure), "tenure_days must change between snapshots for leakage to show"


def test_training_set_rejects_bad_requests(spark, settings: Settings, applied) -> None:
    from presage.featurestore.store import open_store
    from presage.featurestore.training import training_set

    store = open_store(settings)
    rows = spark.createDataFrame([("P1", "2026-01-01")], f"{ENTITY} string, {TIMESTAMP} string")
    with pytest.raises(ValueError, match="unknown feature service 'nope'"):
        training_set(store, rows, "nope")
    with pytest.raises(ValueError, match="missing"):
        training_set(store, rows.drop(TIMESTAMP), "customer_app")
    with pytest.raises(ValueError, match="no valid"):
        training_set(store, spark.createDataFrame([("P1", "soon")], f"{ENTITY} string, {TIMESTAMP} string"), "customer_app")
