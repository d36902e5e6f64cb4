"""Config loading: defaults, the documented example, and errors that name file and key."""

import os
import re
from pathlib import Path

import pytest

from roost.config import Config, ConfigError, from_dict, load

ROOT = Path(__file__).resolve().parent.parent


def test_documented_example_loads_and_equals_defaults():
    example = load(ROOT / "docs" / "roost.example.toml")
    defaults = Config()
    assert example.mqtt == defaults.mqtt
    assert example.listeners == defaults.listeners
    assert example.data_dir == defaults.data_dir


def test_values_are_applied():
    cfg = from_dict({"mqtt": {"max_inflight": 7, "persistent_session_expiry": 3600,
                              "connect_timeout": 2},
                     "listeners": [{"port": 1884}, {"name": "lan", "bind": "0.0.0.0",
                                                    "allow_anonymous": True}]})
    assert cfg.mqtt.max_inflight == 7
    assert cfg.mqtt.persistent_session_expiry == 3600
    assert cfg.mqtt.connect_timeout == 2.0
    assert [(lst.name, lst.port) for lst in cfg.listeners] == [("default", 1884), ("lan", 1883)]
    assert cfg.listeners[1].allow_anonymous is True


def test_never_means_no_expiry():
    assert from_dict({"mqtt": {"persistent_session_expiry": "never"}}).mqtt \
        .persistent_session_expiry is None


@pytest.mark.parametrize("data, message", [
    ({"mqtt": {"max_inflight": "lots"}},
     'f.toml: mqtt.max_inflight: expected an integer from 1 to 65535, got "lots"'),
    ({"mqtt": {"max_inflight": 0}}, "mqtt.max_inflight: expected an integer from 1 to 65535"),
    ({"mqtt": {"maximum_qos": 3}}, "mqtt.maximum_qos: expected an integer from 0 to 2, got 3"),
    ({"mqtt": {"retain_available": "yes"}}, "mqtt.retain_available: expected true or false"),
    ({"mqtt": {"max_infligt": 1}}, "mqtt.max_infligt: unknown key"),
    ({"mqtt": 5}, "mqtt: expected a table, got 5"),
    ({"listeners": [{"port": 70000}]}, "listeners[0].port: expected an integer from 0 to 65535"),
    ({"listeners": [{"type": "udp"}]},
     'listeners[0].type: expected "tcp" or "tls" or "ws" or "wss", got "udp"'),
    ({"listeners": [{"type": "tls"}]}, "listeners[0].certfile: required for a tls listener"),
    ({"listeners": [{"type": "tls", "certfile": "c", "keyfile": "k",
                     "require_certificate": "required"}]},
     'listeners[0].cafile: required when require_certificate is "required"'),
    ({"listeners": [{"proxy_trusted": ["10.0.0.0/33"]}]},
     "listeners[0].proxy_trusted[0]: expected an address or network in CIDR form"),
    ({"listeners": [{"path": "mqtt"}]}, 'listeners[0].path: expected an HTTP path'),
    ({"auth": {"password_file": 3}}, "auth.password_file: expected a string, got 3"),
    ({"auth": {"jwt_algorithms": ["HS256"]}},
     'auth.jwt_algorithms: expected names from ES256, ES384, RS256, RS384, RS512, PS256, '
     'got "HS256"'),
    ({"listeners": [{}, {"name": "default"}]}, "listeners[1].name: expected a name no other"),
    ({"listeners": []}, "listeners: expected one or more [[listeners]] tables"),
    ({"log": {"level": "loud"}}, 'log.level: expected debug or info or warning or error'),
    ({"colour": "blue"}, "colour: unknown key"),
    ({"data_dir": 3}, "data_dir: expected a directory path, got 3"),
])
def test_errors_name_the_file_and_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(data, "f.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("f.toml: ")


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml")


def test_cluster_section_is_absent_by_default_and_filled_when_given():
    assert Config().cluster is None
    assert from_dict({}).cluster is None
    cfg = from_dict({"cluster": {"urls": ["nats://10.0.0.1:4222", "tls://nats.example"],
                                 "name": "prod", "node_id": "node-7",
                                 "monitor_urls": ["http://10.0.0.1:8222"],
                                 "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}})
    assert cfg.cluster is not None
    assert cfg.cluster.urls == ("nats://10.0.0.1:4222", "tls://nats.example")
    assert (cfg.cluster.name, cfg.cluster.node_id) == ("prod", "node-7")
    assert cfg.cluster.monitor_urls == ("http://10.0.0.1:8222",)


def test_cluster_node_id_defaults_to_host_and_pid_as_a_nats_token():
    cluster = from_dict({"cluster": {"urls": ["nats://127.0.0.1:4222"]}}).cluster
    assert cluster is not None and cluster.name == "roost"
    assert re.fullmatch(r"[A-Za-z0-9_-]+-\d+", cluster.node_id)
    assert cluster.node_id.endswith(f"-{os.getpid()}")


@pytest.mark.parametrize("data, message", [
    ({"cluster": {}}, 'cluster.urls: expected one or more NATS URLs such as '
                      '"nats://127.0.0.1:4222", got []'),
    ({"cluster": {"urls": "nats://a:4222"}}, "cluster.urls: expected a list of strings"),
    ({"cluster": {"urls": ["http://a:4222"]}},
     'cluster.urls[0]: expected a URL nats://HOST:PORT or tls://HOST:PORT, got "http://a:4222"'),
    ({"cluster": {"urls": ["nats://a:4222", "nats://:4222"]}}, "cluster.urls[1]: expected"),
    ({"cluster": {"urls": ["nats://a:99999"]}}, "cluster.urls[0]: expected"),
    ({"cluster": {"urls": ["nats://a"], "name": "my.cluster"}},
     "cluster.name: expected a name of letters, digits, '_' and '-', got \"my.cluster\""),
    ({"cluster": {"urls": ["nats://a"], "node_id": "node 1"}}, "cluster.node_id: expected"),
    ({"cluster": {"urls": ["nats://a"], "monitor_urls": ["nats://a:8222"]}},
     "cluster.monitor_urls[0]: expected a URL http://HOST:PORT"),
    ({"cluster": {"urls": ["nats://a"], "tls_cert_file": "c.pem"}},
     "cluster.tls_key_file: required with tls_cert_file"),
    ({"cluster": {"urls": ["nats://a"], "credentials": "x.creds"}},
     "cluster.credentials: unknown key (known keys: credentials_file, monitor_urls, name, "
     "node_id, replicas, tls_ca_file, tls_cert_file, tls_key_file, urls)"),
])
def test_cluster_errors_name_the_file_and_key(data, message):
    with pytest.raises(ConfigError) as err:
        from_dict(data, "f.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("f.toml: ")
