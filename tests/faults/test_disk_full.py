"""A full disk under the data directory: the broker refuses durable work instead of
acknowledging what it could not store, keeps QoS 0 flowing, and recovers by itself
once there is room again.

The data directory is on a tiny tmpfs; an offline persistent subscriber makes every
QoS 1/2 message a write. The disk is filled three times, so that the first refusal
(the commit that fails, not the refusals up front while the store is known to be
unhealthy) is seen by a 5.0 QoS 1 publisher, a 5.0 QoS 2 publisher and a 3.1.1 one.
"""

from __future__ import annotations

import time
from pathlib import Path

from roost.mqtt import Puback, Pubcomp, Publish, Pubrec, Pubrel, ReasonCode
from tests.broker import BrokerProcess, Closed, RawClient
from tests.faults import BIG_QUEUES, connect, drain, resize_tmpfs, tmpfs

TOPIC = "full/q"
PAYLOAD = 20 * 1024
EXPIRY = 600


def payload(tag: str, n: int) -> bytes:
    return f"{tag}-{n:06d}-".encode().ljust(PAYLOAD, b"p")


def publish_qos1(client: RawClient, data: bytes, packet_id: int) -> ReasonCode | None:
    """A QoS 1 PUBLISH; its PUBACK's reason code, or None if the broker disconnected."""
    client.publish(TOPIC, data, qos=1, packet_id=packet_id)
    try:
        ack = client.expect(Puback, timeout=10)
    except Closed:
        return None
    assert ack.packet_id == packet_id
    return ack.reason_code


def publish_qos2(client: RawClient, data: bytes, packet_id: int) -> ReasonCode:
    """A complete QoS 2 flow; the PUBREC's reason code (an error ends the flow)."""
    client.publish(TOPIC, data, qos=2, packet_id=packet_id)
    rec = client.expect(Pubrec, timeout=10)
    assert rec.packet_id == packet_id
    if rec.reason_code.is_error:
        return rec.reason_code
    client.send(Pubrel(packet_id))
    comp = client.expect(Pubcomp, timeout=10)
    assert comp.reason_code == ReasonCode.SUCCESS, comp
    return rec.reason_code


def qos0_flows(sender: RawClient, receiver: RawClient, tag: str) -> None:
    sent = [f"{tag}-{i}".encode() for i in range(5)]
    for data in sent:
        sender.publish("full/q0", data)
    got = [receiver.expect(Publish, timeout=5) for _ in sent]
    assert [p.payload for p in got] == sent


class Ledger:
    """Which payloads the broker acknowledged and which it refused."""

    def __init__(self) -> None:
        self.succeeded: list[bytes] = []
        self.refused: list[bytes] = []

    def note(self, data: bytes, ok: bool) -> None:
        (self.succeeded if ok else self.refused).append(data)


def accepted_again(pub: RawClient, ledger: Ledger, start_id: int, freed: float) -> float:
    """Publish QoS 1 until one is accepted; seconds since ``freed``."""
    for n in range(start_id, start_id + 100):
        data = payload("retry", n)
        reason = publish_qos1(pub, data, n)
        assert reason is not None
        ledger.note(data, not reason.is_error)
        if not reason.is_error:
            return time.monotonic() - freed
        assert time.monotonic() - freed < 5, "still refusing 5 s after space was freed"
    raise AssertionError("never accepted again")


def test_full_disk_refuses_durable_work_then_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "600k") as disk:
        broker = BrokerProcess(BIG_QUEUES, data_dir=disk / "data")
        try:
            broker.start()
            run(broker, disk)
        finally:
            broker.kill9()


