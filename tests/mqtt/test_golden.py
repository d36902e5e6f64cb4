"""Golden bytes for every packet type, written out by hand from the MQTT 3.1.1 and 5.0 specs.

Each case lists the protocol levels it holds for; every case is checked both ways:
``encode(packet, level) == golden`` and ``Decoder(level).feed(golden) == [packet]``.
Hex strings are grouped by field (spaces are ignored by ``bytes.fromhex``).
"""

from __future__ import annotations

import pytest

from roost.mqtt import (
    Auth,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
    UsageError,
    Will,
    encode,
)

RC = ReasonCode
V3 = (3, 4)  # MQTT 3.1 and 3.1.1 share every layout but CONNECT's protocol name
V4 = (4,)
V5 = (5,)
ALL = (3, 4, 5)

# (id, packet, levels, golden hex)
CASES: list[tuple[str, Packet, tuple[int, ...], str]] = [
    # ---- CONNECT ------------------------------------------------------------------------
    (
        "connect-311-minimal",
        Connect("", protocol_level=4, clean_start=True, keepalive=0),
        ALL,
        "10 0c  0004 4d515454  04  02  0000  0000",
    ),
    (
        "connect-311-will-user-password",
        Connect("c1", protocol_level=4, clean_start=True, keepalive=60, username="u",
                password=b"p", will=Will("w/t", b"bye", qos=1, retain=True)),
        ALL,
        # flags: user 80 | password 40 | will retain 20 | will qos 1 08 | will 04 | clean 02
        "10 1e  0004 4d515454  04  ee  003c"
        "  0002 6331  0003 772f74  0003 627965  0001 75  0001 70",
    ),
    (
        "connect-311-will-qos2-no-clean",
        Connect("x", protocol_level=4, clean_start=False, keepalive=0xFFFF,
                will=Will("t", b"", qos=2)),
        ALL,
        "10 12  0004 4d515454  04  14  ffff  0001 78  0001 74  0000",
    ),
    (
        "connect-31-mqisdp",
        Connect("abc", protocol_level=3, clean_start=True, keepalive=30),
        ALL,
        "10 11  0006 4d5149736470  03  02  001e  0003 616263",
    ),
    (
        "connect-31-user-password",
        Connect("abc", protocol_level=3, clean_start=True, keepalive=30, username="u",
                password=b"pw"),
        ALL,
        "10 18  0006 4d5149736470  03  c2  001e  0003 616263  0001 75  0002 7077",
    ),
    (
        "connect-50-minimal",
        Connect("", protocol_level=5, clean_start=True, keepalive=0),
        ALL,
        "10 0d  0004 4d515454  05  02  0000  00  0000",
    ),
    (
        "connect-50-session-expiry-will-delay",
        Connect("c1", protocol_level=5, clean_start=False, keepalive=10, username="u",
                password=b"p",
                will=Will("w", b"x", qos=2, retain=False,
                          properties=Properties(will_delay_interval=30)),
                properties=Properties(session_expiry_interval=3600)),
        ALL,
        # flags: user 80 | password 40 | will qos 2 10 | will 04
        "10 26  0004 4d515454  05  d4  000a  05 11 00000e10"
        "  0002 6331  05 18 0000001e  0001 77  0001 78  0001 75  0001 70",
    ),
    (
        "connect-50-password-without-username",
        Connect("c", protocol_level=5, keepalive=60, password=b"\x00\xff",
                properties=Properties(receive_maximum=10, maximum_packet_size=1024,
                                      request_problem_information=0,
                                      user_properties=[("a", "1"), ("a", "2")])),
        ALL,
        "10 2a  0004 4d515454  05  42  003c"
        "  18 17 00  21 000a  26 0001 61 0001 31  26 0001 61 0001 32  27 00000400"
        "  0001 63  0002 00ff",
    ),
    # ---- CONNACK ------------------------------------------------------------------------
    ("connack-311-accepted", Connack(RC.SUCCESS), V3, "20 02 00 00"),
    ("connack-311-session-present", Connack(RC.SUCCESS, session_present=True), V3,
     "20 02 01 00"),
    ("connack-311-bad-protocol", Connack(RC.UNSUPPORTED_PROTOCOL_VERSION), V3, "20 02 00 01"),
    ("connack-311-id-rejected", Connack(RC.CLIENT_IDENTIFIER_NOT_VALID), V3, "20 02 00 02"),
    ("connack-311-unavailable", Connack(RC.SERVER_UNAVAILABLE), V3, "20 02 00 03"),
    ("connack-311-bad-credentials", Connack(RC.BAD_USER_NAME_OR_PASSWORD), V3, "20 02 00 04"),
    ("connack-311-not-authorized", Connack(RC.NOT_AUTHORIZED), V3, "20 02 00 05"),
    ("connack-50-success", Connack(RC.SUCCESS), V5, "20 03 00 00 00"),
    (
        "connack-50-reason-string",
        Connack(RC.NOT_AUTHORIZED, properties=Properties(reason_string="no")),
        V5,
        "20 08  00 87  05 1f 0002 6e6f",
    ),
    (
        "connack-50-properties",
        Connack(RC.SUCCESS, session_present=True,
                properties=Properties(session_expiry_interval=120,
                                      assigned_client_identifier="id", receive_maximum=20,
                                      maximum_qos=1)),
        V5,
        "20 12  01 00  0f  11 00000078  12 0002 6964  21 0014  24 01",
    ),
    # ---- PUBLISH ------------------------------------------------------------------------
    ("publish-311-qos0", Publish("a/b", b"hi"), V3, "30 07  0003 612f62  6869"),
    ("publish-311-qos0-retain", Publish("a/b", b"hi", retain=True), V3,
     "31 07  0003 612f62  6869"),
    ("publish-311-qos0-empty-payload", Publish("a/b"), V3, "30 05  0003 612f62"),
    ("publish-311-qos1", Publish("a/b", b"hi", qos=1, packet_id=10), V3,
     "32 09  0003 612f62  000a  6869"),
    ("publish-311-qos1-dup", Publish("a/b", b"hi", qos=1, dup=True, packet_id=10), V3,
     "3a 09  0003 612f62  000a  6869"),
    ("publish-311-qos2", Publish("a/b", b"hi", qos=2, packet_id=0xFFFF), V3,
     "34 09  0003 612f62  ffff  6869"),
    ("publish-311-qos2-dup-retain",
     Publish("a/b", b"hi", qos=2, retain=True, dup=True, packet_id=0x1234), V3,
     "3d 09  0003 612f62  1234  6869"),
    # A BOM is U+FEFF and must be kept, not stripped (1.5.4).
    ("publish-311-bom-topic", Publish("\ufeffa", b""), V3, "30 06  0004 efbbbf61"),
    ("publish-50-qos0", Publish("a/b", b"hi"), V5, "30 08  0003 612f62  00  6869"),
    ("publish-50-qos2-dup-retain",
     Publish("a/b", b"hi", qos=2, retain=True, dup=True, packet_id=0x1234), V5,
     "3d 0a  0003 612f62  1234  00  6869"),
    (
        "publish-50-qos1-properties",
        Publish("a/b", b"hi", qos=1, packet_id=10,
                properties=Properties(payload_format_indicator=1, message_expiry_interval=60,
                                      content_type="t", topic_alias=5,
                                      subscription_identifiers=[1, 200],
                                      user_properties=[("k", "v")])),
        V5,
        "32 24  0003 612f62  000a"
        "  1a  01 01  02 0000003c  03 0001 74  0b 01  0b c801  23 0005  26 0001 6b 0001 76"
        "  6869",
    ),
    (
        "publish-50-alias-only",
        Publish("", b"x", properties=Properties(topic_alias=1, response_topic="r",
                                                correlation_data=b"\x01")),
        V5,
        "30 0f  0000  0b  08 0001 72  09 0001 01  23 0001  78",
    ),
    # ---- PUBACK / PUBREC / PUBREL / PUBCOMP ------------------------------------------------
    ("puback-short", Puback(10), ALL, "40 02 000a"),
    ("pubrec-short", Pubrec(10), ALL, "50 02 000a"),
    ("pubrel-short", Pubrel(10), ALL, "62 02 000a"),
    ("pubcomp-short", Pubcomp(10), ALL, "70 02 000a"),
    ("puback-50-reason", Puback(10, RC.NO_MATCHING_SUBSCRIBERS), V5, "40 03 000a 10"),
    ("pubrec-50-reason", Pubrec(10, RC.QUOTA_EXCEEDED), V5, "50 03 000a 97"),
    ("pubrel-50-reason", Pubrel(10, RC.PACKET_IDENTIFIER_NOT_FOUND), V5, "62 03 000a 92"),
    ("pubcomp-50-reason", Pubcomp(10, RC.PACKET_IDENTIFIER_NOT_FOUND), V5, "70 03 000a 92"),
    ("puback-50-long", Puback(10, RC.SUCCESS, Properties(reason_string="ok")), V5,
     "40 09  000a  00  05 1f 0002 6f6b"),
    ("pubrec-50-long", Pubrec(0x0102, RC.NOT_AUTHORIZED, Properties(reason_string="")), V5,
     "50 07  0102  87  03 1f 0000"),
    ("pubrel-50-long", Pubrel(7, RC.SUCCESS, Properties(user_properties=[("a", "b")])), V5,
     "62 0b  0007  00  07 26 0001 61 0001 62"),
    ("pubcomp-50-long", Pubcomp(7, RC.PACKET_IDENTIFIER_NOT_FOUND,
                                Properties(reason_string="?")), V5,
     "70 08  0007  92  04 1f 0001 3f"),
    # ---- SUBSCRIBE / SUBACK -----------------------------------------------------------------
    (
        "subscribe-311",
        Subscribe(1, [SubscriptionRequest("a/b", 1), SubscriptionRequest("c/#", 2)]),
        V3,
        "82 0e  0001  0003 612f62 01  0003 632f23 02",
    ),
    (
        "subscribe-50-options",
        Subscribe(2, [SubscriptionRequest("a/b", qos=1, no_local=True,
                                          retain_as_published=True, retain_handling=2),
                      SubscriptionRequest("c", qos=0, retain_handling=1)],
                  Properties(subscription_identifiers=[300])),
        V5,
        # options: retain handling 2 -> 20 | retain as published 08 | no local 04 | qos 1
        "82 10  0002  03 0b ac02  0003 612f62 2d  0001 63 10",
    ),
    (
        "subscribe-50-plain",
        Subscribe(0xFFFF, [SubscriptionRequest("#", qos=2)]),
        V5,
        "82 07  ffff  00  0001 23 02",
    ),
    (
        "suback-311",
        Suback(1, [RC.GRANTED_QOS_1, RC.UNSPECIFIED_ERROR, RC.SUCCESS, RC.GRANTED_QOS_2]),
        V3,
        "90 06  0001  01 80 00 02",
    ),
    (
        "suback-50",
        Suback(2, [RC.GRANTED_QOS_1, RC.NOT_AUTHORIZED, RC.TOPIC_FILTER_INVALID],
               Properties(reason_string="x")),
        V5,
        "90 0a  0002  04 1f 0001 78  01 87 8f",
    ),
    # ---- UNSUBSCRIBE / UNSUBACK -------------------------------------------------------------
    ("unsubscribe-311", Unsubscribe(3, ["a/b", "c"]), V3, "a2 0a  0003  0003 612f62  0001 63"),
    ("unsubscribe-50", Unsubscribe(3, ["a/b"], Properties(user_properties=[("k", "v")])), V5,
     "a2 0f  0003  07 26 0001 6b 0001 76  0003 612f62"),
    ("unsuback-311", Unsuback(3), V3, "b0 02 0003"),
    ("unsuback-50", Unsuback(3, [RC.SUCCESS, RC.NO_SUBSCRIPTION_EXISTED]), V5,
     "b0 05  0003  00  00 11"),
    ("unsuback-50-properties", Unsuback(4, [RC.NOT_AUTHORIZED], Properties(reason_string="n")),
     V5, "b0 08  0004  04 1f 0001 6e  87"),
    # ---- PINGREQ / PINGRESP -----------------------------------------------------------------
    ("pingreq", Pingreq(), ALL, "c0 00"),
    ("pingresp", Pingresp(), ALL, "d0 00"),
    # ---- DISCONNECT ------------------------------------------------------------------------
    ("disconnect", Disconnect(), ALL, "e0 00"),
    ("disconnect-50-reason", Disconnect(RC.DISCONNECT_WITH_WILL), V5, "e0 01 04"),
    ("disconnect-50-properties",
     Disconnect(RC.SESSION_TAKEN_OVER, Properties(reason_string="r")), V5,
     "e0 06  8e  04 1f 0001 72"),
    ("disconnect-50-success-session-expiry",
     Disconnect(RC.SUCCESS, Properties(session_expiry_interval=0)), V5,
     "e0 07  00  05 11 00000000"),
    ("disconnect-50-server-moved",
     Disconnect(RC.SERVER_MOVED, Properties(server_reference="h:1")), V5,
     "e0 08  9d  06 1c 0003 683a31"),
    # ---- AUTH ------------------------------------------------------------------------------
    ("auth-50-empty", Auth(), V5, "f0 00"),
    ("auth-50-reauthenticate", Auth(RC.REAUTHENTICATE), V5, "f0 01 19"),
    (
        "auth-50-continue",
        Auth(RC.CONTINUE_AUTHENTICATION,
             Properties(authentication_method="SCRAM", authentication_data=b"\x01\x02")),
        V5,
        "f0 0f  18  0d 15 0005 534352414d 16 0002 0102",
    ),
]

