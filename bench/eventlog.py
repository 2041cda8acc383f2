"""Where a Spark application spent its time: the slowest stages of an event log, with their call sites.

``bench/scale.py`` keeps one event log per stage (``<root>/eventlog``). Spark's history server shows
the same, page by page; this prints the ranking a profile starts from, with no server:

    python bench/eventlog.py <root>/eventlog/eventlog_v2_local-...  [--top 15]

The log is a file or Spark's rolling folder (``eventlog_v2_*``: its ``events_<n>_*`` parts in
order); a ``.zstd`` part (Spark's default codec) is read through the ``zstd`` command.

Per stage: wall time (submission to completion), task time summed over tasks (on 2 cores, about
twice the wall time when both are busy), tasks, input, shuffle read and write, spill to disk, and
the first line of the call site (the DataFrame action or the line of presage that started it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def lines(path: Path) -> Iterator[str]:
    """The event lines of a log file or of a rolling log folder, in order."""
    parts = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1])) if path.is_dir() else [path]
    for part in parts:
        if part.suffix == ".zstd":
            yield from subprocess.run(["zstd", "-dc", str(part)], check=True, capture_output=True, text=True).stdout.splitlines()
        else:
            with part.open() as f:
                yield from f


def stages(path: Path) -> list[dict]:
    """One dict per completed stage attempt, from SparkListenerStageCompleted events."""
    found: dict[tuple[int, int], dict] = {}
    task_ms: dict[tuple[int, int], int] = defaultdict(int)
    for line in lines(path):
        if line.strip():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # the half-written last line of a running application's log
                break
            kind = event["Event"]
            if kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                task_ms[(event["Stage ID"], event["Stage Attempt ID"])] += metrics.get("Executor Run Time", 0)
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                key = (info["Stage ID"], info["Stage Attempt ID"])
                accumulables = {a["Name"]: a.get("Value", 0) for a in info.get("Accumulables", [])}
                number = lambda name, values=accumulables: int(values.get(name, 0) or 0)
                found[key] = {
                    "stage": info["Stage ID"],
                    "wall_s": (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000,
                    "tasks": info["Number of Tasks"],
                    "input": number("internal.metrics.input.bytesRead"),
                    "shuffle_read": number("internal.metrics.shuffle.read.remoteBytesRead")
                    + number("internal.metrics.shuffle.read.localBytesRead"),
                    "shuffle_write": number("internal.metrics.shuffle.write.bytesWritten"),
                    "spill": number("internal.metrics.diskBytesSpilled"),
                    # PySpark names a stage by its Python call site; Details is the JVM stack.
                    "site": [info["Stage Name"], *(info.get("Details") or "").splitlines()],
                }
    for key, stage in found.items():
        stage["task_s"] = task_ms[key] / 1000
    return list(found.values())


def call_site(site: list[str]) -> str:
    """The first frame of presage's own code in a stage's call site, else Spark's stage name."""
    for line in site:
        if "presage" in line and "site-packages/pyspark" not in line:
            return line.strip()[:110]
    return site[0].strip()[:110] if site else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="an event log file")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    found = stages(args.log)
    total = sum(s["wall_s"] for s in found)
    print(f"{len(found)} stages, {total:,.0f} s of stage wall time (stages can overlap)")
    print(f"{'stage':>6s} {'wall s':>8s} {'task s':>8s} {'tasks':>6s} {'in MiB':>8s} {'shfl r':>8s} {'shfl w':>8s} "
          f"{'spill':>8s}  call site")
    for s in sorted(found, key=lambda s: -s["wall_s"])[: args.top]:
        print(f"{s['stage']:6d} {s['wall_s']:8.1f} {s['task_s']:8.1f} {s['tasks']:6d} {_mib(s['input']):>8s} "
              f"{_mib(s['shuffle_read']):>8s} {_mib(s['shuffle_write']):>8s} {_mib(s['spill']):>8s}  {call_site(s['site'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
