"""Errors raised by the codec.

Two families, as in h11: ``ProtocolViolation`` means the *peer* broke the protocol and
carries the reason code the peer should see; ``UsageError`` means the caller built
something the protocol cannot express.
"""

from __future__ import annotations

from roost.mqtt.reason_codes import ReasonCode


class ProtocolViolation(Exception):
    """The peer sent something the specification forbids."""

    reason: ReasonCode = ReasonCode.PROTOCOL_ERROR

    def __init__(self, message: str, reason: ReasonCode | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        # Packets decoded from the same chunk before the violation; still valid.
        self.preceding: list[object] = []


class MalformedPacket(ProtocolViolation):
    """Bytes that cannot be parsed as the packet they claim to be."""

    reason = ReasonCode.MALFORMED_PACKET


class PacketTooLarge(ProtocolViolation):
    """A packet whose declared size exceeds the negotiated maximum."""

    reason = ReasonCode.PACKET_TOO_LARGE


class UnsupportedProtocolVersion(ProtocolViolation):
    """A CONNECT naming a protocol level this codec does not speak."""

    reason = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, message: str, level: int) -> None:
        super().__init__(message)
        self.level = level


class UsageError(ValueError):
    """The caller asked the encoder for something MQTT cannot carry."""
