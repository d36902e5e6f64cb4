"""A message as it crosses the backplane: NATS headers ↔ ``Message``.

The subject carries the topic (``roost.cluster.subjects``) and the NATS payload is the
MQTT payload, untouched. The headers carry the rest a receiving node needs to rebuild
the message:

=================  =====================================================================
``Roost-Flags``    the QoS digit, then ``r`` if the retain flag is set: ``1``, ``0r``
``Roost-Client``   the publishing client's id, percent-encoded (No Local, 3.8.3.1)
``Roost-Props``    the forwarded MQTT 5 properties (payload format, content type,
                   response topic, correlation data, user properties) as MQTT encodes
                   them, length prefix included, in base64
``Roost-Expiry``   seconds left of the Message Expiry Interval when it was sent
``Roost-Source``   ``<node id> <subscriber key>``, percent-encoded key: the subscriber
                   (a bridge) the message came in through, which a queue group of its
                   own node must not give it back to
=================  =====================================================================

Only ``Roost-Flags`` is always there. Header values are ASCII on purpose: NATS header
lines end at CR LF and nats-py trims and rewrites values, so a client id or a property
travels encoded. Pure: no I/O, no NATS client.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from urllib.parse import quote, unquote

from roost.engine.message import Message, Origin
from roost.mqtt.decoder import Reader, read_properties
from roost.mqtt.encoder import properties as encode_properties
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.properties import NO_PROPERTIES, PacketKind

FLAGS = "Roost-Flags"
CLIENT = "Roost-Client"
PROPS = "Roost-Props"
EXPIRY = "Roost-Expiry"
SOURCE = "Roost-Source"

_FLAGS_OUT = {(qos, retain): f"{qos}{'r' if retain else ''}"
              for qos in range(3) for retain in (False, True)}
_FLAGS_IN = {text: key for key, text in _FLAGS_OUT.items()}
# NATS/1.0 CRLF ... CRLF, and per header ": " and CRLF.
_HEADER_OVERHEAD = 12
_PER_HEADER = 4


class BadHeaders(ValueError):
    """Headers that no Roost node wrote (or a newer one did): the message is dropped."""


def headers_for(message: Message, now: float, source: tuple[str, str] | None = None
                ) -> dict[str, str]:
    """The headers a message goes out with; ``now`` is the engine clock's monotonic
    time (for the expiry still left), ``source`` (node id, subscriber key) the
    subscriber it came in through, if any."""
    headers = {FLAGS: _FLAGS_OUT[message.qos, message.retain]}
    if message.origin is not None:
        headers[CLIENT] = quote(message.origin, safe="")
    if message.properties is not NO_PROPERTIES:
        headers[PROPS] = b64encode(encode_properties(message.properties)).decode("ascii")
    if message.expires_at is not None:
        headers[EXPIRY] = str(message.remaining_expiry(now))
    if source is not None:
        headers[SOURCE] = f"{source[0]} {quote(source[1], safe='')}"
    return headers


def source_on(headers: dict[str, str] | None, node_id: str) -> str | None:
    """The key of the subscriber of node ``node_id`` that a message came in through
    (``Roost-Source``), if it came from that node with one."""
    value = headers.get(SOURCE) if headers else None
    if value is None:
        return None
    node, _, key = value.partition(" ")
    if node != node_id:
        return None
    try:
        return unquote(key, errors="strict")
    except UnicodeDecodeError:
        return None


def headers_size(headers: dict[str, str]) -> int:
    """The bytes ``headers`` take in a NATS message (they count against max_payload)."""
    return _HEADER_OVERHEAD + sum(len(k) + len(v) + _PER_HEADER for k, v in headers.items())


def message_from(topic: str, payload: bytes, headers: dict[str, str] | None,
                 now: float) -> Message:
    """The message another node sent (``Origin.REMOTE``); BadHeaders if the headers
    are not Roost's."""
    if not headers:
        raise BadHeaders("no Roost headers")
    flags = _FLAGS_IN.get(headers.get(FLAGS, ""))
    if flags is None:
        raise BadHeaders(f"{FLAGS} is {headers.get(FLAGS)!r}")
    client = headers.get(CLIENT)
    try:
        origin = unquote(client, errors="strict") if client is not None else None
    except UnicodeDecodeError:
        raise BadHeaders(f"{CLIENT} is not percent-encoded UTF-8") from None
    props = NO_PROPERTIES
    raw_props = headers.get(PROPS)
    if raw_props is not None:
        try:
            reader = Reader(b64decode(raw_props, validate=True))
            props = read_properties(reader, PacketKind.PUBLISH)
        except (binascii.Error, ProtocolViolation) as exc:
            raise BadHeaders(f"{PROPS}: {exc}") from None
        if reader.remaining():
            raise BadHeaders(f"{PROPS}: bytes after the properties")
    expires_at = None
    expiry = headers.get(EXPIRY)
    if expiry is not None:
        if not expiry.isdigit():
            raise BadHeaders(f"{EXPIRY} is {expiry!r}")
        expires_at = now + int(expiry)
    return Message(topic, payload, flags[0], flags[1], props, origin, expires_at,
                   origin_kind=Origin.REMOTE)
