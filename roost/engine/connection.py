"""What a packet handler may use of the connection it serves.

The handlers (``handle_connect``, ``handle_subscribe``, ``handle_publish``) are written
against this protocol rather than ``Channel``, so they never import the channel and the
channel is the only module that dispatches to them (no import cycle). ``Channel``
implements it.
"""

from __future__ import annotations

from typing import Protocol

from roost.engine.engine import Engine
from roost.engine.link import Link
from roost.engine.session import Outlet, Session
from roost.engine.settings import EngineSettings
from roost.mqtt.packets import Packet, PacketType, Will
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode

# The largest packet MQTT can carry: a client that states no Maximum Packet Size.
UNLIMITED_PACKET = 268_435_460


class Connection(Outlet, Protocol):
    """A client connection as its packet handlers see it; also the session's outlet."""

    engine: Engine
    link: Link
    settings: EngineSettings
    # Protocol level of the CONNECT: 3 (3.1), 4 (3.1.1) or 5.
    level: int
    client_id: str
    username: str | None
    session: Session | None
    # What a 5.0 client said it can take (CONNECT properties).
    client_receive_maximum: int
    client_max_packet: int
    client_alias_maximum: int
    # Topic aliases the client set towards us (5.0), made on first use.
    alias_in: dict[int, str] | None

    @property
    def closed(self) -> bool: ...

    def send(self, packet: Packet) -> None:
        """Encode ``packet`` at the connection's level and write it."""
        ...

    def disconnect(self, reason: ReasonCode, why: str | None = None,
                   properties: Properties | None = None) -> None:
        """Server-initiated close: DISCONNECT with ``reason`` for 5.0, then close."""
        ...

    def close(self, why: str) -> None:
        """Close at once (no DISCONNECT); ``why`` is logged."""
        ...

    def breach(self, limit: str, detail: str) -> str:
        """Count a breach of the limit named by its config key; return the log text."""
        ...

    def breach_once(self, limit: str, detail: str) -> None:
        """Count a breach that does not close the connection; log only the first."""
        ...

    def session_or_fail(self) -> Session:
        """The session; raises ``ProtocolViolation`` before CONNECT completed."""
        ...

    def enter_connected(self, session: Session, will: Will | None, keepalive: int) -> None:
        """CONNECT accepted: hold ``session``, arm the keepalive (seconds, 0 = none)."""
        ...

    def hold_input(self) -> None:
        """CONNECT taken (phase one): hold what the client sends until the CONNACK."""
        ...

    def release_input(self) -> None:
        """CONNACK sent: handle, in order, what the client sent since its CONNECT."""
        ...

    def store_failed(self, packet_type: PacketType) -> ReasonCode | None:
        """A commit the answer ``packet_type`` waited for failed: the reason code that
        answer carries instead, or None once the connection has been ended."""
        ...

    def send_when_stored(self, packet: Packet) -> None:
        """Send ``packet`` once the session's changes so far are durable."""
        ...
