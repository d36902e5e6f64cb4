"""Log lines: JSON on request, one per connect/disconnect, never payloads or passwords."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roost.auth.passwords import hash_password
from roost.mqtt import ReasonCode
from tests.broker import BrokerProcess, RawClient, free_port

PASSWORD = "pw-Zebra-7781-secret"
PAYLOAD = b"payload-Quokka-4410-private"


def session(fmt: str, tmp_path: Path) -> str:
    """Run a broker (log level debug), one session with a password and a payload, and a
    refused login; return the log."""
    pwfile = tmp_path / "passwd"
    pwfile.write_text(f"dev:{hash_password(PASSWORD, iterations=1000).encode()}\n")
    config = (f'[log]\nlevel = "debug"\nformat = "{fmt}"\n'
              f'[auth]\npassword_file = "{pwfile}"\n'
              f'[http]\nbind = "127.0.0.1:{free_port()}"\n'
              '[[listeners]]\nallow_anonymous = false\n')
    broker = BrokerProcess(config)
    try:
        broker.start()
        c = RawClient(broker.port, level=5)
        assert c.connect("dev-1", username="dev",
                         password=PASSWORD.encode()).reason_code == ReasonCode.SUCCESS
        c.subscribe("t/#", 1)
        c.publish("t/1", PAYLOAD, qos=1)
        c.recv()
        c.recv()
        c.disconnect()
        bad = RawClient(broker.port, level=4)
        ack = bad.connect("dev-2", username="dev", password=(PASSWORD + "x").encode())
        assert ack.reason_code != ReasonCode.SUCCESS
        bad.close()
        broker.wait_log("refused dev-2")
    finally:
        broker.stop()
    return broker.log()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_payloads_or_passwords_in_the_log(fmt: str, tmp_path: Path) -> None:
    log = session(fmt, tmp_path)
    assert "connected dev-1" in log
    assert PASSWORD not in log
    assert PAYLOAD.decode() not in log
    assert PAYLOAD.hex() not in log


def test_json_lines_parse_and_carry_the_fields(tmp_path: Path) -> None:
    log = session("json", tmp_path)
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    for r in records:
        assert {"time", "level", "logger", "msg"} <= r.keys()
    connect = next(r for r in records if r.get("event") == "connect")
    assert connect["client_id"] == "dev-1"
    assert connect["peer"].startswith("127.0.0.1:")
    assert connect["protocol_level"] == 5
    assert connect["username"] == "dev"
    disconnect = next(r for r in records if r.get("event") == "disconnect")
    assert disconnect["client_id"] == "dev-1"
    assert disconnect["protocol_level"] == 5
    assert disconnect["peer"] == connect["peer"]
    assert "client disconnected" in disconnect["reason"]
    refused = next(r for r in records if r.get("event") == "connect_refused")
    assert refused["client_id"] == "dev-2" and refused["protocol_level"] == 4
    assert refused["reason"] == "authentication failed"


def test_log_format_option_of_roost_serve(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.broker import ROOT

    cfg = tmp_path / "roost.toml"
    cfg.write_text(f'[http]\nbind = "127.0.0.1:{free_port()}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost.cli", "serve", "--port", str(free_port()),
         "--log-format", "json", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert json.loads(first)["level"] == "info"
    finally:
        proc.terminate()
        proc.wait(10)
