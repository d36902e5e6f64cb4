"""SUBSCRIBE and UNSUBSCRIBE (3.8, 3.10): filter validation, limits and authorization,
shared subscriptions, a SUBACK that waits for the store for persistent sessions, and
retained messages by retain handling."""

from __future__ import annotations

from roost.engine.connection import Connection
from roost.engine.hooks import AccessEvent, Action, Decision
from roost.engine.limits import topic_over_limit
from roost.engine.session import Session
from roost.engine.subscriptions import Subscription
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.packets import PacketType, Suback, Subscribe, Unsuback, Unsubscribe
from roost.mqtt.reason_codes import ReasonCode
from roost.mqtt.topics import is_valid_topic_filter, parse_shared


def handle_subscribe(channel: Connection, p: Subscribe) -> None:
    """SUBSCRIBE (3.8): one reason code per filter; retained messages after the SUBACK."""
    session = channel.session_or_fail()
    engine = channel.engine
    ids = p.properties.subscription_identifiers
    identifier = ids[0] if ids else None
    codes: list[ReasonCode] = []
    granted: list[tuple[Subscription, bool]] = []
    for req in p.subscriptions:
        try:
            shared = parse_shared(req.topic_filter)
        except ValueError:
            codes.append(ReasonCode.TOPIC_FILTER_INVALID)
            continue
        inner = shared.topic_filter if shared else req.topic_filter
        if not is_valid_topic_filter(inner):
            codes.append(ReasonCode.TOPIC_FILTER_INVALID)
            continue
        if shared and req.no_local:
            raise ProtocolViolation("no local on a shared subscription")
        over = topic_over_limit(channel.settings, req.topic_filter, inner)
        if over is not None:
            channel.breach_once(*over)
            codes.append(ReasonCode.TOPIC_FILTER_INVALID)
            continue
        limit = channel.settings.max_subscriptions
        if (limit and len(session.subscriptions) >= limit
                and req.topic_filter not in session.subscriptions):
            channel.breach_once("max_subscriptions", f"more than {limit} subscriptions")
            codes.append(ReasonCode.QUOTA_EXCEEDED)
            continue
        if engine.hooks.authorize(AccessEvent(
                channel.client_id, channel.username, Action.SUBSCRIBE,
                req.topic_filter)) is Decision.DENY:
            codes.append(ReasonCode.NOT_AUTHORIZED)
            continue
        qos = min(req.qos, channel.settings.maximum_qos)
        sub = Subscription(req.topic_filter, qos, req.no_local, req.retain_as_published,
                           req.retain_handling, identifier,
                           shared.group if shared else None)
        old = session.subscriptions.get(req.topic_filter)
        if old is not None and old.share_group != sub.share_group:
            engine.router.unsubscribe(session, old)
        existed = engine.router.subscribe(session, sub)
        session.subscribed(sub)
        codes.append(ReasonCode(qos))
        granted.append((sub, existed))
    suback = Suback(p.packet_id, codes)
    if session.journal is None:
        _subscribed(channel, session, suback, granted, True)
    else:
        # A SUBACK for a persistent session promises the subscription is stored.
        engine.store.commit(lambda ok: _subscribed(channel, session, suback, granted, ok))


def _subscribed(channel: Connection, session: Session, suback: Suback,
                granted: list[tuple[Subscription, bool]], committed: bool) -> None:
    if channel.closed or channel.session is not session:
        return
    if not committed:
        code = channel.store_failed(PacketType.SUBACK)
        if code is None:
            return
        suback.reason_codes = [c if c.is_error else code for c in suback.reason_codes]
        channel.send(suback)
        return
    channel.send(suback)
    wanted = [sub for sub, existed in granted
              # Not for shared subscriptions (4.8.2), nor as retain handling says (3.8.3.1).
              if sub.share_group is None and sub.retain_handling != 2
              and not (sub.retain_handling == 1 and existed)]
    if wanted:
        # In a cluster the retained index may lag updates acknowledged on other nodes:
        # wait (bounded) until it is current, then send (read-your-writes).
        channel.engine.retained.when_current(
            lambda current: _send_retained(channel, session, wanted))


def _send_retained(channel: Connection, session: Session,
                   subs: list[Subscription]) -> None:
    if channel.closed or channel.session is not session:
        return
    engine = channel.engine
    now = engine.clock.monotonic()
    for sub in subs:
        for message in engine.retained.matching(sub.topic_filter, now):
            session.deliver_retained(message, sub)


def handle_unsubscribe(channel: Connection, p: Unsubscribe) -> None:
    """UNSUBSCRIBE (3.10)."""
    session = channel.session_or_fail()
    codes = []
    for topic_filter in p.topic_filters:
        sub = session.unsubscribed(topic_filter)
        if sub is not None:
            channel.engine.router.unsubscribe(session, sub)
            codes.append(ReasonCode.SUCCESS)
        else:
            codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
    channel.send(Unsuback(p.packet_id, codes))