def run(broker: BrokerProcess, disk: Path) -> None:
    port = broker.port
    sub, _ = connect(port, "full-sub", 5, expiry=EXPIRY)
    assert sub.subscribe(TOPIC, 2).reason_codes == [ReasonCode.GRANTED_QOS_2]
    sub.disconnect()  # offline: every QoS 1/2 message is queued in the store
    q0_receiver, _ = connect(port, "full-q0-sub", 5)
    q0_receiver.subscribe("full/q0", 0)
    q0_sender, _ = connect(port, "full-q0-pub", 5)
    pub, _ = connect(port, "full-pub", 5)
    ledger = Ledger()
    numbers: list[str] = []

    # 1. A 5.0 QoS 1 publisher fills the disk: the commit fails, PUBACK says 0x83.
    n = 0
    while True:
        n += 1
        assert n <= 100, "600 kB should be full long before 100 x 20 kB"
        data = payload("q1", n)
        reason = publish_qos1(pub, data, n)
        assert reason is not None
        ledger.note(data, not reason.is_error)
        if reason.is_error:
            break
    assert reason == ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
    numbers.append(f"full after {n - 1} x 20 kB")

    # While full: more QoS 1 is refused up front, small messages too ...
    for _ in range(3):
        n += 1
        data = payload("q1", n)
        reason = publish_qos1(pub, data, n)
        assert reason is not None and reason.is_error, f"{n} acknowledged on a full disk"
        ledger.note(data, False)
    small, _ = connect(port, "full-pub-small", 5)
    small.publish("full/other", b"small", qos=1, packet_id=1)
    assert small.expect(Puback).reason_code.is_error
    small.disconnect()
    # ... a 3.1.1 publisher, which cannot be told no, is disconnected instead ...
    old, _ = connect(port, "full-pub-311", 4)
    old.publish(TOPIC, b"old", qos=1, packet_id=7)
    before_close = old.expect_closed(timeout=5)
    assert not [p for p in before_close if isinstance(p, Puback)], before_close
    old.close()
    ledger.note(b"old", False)
    # ... and QoS 0 between other clients keeps flowing.
    qos0_flows(q0_sender, q0_receiver, "full")

    resize_tmpfs(disk, "1200k")
    took = accepted_again(pub, ledger, n + 1, time.monotonic())
    numbers.append(f"accepted again {took:.2f} s after freeing")
    n += 100

    # 2. A 5.0 QoS 2 publisher fills it again, always with packet id 1: PUBREC 0x83.
    q2, _ = connect(port, "full-pub-q2", 5)
    for i in range(1, 101):
        data = payload("q2", i)
        reason = publish_qos2(q2, data, 1)
        ledger.note(data, not reason.is_error)
        if reason.is_error:
            break
    assert reason == ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
    numbers.append(f"QoS 2 refused after {i - 1} more")
    resize_tmpfs(disk, "1800k")
    took = accepted_again(pub, ledger, n + 1, time.monotonic())
    n += 100
    # The refused PUBREC ended that flow (4.3.3): packet id 1 is free for a new message,
    # which must be routed, not taken for a resend of the refused one.
    data = payload("q2-reused-id", 1)
    assert publish_qos2(q2, data, 1) == ReasonCode.SUCCESS
    ledger.note(data, True)
    q2.disconnect()

    # 3. A 3.1.1 QoS 1 publisher fills it a third time: disconnected, never acknowledged.
    old, _ = connect(port, "full-pub-311", 4)
    for i in range(1, 101):
        data = payload("v311", i)
        reason = publish_qos1(old, data, i)
        if reason is None:
            ledger.note(data, False)
            break
        assert reason == ReasonCode.SUCCESS
        ledger.note(data, True)
    assert reason is None, "the 3.1.1 publisher was never disconnected"
    numbers.append(f"3.1.1 disconnected after {i - 1} more")
    qos0_flows(q0_sender, q0_receiver, "full-again")

    resize_tmpfs(disk, "20m")
    took = accepted_again(pub, ledger, n + 1, time.monotonic())
    n += 100
    for _ in range(5):
        n += 1
        data = payload("q1", n)
        assert publish_qos1(pub, data, n) == ReasonCode.SUCCESS
        ledger.note(data, True)
    old, _ = connect(port, "full-pub-311", 4)
    data = payload("v311", 999)
    assert publish_qos1(old, data, 8) == ReasonCode.SUCCESS
    ledger.note(data, True)
    old.disconnect()
    qos0_flows(q0_sender, q0_receiver, "after")
    for c in (pub, q0_sender, q0_receiver):
        c.close()

    # Everything that got a success survives a kill -9.
    broker.kill9()
    broker.start()
    sub, present = connect(broker.port, "full-sub", 5, clean=False, expiry=EXPIRY)
    assert present
    wanted = set(ledger.succeeded)
    got = drain(sub, lambda g: g.counts.keys() >= wanted)
    sub.disconnect()
    delivered_refused = [p for p in ledger.refused if p in got.counts]
    print(f"\ndisk full: {'; '.join(numbers)}; {len(ledger.succeeded)} acknowledged and "
          f"{len(ledger.refused)} refused; {len(got.counts)} delivered after kill -9, "
          f"{len(delivered_refused)} of them refused ones written by the retry")
    missing = [p[:20] for p in ledger.succeeded if p not in got.counts]
    assert not missing, f"acknowledged but lost: {missing}"
    assert got.duplicates() == 0
    log = broker.log()
    assert "commit failed" in log and "writes succeed again" in log
