"""The roost command, run as a real process."""

import subprocess
import sys
from pathlib import Path

from roost import __version__
from roost.app import build_engine
from roost.config import Config, ListenerConfig
from roost.engine.hooks import ConnectEvent, Decision, run_chain
from roost.mqtt import Connack, ReasonCode
from tests.broker import BrokerProcess, RawClient, free_port

ROOT = Path(__file__).resolve().parent.parent


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roost.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_version():
    out = roost("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"roost {__version__}"


def test_check_config_ok():
    out = roost("check-config", "docs/roost.example.toml")
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_check_config_bad(tmp_path):
    bad = tmp_path / "roost.toml"
    bad.write_text("[mqtt]\nmax_packet_size = -1\n")
    out = roost("check-config", str(bad))
    assert out.returncode == 2
    assert f"{bad}: mqtt.max_packet_size: expected an integer" in out.stderr


def test_serve_refuses_bad_config_at_start(tmp_path):
    bad = tmp_path / "roost.toml"
    bad.write_text("[[listeners]]\nbind = 12\n")
    out = roost("serve", "--config", str(bad), "--port", str(free_port()), "--http", "")
    assert out.returncode == 2
    assert f"{bad}: listeners[0].bind: expected a string, got 12" in out.stderr


def test_serve_with_bind_and_port_overrides():
    with BrokerProcess() as broker:  # passes --port and --data-dir
        c = RawClient(broker.port)
        assert c.connect("cli-1").reason_code == ReasonCode.SUCCESS
        c.close()
        assert f"listening on 127.0.0.1:{broker.port}" in broker.log()
        assert (Path(broker.dir) / "data").is_dir()


def test_port_in_use_is_a_clear_error():
    with BrokerProcess() as broker:
        out = roost("serve", "--port", str(broker.port), "--http", "",
                    "--data-dir", broker.dir + "/d2")
        assert out.returncode == 1
        assert "cannot start" in out.stderr


def test_anonymous_listener_policy_defaults_to_loopback_only():
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        config = Config(listeners=(ListenerConfig("local", bind="127.0.0.1"),
                                   ListenerConfig("lan", bind="0.0.0.0", port=1884),
                                   ListenerConfig("open", bind="0.0.0.0", port=1885,
                                                  allow_anonymous=True)))
        engine = build_engine(config, loop)
    finally:
        loop.close()

    def decide(listener: str) -> Decision:
        return run_chain(engine.hooks.authenticators,
                         ConnectEvent("c", None, None, "1.2.3.4:5", listener, 4))

    assert decide("local") is Decision.ALLOW
    assert decide("lan") is Decision.DENY
    assert decide("open") is Decision.ALLOW


def test_anonymous_refused_on_listener_that_forbids_it():
    from roost.mqtt import Connect, encode

    with BrokerProcess("[[listeners]]\nallow_anonymous = false\n") as broker:
        c = RawClient(broker.port, 4)
        c.send(Connect("anon-4", 4))
        assert c.sock.recv(16) == bytes.fromhex("20020005")  # 3.1.1: not authorized
        c.expect_closed()
        c.close()
        c = RawClient(broker.port, 5)
        c.send_raw(encode(Connect("anon-5", 5), 5))
        ack = c.expect(Connack)
        assert ack.reason_code == ReasonCode.NOT_AUTHORIZED
        c.expect_closed()
        c.close()


def test_cluster_option_sets_or_replaces_the_urls():
    from roost.cli import _apply_overrides, _parser

    def serve(*args: str, config: Config | None = None) -> Config:
        return _apply_overrides(config or Config(), _parser().parse_args(["serve", *args]))

    assert serve().cluster is None
    cluster = serve("--cluster", "nats://10.0.0.1:4222, nats://10.0.0.2:4222").cluster
    assert cluster is not None
    assert cluster.urls == ("nats://10.0.0.1:4222", "nats://10.0.0.2:4222")
    assert cluster.name == "roost"
    from roost.config import from_dict
    configured = from_dict({"cluster": {"urls": ["nats://a:4222"], "name": "prod"}})
    cluster = serve("--cluster", "nats://b:4222", config=configured).cluster
    assert cluster is not None and (cluster.urls, cluster.name) == (("nats://b:4222",), "prod")


def test_serve_refuses_a_bad_cluster_option():
    out = roost("serve", "--cluster", "http://10.0.0.1:4222", "--port", str(free_port()),
                "--http", "")
    assert out.returncode == 2
    assert ('--cluster: expected NATS URLs such as "nats://10.0.0.1:4222,nats://10.0.0.2:4222",'
            ' got "http://10.0.0.1:4222"') in out.stderr
