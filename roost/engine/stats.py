"""Counters the engine keeps about itself (exported as metrics and $SYS later)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Stats:
    connections_total: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    dropped_queue_full: int = 0
    dropped_expired: int = 0
    dropped_too_large: int = 0
    dropped_slow_consumer: int = 0
    dropped_store_failure: int = 0
    protocol_errors: int = 0
    auth_failures: int = 0
