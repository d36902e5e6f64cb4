"""The single-node performance floors, checked as the median of several suite runs.

Runs the issue 5 scenarios of ``benchmarks.suite`` against Roost and Mosquitto ``--runs``
times (a fresh broker for every scenario and run), takes each scenario's ratio to
Mosquitto per run, and reports the median beside its floor: 0.9 times the ratio
recorded when the hot path was last tuned (``RECORDED``), p99 latency at most 2 times
Mosquitto's, idle memory at most 3.2 KB per connection. These floors come from the
engine-seams issue: refactoring for the cluster may not make the single node slower.

    .venv/bin/python -m benchmarks.floors --runs 3 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
# Roost ÷ Mosquitto recorded in docs/benchmarks.md when the hot path was last tuned.
RECORDED = {"pairs-qos0-c1": 1.66, "pairs-qos0-c10": 1.62, "fanout-qos0-100": 2.13,
            "pairs-qos1-c10": 1.01}
FLOOR_FACTOR = 0.9
P99_CEILING = 2.0
KB_PER_CONNECTION_CEILING = 3.2


@dataclass
class Row:
    key: str
    title: str
    what: str
    values: list[float]
    bound: str
    ok: bool

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def measure(runs: int, duration: int) -> tuple[list[Row], float]:
    scs = scenarios(duration)
    ratios: dict[str, list[float]] = {sc.key: [] for sc in scs}
    memory: list[float] = []
    out = Path(tempfile.mkdtemp(prefix="bench-floors-"))
    began = time.monotonic()
    for run in range(runs):
        for sc in scs:
            got: dict[str, dict[str, Any]] = {}
            for name, start in (("roost", start_roost), ("mosquitto", start_mosquitto)):
                broker = start()
                try:
                    got[name] = run_bench(broker, sc, out)
                finally:
                    broker.stop()
            roost, mosquitto = _metric(sc, got["roost"]), _metric(sc, got["mosquitto"])
            ratios[sc.key].append(roost / mosquitto if mosquitto else 0.0)
            if sc.hold:
                memory.append(_kb_per_conn(got["roost"]))
            print(f"run {run + 1} {sc.key:18} ratio {ratios[sc.key][-1]:.2f}", flush=True)
    rows = []
    for sc in scs:
        values = ratios[sc.key]
        median = statistics.median(values)
        if sc.key in RECORDED:
            floor = RECORDED[sc.key] * FLOOR_FACTOR
            rows.append(Row(sc.key, sc.title, "delivered msg/s, Roost ÷ Mosquitto", values,
                            f"≥ {floor:.2f}× (0.9 × {RECORDED[sc.key]:.2f}×)",
                            median >= floor))
        elif sc.metric == "p99":
            rows.append(Row(sc.key, sc.title, "p99 latency, Roost ÷ Mosquitto", values,
                            f"≤ {P99_CEILING:.1f}×", median <= P99_CEILING))
        else:
            rows.append(Row(sc.key, sc.title, "connects/s, Roost ÷ Mosquitto", values,
                            "(reported)", True))
    if memory:
        rows.append(Row("idle-memory", "15,000 idle connections", "broker KB per connection",
                        memory, f"≤ {KB_PER_CONNECTION_CEILING} KB",
                        statistics.median(memory) <= KB_PER_CONNECTION_CEILING))
    return rows, time.monotonic() - began


def report(rows: list[Row], runs: int, seconds: float, command: str) -> str:
    lines = [
        HEADING, "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}.  ",
        f"{runs} runs of every scenario, Roost and Mosquitto each with a fresh broker per "
        f"scenario and run, the same `roost bench` command lines as the suite above; the "
        f"median of the per-run ratios is checked against its floor. Whole run: "
        f"{seconds:.0f} s.",
        "",
        "| scenario | measure | runs | median | floor | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = " KB" if r.key == "idle-memory" else "×"
        runs_text = ", ".join(f"{v:.2f}" for v in r.values)
        result = "**met**" if r.ok else "**not met**"
        if r.bound == "(reported)":
            result = "—"
        lines.append(f"| {r.title} | {r.what} | {runs_text} | {r.median:.2f}{unit} | "
                     f"{r.bound} | {result} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds of load per run")
    parser.add_argument("--write", help="replace this section in a markdown file")
    args = parser.parse_args()
    rows, seconds = measure(args.runs, args.duration)
    command = f".venv/bin/python -m benchmarks.floors --runs {args.runs}" + (
        f" --duration {args.duration}" if args.duration != 6 else "") + (
        " --write docs/benchmarks.md" if args.write else "")
    text = report(rows, args.runs, seconds, command)
    print(text)
    if args.write:
        write_section(Path(args.write), text, HEADING)


if __name__ == "__main__":
    main()