PARAMS = [
    pytest.param(packet, level, bytes.fromhex(golden), id=f"{name}-L{level}")
    for name, packet, levels, golden in CASES
    for level in levels
]


@pytest.mark.parametrize(("packet", "level", "golden"), PARAMS)
def test_encode_matches_golden(packet: Packet, level: int, golden: bytes) -> None:
    assert encode(packet, level) == golden


@pytest.mark.parametrize(("packet", "level", "golden"), PARAMS)
def test_decode_matches_golden(packet: Packet, level: int, golden: bytes) -> None:
    decoder = Decoder(level)
    assert decoder.feed(golden) == [packet]
    assert decoder.buffered == 0


@pytest.mark.parametrize(("packet", "level", "golden"), PARAMS)
def test_golden_declares_its_own_length(packet: Packet, level: int, golden: bytes) -> None:
    # Guards the hand-written goldens themselves: all are under 128 bytes of body.
    assert golden[1] == len(golden) - 2


@pytest.mark.parametrize("level", [3, 4, 5])
def test_connect_sets_the_decoder_level(level: int) -> None:
    connect = encode(Connect("c", protocol_level=level), level)
    decoder = Decoder(4 if level == 5 else 5)
    assert decoder.feed(connect) == [Connect("c", protocol_level=level)]
    assert decoder.protocol_level == level


