"""What the coordinator records during a run: each second, the totals, each worker's
state and the times of the phase changes. The report is built from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from roost.bench.plan import WorkerPlan
from roost.bench.stats import Histogram


@dataclass
class Second:
    """What all workers reported during one second of the run; ``open`` is the most
    connections open at once during it."""

    t: int
    open: int = 0
    connects: int = 0
    failed: int = 0
    sent: int = 0
    acked: int = 0
    received: int = 0
    hist: Histogram = field(default_factory=Histogram)


@dataclass
class Totals:
    attempted: int = 0
    connected: int = 0
    failed: int = 0
    disconnected: int = 0
    sent: int = 0
    acked: int = 0
    pub_errors: int = 0
    received: int = 0
    duplicates: int = 0
    gaps: int = 0
    foreign: int = 0
    hist: Histogram = field(default_factory=Histogram)
    connect_hist: Histogram = field(default_factory=Histogram)


@dataclass
class WorkerState:
    plan: WorkerPlan
    process: Any
    pipe: Connection
    open: int = 0
    ready: bool = False
    ready_connected: int = 0
    stopped: bool = False
    final: dict[str, Any] | None = None
    expecting: dict[int, int] = field(default_factory=dict)
    sent_by_pub: dict[int, int] = field(default_factory=dict)
    alive: bool = True


@dataclass
class Marks:
    """CLOCK_MONOTONIC times of the phase changes."""

    start: float = 0.0
    ready: float | None = None
    go: float | None = None
    stop: float | None = None
    drained: float | None = None
    end: float | None = None
    last_received: float | None = None
