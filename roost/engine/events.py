"""Typed engine events: what happened to clients, sessions and messages.

Each event is a frozen dataclass; listeners register for a type with
``HookRegistry.listen`` and are called synchronously, in registration order, on the
event loop's thread, after the engine has acted (an event reports, it never decides:
decisions are the hooks' ``authenticate``/``authorize``). Logging, metrics, ``$SYS``,
rules and bridges consume these instead of reaching into the engine.

Message events are made only when someone listens for them
(``HookRegistry.message_events``), so an engine without such listeners pays one
attribute test per message, not an allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from roost.engine.message import Message


@dataclass(frozen=True, slots=True)
class ClientConnected:
    """A CONNECT was accepted and its CONNACK sent."""

    client_id: str
    username: str | None
    peer: str
    listener: str
    protocol_level: int
    clean_start: bool
    # Whether an existing session was resumed (CONNACK's Session Present).
    resumed: bool


@dataclass(frozen=True, slots=True)
class ClientRefused:
    """A CONNECT was refused; ``reason_code`` is the CONNACK's (5.0 numbering)."""

    client_id: str
    peer: str
    listener: str
    protocol_level: int
    reason_code: int
    why: str


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    """An accepted connection ended, for ``reason`` (client DISCONNECT, lost, taken
    over, a violation, …)."""

    client_id: str
    peer: str
    listener: str
    protocol_level: int
    reason: str


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """A CONNECT got its session: a new one, or an existing one resumed."""

    client_id: str
    resumed: bool
    # Seconds the session outlives its connection; None: never expires.
    expiry_interval: int | None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A session was discarded (expired, replaced by a clean start, or ended with its
    connection when its expiry is 0)."""

    client_id: str


@dataclass(frozen=True, slots=True)
class MessagePublished:
    """A message entered routing (``Engine.publish``) and reached ``receivers``
    subscribers (sessions or remote nodes)."""

    message: Message
    receivers: int


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """A PUBLISH of ``message`` was written to ``client_id``'s connection at ``qos``."""

    client_id: str
    message: Message
    qos: int


class DropReason(Enum):
    # The session's queue was at max_queued_messages / max_queued_bytes.
    QUEUE_FULL = "queue_full"
    # Its Message Expiry Interval passed before it could be sent.
    EXPIRED = "expired"
    # Larger than the receiving client's Maximum Packet Size.
    TOO_LARGE = "too_large"
    # QoS 0 to a connection with more than max_output_buffer waiting.
    SLOW_CONSUMER = "slow_consumer"
    # Refused at PUBLISH because the store could not take it.
    STORE_FAILURE = "store_failure"
    # Refused at PUBLISH by an authorizer or the reserved-topic rule.
    NOT_AUTHORIZED = "not_authorized"
    # Refused at PUBLISH: Payload Format Indicator 1 with a payload that is not UTF-8.
    PAYLOAD_FORMAT_INVALID = "payload_format_invalid"


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A message was not delivered to ``client_id`` (None: refused at PUBLISH, before
    routing) for ``reason``."""

    client_id: str | None
    topic: str
    reason: DropReason


EngineEvent = (ClientConnected | ClientRefused | ClientDisconnected | SessionOpened
               | SessionEnded | MessagePublished | MessageDelivered | MessageDropped)

# The events made per message, which the hot path builds only when listened for.
MESSAGE_EVENTS = (MessagePublished, MessageDelivered, MessageDropped)