# ---- Encode-only cases: fields a level cannot carry are dropped or mapped ------------------

ENCODE_ONLY: list[tuple[str, Packet, int, str]] = [
    ("connack-311-banned", Connack(RC.BANNED), 4, "20 02 00 05"),
    ("connack-311-bad-auth-method", Connack(RC.BAD_AUTHENTICATION_METHOD), 4, "20 02 00 04"),
    ("connack-311-other-error", Connack(RC.QUOTA_EXCEEDED), 4, "20 02 00 03"),
    ("connack-311-drops-properties",
     Connack(RC.SUCCESS, properties=Properties(reason_string="x")), 4, "20 02 00 00"),
    ("puback-311-drops-reason", Puback(10, RC.NO_MATCHING_SUBSCRIBERS), 4, "40 02 000a"),
    ("pubrel-311-drops-properties",
     Pubrel(10, RC.SUCCESS, Properties(reason_string="x")), 4, "62 02 000a"),
    ("publish-311-drops-properties",
     Publish("a", b"", properties=Properties(topic_alias=1)), 4, "30 03 0001 61"),
    ("subscribe-311-drops-options",
     Subscribe(1, [SubscriptionRequest("a", 1, no_local=True, retain_as_published=True,
                                       retain_handling=2)]), 4, "82 06 0001 0001 61 01"),
    ("suback-311-failure", Suback(1, [RC.NOT_AUTHORIZED, RC.GRANTED_QOS_2]), 4,
     "90 04 0001 80 02"),
    ("unsuback-311-drops-codes", Unsuback(3, [RC.SUCCESS]), 4, "b0 02 0003"),
    ("disconnect-311-drops-reason", Disconnect(RC.SERVER_SHUTTING_DOWN), 4, "e0 00"),
]


