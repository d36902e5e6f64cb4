"""``roost bench`` against a real Roost broker process.

Short runs at low rates: the checks are on what arrived (nothing lost, latencies
present and ordered, files written), never on how fast, so they do not depend on the
machine's speed.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from roost.cli import main
from tests.bench.proxies import front, make_certs
from tests.broker import ROOT, BrokerProcess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(broker_port: int, tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "result.json"
    rc = main(["bench", *argv, "--port", str(broker_port), "--json", str(out)])
    result = json.loads(out.read_text())
    assert rc == 0, result
    return result


def assert_sane_latency(result: dict) -> None:
    lat = result["latency_ms"]
    assert lat["count"] == result["messages"]["received"]
    assert 0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["max"] < 10_000  # milliseconds: a wrong clock would be far off


def assert_no_loss(result: dict, per_message: int = 1) -> None:
    m = result["messages"]
    assert m["sent"] > 0
    assert m["expected"] == m["sent"] * per_message
    assert m["received"] == m["delivered"] == m["expected"]
    assert m["lost"] == 0 and m["duplicates"] == 0 and m["foreign"] == 0


@pytest.mark.parametrize("qos", [0, 1])
def test_pairs(broker: BrokerProcess, tmp_path: Path, qos: int) -> None:
    plot = tmp_path / "pairs.png"
    r = bench(broker.port, tmp_path, "pairs", "-c", "3", "--msg-rate", "20", "-q", str(qos),
              "-s", "64", "-d", "2", "--prefix", f"pairs{qos}", "--plot", str(plot),
              "--quiet")
    assert r["scenario"] == "pairs"
    assert r["connections"]["connected"] == 6 and r["connections"]["failed"] == 0
    assert r["messages"]["publishers"] == r["messages"]["subscribers"] == 3
    assert_no_loss(r)
    assert r["messages"]["sent"] == r["messages"]["received"]
    if qos:
        assert r["messages"]["acked"] == r["messages"]["sent"]
    assert_sane_latency(r)
    assert r["timeline"] and all("received" in row for row in r["timeline"])
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_fanout_mqtt5(broker: BrokerProcess, tmp_path: Path) -> None:
    r = bench(broker.port, tmp_path, "fanout", "-c", "4", "--msg-rate", "20", "-q", "1",
              "-V", "5", "-d", "2", "--prefix", "fanout", "--quiet")
    assert r["connections"]["connected"] == 5
    assert r["messages"]["publishers"] == 1 and r["messages"]["subscribers"] == 4
    assert_no_loss(r, per_message=4)
    assert_sane_latency(r)


def test_fanin_qos2(broker: BrokerProcess, tmp_path: Path) -> None:
    r = bench(broker.port, tmp_path, "fanin", "-c", "3", "--msg-rate", "20", "-q", "2",
              "-d", "1", "--prefix", "fanin", "--quiet")
    assert_no_loss(r)
    assert r["messages"]["acked"] == r["messages"]["sent"]


def test_conn_spreads_over_workers_and_source_addresses(broker: BrokerProcess,
                                                          tmp_path: Path) -> None:
    plot = tmp_path / "conn.png"
    r = bench(broker.port, tmp_path, "conn", "-c", "200", "--rate", "0",
              "--conns-per-worker", "100", "--conns-per-source", "50", "-d", "1",
              "--prefix", "conn", "--plot", str(plot), "--quiet")
    c = r["connections"]
    assert c["connected"] == 200 and c["failed"] == 0 and c["disconnected"] == 0
    assert r["workers"] == 2
    assert r["sources"] == {f"127.0.0.{i}": 50 for i in range(1, 5)}
    assert c["latency_ms"]["count"] == 200
    assert c["peak_open"] == 200
    assert max(row["connected"] for row in r["timeline"]) == 200
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_websocket(broker: BrokerProcess, tmp_path: Path) -> None:
    with front("ws", broker.port) as port:
        r = bench(port, tmp_path, "pairs", "--ws", "-c", "2", "--msg-rate", "20", "-q", "1",
                  "-d", "1", "--prefix", "ws", "--quiet")
    assert r["options"]["ws"] is True
    assert_no_loss(r)


def test_tls(broker: BrokerProcess, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    ca, cert, key = make_certs(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    with front("tls", broker.port, ctx) as port:
        r = bench(port, tmp_path, "pairs", "--tls", "--cafile", str(ca), "-c", "2",
                  "--msg-rate", "20", "-d", "1", "--prefix", "tls", "--quiet")
    assert_no_loss(r)


def test_refused_connections_are_counted(tmp_path: Path) -> None:
    from tests.broker import free_port

    out = tmp_path / "r.json"
    rc = main(["bench", "conn", "-c", "3", "-d", "1", "--port", str(free_port()), "--quiet",
               "--json", str(out)])
    r = json.loads(out.read_text())
    assert rc == 1
    assert r["connections"]["failed"] == 3
    assert r["connections"]["failure_reasons"] == {"ECONNREFUSED": 3}


def test_command_line_progress_and_summary(broker: BrokerProcess) -> None:
    """As a user runs it: progress lines on stderr (not a terminal here), summary on stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "roost.cli", "bench", "pairs", "-c", "1", "--msg-rate", "10",
         "-d", "2", "--port", str(broker.port), "--prefix", "cli"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr
    assert re.search(r"^\[ +1s\] connected [0-2]/2 ", out.stderr, re.MULTILINE), out.stderr
    assert "connected 2/2" in out.stderr
    assert "roost bench pairs:" in out.stdout and "latency ms" in out.stdout


def test_bad_option_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "pub", "--size", "4"]) == 2
    assert "--size" in capsys.readouterr().err
