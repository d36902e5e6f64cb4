"""Many coarse timers on one clock timer: the keepalive and connect timeout of every
connection.

An event-loop timer costs about 600 bytes under uvloop, and every connection keeps one
armed for its keepalive. Here a timer is an entry in the bucket of its deadline, rounded
up to ``resolution`` seconds, and one clock timer is armed for the earliest bucket. A
timer never fires early; it may fire up to ``resolution`` late.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable

from roost.engine.clock import Clock, Timer

log = logging.getLogger("roost.engine")


class WheelTimer:
    """A timer on the wheel; ``cancel`` takes it out of its bucket."""

    __slots__ = ("_wheel", "_slot", "callback")

    def __init__(self, wheel: TimerWheel, slot: int, callback: Callable[[], None]) -> None:
        self._wheel = wheel
        self._slot = slot
        self.callback = callback

    def cancel(self) -> None:
        bucket = self._wheel._buckets.get(self._slot)
        if bucket is not None:
            bucket.pop(self, None)


class TimerWheel:
    def __init__(self, clock: Clock, resolution: float = 0.25) -> None:
        self._clock = clock
        self._resolution = resolution
        self._buckets: dict[int, dict[WheelTimer, None]] = {}
        self._slots: list[int] = []  # heap of the slots that have a bucket
        self._armed: tuple[int, Timer] | None = None

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def call_later(self, delay: float, callback: Callable[[], None]) -> WheelTimer:
        """Run ``callback`` once, no sooner than ``delay`` seconds from now."""
        slot = math.ceil((self._clock.monotonic() + max(delay, 0.0)) / self._resolution)
        timer = WheelTimer(self, slot, callback)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            heapq.heappush(self._slots, slot)
        bucket[timer] = None
        if self._armed is None or slot < self._armed[0]:
            self._arm(slot)
        return timer

    def _arm(self, slot: int) -> None:
        if self._armed is not None:
            self._armed[1].cancel()
        delay = max(slot * self._resolution - self._clock.monotonic(), 0.0)
        self._armed = (slot, self._clock.call_later(delay, self._fire))

    def _fire(self) -> None:
        self._armed = None
        now = self._clock.monotonic()
        slots = self._slots
        buckets = self._buckets
        # Slots whose time has come; a slot armed a hair early (the loop's own rounding)
        # is run now too rather than re-armed for a moment later.
        due = math.floor(now / self._resolution + 1e-6)
        while slots and slots[0] <= due:
            slot = heapq.heappop(slots)
            # The bucket stays in place while it runs, so a callback can still cancel
            # a timer of the same slot (or add one to it, which then runs too).
            bucket = buckets.get(slot)
            while bucket:
                timer, _ = bucket.popitem()
                try:
                    timer.callback()
                except Exception:
                    # As the event loop does for its own timers: one failing callback
                    # must not stop every other connection's keepalive.
                    log.exception("timer callback %r failed", timer.callback)
            buckets.pop(slot, None)
        while slots and not buckets.get(slots[0]):
            buckets.pop(heapq.heappop(slots), None)  # emptied by cancels
        if slots and self._armed is None:
            self._arm(slots[0])
