"""The coordinating process: starts the workers, moves them through the phases of a run,
adds up what they report, second by second, and builds the result.

Phases: connecting (until every worker is ready) → running (``--duration`` or Ctrl-C)
→ stopping (workers stop publishing and wait for acknowledgements) → draining (until
every expected message arrived, nothing arrived for a second, or ``--drain`` passed)
→ finishing (workers disconnect and send their final numbers).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from multiprocessing.connection import wait
from types import FrameType
from typing import Any, TextIO

from roost.bench.options import BenchOptions
from roost.bench.plan import build_plan
from roost.bench.progress import Progress
from roost.bench.records import Marks, Second, Totals, WorkerState
from roost.bench.report import build_result
from roost.bench.stats import Histogram, add_counts

GO_DELAY = 0.1
QUIET_SECONDS = 1.0


class Coordinator:
    def __init__(self, options: BenchOptions, stream: TextIO | None = None) -> None:
        self.o = options
        self.plans = build_plan(options)
        self.planned = sum(len(p.clients) for p in self.plans)
        self.progress = Progress(stream or sys.stderr, self.planned,
                                 messages=options.scenario != "conn", quiet=options.quiet)
        self.totals = Totals()
        self.seconds: list[Second] = []
        self.marks = Marks()
        self.errors: list[str] = []
        self.workers: list[WorkerState] = []
        self.expected: int | None = None
        self.interrupted = 0
        self.peak_open = 0

    # -- messages from workers ----------------------------------------------------------

    def _current(self, now: float) -> Second:
        t = int(now - self.marks.start) + 1
        while not self.seconds or self.seconds[-1].t < t:
            self.seconds.append(Second(len(self.seconds) + 1))
        return self.seconds[-1]

    def _on_tick(self, w: WorkerState, d: dict[str, Any], now: float) -> None:
        tot, row = self.totals, self._current(now)
        w.open = d["open"]
        open_now = sum(x.open for x in self.workers)
        row.open = max(row.open, open_now)
        self.peak_open = max(self.peak_open, open_now)
        for name in ("attempted", "connected", "failed", "disconnected", "sent", "acked",
                     "pub_errors", "received", "duplicates", "gaps", "foreign"):
            setattr(tot, name, getattr(tot, name) + d[name])
        row.connects += d["connected"]
        row.failed += d["failed"]
        row.sent += d["sent"]
        row.acked += d["acked"]
        row.received += d["received"]
        if d["received"]:
            self.marks.last_received = now
        hist = Histogram.from_state(d["hist"])
        row.hist.merge(hist)
        tot.hist.merge(hist)
        tot.connect_hist.merge(Histogram.from_state(d["connect_hist"]))

    def _handle(self, w: WorkerState, now: float) -> None:
        try:
            message = w.pipe.recv()
        except (EOFError, OSError):
            self._lost(w, "exited unexpectedly")
            return
        kind = message[0]
        if kind == "tick":
            self._on_tick(w, message[1], now)
        elif kind == "ready":
            w.ready = True
            w.ready_connected = message[1]["connected"]
            w.expecting = message[1]["expecting"]
        elif kind == "stopped":
            w.stopped = True
            w.sent_by_pub = message[1]
        elif kind == "final":
            w.final = message[1]
            w.alive = False
        elif kind == "error":
            self._lost(w, message[1])

    def _lost(self, w: WorkerState, why: str) -> None:
        if w.alive:
            w.alive = False
            self.errors.append(f"worker {w.plan.index}: {why}")
            self.progress.note(f"roost bench: worker {w.plan.index}: {why}")

    # -- the run ------------------------------------------------------------------------

    def _broadcast(self, *message: Any) -> None:
        for w in self.workers:
            if w.alive:
                try:
                    w.pipe.send(message)
                except (BrokenPipeError, OSError):
                    self._lost(w, "pipe closed")

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted += 1
        if self.interrupted > 1:
            raise KeyboardInterrupt

    def _start_workers(self) -> None:
        from roost.bench.worker import worker_main

        ctx = multiprocessing.get_context("spawn")
        for plan in self.plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(plan, child, self.marks.start),
                               daemon=True, name=f"roost-bench-{plan.index}")
            proc.start()
            child.close()
            self.workers.append(WorkerState(plan, proc, parent))

    def _compute_expected(self) -> int | None:
        if not (self.o.publishes and self.o.subscribes):
            return None
        expecting: dict[int, int] = {}
        sent: dict[int, int] = {}
        for w in self.workers:
            add_counts(expecting, w.expecting)
            add_counts(sent, w.sent_by_pub)
        return sum(n * expecting.get(pub, 0) for pub, n in sent.items())

    def run(self) -> dict[str, Any]:
        """Run the benchmark to its end and return the result (see report.py)."""
        self.marks.start = time.monotonic()
        previous = None
        try:
            previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: Ctrl-C is then the caller's business
            pass
        try:
            self._start_workers()
            self._loop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self.progress.end()
            for w in self.workers:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.terminate()
                    w.process.join(timeout=5)
        self.marks.end = time.monotonic()
        return build_result(self)

    def _loop(self) -> None:
        o, marks = self.o, self.marks
        phase = "connecting"
        next_second = marks.start + 1.0
        finish_deadline = 0.0
        while any(w.alive for w in self.workers):
            now = time.monotonic()
            pipes = {w.pipe: w for w in self.workers if w.alive}
            for pipe in wait(list(pipes), timeout=max(0.0, min(next_second - now, 0.1))):
                self._handle(pipes[pipe], time.monotonic())  # type: ignore[index]
            now = time.monotonic()
            if now >= next_second:
                self._show_second(int(next_second - marks.start))
                next_second += 1.0
            live = [w for w in self.workers if w.alive]
            if phase == "connecting":
                if self.interrupted:
                    phase, finish_deadline = "finishing", now + 10
                    self._broadcast("finish")
                elif all(w.ready for w in live):
                    marks.ready = now
                    marks.go = now + GO_DELAY
                    connected = sum(w.ready_connected for w in live)
                    self.progress.note(f"roost bench: {connected:,} of "
                                       f"{self.planned:,} connected in "
                                       f"{now - marks.start:.1f} s"
                                       + (", publishing" if o.publishes else ""))
                    self._broadcast("go", marks.go)
                    phase = "running"
            elif phase == "running":
                assert marks.go is not None
                if self.interrupted or (o.duration is not None
                                        and now >= marks.go + o.duration):
                    marks.stop = now
                    self._broadcast("stop")
                    phase = "stopping"
            elif phase == "stopping":
                if all(w.stopped for w in live):
                    self.expected = self._compute_expected()
                    phase = "draining"
            elif phase == "draining":
                assert marks.stop is not None
                quiet_since = max(marks.last_received or 0.0, marks.stop)
                done = (self.expected is None
                        or self.totals.received >= self.expected
                        or now - quiet_since >= QUIET_SECONDS
                        or now - marks.stop >= o.drain
                        or self.interrupted)
                if done:
                    marks.drained = now
                    self._broadcast("finish")
                    phase, finish_deadline = "finishing", now + 10
            elif phase == "finishing" and now > finish_deadline:
                for w in live:
                    self._lost(w, "did not finish in time")

    def _show_second(self, t: int) -> None:
        row = self._current(self.marks.start + t - 0.5)
        p99 = row.hist.percentile(99) / 1e6 if row.hist.count else None
        self.progress.show(self.progress.format(t, row.open, row.connects, self.totals.failed,
                                                row.sent, row.received, p99))

