"""Feast serving benchmark: materialization into Redis and online lookups, beside their references.

One view of 50 float features (the shape of the issue's reference run) over a generated Delta table,
in a temporary Feast repository, with a redis-server started on 127.0.0.1:

- materialization: presage (bulk writer in Spark tasks, second of two runs) on --rows rows, against Feast's own
  `store.materialize` (Spark compute engine, default settings) on --reference-rows rows, and against
  redis-server alone: the same commands pre-encoded and replayed from one connection on
  --ceiling-rows rows (what Redis itself executes per second for Feast's layout: the ceiling);
- one customer x 50 features, warm, sequential, --requests lookups with random customers: p50/p99 of
  the SDK on Redis and `feast serve` over one keep-alive HTTP connection (an explicit feature list,
  then the feature service), among the --rows persons in Redis, each beside raw redis-py HMGET of
  the same key and fields (the floor); and of the SDK on SQLite, among the --reference-rows persons
  materialized there.

    python bench/feature_serving.py [--rows 500000] [--reference-rows 20000] [--requests 2000]
                                    [--ceiling-rows 100000]

Prints a table and writes bench/out/feature_serving.json. Numbers, not assertions: run it on a quiet
machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [f"f_{k:02d}" for k in range(50)]
SNAPSHOT = dt.datetime(2026, 10, 26, tzinfo=dt.UTC)
SERVE_FLAGS = ["--no-access-log", "--max-requests", "0", "--keep-alive-timeout", "300", "--workers", "1"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _timed(call, n: int, warm: int = 200) -> tuple[float, float]:
    for i in range(warm):
        call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def _redis_ceiling(port: int, rows: int) -> float:
    """Rows/s of redis-server itself on Feast's layout: pre-encoded commands replayed from one
    connection, keys already present (as in presage's second run). No writer can beat it."""
    import pyarrow as pa
    import redis

    from presage.featurestore import redis_bulk

    layout = redis_bulk.Layout("ceiling", "big", "customer_id", tuple((f, "double") for f in FEATURES),
                               "event_timestamp", None, {"port": port})
    rng = np.random.default_rng(0)
    table = pa.table({"customer_id": [f"C{i:07d}" for i in range(rows)],
                      "event_timestamp": pa.array([SNAPSHOT] * rows, pa.timestamp("us", tz="UTC")),
                      **{name: rng.random(rows) for name in FEATURES}})
    payloads = [redis_bulk.commands(batch, layout) for batch in table.to_batches(10_000)]
    connection = redis.Redis(port=port).connection_pool.get_connection()
    rate = 0.0
    for _ in range(2):
        started = time.perf_counter()
        for payload, replies in payloads:
            connection.send_packed_command([payload])
            for _ in range(replies):
                connection.read_response()
        rate = rows / (time.perf_counter() - started)
    return rate


def _write_table(spark, path: str, rows: int) -> None:
    from pyspark.sql import functions as F

    frame = spark.range(rows).select(
        F.format_string("C%07d", "id").alias("customer_id"),
        F.lit(SNAPSHOT).cast("timestamp").alias("event_timestamp"),
        F.lit(SNAPSHOT.date()).alias("snapshot_date"),
        *[F.rand(seed=k).alias(name) for k, name in enumerate(FEATURES)],
    )
    frame.write.format("delta").mode("overwrite").partitionBy("snapshot_date").save(path)


def _repo(folder: Path, kind: str, redis_port: int) -> Path:
    """A Feast repository with the two bench views, applied; ``kind`` is its online store."""
    repo = folder / f"repo_{kind}"
    repo.mkdir()
    online = (f'type: redis\n  connection_string: "127.0.0.1:{redis_port}"' if kind == "redis"
              else f"type: sqlite\n  path: {folder}/online.db")
    (repo / "feature_store.yaml").write_text(f"""project: bench
provider: local
registry:
  path: {folder}/registry_{kind}.db
  cache_ttl_seconds: 0
online_store:
  {online}
offline_store:
  type: spark
batch_engine:
  type: spark.engine
entity_key_serialization_version: 3
""")
    (repo / "bench_views.py").write_text(f"""from datetime import timedelta
from feast import Entity, FeatureService, FeatureView, Field
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.table_format import DeltaFormat
from feast.types import Float64, String
customer = Entity(name="customer", join_keys=["customer_id"])
def view(name, path):
    return FeatureView(name=name, entities=[customer], ttl=timedelta(days=15),
        schema=[Field(name="customer_id", dtype=String)] + [Field(name=f, dtype=Float64) for f in {FEATURES!r}],
        source=SparkSource(name=name + "_src", path=path, table_format=DeltaFormat(), timestamp_field="event_timestamp",
                           date_partition_column="snapshot_date"))
big = view("big", "{folder}/big")
ref = view("ref", "{folder}/ref")
lookup = FeatureService(name="lookup", features=[big])
""")
    subprocess.run([str(Path(sys.executable).parent / "feast"), "apply", "--skip-source-validation"], cwd=repo,
                   check=True, capture_output=True)
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--reference-rows", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--ceiling-rows", type=int, default=100_000)
    args = parser.parse_args()

    from feast import FeatureStore

    from presage.config import Settings
    from presage.featurestore.materialize import materialize
    from presage.featurestore.redis_bulk import entity_key, field_hash
    from presage.session import get_spark

    folder = Path(tempfile.mkdtemp(prefix="presage_bench_"))
    port = _port()
    redis_server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    results: dict[str, object] = {"rows": args.rows, "reference_rows": args.reference_rows, "features": len(FEATURES)}
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        spark = get_spark("bench-feature-serving", Settings())
        _write_table(spark, f"{folder}/big", args.rows)
        _write_table(spark, f"{folder}/ref", args.reference_rows)
        redis_repo, sqlite_repo = _repo(folder, "redis", port), _repo(folder, "sqlite", port)
        redis_store = FeatureStore(repo_path=str(redis_repo))

        # Twice: the first run pays the JVM's and Delta's warm-up, a fixed cost the second does not.
        bulk_rate = 0.0
        for _ in range(2):
            started = time.perf_counter()
            written = {r.view: r for r in materialize(spark, redis_store, views=["big"])}
            bulk_rate = written["big"].rows / (time.perf_counter() - started)
        started = time.perf_counter()
        redis_store.materialize(SNAPSHOT - dt.timedelta(days=1), SNAPSHOT + dt.timedelta(days=1), ["ref"])
        feast_rate = args.reference_rows / (time.perf_counter() - started)
        ceiling = _redis_ceiling(port, args.ceiling_rows)
        results["materialize_rows_per_s"] = {"presage": bulk_rate, "feast": feast_rate, "redis_ceiling": ceiling,
                                             "ratio": bulk_rate / feast_rate, "of_ceiling": bulk_rate / ceiling}

        sqlite_store = FeatureStore(repo_path=str(sqlite_repo))
        materialize(spark, sqlite_store, views=["ref"])
        rng = random.Random(7)
        # Redis (and `feast serve` over it) holds the --rows persons: random ones among all of them.
        pick = [f"C{rng.randrange(args.rows):07d}" for _ in range(args.requests + 200)]
        refs = [f"big:{f}" for f in FEATURES]
        fields = [field_hash("big", f) for f in FEATURES] + [b"_ts:big"]
        keys = {c: entity_key("customer_id", c, "bench") for c in set(pick)}
        assert client.hmget(keys[pick[0]], fields)[0] is not None, "the bench rows are not in Redis"
        # SQLite holds the --reference-rows persons only: --rows of them would keep its single writer for minutes.
        sqlite_pick = [f"C{rng.randrange(args.reference_rows):07d}" for _ in range(args.requests + 200)]
        sqlite_refs = [f"ref:{f}" for f in FEATURES]
        lookups = {
            "raw redis-py HMGET (floor)": _timed(lambda i: client.hmget(keys[pick[i]], fields), args.requests),
            "SDK on Redis": _timed(lambda i: redis_store.get_online_features(features=refs, entity_rows=[{"customer_id": pick[i]}]), args.requests),
            "SDK on SQLite": _timed(lambda i: sqlite_store.get_online_features(features=sqlite_refs, entity_rows=[{"customer_id": sqlite_pick[i]}]),
                                    args.requests),
        }
        http_port = _port()
        server = subprocess.Popen([str(Path(sys.executable).parent / "feast"), "serve", "--host", "127.0.0.1", "--port", str(http_port), *SERVE_FLAGS],
                                  cwd=redis_repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONOPTIMIZE": "1"})
        try:
            connection = http.client.HTTPConnection("127.0.0.1", http_port)
            for _ in range(240):
                try:
                    connection.request("GET", "/health")
                    connection.getresponse().read()
                    break
                except OSError:
                    connection.close()
                    time.sleep(0.5)

            def http_lookup(i: int) -> None:
                body = json.dumps({"features": refs, "entities": {"customer_id": [pick[i]]}})
                connection.request("POST", "/get-online-features", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                assert response.status == 200, payload[:300]

            lookups["HTTP feast serve"] = _timed(http_lookup, args.requests)

            def http_service_lookup(i: int) -> None:
                body = json.dumps({"feature_service": "lookup", "entities": {"customer_id": [pick[i]]}})
                connection.request("POST", "/get-online-features", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                assert response.status == 200, payload[:300]

            lookups["HTTP, feature_service"] = _timed(http_service_lookup, args.requests)
        finally:
            server.terminate()
            server.wait(timeout=30)
        results["lookup_ms"] = {name: {"p50": p50, "p99": p99} for name, (p50, p99) in lookups.items()}
    finally:
        redis_server.terminate()
        redis_server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    rates = results["materialize_rows_per_s"]
    print(f"\nmaterialization into Redis, {len(FEATURES)} float features")
    print(f"  presage bulk writer ({args.rows:,d} rows)      {rates['presage']:>10,.0f} rows/s")
    print(f"  Feast materialize ({args.reference_rows:,d} rows)        {rates['feast']:>10,.0f} rows/s")
    print(f"  redis-server alone ({args.ceiling_rows:,d} rows, replayed)  {rates['redis_ceiling']:>10,.0f} rows/s")
    print(f"  ratio presage / Feast                     {rates['ratio']:>10.1f}x")
    print(f"  ratio presage / redis-server alone        {rates['of_ceiling']:>10.2f}x")
    floor = results["lookup_ms"]["raw redis-py HMGET (floor)"]
    print(f"\nonline lookup, 1 customer x {len(FEATURES)} features ({args.requests:,d} sequential requests)")
    print(f"  {'path':28s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 / floor':>12s} {'p99 / floor':>12s}")
    for name, value in results["lookup_ms"].items():
        print(f"  {name:28s} {value['p50']:8.2f} {value['p99']:8.2f} {value['p50'] / floor['p50']:12.1f} {value['p99'] / floor['p99']:12.1f}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "feature_serving.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