@pytest.mark.parametrize(
    ("packet", "level", "golden"),
    [pytest.param(p, lv, bytes.fromhex(g), id=name) for name, p, lv, g in ENCODE_ONLY],
)
def test_encode_only(packet: Packet, level: int, golden: bytes) -> None:
    assert encode(packet, level) == golden


# ---- Decode-only cases: valid encodings the encoder never produces --------------------------

DECODE_ONLY: list[tuple[str, str, int, Packet]] = [
    # A reason code followed by a zero property length is the long form of the short form.
    ("puback-50-explicit-empty-properties", "40 04 000a 00 00", 5, Puback(10)),
    ("pubrel-50-explicit-empty-properties", "62 04 000a 92 00", 5,
     Pubrel(10, RC.PACKET_IDENTIFIER_NOT_FOUND)),
    ("disconnect-50-explicit-empty-properties", "e0 02 00 00", 5, Disconnect()),
    ("auth-50-explicit-empty-properties", "f0 02 18 00", 5,
     Auth(RC.CONTINUE_AUTHENTICATION)),
    # MQTT 3.1 servers answer SUBSCRIBE with granted QoS values only.
    ("suback-31", "90 03 0001 02", 3, Suback(1, [RC.GRANTED_QOS_2])),
]


@pytest.mark.parametrize(
    ("golden", "level", "packet"),
    [pytest.param(bytes.fromhex(g), lv, p, id=name) for name, g, lv, p in DECODE_ONLY],
)
def test_decode_only(golden: bytes, level: int, packet: Packet) -> None:
    assert Decoder(level).feed(golden) == [packet]


def test_auth_cannot_be_encoded_before_mqtt5() -> None:
    with pytest.raises(UsageError):
        encode(Auth(), 4)


def test_publish_qos1_without_packet_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        encode(Publish("a", qos=1), 4)


def test_large_remaining_length_uses_multibyte_varint() -> None:
    # 321 = 0x141 -> varint c1 02; spec 1.5.5 example range for two bytes is 128..16383.
    payload = bytes(range(256)) + bytes(61)
    packet = Publish("ab", payload)
    golden = bytes.fromhex("30 c1 02  0002 6162") + payload
    assert len(golden) - 3 == 321
    assert encode(packet, 4) == golden
    assert Decoder(4).feed(golden) == [packet]
