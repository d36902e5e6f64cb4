"""kill -9 in the middle of traffic: whatever the broker acknowledged survives.

Each test runs its own broker process, SIGKILLs it (from the publisher's reader thread,
the moment the chosen acknowledgement arrives, so the kill lands mid-stream), restarts
it on the same port and data directory and checks what the clients get afterwards.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from roost.mqtt import Properties, Puback, Pubcomp, Publish, Pubrec, Pubrel, ReasonCode, Will
from tests.broker import BrokerProcess, RawClient
from tests.faults import BIG_QUEUES, Drained, Publisher, connect, drain

TOTAL = 3000
KILL_AFTER = 1000
EXPIRY = 600
# One persistent subscriber per protocol level: 3.1.1 with clean session 0, and 5.0
# with a session expiry interval.
LEVELS = (4, 5)


def persistent(port: int, client_id: str, level: int, resume: bool = False) -> RawClient:
    client, present = connect(port, client_id, level, clean=level == 5 and not resume,
                              expiry=EXPIRY)
    assert present == resume, f"{client_id}: session present {present}"
    return client


def offline_subscribers(port: int, tag: str, topic: str, qos: int) -> list[tuple[str, int]]:
    subs = []
    for level in LEVELS:
        client_id = f"{tag}-sub-{level}"
        client = persistent(port, client_id, level)
        assert client.subscribe(topic, qos).reason_codes == [ReasonCode(qos)]
        client.disconnect()
        subs.append((client_id, level))
    return subs


def kill_on(broker: BrokerProcess, publisher: Publisher, successes: int) -> None:
    """SIGKILL the broker as soon as the publisher has ``successes`` acknowledgements."""
    assert broker.proc is not None
    pid = broker.proc.pid

    def on_success(count: int) -> None:
        if count == successes:
            os.kill(pid, signal.SIGKILL)

    publisher.on_success = on_success


def first_arrival_order(got: Drained) -> list[bytes]:
    seen: set[bytes] = set()
    order = []
    for p in got.packets:
        if p.payload not in seen:
            seen.add(p.payload)
            order.append(p.payload)
    return order


def test_acknowledged_qos1_messages_survive_kill9() -> None:
    topic = "k9/q1"
    payloads = [b"q1-%06d" % i for i in range(TOTAL)]
    with BrokerProcess(BIG_QUEUES) as broker:
        subs = offline_subscribers(broker.port, "q1", topic, 1)
        pub = Publisher(broker.port, "q1-pub", level=5, qos=1)
        kill_on(broker, pub, KILL_AFTER)
        sent = pub.publish_all([(topic, p) for p in payloads])
        assert pub.closed.wait(30), "the broker was not killed"
        broker.kill9()
        pub.close()
        acked = {payloads[pid - 1] for pid in pub.succeeded()}
        assert not [r for r in pub.acks.values() if r.is_error]
        assert KILL_AFTER <= len(acked) <= sent < TOTAL, (len(acked), sent)

        broker.start()
        for client_id, level in subs:
            client = persistent(broker.port, client_id, level, resume=True)
            got = drain(client, lambda g: g.counts.keys() >= acked)
            client.disconnect()
            print(f"\nQoS 1, {client_id}: sent {sent}, acknowledged {len(acked)}, "
                  f"delivered after kill -9 {len(got.counts)} distinct "
                  f"({sum(got.counts.values())} publishes, {got.duplicates()} duplicates)")
            assert not acked - got.counts.keys(), "acknowledged messages were lost"
            assert got.counts.keys() <= set(payloads[:sent])
            assert not got.duplicates_without_dup_flag()
            order = first_arrival_order(got)
            assert order == sorted(order), "the queue came back out of order"


def test_qos2_messages_are_delivered_exactly_once_across_kill9() -> None:
    topic = "k9/q2"
    payloads = [b"q2-%06d" % i for i in range(TOTAL)]
    ids = range(1, TOTAL + 1)
    with BrokerProcess(BIG_QUEUES) as broker:
        subs = offline_subscribers(broker.port, "q2", topic, 2)
        # A persistent publisher, so it can finish its QoS 2 flows after the restart.
        # PUBCOMP (which frees a window slot) waits for a commit, so allow 900 messages
        # between PUBLISH and PUBCOMP (below the broker's Receive Maximum of 1024).
        pub = Publisher(broker.port, "q2-pub", level=5, qos=2, expiry=EXPIRY, window=900)
        kill_on(broker, pub, KILL_AFTER)
        sent = pub.publish_all([(topic, p) for p in payloads])
        assert pub.closed.wait(30), "the broker was not killed"
        broker.kill9()
        pub.close()
        received = pub.succeeded()  # PUBREC received: the broker owns these messages
        assert not [r for r in pub.acks.values() if r.is_error]
        completed = set(pub.completed)
        assert KILL_AFTER <= len(received) <= sent < TOTAL, (len(received), sent)

        broker.start()
        # The publisher resumes its session: PUBREL for what got a PUBREC, the rest of
        # what was sent again with DUP set, and what was never sent, for the first time.
        pub = Publisher(broker.port, "q2-pub", level=5, qos=2, clean=False, expiry=EXPIRY)
        assert pub.session_present
        for pid in sorted(received - completed):
            assert pub.pubrel(pid)
        for pid in ids:
            if pid not in received:
                assert pub.publish(topic, payloads[pid - 1], pid, dup=pid <= sent)
        rest = set(ids) - completed
        pub.wait(lambda: pub.completed >= rest)
        pub.close()
        assert not [r for r in pub.acks.values() if r.is_error]

        for client_id, level in subs:
            client = persistent(broker.port, client_id, level, resume=True)
            got = drain(client, lambda g: len(g.counts) >= TOTAL)
            client.disconnect()
            print(f"\nQoS 2, {client_id}: sent {sent} before the kill, PUBREC for "
                  f"{len(received)}, PUBCOMP for {len(completed)}; delivered "
                  f"{sum(got.counts.values())} publishes of {len(got.counts)} messages")
            assert not {payloads[pid - 1] for pid in received} - got.counts.keys()
            assert got.counts.keys() == set(payloads)
            assert got.duplicates() == 0, [p for p, n in got.counts.items() if n > 1][:10]
            order = first_arrival_order(got)
            # Resent messages may come after later ones; those acknowledged before the
            # kill keep their order.
            before = [p for p in order if int(p[3:]) + 1 in received]
            assert before == sorted(before)


def test_retained_messages_survive_kill9() -> None:
    count = 300
    with BrokerProcess() as broker:
        pub = Publisher(broker.port, "ret-pub", level=5, qos=1)
        items = [(f"k9/ret/{i}", b"retained-%d" % i) for i in range(count)]
        pub.publish_all(items, retain=True)
        # Then clear every 30th again (an empty retained payload deletes).
        cleared = [(f"k9/ret/{i}", b"") for i in range(0, count, 30)]
        pub.publish_all(cleared, first_id=count + 1, retain=True)
        pub.wait(lambda: len(pub.acks) == count + len(cleared))
        assert not [r for r in pub.acks.values() if r.is_error]
        broker.kill9()
        pub.close()

        broker.start()
        expected = {topic: payload for topic, payload in items}
        for topic, _ in cleared:
            del expected[topic]
        client, _ = connect(broker.port, "ret-sub", 5)
        client.subscribe("k9/ret/#", 1)
        got = drain(client, lambda g: len(g.packets) >= len(expected))
        client.disconnect()
        print(f"\nretained: {count} set, {len(cleared)} cleared, "
              f"{len(got.packets)} delivered after kill -9")
        assert {p.topic: p.payload for p in got.packets} == expected
        assert len(got.packets) == len(expected)
        assert all(p.retain for p in got.packets)


def test_unacknowledged_deliveries_are_resent_with_dup_after_kill9() -> None:
    """Subscribers online when the broker dies, holding PUBLISHes they did not
    acknowledge: after the restart they get them again, DUP set, same packet ids."""
    topic = "k9/online"
    count = 20
    with BrokerProcess() as broker:
        subs: dict[int, RawClient] = {}
        for level in LEVELS:
            subs[level] = persistent(broker.port, f"online-{level}", level)
            assert subs[level].subscribe(topic, 1).reason_codes == [ReasonCode.GRANTED_QOS_1]
        pub = Publisher(broker.port, "online-pub", level=5, qos=1)
        pub.publish_all([(topic, b"unacked-%d" % i) for i in range(count)])
        pub.wait(lambda: len(pub.acks) == count)
        assert not [r for r in pub.acks.values() if r.is_error]
        first: dict[int, list[Publish]] = {}
        for level, client in subs.items():
            first[level] = [client.expect(Publish) for _ in range(count)]
            assert not any(p.dup for p in first[level])
        broker.kill9()
        pub.close()
        for client in subs.values():
            client.close()

        broker.start()
        for level in LEVELS:
            client = persistent(broker.port, f"online-{level}", level, resume=True)
            again = [client.expect(Publish) for _ in range(count)]
            assert [(p.payload, p.packet_id, p.qos) for p in again] == [
                (p.payload, p.packet_id, p.qos) for p in first[level]]
            assert all(p.dup for p in again), [p for p in again if not p.dup]
            for p in again:
                client.send(Puback(p.packet_id))
            client.expect_nothing(0.3)
            client.disconnect()
            # Acknowledged now: nothing is sent a third time.
            client = persistent(broker.port, f"online-{level}", level, resume=True)
            client.expect_nothing(0.3)
            client.disconnect()


def test_qos2_packet_ids_completed_before_kill9_are_free_afterwards() -> None:
    """A PUBCOMP tells the publisher the packet id is free. If the broker forgot that
    after a crash, a new message reusing the id would be taken for a resend of the old
    one: acknowledged (PUBREC, PUBCOMP) and silently dropped."""
    topic = "k9/reuse"
    count = 20
    with BrokerProcess() as broker:
        subs = offline_subscribers(broker.port, "reuse", topic, 2)
        pub = persistent(broker.port, "reuse-pub", 5)
        for pid in range(1, count + 1):
            pub.publish(topic, b"before-%d" % pid, qos=2, packet_id=pid)
            assert pub.expect(Pubrec).reason_code == ReasonCode.SUCCESS
            pub.send(Pubrel(pid))
            assert pub.expect(Pubcomp).reason_code == ReasonCode.SUCCESS
        broker.kill9()
        pub.close()

        broker.start()
        pub = persistent(broker.port, "reuse-pub", 5, resume=True)
        for pid in range(1, count + 1):
            pub.publish(topic, b"after-%d" % pid, qos=2, packet_id=pid)
            assert pub.expect(Pubrec).reason_code == ReasonCode.SUCCESS
            pub.send(Pubrel(pid))
            assert pub.expect(Pubcomp).reason_code == ReasonCode.SUCCESS
        pub.disconnect()
        expected = {b"%s-%d" % (w, i) for w in (b"before", b"after") for i in range(1, count + 1)}
        for client_id, level in subs:
            client = persistent(broker.port, client_id, level, resume=True)
            got = drain(client, lambda g: g.counts.keys() >= expected)
            client.disconnect()
            assert not expected - got.counts.keys(), sorted(expected - got.counts.keys())
            assert got.duplicates() == 0


def test_completed_qos2_deliveries_are_not_published_again_after_kill9() -> None:
    """Once the broker has sent PUBREL it must never send that PUBLISH again (4.3.3):
    the subscriber, having answered PUBREL with PUBCOMP, would take it for a new
    message. So the PUBREC it got must be on disk before PUBREL goes out."""
    topic = "k9/outq2"
    count = 20
    with BrokerProcess() as broker:
        sub = persistent(broker.port, "outq2-sub", 5)
        assert sub.subscribe(topic, 2).reason_codes == [ReasonCode.GRANTED_QOS_2]
        pub = Publisher(broker.port, "outq2-pub", level=5, qos=2)
        pub.publish_all([(topic, b"once-%d" % i) for i in range(count)])
        pub.wait(lambda: len(pub.completed) == count)
        got = drain(sub, lambda g: len(g.counts) >= count and len(g.packets) >= count,
                    quiet=0.3)  # PUBREC, PUBREL, PUBCOMP for each
        assert len(got.counts) == count and got.duplicates() == 0
        broker.kill9()
        pub.close()
        sub.close()

        broker.start()
        sub = persistent(broker.port, "outq2-sub", 5, resume=True)
        again = drain(sub, lambda g: True, quiet=0.5)
        sub.disconnect()
        assert not again.packets, [p.payload for p in again.packets]


def test_session_and_delayed_will_of_an_idle_broker_survive_kill9() -> None:
    """Nothing else happening: the CONNACK of a persistent session follows the commit of
    its record, and a connection's end writes its delayed will and offline time at once,
    not whenever the next acknowledgement needs a commit."""
    with BrokerProcess() as broker:
        quiet, present = connect(broker.port, "idle-session", 5, expiry=EXPIRY)
        assert not present
        quiet.disconnect()
        c = RawClient(broker.port, 5)
        c.connect("idle-will", properties=Properties(session_expiry_interval=EXPIRY),
                  will=Will("idle/will", b"bye", 1, True, Properties(will_delay_interval=3)))
        c.close()  # no DISCONNECT: the will is due in 3 s
        # With no other traffic, the will reaches the disk by itself (before the fix
        # it waited for some later commit); kill -9 once it is there.
        deadline = time.monotonic() + 5
        while not stored_will(broker, "idle-will"):
            assert time.monotonic() < deadline, "the delayed will was never committed"
            time.sleep(0.05)
        broker.kill9()
        broker.start()
        watcher, _ = connect(broker.port, "idle-watch", 5)
        watcher.subscribe("idle/#", 1)
        msg = watcher.expect(Publish, timeout=8)
        assert (msg.topic, msg.payload) == ("idle/will", b"bye")  # type: ignore[attr-defined]
        _, present = connect(broker.port, "idle-session", 5, clean=False, expiry=EXPIRY)
        assert present


def stored_will(broker: BrokerProcess, client_id: str) -> bool:
    """Whether the broker's database holds a will for ``client_id`` (read-only)."""
    path = Path(broker.data_dir) / "roost.db"
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT will_topic FROM sessions WHERE client_id = ?",
                         (client_id,)).fetchone()
    finally:
        db.close()
    return row is not None and row[0] is not None
