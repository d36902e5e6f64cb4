"""Restarts: session expiry keeps counting in wall-clock time while the broker is down,
a graceful stop keeps everything, and a damaged database stops the broker at start
without being touched."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from roost.mqtt import Puback, Pubcomp, Publish, Pubrec, Pubrel, ReasonCode
from tests.broker import ROOT, BrokerProcess, free_port
from tests.faults import BIG_QUEUES, Publisher, connect, drain


def test_session_expiry_counts_wall_clock_time_across_a_restart() -> None:
    with BrokerProcess() as broker:
        port = broker.port
        for client_id, expiry in (("exp-3", 3), ("exp-7", 7), ("exp-60", 60)):
            client, _ = connect(port, client_id, 5, expiry=expiry)
            client.subscribe(f"rs/{client_id}", 1)
            client.disconnect()
        offline = time.monotonic()
        # 1.5 s offline with the broker up, then 2.5 s with it down: neither alone
        # reaches 3 s, together they do.
        time.sleep(1.5)
        broker.stop()
        time.sleep(2.5)
        broker.start()

        short, present = connect(port, "exp-3", 5, clean=False, expiry=3)
        assert not present, "a 3 s session survived 4 s offline"
        long, present = connect(port, "exp-60", 5, clean=False, expiry=60)
        assert present
        pub, _ = connect(port, "exp-pub", 5)
        pub.publish("rs/exp-60", b"still subscribed", qos=1, packet_id=1)
        assert pub.expect(Puback).reason_code == ReasonCode.SUCCESS
        got = long.expect(Publish)
        assert got.payload == b"still subscribed"
        long.send(Puback(got.packet_id))
        pub.publish("rs/exp-3", b"nobody", qos=1, packet_id=2)
        # The expired session's subscription is gone with it.
        assert pub.expect(Puback).reason_code == ReasonCode.NO_MATCHING_SUBSCRIBERS
        short.expect_nothing(0.2)

        # The 7 s session's remaining time also counts from when it went offline, not
        # from the restart.
        time.sleep(max(0.0, offline + 8.0 - time.monotonic()))
        _, present = connect(port, "exp-7", 5, clean=False, expiry=7)
        assert not present, "the restored session got its full expiry again"


def test_graceful_restart_keeps_sessions_retained_and_qos2_state() -> None:
    with BrokerProcess(BIG_QUEUES) as broker:
        port = broker.port
        # Offline persistent subscribers, 3.1.1 and 5.0.
        for client_id, level in (("gr-311", 4), ("gr-5", 5)):
            client, _ = connect(port, client_id, level, clean=level == 5, expiry=300)
            client.subscribe("gr/q/#", 1)
            client.disconnect()
        # An online one that will not have acknowledged what it got.
        online, _ = connect(port, "gr-online", 5, expiry=300)
        online.subscribe("gr/q/#", 2)

        pub = Publisher(port, "gr-pub", level=5, qos=1)
        queued = [(f"gr/q/{i % 3}", b"queued-%d" % i) for i in range(50)]
        pub.publish_all(queued)
        retained = [(f"gr/ret/{i}", b"retained-%d" % i) for i in range(5)]
        pub.publish_all(retained, first_id=100, retain=True)
        pub.wait(lambda: len(pub.acks) == 55)
        assert not [r for r in pub.acks.values() if r.is_error]
        pub.close()
        unacked = [online.expect(Publish) for _ in range(5)]

        # A QoS 2 publisher gets its PUBREC, then the broker restarts before PUBREL.
        q2, _ = connect(port, "gr-q2", 5, expiry=300)
        q2.publish("gr/q/2", b"exactly-once", qos=2, packet_id=42)
        assert q2.expect(Pubrec).reason_code == ReasonCode.SUCCESS
        q2.close()
        online.close()

        broker.stop()
        assert broker.returncode == 0, broker.log()
        assert "stopped" in broker.log()
        broker.start()

        q2, present = connect(port, "gr-q2", 5, clean=False, expiry=300)
        assert present
        q2.send(Pubrel(42))
        assert q2.expect(Pubcomp).reason_code == ReasonCode.SUCCESS
        q2.disconnect()

        expected = {payload for _, payload in queued} | {b"exactly-once"}
        for client_id, level in (("gr-311", 4), ("gr-5", 5)):
            client, present = connect(port, client_id, level, clean=False, expiry=300)
            assert present, client_id
            got = drain(client, lambda g: g.counts.keys() >= expected)
            client.disconnect()
            assert got.counts.keys() == expected, client_id
            assert got.duplicates() == 0
        online, present = connect(port, "gr-online", 5, clean=False, expiry=300)
        assert present
        again = [online.expect(Publish) for _ in range(5)]
        assert [(p.payload, p.packet_id) for p in again] == [
            (p.payload, p.packet_id) for p in unacked]
        assert all(p.dup for p in again)
        online.disconnect()

        fresh, _ = connect(port, "gr-fresh", 5)
        fresh.subscribe("gr/ret/#", 1)
        got = drain(fresh, lambda g: len(g.packets) >= len(retained))
        assert sorted((p.topic, p.payload) for p in got.packets) == sorted(retained)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "roost.cli", "serve", "--port", str(port), "--http", "",
         "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "something listens on the port"
    return result


def test_corrupt_database_stops_the_broker_and_is_left_untouched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "roost.db"
    garbage = random.Random(3).randbytes(100_000)
    db.write_bytes(garbage)
    result = serve(data)
    assert result.returncode != 0
    assert str(db) in result.stderr, result.stderr
    assert db.read_bytes() == garbage


def test_damaged_roost_database_stops_the_broker_and_is_left_untouched() -> None:
    """A database damaged after a kill -9: neither it nor the write-ahead log the crash
    left behind (which holds the latest data) may be changed by the failed start."""
    broker = BrokerProcess()
    with broker:
        pub = Publisher(broker.port, "dmg-pub", level=5, qos=1)
        pub.publish_all([(f"dmg/{i}", b"x" * 1000) for i in range(200)], retain=True)
        pub.wait(lambda: len(pub.acks) == 200)
        pub.close()
        broker.restart()  # graceful: checkpointed into the main file
        pub = Publisher(broker.port, "dmg-pub", level=5, qos=1)
        pub.publish_all([(f"dmg/new/{i}", b"y" * 1000) for i in range(5)], retain=True)
        pub.wait(lambda: len(pub.acks) == 5)
        pub.close()
        broker.kill9()
    db = broker.data_dir / "roost.db"
    wal = broker.data_dir / "roost.db-wal"
    assert wal.stat().st_size > 0
    content = bytearray(db.read_bytes())
    assert len(content) > 40 * 4096
    content[30 * 4096:32 * 4096] = random.Random(4).randbytes(2 * 4096)
    db.write_bytes(bytes(content))
    before = digest(db), digest(wal)
    result = serve(broker.data_dir)
    print("\n" + result.stderr.strip().splitlines()[-1])
    assert result.returncode != 0
    assert str(db) in result.stderr, result.stderr
    assert wal.exists() and (digest(db), digest(wal)) == before
