"""Configuration of the HTTP endpoint: [http] in the file and --http on the command line."""

from __future__ import annotations

import argparse

import pytest

from roost.cli import _apply_overrides, main
from roost.config import Config, ConfigError, from_dict, parse_host_port


def test_default_is_loopback_8080():
    config = Config()
    assert config.http.enabled and config.http.address == ("127.0.0.1", 8080)


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("[::1]:8080", ("::1", 8080)),
    ("localhost:80", ("localhost", 80)),
    ("8080", None), (":8080", None), ("host:", None), ("host:99999", None),
    ("::1:8080", None), ("host:http", None),
])
def test_parse_host_port(value, expected):
    assert parse_host_port(value) == expected


def test_config_section():
    config = from_dict({"http": {"bind": "[::1]:9100", "enabled": False}}, "r.toml")
    assert config.http.address == ("::1", 9100) and not config.http.enabled


@pytest.mark.parametrize("table, key", [
    ({"bind": "nope"}, "http.bind"),
    ({"bind": 8080}, "http.bind"),
    ({"enabled": "yes"}, "http.enabled"),
    ({"port": 1}, "http.port"),
])
def test_bad_values_name_file_and_key(table, key):
    with pytest.raises(ConfigError, match=rf"^r\.toml: {key}: "):
        from_dict({"http": table}, "r.toml")


def _serve_args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(data_dir=None, bind=None, port=None, http=None,
                                   log_format=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_cli_override():
    assert not _apply_overrides(Config(), _serve_args(http="")).http.enabled
    config = _apply_overrides(Config(), _serve_args(http="127.0.0.1:9999"))
    assert config.http.enabled and config.http.address == ("127.0.0.1", 9999)
    with pytest.raises(ConfigError, match="--http"):
        _apply_overrides(Config(), _serve_args(http="bad"))


def test_cli_bad_http_is_a_config_error(capsys):
    assert main(["serve", "--http", "what"]) == 2
    assert "--http" in capsys.readouterr().err
