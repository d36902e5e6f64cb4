"""CONNECT (3.1): client identifier rules, limits, authentication, session takeover and
the CONNACK with the server's limits (5.0 properties)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from roost.engine.connection import UNLIMITED_PACKET, Connection
from roost.engine.directory import Opened
from roost.engine.events import ClientConnected, ClientRefused
from roost.engine.hooks import (
    AccessEvent,
    Action,
    ConnectEvent,
    Decision,
)
from roost.engine.limits import topic_over_limit, user_properties_over_limit
from roost.engine.reserved import client_may_publish
from roost.mqtt.conformance import check_connect
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.packets import Connack, Connect
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode
from roost.mqtt.topics import is_valid_topic_name, utf8_longer_than

log = logging.getLogger("roost.connection")

NEVER_EXPIRES = 0xFFFFFFFF


def refuse(channel: Connection, reason: ReasonCode, why: str) -> None:
    """Answer CONNECT with a refusal and close."""
    channel.engine.stats.auth_failures += reason in (
        ReasonCode.NOT_AUTHORIZED, ReasonCode.BAD_USER_NAME_OR_PASSWORD)
    channel.engine.hooks.emit(ClientRefused(
        channel.client_id, channel.link.peer, channel.link.listener, channel.level,
        int(reason), why))
    channel.send(Connack(reason))
    channel.close(why)


def handle_connect(channel: Connection, p: Connect) -> None:
    """CONNECT (3.1): validate, authenticate, take over or open the session, CONNACK."""
    channel.level = p.protocol_level
    settings = channel.settings
    props = p.properties
    channel.client_id = p.client_id
    assigned = None
    too_long = utf8_longer_than(p.client_id, settings.max_client_id_length)
    if too_long is not None:
        channel.client_id = p.client_id[:32] + "..."
        return refuse(channel, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, channel.breach(
            "max_client_id_length",
            f"client id of {too_long} bytes, more than {settings.max_client_id_length}"))
    if not p.client_id:
        if channel.level == 3 or (channel.level == 4 and not p.clean_start):
            return refuse(channel, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                                "empty client id without clean session")
        channel.client_id = "auto-" + uuid.uuid4().hex
        if channel.level == 5:
            assigned = channel.client_id
    try:
        check_connect(p)
    except ProtocolViolation as exc:
        return refuse(channel, exc.reason, str(exc))
    if props.authentication_method is not None:
        return refuse(channel, ReasonCode.BAD_AUTHENTICATION_METHOD,
                            "enhanced authentication is not supported")
    will = p.will
    for block in (props,) if will is None else (props, will.properties):
        too_many = user_properties_over_limit(settings, block)
        if too_many is not None:
            return refuse(channel, ReasonCode.QUOTA_EXCEEDED,
                                channel.breach("max_user_properties", too_many))
    if will is not None:
        if not is_valid_topic_name(will.topic):
            return refuse(channel, ReasonCode.TOPIC_NAME_INVALID, "invalid will topic")
        over = topic_over_limit(settings, will.topic)
        if over is not None:
            return refuse(channel, ReasonCode.TOPIC_NAME_INVALID, channel.breach(*over))
        if will.qos > settings.maximum_qos:
            return refuse(channel, ReasonCode.QOS_NOT_SUPPORTED, "will QoS not supported")
        if will.retain and not settings.retain_available:
            return refuse(channel, ReasonCode.RETAIN_NOT_SUPPORTED, "will retain unsupported")
        if will.topic[0] == "$" and not client_may_publish(
                will.topic, channel.client_id, settings.allow_dollar_topics):
            return refuse(channel, ReasonCode.NOT_AUTHORIZED,
                          f"will topic {will.topic!r} is reserved for the broker")
    keepalive = p.keepalive
    server_keep_alive = None
    if keepalive > settings.max_keepalive or (keepalive == 0 and settings.max_keepalive
                                              < 65535):
        # Accepted, with the maximum as the server's idle limit: 5.0 clients are told
        # (Server Keep Alive); 3.x clients cannot be, and no 3.x return code names the
        # cause, so the log line does (docs/limits.md, beside Mosquitto's refusal).
        if channel.level < 5:
            channel.breach_once("max_keepalive", (
                f"keepalive {keepalive} s {'(none)' if keepalive == 0 else 'above'} "
                f"max_keepalive {settings.max_keepalive} s: closed after "
                f"{settings.max_keepalive * 1.5:g} s without a packet"))
        keepalive = settings.max_keepalive
        if channel.level == 5:
            server_keep_alive = keepalive
    identity = channel.link.certificate_identity
    if identity is not None:
        # The certificate's identity replaces any user name the client sent
        # (Mosquitto's use_identity_as_username).
        p.username = identity
    event = ConnectEvent(channel.client_id, p.username, p.password, channel.link.peer,
                         channel.link.listener, channel.level, identity)
    # Phase two: authentication and the session directory may answer later; whatever
    # the client pipelines meanwhile waits for the CONNACK.
    accepted = _Accepted(p, assigned, keepalive, server_keep_alive)
    channel.hold_input()
    channel.engine.hooks.authenticate(
        event, lambda decision: _authenticated(channel, accepted, decision))


@dataclass(frozen=True, slots=True)
class _Accepted:
    """What phase one of a CONNECT decided, for the phases that answer later."""

    connect: Connect
    # The client identifier Roost assigned (5.0, empty client id), or None.
    assigned: str | None
    # Seconds, after max_keepalive; server_keep_alive is set when 5.0 must be told.
    keepalive: int
    server_keep_alive: int | None


def _authenticated(channel: Connection, accepted: _Accepted, decision: Decision) -> None:
    if channel.closed:
        return
    p = accepted.connect
    if decision is not Decision.ALLOW:
        # Credentials that failed (a password or a JWT) are "bad user name or
        # password"; no credentials at all on a closed listener is "not authorized".
        reason = (ReasonCode.NOT_AUTHORIZED if p.username is None and p.password is None
                  else ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        return refuse(channel, reason, "authentication failed")
    channel.username = p.username
    will = p.will
    if will is not None and channel.engine.hooks.authorize(AccessEvent(
            channel.client_id, channel.username, Action.PUBLISH, will.topic)) is Decision.DENY:
        return refuse(channel, ReasonCode.NOT_AUTHORIZED, f"will topic {will.topic!r} denied")
    props = p.properties
    if channel.level == 5:
        expiry = props.session_expiry_interval or 0
        session_expiry: int | None = None if expiry == NEVER_EXPIRES else expiry
        channel.client_receive_maximum = props.receive_maximum or 65535
        channel.client_max_packet = props.maximum_packet_size or UNLIMITED_PACKET
        channel.client_alias_maximum = props.topic_alias_maximum or 0
    else:
        session_expiry = (0 if p.clean_start
                          else channel.settings.persistent_session_expiry)
    channel.engine.directory.open(channel.client_id, p.clean_start, session_expiry, channel,
                                  lambda opened: _opened(channel, accepted, opened))


def _opened(channel: Connection, accepted: _Accepted, opened: Opened) -> None:
    """The directory answered: send the CONNACK, then what the client sent meanwhile."""
    session = opened.session
    if channel.closed:
        if session is not None:
            # Gone before its CONNACK: the CONNECT was never accepted, so no will.
            channel.engine.directory.closed(session, None)
        return
    if opened.refusal is not None or session is None:
        return refuse(channel, opened.refusal or ReasonCode.SERVER_UNAVAILABLE,
                      "session directory refused")
    p = accepted.connect
    settings = channel.settings
    props = p.properties
    channel.engine.identify(session, channel.username)
    channel.enter_connected(session, p.will, accepted.keepalive)
    ack = Properties()
    if channel.level == 5:
        ack.assigned_client_identifier = accepted.assigned
        ack.server_keep_alive = accepted.server_keep_alive
        if settings.receive_maximum < 65535:
            ack.receive_maximum = settings.receive_maximum
        if settings.maximum_qos < 2:
            ack.maximum_qos = settings.maximum_qos
        if not settings.retain_available:
            ack.retain_available = 0
        ack.maximum_packet_size = settings.max_packet_size
        if settings.topic_alias_maximum:
            ack.topic_alias_maximum = settings.topic_alias_maximum
        if props.request_response_information and not any(
                c in channel.client_id for c in "+#"):
            ack.response_information = (
                f"{settings.response_information_prefix}/{channel.client_id}")
    present = opened.present
    channel.send(Connack(ReasonCode.SUCCESS, present, ack))
    channel.engine.hooks.emit(ClientConnected(
        channel.client_id, channel.username, channel.link.peer, channel.link.listener,
        channel.level, p.clean_start, present))
    session.outlet = channel
    session.resume()
    channel.release_input()
