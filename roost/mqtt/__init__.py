"""The MQTT codec: pure functions and data, no I/O (see tests/mqtt/test_purity.py)."""

from roost.mqtt.decoder import Decoder, decode_packet
from roost.mqtt.encoder import encode
from roost.mqtt.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolViolation,
    UnsupportedProtocolVersion,
    UsageError,
)
from roost.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    ProtocolLevel,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    Will,
)
from roost.mqtt.properties import Properties, PropertyId
from roost.mqtt.reason_codes import ConnackReturnCode, ReasonCode

__all__ = [
    "Auth", "Connack", "ConnackReturnCode", "Connect", "Decoder", "Disconnect",
    "MalformedPacket", "Packet", "PacketTooLarge", "PacketType", "Pingreq", "Pingresp",
    "Properties", "PropertyId", "ProtocolLevel", "ProtocolViolation", "Puback", "Pubcomp",
    "Publish", "Pubrec", "Pubrel", "ReasonCode", "Suback", "Subscribe", "SubscriptionRequest",
    "Unsuback", "Unsubscribe", "UnsupportedProtocolVersion", "UsageError", "Will",
    "decode_packet", "encode",
]
