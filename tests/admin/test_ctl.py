"""``roost ctl`` against a real broker's HTTP endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from roost.cli import main
from roost.ctl import table
from roost.mqtt import ReasonCode
from roost.mqtt.packets import Disconnect
from tests.broker import ROOT, BrokerProcess, RawClient, free_port


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(http_port=0) as proc:
        yield proc


def ctl(broker: BrokerProcess, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["ctl", "--http", f"127.0.0.1:{broker.http_port}", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def online(broker: BrokerProcess, client_id: str, level: int) -> RawClient:
    c = RawClient(broker.port, level)
    assert c.connect(client_id).reason_code == ReasonCode.SUCCESS
    return c


def test_table_alignment():
    text = table([{"a": "x", "b": None}, {"a": "longer", "b": 2}], [("a", "A"), ("b", "B")])
    assert text.splitlines() == ["A       B", "x       -", "longer  2"]


def test_clients_and_subscriptions(broker, capsys):
    c = online(broker, "ctl-lister", 5)
    c.subscribe("ctl/+/temp", qos=1)
    try:
        lines = ctl(broker, capsys, "clients").splitlines()
        assert lines[0].split()[:3] == ["CLIENT", "ID", "PEER"]
        row = next(line for line in lines if line.startswith("ctl-lister "))
        assert " 5 " in row and "default" in row and row.endswith(" 1")
        rows = json.loads(ctl(broker, capsys, "--json", "clients"))
        assert any(r["client_id"] == "ctl-lister" and r["subscriptions"] == 1 for r in rows)

        subs = ctl(broker, capsys, "subscriptions").splitlines()
        assert subs[0].split() == ["CLIENT", "ID", "FILTER", "QOS", "ONLINE"]
        assert any(line.split() == ["ctl-lister", "ctl/+/temp", "1", "True"]
                   for line in subs)
    finally:
        c.disconnect()


def test_disconnect_sends_administrative_action_to_mqtt5(broker, capsys):
    c = online(broker, "ctl-kick", 5)
    assert ctl(broker, capsys, "disconnect", "ctl-kick").strip() == "disconnected ctl-kick"
    assert c.expect_closed() == [Disconnect(ReasonCode.ADMINISTRATIVE_ACTION)]
    assert main(["ctl", "--http", f"127.0.0.1:{broker.http_port}",
                 "disconnect", "ctl-kick"]) == 1
    assert "not connected" in capsys.readouterr().err


def test_entry_point_and_unreachable_endpoint(broker):
    run = subprocess.run([sys.executable, "-m", "roost.cli", "ctl", "--http",
                          f"127.0.0.1:{broker.http_port}", "--json", "subscriptions"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert isinstance(json.loads(run.stdout), list)
    dead = subprocess.run([sys.executable, "-m", "roost.cli", "ctl", "--http",
                           f"127.0.0.1:{free_port()}", "clients"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert dead.returncode == 1 and "cannot reach" in dead.stderr
