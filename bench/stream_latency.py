"""Streaming benchmark: event-to-online-feature latency and sustained events per second of
``presage stream``, beside a bare Structured Streaming query on the same files.

A generated lakehouse (--customers, 120 days) is built in-process through gold and ``feast apply``
(the identity map and snapshot the stream needs), or --home names one built already (the 1M
lakehouse of ``bench/scale.py``: the stream then resolves, bootstraps and pushes against that size;
the bench's events stay in it: bronze, the stream's tables and the online store). Then, in the
project's session (``spark.profile`` of the configuration, ``local`` by default):

- latency: --drops files of 3 web events (one person each, a cart among them) land one at a time
  while ``presage stream`` runs with a 1 s trigger; each is timed from its rename into the landing
  folder to the person's cart count showing in the Feast online store (SQLite), polled every 20 ms;
  --warmup drops land the same way first, untimed (a fresh JVM's first batches take twice as long
  as a running stream's);
- throughput: --backlog events (in 20 files, random persons of a fixed hash sample of --backlog
  known customers) land at once and are processed with ``availableNow``; events per second =
  events / wall time of the query. The reference is the same files through a bare query (text ->
  JSON parsed to the schema -> Delta append, no validation, quarantine, identity, activity or
  online store): what Spark itself sustains here.

    PYTHONPATH=src python bench/stream_latency.py [--customers 2000] [--drops 40] [--warmup 0] [--backlog 200000]
                                                  [--home DIR [--config FILE]]

Prints a table and writes bench/out/stream_latency.json. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _event(customer: str, event_type: str, at: dt.datetime) -> str:
    return json.dumps({"event_id": f"bench-{uuid.uuid4().hex}", "event_ts": at.isoformat(), "event_type": event_type,
                       "session_id": f"s-{customer}", "customer_id": customer, "platform": "web", "product_id": "P0001"})


def _land(folder: Path, lines: list[str]) -> float:
    """Write a file under a temporary name, rename it into place; returns the time of the rename."""
    folder.mkdir(parents=True, exist_ok=True)
    name = folder / f"{uuid.uuid4().hex}.jsonl"
    tmp = name.with_suffix(".jsonl.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.rename(tmp, name)
    return time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--drops", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=0, help="untimed drops before the timed ones")
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--home", type=Path, default=None,
                        help="a lakehouse built through `feast apply` (default: build one of --customers)")
    parser.add_argument("--config", type=Path, default=None, help="presage configuration (e.g. the large profile)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="presage-bench-stream-"))
    home = args.home.resolve() if args.home else scratch
    os.environ["PRESAGE_HOME"] = str(home)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from pyspark.sql import functions as F

    from presage.config import load_settings
    from presage.features.catalog import ENTITY
    from presage.features.job import build_features
    from presage.featurestore.store import open_store
    from presage.generate.params import GenParams
    from presage.generate.run import generate
    from presage.ingest.job import run as ingest
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver
    from presage.schemas import load_schema
    from presage.session import get_spark
    from presage.streaming.job import start

    settings = load_settings(args.config)
    spark = get_spark("presage-bench-stream", settings)
    lake = Lakehouse.of(settings)
    try:
        if args.home is None:
            started = time.perf_counter()
            generate(spark, GenParams(customers=args.customers, days=120, seed=3), lake)
            ingest(spark, settings)
            build_silver(spark, settings, lake)
            build_features(spark, settings, lake)
            applied = subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=ROOT / "feature_repo",
                                     check=False, capture_output=True, text=True, env={**os.environ, "PRESAGE_HOME": str(home)})
            if applied.returncode:
                print(applied.stderr[-2000:], file=sys.stderr)
                return 1
            print(f"lakehouse of {args.customers:,d} customers built in {time.perf_counter() - started:.0f} s", flush=True)
        # The customers the events are drawn from: a deterministic sample as large as the backlog (a
        # million ids need not reach the driver for 50,000 events).
        ids = (spark.read.format("delta").load(lake.silver("identity_map"))
               .where((F.col("kind") == "customer_id") & F.col("person_id").isNotNull() & ~F.col("is_shared"))
               .select("value", "person_id").orderBy(F.xxhash64("value"), "value").limit(args.backlog).collect())
        persons = {r["value"]: r["person_id"] for r in ids}
        customers = sorted(persons)
        store = open_store(settings)
        service = store.get_feature_service("customer_realtime")
        folder = Path(lake.landing("web_events"))
        rng = random.Random(7)

        # Latency: one small file at a time, the stream running with a 1 s trigger.
        query = start(spark, settings)
        latencies = []
        try:
            for drop in range(args.warmup + args.drops):
                customer = rng.choice(customers)
                entity = [{ENTITY: persons[customer]}]

                def carts(entity: list[dict[str, str]] = entity) -> int:
                    return store.get_online_features(features=service, entity_rows=entity).to_dict()["carts_24h"][0] or 0

                seen = carts()
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                landed = _land(folder, [_event(customer, t, now) for t in ("page_view", "product_view", "add_to_cart")])
                while carts() <= seen:
                    if time.monotonic() - landed > 120:
                        raise RuntimeError("an event took over 120 s to reach the online store")
                    time.sleep(0.02)
                if drop >= args.warmup:
                    latencies.append(time.monotonic() - landed)
        finally:
            query.stop()

        # Throughput: a backlog processed with availableNow, then the bare reference on a copy of the files.
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        per_file = args.backlog // 20
        files = []
        for _ in range(20):
            lines = [_event(rng.choice(customers), rng.choice(("page_view", "product_view", "search", "add_to_cart")),
                            now - dt.timedelta(seconds=rng.randrange(3600))) for _ in range(per_file)]
            files.append(lines)
        reference_in = scratch / "reference_in"
        for lines in files:
            _land(reference_in, lines)
        t0 = time.perf_counter()
        for lines in files:
            _land(folder, lines)
        start(spark, settings, available_now=True).awaitTermination()
        presage_seconds = time.perf_counter() - t0

        schema = load_schema("web_events")
        t0 = time.perf_counter()
        (spark.readStream.format("text").load(str(reference_in))
         .select(F.from_json("value", schema).alias("e")).select("e.*")
         .writeStream.format("delta").option("checkpointLocation", str(scratch / "reference_checkpoint"))
         .trigger(availableNow=True).start(str(scratch / "reference_out")).awaitTermination())
        reference_seconds = time.perf_counter() - t0
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    events = per_file * 20
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99))
    result = {
        "customers": None if args.home else args.customers, "home": str(args.home) if args.home else None,
        "drawn_from_customers": len(customers), "drops": args.drops, "warmup": args.warmup, "latency_p50_s": round(p50, 2), "latency_p99_s": round(p99, 2),
        "latency_max_s": round(max(latencies), 2), "backlog_events": events,
        "presage_events_per_s": round(events / presage_seconds), "reference_events_per_s": round(events / reference_seconds),
        "ratio": round(reference_seconds / presage_seconds, 3), "cores": os.cpu_count(),
    }
    print(f"\nevent -> online feature, 1 s trigger, {args.drops} drops after {args.warmup}: p50 {p50:.2f} s, p99 {p99:.2f} s (target <= 5 s)")
    print(f"{'throughput':28s} {'events/s':>10s}")
    print(f"{'presage stream':28s} {result['presage_events_per_s']:>10,d}")
    print(f"{'bare Structured Streaming':28s} {result['reference_events_per_s']:>10,d}")
    print(f"ratio presage / bare: {result['ratio']:.2f}x")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "stream_latency.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
