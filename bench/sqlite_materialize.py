"""SQLite materialization at growing sizes: presage's writer (rows in primary-key order) beside the
same Feast writer fed the rows in the snapshot's file order (what presage did before, and what
Feast's Spark engine does), each into an empty database.

One view of 50 float features (bench/feature_serving.py's) over a generated Delta snapshot whose
person ids are hashes, as gold's are (``P`` and 16 hex digits), so file order is random against
the key. Per size and writer: seconds, online rows per second, the database's size, and from one
size to the next the growth (time ratio over size ratio; above 1 is superlinear). The question it
answers: does the 1M run's superlinear materialize (growth 1.45, bench/RESULTS.md) come from the
insert order?

    PYTHONPATH=src python bench/sqlite_materialize.py [--sizes 100000 1000000] [--root DIR]

Prints a table and writes bench/out/sqlite_materialize.json. Numbers, not assertions: run it on a
quiet machine; a size of 1M writes a database of ~12 GB and takes tens of minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from feature_serving import FEATURES, SNAPSHOT, _repo

ROOT = Path(__file__).resolve().parents[1]


def _write_snapshot(spark, path: str, persons: int) -> None:
    from pyspark.sql import functions as F

    frame = spark.range(persons).select(
        F.concat(F.lit("P"), F.upper(F.substring(F.sha2(F.col("id").cast("string"), 256), 1, 16))).alias("customer_id"),
        F.lit(SNAPSHOT).cast("timestamp").alias("event_timestamp"),
        F.lit(SNAPSHOT.date()).alias("snapshot_date"),
        *[F.rand(seed=k).alias(name) for k, name in enumerate(FEATURES)],
    )
    frame.write.format("delta").mode("overwrite").partitionBy("snapshot_date").save(path)


def _file_order_write(spark, store, view_name: str) -> int:
    """Feast's Spark-engine writer on the newest snapshot in file order, in one task."""
    from feast.infra.common.serde import SerializedArtifacts
    from feast.infra.compute_engines.spark.utils import map_in_arrow

    from presage.featurestore.materialize import latest_snapshot

    view = store.get_feature_view(view_name)
    rows, _ = latest_snapshot(spark, view, dt.datetime.now(dt.UTC))
    artifacts = SerializedArtifacts.serialize(feature_view=view, repo_config=store.config)
    one = rows.coalesce(1)
    return one.mapInArrow(lambda batches: map_in_arrow(batches, artifacts, mode="online"), one.schema).count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--root", help="where the snapshots and databases go (default: a temporary folder)")
    args = parser.parse_args()

    from feast import FeatureStore

    from presage.config import Settings
    from presage.featurestore.materialize import materialize
    from presage.session import get_spark

    root = Path(args.root or tempfile.mkdtemp(prefix="presage_bench_sqlite_"))
    spark = get_spark("bench-sqlite-materialize", Settings())
    writers = {
        "presage (key order)": lambda store: materialize(spark, store, views=["big"])[0].rows,
        "Feast writer, file order": lambda store: _file_order_write(spark, store, "big"),
    }
    results: list[dict[str, object]] = []
    try:
        # A first, small size pays the JVM's and Delta's warm-up for both writers; not reported.
        for persons in [10_000, *args.sizes]:
            data = root / str(persons)
            data.mkdir(parents=True)
            _write_snapshot(spark, str(data / "big"), persons)
            for k, (writer, write) in enumerate(writers.items()):
                folder = root / f"{persons}_{k}"
                folder.mkdir()
                os.symlink(data / "big", folder / "big")
                store = FeatureStore(repo_path=str(_repo(folder, "sqlite", 0)))
                started = time.perf_counter()
                written = write(store)
                seconds = time.perf_counter() - started
                assert written == persons, (writer, written, persons)
                rows = persons * len(FEATURES)  # one online row per person and feature
                run = {"persons": persons, "writer": writer, "rows": rows, "seconds": seconds,
                       "rows_per_s": rows / seconds, "db_gb": (folder / "online.db").stat().st_size / 1e9}
                print(json.dumps(run), flush=True)
                if persons in args.sizes:
                    results.append(run)
                shutil.rmtree(folder)  # the disk and the page cache, before the next writer
            shutil.rmtree(data)
    finally:
        spark.stop()
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\n{'persons':>10} {'writer':<26} {'online rows':>12} {'s':>9} {'rows/s':>9} {'db GB':>6} {'growth':>7}")
    for run in results:
        before = [r for r in results if r["writer"] == run["writer"] and r["persons"] < run["persons"]]
        growth = ""
        if before:
            prev = before[-1]
            growth = f"{(run['seconds'] / prev['seconds']) / (run['persons'] / prev['persons']):.2f}"
            run["growth"] = float(growth)
        print(f"{run['persons']:>10,} {run['writer']:<26} {run['rows']:>12,} {run['seconds']:>9.1f} "
              f"{run['rows_per_s']:>9,.0f} {run['db_gb']:>6.2f} {growth:>7}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "sqlite_materialize.json").write_text(json.dumps({"features": len(FEATURES), "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
