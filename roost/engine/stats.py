"""Counters the engine keeps about itself (exported as metrics and $SYS later)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # Shared-subscription messages whose member's session ended before the client got
    # them: handed to another member of the group, or dropped as it had none left.
    shared_redispatched: int = 0
    dropped_no_share_member: int = 0
    protocol_errors: int = 0
    auth_failures: int = 0
    # messages_received and messages_sent split by QoS (index 0, 1, 2).
    received_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    sent_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    # Times each configured limit was exceeded, by its config key (e.g. max_topic_levels).
    limit_breaches: dict[str, int] = field(default_factory=dict)

    def breach(self, limit: str) -> int:
        """Count one breach of ``limit``; return how many there have been so far."""
        count = self.limit_breaches.get(limit, 0) + 1
        self.limit_breaches[limit] = count
        return count
