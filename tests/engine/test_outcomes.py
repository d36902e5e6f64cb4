"""The table from outcomes to answers (roost/engine/outcomes.py)."""

from __future__ import annotations

import pytest

from roost.engine.outcomes import Answer, Outcome, answer, rows
from roost.mqtt.packets import PacketType
from roost.mqtt.reason_codes import ReasonCode

# Which reason codes each answering packet may carry (MQTT 5.0 section 2.4).
ALLOWED = {
    PacketType.PUBACK: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
    PacketType.PUBREC: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
    PacketType.SUBACK: {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E,
                        0xA1, 0xA2},
    PacketType.CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
                         0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C,
                         0x9D, 0x9F},
}
# Reason codes a server's DISCONNECT may carry (3.14.2.1).
DISCONNECT = {0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90,
              0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E,
              0x9F, 0xA0, 0xA1, 0xA2}


@pytest.mark.parametrize(("outcome", "packet_type", "v5", "v3"), rows())
def test_every_answer_is_a_code_its_packet_may_carry(outcome, packet_type, v5, v3):
    for a in (v5, v3):
        allowed = DISCONNECT if a.end else ALLOWED[packet_type]
        assert int(a.code) in allowed, (outcome, packet_type, a)


def test_store_failure_never_acknowledged_as_success():
    """An acknowledgement that promises durability is never sent for what was not
    stored: 5.0 says 0x83, 3.x (which cannot) ends the connection."""
    for packet_type in (PacketType.PUBACK, PacketType.PUBREC, PacketType.SUBACK,
                        PacketType.PUBREL, PacketType.PUBCOMP):
        for level in (3, 4, 5):
            a = answer(Outcome.STORE_FAILURE, packet_type, level)
            assert a.code == ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
            assert a.end or level == 5


def test_policy_refusals_acknowledged_at_3x():
    assert answer(Outcome.NOT_AUTHORIZED, PacketType.PUBACK, 4) == Answer(ReasonCode.SUCCESS)
    assert answer(Outcome.NOT_AUTHORIZED, PacketType.PUBACK, 5) == Answer(
        ReasonCode.NOT_AUTHORIZED)


def test_unknown_combination_is_a_programming_error():
    with pytest.raises(KeyError):
        answer(Outcome.NO_MATCHING_SUBSCRIBERS, PacketType.SUBACK, 5)
