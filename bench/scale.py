"""Scale benchmark: the whole pipeline at several sizes of generated customers, stage by stage.

Each size gets its own lakehouse (``<root>/<customers>``) and runs the `make demo` sequence as a
data engineer does, each stage its own ``presage`` (or ``feast``) process on the ``local`` profile:
generate, ingest, build-profiles, build-features, feast apply, materialize, train (each of the
four models `presage score` needs), score. Per stage it prints and records:

- wall time;
- peak memory, sampled every 0.25 s, two ways: the resident sets of the stage's process tree
  summed (Python driver + Spark JVM + workers; pages that forked Python workers share with their
  daemon count once per process, so this overstates) and the machine's memory in use (total less
  available, less what was in use before the stage started): the figure to hold against the
  machine's 24 GiB;
- rows: what the stage wrote: the raw drops' records for generate, the Delta tables' rows from
  their logs' add actions (no Spark job) for ingest (bronze), build-profiles (silver),
  build-features (gold) and score (outputs), the online store's rows for materialize; none for
  feast apply and train; and rows per second;
- from one size to the next: the time ratio beside the customer ratio (growth <= 1 means no worse
  than linear). Every stage pays one process and JVM start (~10 s), which flatters small sizes.

    PYTHONPATH=src python bench/scale.py [--sizes 100000 1000000] [--days 365] [--root DIR] [--keep] [--resume]
                                  [--profile large] [--skip STAGE ...]

``--resume`` (with ``--root``) picks a size up where it stopped: each finished stage is recorded in
``<root>/<customers>/bench-scale.jsonl`` as it ends, and a rerun keeps the lakehouse and skips the
stages recorded there (the pipeline's jobs are restartable, so a failed or killed stage simply
runs again). A 1M run takes hours on two cores and may span sessions.

Writes bench/out/scale.json; bench/RESULTS.md records the runs. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import yaml
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODELS = ("purchase_propensity", "churn_risk", "expected_spend", "channel_response")  # score needs each champion


@dataclass
class StageRun:
    customers: int
    stage: str
    seconds: float
    peak_rss_gib: float
    peak_machine_gib: float
    rows: int
    rows_per_s: float


def delta_rows(folder: Path) -> int:
    """Rows of the current versions of every Delta table under ``folder`` (from their logs).

    A log without a commit (a write killed before its first one, which ``--resume`` reruns) holds no rows.
    """
    total = 0
    for log in folder.rglob("_delta_log"):
        if not any(log.glob("*.json")) and not any(log.glob("*.checkpoint.parquet")):
            continue
        actions = DeltaTable(str(log.parent)).get_add_actions(flatten=True)
        total += sum(v for v in actions.column("num_records").to_pylist() if v is not None)
    return total


def raw_rows(home: Path) -> int:
    """Records of the raw drops: lines of the JSON-lines and CSV files (less the CSV headers), and
    the rows of the Parquet files from their footers."""
    total = 0
    for path in (home / "raw").rglob("*"):
        if path.suffix in (".jsonl", ".csv"):
            with path.open("rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - (path.suffix == ".csv")
        elif path.suffix == ".parquet":
            total += pq.ParquetFile(path).metadata.num_rows
    return total


def online_rows(home: Path) -> int:
    """Rows of the SQLite online store's tables (feature_repo/feature_store.yaml: <home>/feast/online.db)."""
    db = home / "feast" / "online.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)


def in_use() -> int:
    """Bytes of the machine's memory in use (not available to a new process)."""
    memory = psutil.virtual_memory()
    return memory.total - memory.available


