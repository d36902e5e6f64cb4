"""The single-node performance floors, checked as the median of several runs, against a
baseline commit of Roost measured in the same run.

For every run and scenario of the issue 5 suite (``benchmarks.suite``) it starts a fresh
Mosquitto, a fresh Roost from this checkout and, with ``--baseline REV``, a fresh Roost
from that commit (checked out in a temporary git worktree), each driven by the same
``roost bench`` command line. Per run it takes Roost ÷ Mosquitto for both Roosts, and
reports the medians with the floors of the engine-seams issue: each throughput ratio at
least 0.9 times the baseline's, p99 latency at most 2 times Mosquitto's, idle memory at
most 3.2 KB per connection. The baseline is measured in the same run because ratios to
Mosquitto move with the machine: the ratios recorded when the hot path was last tuned
(``RECORDED``, on another host) are shown for reference only.

    .venv/bin/python -m benchmarks.floors --runs 3 --baseline 121fce9 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.brokers import ROOT, Broker
from benchmarks.suite import (
    _kb_per_conn,
    _metric,
    machine,
    run_bench,
    scenarios,
    start_mosquitto,
    start_roost,
    write_section,
)

HEADING = "## Single-node floors (median of runs)"
# Roost ÷ Mosquitto when the hot path was last tuned (issue 5, on an AMD EPYC host).
RECORDED = {"pairs-qos0-c1": 1.66, "pairs-qos0-c10": 1.62, "fanout-qos0-100": 2.13,
            "pairs-qos1-c10": 1.01}
FLOOR_FACTOR = 0.9
P99_CEILING = 2.0
KB_PER_CONNECTION_CEILING = 3.2


@dataclass
class Row:
    title: str
    what: str
    now: list[float]
    base: list[float]
    bound: str
    ok: bool | None
    unit: str = "×"


def _runs(values: list[float], unit: str) -> str:
    if not values:
        return "—"
    median = statistics.median(values)
    return ", ".join(f"{v:.2f}" for v in values) + f" (median {median:.2f}{unit})"


def measure(runs: int, duration: int, baseline: Path | None) -> tuple[list[Row], float]:
    scs = scenarios(duration)
    starters: dict[str, Callable[[], Broker]] = {
        "roost": start_roost, "mosquitto": start_mosquitto}
    if baseline is not None:
        starters["baseline"] = lambda: start_roost(source=baseline, name="baseline")
    ratios: dict[str, dict[str, list[float]]] = {
        sc.key: {"roost": [], "baseline": []} for sc in scs}
    memory: dict[str, list[float]] = {"roost": [], "baseline": []}
    out = Path(tempfile.mkdtemp(prefix="bench-floors-"))
    began = time.monotonic()
    for run in range(runs):
        for sc in scs:
            got: dict[str, dict[str, Any]] = {}
            for name, start in starters.items():
                broker = start()
                try:
                    got[name] = run_bench(broker, sc, out)
                finally:
                    broker.stop()
            peer = _metric(sc, got["mosquitto"])
            for name in ("roost", "baseline"):
                if name in got:
                    ratios[sc.key][name].append(_metric(sc, got[name]) / peer if peer else 0.0)
                    if sc.hold:
                        memory[name].append(_kb_per_conn(got[name]))
            print(f"run {run + 1} {sc.key:18} " + "  ".join(
                f"{n} {v[-1]:.2f}" for n, v in ratios[sc.key].items() if v), flush=True)
    rows = []
    for sc in scs:
        now, base = ratios[sc.key]["roost"], ratios[sc.key]["baseline"]
        med = statistics.median(now)
        if sc.metric == "delivered":
            recorded = RECORDED.get(sc.key)
            ref = f"; recorded {recorded:.2f}×" if recorded else ""
            if base:
                floor = FLOOR_FACTOR * statistics.median(base)
                rows.append(Row(sc.title, "delivered msg/s, Roost ÷ Mosquitto", now, base,
                                f"≥ {floor:.2f}× (0.9 × baseline{ref})", med >= floor))
            else:
                rows.append(Row(sc.title, "delivered msg/s, Roost ÷ Mosquitto", now, base,
                                f"(no baseline{ref})", None))
        elif sc.metric == "p99":
            rows.append(Row(sc.title, "p99 latency, Roost ÷ Mosquitto", now, base,
                            f"≤ {P99_CEILING:.1f}×", med <= P99_CEILING))
        else:
            rows.append(Row(sc.title, "connects/s, Roost ÷ Mosquitto", now, base,
                            "(reported)", None))
    if memory["roost"]:
        rows.append(Row("15,000 idle connections", "broker KB per connection",
                        memory["roost"], memory["baseline"],
                        f"≤ {KB_PER_CONNECTION_CEILING} KB",
                        statistics.median(memory["roost"]) <= KB_PER_CONNECTION_CEILING,
                        unit=" KB"))
    return rows, time.monotonic() - began


def report(rows: list[Row], runs: int, seconds: float, command: str,
           baseline: str | None) -> str:
    lines = [
        HEADING, "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}.  ",
        f"{runs} runs of every scenario; in each, a fresh Mosquitto, a fresh Roost of this "
        f"checkout" + (f" and a fresh Roost of the baseline commit `{baseline}`" if baseline
                       else "") +
        ", driven by the same `roost bench` command lines as the suite above. Floors "
        f"apply to the medians of the per-run values. Whole run: {seconds:.0f} s.",
        "",
        "| scenario | measure | this checkout | baseline | floor | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        result = "—" if r.ok is None else ("**met**" if r.ok else "**not met**")
        lines.append(f"| {r.title} | {r.what} | {_runs(r.now, r.unit)} | "
                     f"{_runs(r.base, r.unit)} | {r.bound} | {result} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds of load per run")
    parser.add_argument("--baseline", help="a commit of Roost to measure in the same run")
    parser.add_argument("--write", help="replace this section in a markdown file")
    args = parser.parse_args()
    tree: Path | None = None
    if args.baseline:
        tree = Path(tempfile.mkdtemp(prefix="roost-baseline-")) / "roost"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), args.baseline],
                       cwd=ROOT, check=True)
    try:
        rows, seconds = measure(args.runs, args.duration, tree)
    finally:
        if tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False)
    command = f".venv/bin/python -m benchmarks.floors --runs {args.runs}" + (
        f" --duration {args.duration}" if args.duration != 6 else "") + (
        f" --baseline {args.baseline}" if args.baseline else "") + (
        " --write docs/benchmarks.md" if args.write else "")
    text = report(rows, args.runs, seconds, command, args.baseline)
    print(text)
    if args.write:
        write_section(Path(args.write), text, HEADING)


if __name__ == "__main__":
    main()
