"""A worker's counters: what its clients count as they go, sent upward as deltas."""

from __future__ import annotations

from typing import Any

from roost.bench.stats import Histogram

_COUNTERS = ("attempted", "connected", "failed", "disconnected", "sent", "acked",
             "pub_errors", "received", "duplicates", "gaps", "foreign")


class Tally:
    """The worker's counters; clients bump them directly (attribute access is cheap)."""

    def __init__(self) -> None:
        self.open = 0
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.hist = Histogram()
        self.connect_hist = Histogram()
        self.received_from: dict[int, int] = {}
        self.fail_reasons: dict[str, int] = {}
        self.disconnect_reasons: dict[str, int] = {}
        self.sources: dict[str, int] = {}
        self._last = dict.fromkeys(_COUNTERS, 0)

    # The counters by name, for type checkers and readers.
    attempted: int
    connected: int
    failed: int
    disconnected: int
    sent: int
    acked: int
    pub_errors: int
    received: int
    duplicates: int
    gaps: int
    foreign: int

    def note_closed(self, reason: str, finishing: bool) -> None:
        """An established connection closed; unless the client was finishing, it was
        dropped (by the broker or the network) and ``reason`` says how."""
        self.open -= 1
        if not finishing:
            self.disconnected += 1
            self.disconnect_reasons[reason] = self.disconnect_reasons.get(reason, 0) + 1

    def note_failure(self, reason: str) -> None:
        self.failed += 1
        self.fail_reasons[reason] = self.fail_reasons.get(reason, 0) + 1

    def delta(self) -> dict[str, Any]:
        """Counter changes since the last call, with the latencies recorded meanwhile."""
        out: dict[str, Any] = {"open": self.open}
        for name in _COUNTERS:
            value = getattr(self, name)
            out[name] = value - self._last[name]
            self._last[name] = value
        out["hist"] = self.hist.to_state()
        out["connect_hist"] = self.connect_hist.to_state()
        self.hist = Histogram()
        self.connect_hist = Histogram()
        return out
