"""XGBoost training benchmark: xgboost.spark fit beside single-node xgboost.train, same data and work.

The same --rows x --features float32 matrix (numpy, fixed seed: a nonlinear binary label with ~15%
positives, 2% NaNs in most columns) is trained on both sides with identical parameters: --rounds
rounds, max_depth 6, tree_method hist, max_bin 256, eta 0.1, binary:logistic, and all the
machine's cores (2 on the reference machine):

- native: `xgboost.train(params, QuantileDMatrix(X, y), rounds)` with nthread = cores;
- spark, one worker x cores threads: `SparkXGBClassifier(num_workers=1).fit(df)` in a session with
  spark.task.cpus = cores (xgboost.spark gives each worker spark.task.cpus threads): the layout
  presage recommends on one machine (one multi-threaded worker per executor);
- spark, cores workers x 1 thread: num_workers = cores, spark.task.cpus = 1, the project's
  default session (the layout of the issue's reference run, ratio 1.78).

Both Spark sessions come from `presage.session.get_spark` (the `local` profile) with only
spark.task.cpus overridden. Timed: the fit itself. The native side pays its QuantileDMatrix
construction from the array; the Spark side pays everything `fit` does (label count job, barrier
stage, Arrow transfer into the Python worker, QuantileDMatrix, training, model return). Not
timed, on either side: loading the data. The DataFrame is built once from the same array, split
into num_workers partitions and cached before timing (xgboost.spark would otherwise shuffle it
into num_workers partitions, and scan its source twice, inside every fit); the trainer reads its
training set from Delta whatever the estimator, so that cost is not the estimator's.
Runs alternate native / Spark (the machine is shared); the table shows medians, the ratio is
median Spark / median native, and the holdout AUC shows both sides learned the same model.

    PYTHONPATH=src python bench/xgboost_training.py [--rows 1000000] [--features 50] [--rounds 200]
                                                    [--holdout 200000] [--repeats 3]

Prints a table and writes bench/out/xgboost_training.json. Numbers, not assertions: run it on a
quiet machine (the CPU time other processes used during each run is recorded beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
MAX_DEPTH, MAX_BIN, ETA = 6, 256, 0.1


def make_data(rows: int, features: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """A learnable label: linear terms, an interaction, a sine and a step, plus logistic noise,
    thresholded at its 85th percentile (15% positives); NaNs added after the label is drawn."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, max(features, 16)), dtype=np.float32)
    logit = (0.8 * x[:, 0] - 0.6 * x[:, 1] + x[:, 2] * x[:, 3] + 1.5 * np.sin(2 * x[:, 4])
             + 1.2 * (x[:, 5] > 1) + 0.3 * x[:, 6:16].sum(axis=1))
    noisy = logit + rng.logistic(size=rows)
    y = (noisy > np.quantile(noisy, 0.85)).astype(np.float32)
    x = np.ascontiguousarray(x[:, :features])
    holes = rng.random(x.shape) < 0.02
    holes[:, 1::5] = False  # every fifth column complete
    x[holes] = np.nan
    return x, y


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney); ties are negligible for float scores."""
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="mergesort")] = np.arange(1, len(score) + 1)
    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user+system clock ticks) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def other_cpu_seconds(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> float:
    """CPU seconds used between two snapshots by processes that are not this one or its children
    (the JVM, the Python workers): how much the machine was shared during a timed run."""
    me = os.getpid()

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == me:
                return True
            pid = after.get(pid, (0, 0))[0]
        return False

    ticks = sum(t - before[pid][1] for pid, (_, t) in after.items() if pid in before and not ours(pid))
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Runs:
    """Timed runs of one contender, with the holdout AUC of its last model."""

    name: str
    seconds: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)
    auc: float = float("nan")

    def time(self, fit: Callable[[], object], score: Callable[[object], float]) -> None:
        before = _cpu_ticks()
        started = time.perf_counter()
        model = fit()
        self.seconds.append(time.perf_counter() - started)
        self.other_cpu.append(other_cpu_seconds(before, _cpu_ticks()))
        self.auc = score(model)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--holdout", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import pandas as pd
    import xgboost as xgb
    from xgboost.spark import SparkXGBClassifier

    from presage.config import Settings
    from presage.session import get_spark

    cores = os.cpu_count() or 1
    names = [f"f_{k:02d}" for k in range(args.features)]
    x_all, y_all = make_data(args.rows + args.holdout, args.features)
    x, y = x_all[: args.rows], y_all[: args.rows]
    holdout = xgb.DMatrix(x_all[args.rows:], feature_names=names)
    y_holdout = y_all[args.rows:]

    def score(booster: xgb.Booster) -> float:
        return auc(y_holdout, booster.predict(holdout))

    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": MAX_DEPTH,
              "max_bin": MAX_BIN, "eta": ETA, "nthread": cores}

    def native() -> xgb.Booster:
        train = xgb.QuantileDMatrix(x, label=y, feature_names=names, max_bin=MAX_BIN, nthread=cores)
        return xgb.train(params, train, num_boost_round=args.rounds)

    frame = pd.DataFrame(x, columns=names)
    frame["label"] = y
    reference = Runs(f"xgboost.train, QuantileDMatrix, nthread={cores}")
    layouts = [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]
    contenders: list[tuple[Runs, float]] = []
    load = os.getloadavg()[0]
    for workers, threads in layouts:
        spark = get_spark("bench-xgboost-training", Settings(), overrides={"spark.task.cpus": str(threads)})
        spark.sparkContext.setLogLevel("ERROR")
        started = time.perf_counter()
        df = spark.createDataFrame(frame).repartition(workers).cache()
        df.count()
        prepare = time.perf_counter() - started
        estimator = SparkXGBClassifier(
            features_col=names, label_col="label", num_workers=workers, n_estimators=args.rounds,
            max_depth=MAX_DEPTH, max_bin=MAX_BIN, learning_rate=ETA, tree_method="hist", verbose=False)
        runs = Runs(f"xgboost.spark, {workers} worker{'s' if workers > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}")
        for _ in range(args.repeats):
            reference.time(native, score)
            runs.time(lambda estimator=estimator, df=df: estimator.fit(df).get_booster(), score)
        contenders.append((runs, prepare))
        df.unpersist()
        spark.stop()

    print(f"\nxgboost training, {args.rows:,d} rows x {args.features} float features, {args.rounds} rounds, "
          f"depth {MAX_DEPTH}, hist, {MAX_BIN} bins, {cores} cores (load before: {load:.2f})")
    print(f"  {'run':44s} {'median s':>9s} {'rows/s':>10s} {'vs native':>10s} {'AUC':>7s}  runs (other CPU s)")

    def row(runs: Runs) -> None:
        each = ", ".join(f"{s:.1f} ({o:.0f})" for s, o in zip(runs.seconds, runs.other_cpu))
        print(f"  {runs.name:44s} {runs.median:9.1f} {args.rows / runs.median:10,.0f} "
              f"{runs.median / reference.median:10.2f} {runs.auc:7.4f}  {each}")

    row(reference)
    for runs, _ in contenders:
        row(runs)
    results = {
        "rows": args.rows, "features": args.features, "rounds": args.rounds, "holdout": args.holdout,
        "cores": cores, "load_before": load,
        "params": {k: v for k, v in params.items() if k != "nthread"},
        "native": {"name": reference.name, "seconds": reference.seconds, "median": reference.median,
                   "other_cpu_seconds": reference.other_cpu, "auc": reference.auc},
        "spark": [{"name": runs.name, "seconds": runs.seconds, "median": runs.median,
                   "ratio": runs.median / reference.median, "other_cpu_seconds": runs.other_cpu,
                   "auc": runs.auc, "prepare_seconds": prepare}
                  for runs, prepare in contenders],
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "xgboost_training.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
