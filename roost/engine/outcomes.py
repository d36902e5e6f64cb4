"""One table from what happened to what the client is told.

Handlers report an ``Outcome`` (the store failed, access was denied, …) for the packet
they answer; ``answer`` turns it into the reason code of that answer, or into the end of
the connection where the packet type or protocol level cannot carry the refusal. The
encoder then writes a 5.0 reason code as 3.x requires (SUBACK 0x80, CONNACK return
codes), so the table speaks in 5.0 codes throughout.

Sources: MQTT 5.0 section 2.4 (which codes each packet may carry) and 4.13 (handling
errors); for 3.x, which cannot refuse a PUBLISH, Mosquitto's choice (acknowledge and
drop) where the refusal is policy, and closing where acknowledging would promise
something untrue (a message not stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from roost.mqtt.packets import PacketType
from roost.mqtt.reason_codes import ReasonCode


class Outcome(Enum):
    # The store cannot take durable work, or a commit the answer depends on failed.
    STORE_FAILURE = "store failure"
    # An authorizer (or the reserved-topic rule) refused the action.
    NOT_AUTHORIZED = "not authorized"
    # A payload whose Payload Format Indicator says UTF-8 is not.
    PAYLOAD_FORMAT_INVALID = "payload format invalid"
    # An implementation or administrative limit was exceeded.
    QUOTA_EXCEEDED = "quota exceeded"
    # A message was accepted but no subscription matched it (5.0 says so, 3.x cannot).
    NO_MATCHING_SUBSCRIBERS = "no matching subscribers"
    # A SUBSCRIBE topic filter that is not valid or beyond the topic limits.
    TOPIC_FILTER_INVALID = "topic filter invalid"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client sees: ``code`` in the acknowledgement, or, with ``end``, the
    connection ends (DISCONNECT with ``code`` for 5.0, a plain close for 3.x)."""

    code: ReasonCode
    end: bool = False


_R = ReasonCode
_PUBLISH_ACKS = (PacketType.PUBACK, PacketType.PUBREC)
_RELEASE = (PacketType.PUBREL, PacketType.PUBCOMP)

# (outcome, packet type answered) -> (answer at 5.0, answer at 3.x).
_TABLE: dict[tuple[Outcome, PacketType], tuple[Answer, Answer]] = {}
for _ack in _PUBLISH_ACKS:
    _TABLE.update({
        # 3.x has no way to say "not stored": acknowledging would be a lie, so close;
        # the client resends after reconnecting.
        (Outcome.STORE_FAILURE, _ack): (Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR),
                                        Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR, end=True)),
        # Policy refusals: 3.x acknowledges and drops, as Mosquitto does.
        (Outcome.NOT_AUTHORIZED, _ack): (Answer(_R.NOT_AUTHORIZED), Answer(_R.SUCCESS)),
        (Outcome.PAYLOAD_FORMAT_INVALID, _ack): (Answer(_R.PAYLOAD_FORMAT_INVALID),
                                                 Answer(_R.SUCCESS)),
        (Outcome.QUOTA_EXCEEDED, _ack): (Answer(_R.QUOTA_EXCEEDED), Answer(_R.SUCCESS)),
        (Outcome.NO_MATCHING_SUBSCRIBERS, _ack): (Answer(_R.NO_MATCHING_SUBSCRIBERS),
                                                  Answer(_R.SUCCESS)),
    })
for _ack in _RELEASE:
    # Neither PUBREL nor PUBCOMP can say "not stored": end the connection; the client
    # resends on reconnect.
    _TABLE[(Outcome.STORE_FAILURE, _ack)] = (
        Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR, end=True),
        Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR, end=True))
_TABLE.update({
    (Outcome.STORE_FAILURE, PacketType.SUBACK): (
        Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR),
        Answer(_R.IMPLEMENTATION_SPECIFIC_ERROR, end=True)),
    # SUBACK failure codes: the encoder writes 0x80 for every one of them at 3.x.
    (Outcome.NOT_AUTHORIZED, PacketType.SUBACK): (Answer(_R.NOT_AUTHORIZED),) * 2,
    (Outcome.QUOTA_EXCEEDED, PacketType.SUBACK): (Answer(_R.QUOTA_EXCEEDED),) * 2,
    (Outcome.TOPIC_FILTER_INVALID, PacketType.SUBACK): (Answer(_R.TOPIC_FILTER_INVALID),) * 2,
    # CONNACK codes: the encoder maps them to 3.x return codes (5 for not authorized).
    (Outcome.NOT_AUTHORIZED, PacketType.CONNACK): (Answer(_R.NOT_AUTHORIZED),) * 2,
    (Outcome.QUOTA_EXCEEDED, PacketType.CONNACK): (Answer(_R.QUOTA_EXCEEDED),) * 2,
    (Outcome.STORE_FAILURE, PacketType.CONNACK): (Answer(_R.SERVER_UNAVAILABLE),) * 2,
})


def answer(outcome: Outcome, packet_type: PacketType, level: int) -> Answer:
    """The answer to ``packet_type`` at protocol ``level`` (3, 4 or 5) for ``outcome``.

    Raises ``KeyError`` for a combination the table does not hold (a programming
    error: every outcome a handler reports has a row for the packet it answers)."""
    v5, v3 = _TABLE[(outcome, packet_type)]
    return v5 if level == 5 else v3


def rows() -> list[tuple[Outcome, PacketType, Answer, Answer]]:
    """Every row of the table (for docs and tests)."""
    return [(o, t, v5, v3) for (o, t), (v5, v3) in _TABLE.items()]