def run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Run a stage; returns (seconds, peak GiB of its process tree's resident sets, peak GiB of the
    machine's memory in use above what it was at the start). Raises on failure."""
    baseline = in_use()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = machine = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, machine
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            machine = max(machine, in_use() - baseline)
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - started, peak / 2**30, machine / 2**30


def stages(customers: int, days: int, config: Path | None = None) -> list[tuple[str, list[str], Path, Callable[[Path], int]]]:
    """(name, command, working directory, rows written as a function of the home)."""
    presage = [str(BIN / "presage"), *(["--config", str(config)] if config else [])]
    layer = lambda name: (lambda home: delta_rows(home / name))
    return [
        ("generate", [*presage, "generate", "--customers", str(customers), "--days", str(days), "--seed", "7"], ROOT, raw_rows),
        ("ingest", [*presage, "ingest"], ROOT, layer("bronze")),
        ("build-profiles", [*presage, "build-profiles"], ROOT, layer("silver")),
        ("build-features", [*presage, "build-features"], ROOT, layer("gold")),
        ("feast apply", [str(BIN / "feast"), "apply"], ROOT / "feature_repo", lambda home: 0),
        ("materialize", [*presage, "materialize"], ROOT, online_rows),
        *[(f"train {model}", [*presage, "train", "--model", model], ROOT, lambda home: 0) for model in MODELS],
        ("score", [*presage, "score"], ROOT, layer("outputs")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--root", type=Path, default=None, help="where the lakehouses go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the lakehouses")
    parser.add_argument("--profile", default="local", help="spark_conf/ profile of every presage stage (large: 1M customers)")
    parser.add_argument("--resume", action="store_true", help="skip the stages a size's log records as done (needs --root)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="STAGE",
                        help="stages not to run, e.g. materialize at 1M when the disk cannot hold its 33 GB SQLite file")
    args = parser.parse_args()
    if args.resume and not args.root:
        parser.error("--resume needs --root (the lakehouses to pick up)")
    unknown = set(args.skip) - {name for name, *_ in stages(0, 0)}
    if unknown:
        parser.error(f"--skip: no stage named {', '.join(sorted(unknown))}")

    root = args.root or Path(tempfile.mkdtemp(prefix="presage-bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    # Every stage keeps a Spark event log, so the slowest can be profiled afterwards (Spark's history
    # server, or the JSON lines themselves) without rerunning it.
    events = root / "eventlog"
    events.mkdir(exist_ok=True)
    config = root / f"scale-{args.profile}.yaml"
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": str(events), "spark.eventLog.compress": "false"}
    config.write_text(yaml.safe_dump({"spark": {"profile": args.profile, "conf": conf}}))
    results: list[StageRun] = []
    try:
        for customers in sorted(args.sizes):
            home = root / str(customers)
            if not args.resume:
                shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True, exist_ok=True)
            log = home / "bench-scale.jsonl"
            done = {r["stage"]: StageRun(**r) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else {}
            env = {**os.environ, "PRESAGE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false"}
            for name, command, cwd, rows_of in stages(customers, args.days, config):
                if name in args.skip:
                    continue
                stage_run = done.get(name)
                if stage_run is None:
                    seconds, peak, machine = run(command, env, cwd)
                    rows = rows_of(home)  # its layer after the stage: a resumed stage overwrites what a killed attempt left
                    stage_run = StageRun(customers, name, round(seconds, 1), round(peak, 2), round(machine, 2), rows,
                                         round(rows / seconds, 1))
                    with log.open("a") as f:
                        f.write(json.dumps(asdict(stage_run)) + "\n")
                results.append(stage_run)
                print(f"{customers:>9,d} {name:28s} {stage_run.seconds:8.1f} s  tree {stage_run.peak_rss_gib:6.2f} GiB  "
                      f"machine {stage_run.peak_machine_gib:6.2f} GiB {stage_run.rows:>12,d} rows "
                      f"{stage_run.rows_per_s:>10,.0f} rows/s" + ("  (an earlier run)" if name in done else ""), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    sizes = sorted(args.sizes)
    print(f"\n{'stage':28s} " + " ".join(f"{f'{n:,d} s':>12s} {'GiB':>6s} {'mach.':>6s}" for n in sizes)
          + "".join(f" {f'x{b // a} growth':>12s}" for a, b in itertools.pairwise(sizes)))
    by = {(r.customers, r.stage): r for r in results}
    growth: dict[str, list[float]] = {}
    for name, *_ in stages(0, 0):
        if any((n, name) not in by for n in sizes):
            continue
        row = [by[(n, name)] for n in sizes]
        cells = " ".join(f"{r.seconds:12.1f} {r.peak_rss_gib:6.2f} {r.peak_machine_gib:6.2f}" for r in row)
        ratios = [(by[(b, name)].seconds / by[(a, name)].seconds) / (b / a) for a, b in itertools.pairwise(sizes)]
        growth[name] = [round(r, 3) for r in ratios]
        print(f"{name:28s} {cells}" + "".join(f" {r:12.2f}" for r in ratios))
    total = {n: sum(r.seconds for r in results if r.customers == n) for n in sizes}
    print(f"{'whole pipeline':28s} " + " ".join(f"{total[n]:12.1f} {'':6s} {'':6s}" for n in sizes))
    print("growth = (time ratio) / (customer ratio): above 1 is superlinear")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps({"days": args.days, "sizes": sizes, "cores": os.cpu_count(),
                                                "stages": [asdict(r) for r in results], "growth": growth}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
