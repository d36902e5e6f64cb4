"""Time as the engine sees it: injected, so tests and the event loop can supply it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timeouts, expiry)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (to count expiry across restarts)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once after ``delay`` seconds."""
        ...
