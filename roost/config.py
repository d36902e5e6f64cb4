"""Typed configuration, loaded from TOML and validated once at start-up.

Every error names the file, the key and what was expected, e.g.
``roost.toml: mqtt.max_inflight: expected an integer from 1 to 65535, got "lots"``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from roost.engine.settings import EngineSettings

DEFAULT_PORT = 1883


class ConfigError(Exception):
    """A configuration file that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    name: str = "default"
    type: str = "tcp"
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # None means: allowed on loopback addresses only (Mosquitto 2's local-only mode).
    allow_anonymous: bool | None = None
    # TLS (type "tls" and "wss"): server certificate chain and key, PEM files.
    certfile: str | None = None
    keyfile: str | None = None
    # CA bundle that client certificates must chain to.
    cafile: str | None = None
    # Client certificates: "none", "optional" or "required".
    require_certificate: str = "none"
    # Use the verified client certificate as the user name: "none", "cn" or "subject".
    identity_from_certificate: str = "none"
    # HTTP path of MQTT over WebSocket (type "ws" and "wss").
    path: str = "/mqtt"
    # Expect a PROXY protocol v1/v2 header, accepted only from these networks (CIDR).
    proxy_protocol: bool = False
    proxy_trusted: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # Simultaneous connections on this listener; 0 means no limit.
    max_connections: int = 0


LISTENER_TYPES = ("tcp", "tls", "ws", "wss")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # A mosquitto_passwd-compatible file ($7$ PBKDF2-SHA512 and $6$ SHA512 entries).
    password_file: str | None = None
    # A Mosquitto-compatible acl_file.
    acl_file: str | None = None
    # Public keys for JWT login: a directory of <client id>.pem files, or one PEM file.
    jwt_keys: str | None = None
    # Required "aud" claim of JWTs; None means the audience is not checked.
    jwt_audience: str | None = None
    jwt_algorithms: tuple[str, ...] = ("ES256", "RS256")


# JWT signature algorithms Roost verifies: public-key ones only, so a token can never be
# checked with a shared secret (HS*) or without a signature ("none").
JWT_ALGORITHMS = ("ES256", "ES384", "RS256", "RS384", "RS512", "PS256")


def check_jwt_algorithms(algorithms: tuple[str, ...]) -> tuple[str, Any] | None:
    """(what was expected, what was given) if the list is not usable, else None."""
    if not algorithms:
        return "at least one algorithm", list(algorithms)
    for name in algorithms:
        if name not in JWT_ALGORITHMS:
            return f"names from {', '.join(JWT_ALGORITHMS)}", name
    return None


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    # "text" (human-readable lines) or "json" (one JSON object per line).
    format: str = "text"


@dataclass(frozen=True, slots=True)
class SysConfig:
    # Seconds between $SYS topic updates; 0 disables the $SYS tree.
    interval: int = 10


@dataclass(frozen=True, slots=True)
class DrainConfig:
    # Seconds a graceful shutdown (SIGTERM) may take before the process exits anyway.
    grace_period: float = 10.0
    # Sent to MQTT 5 clients as Server Reference with DISCONNECT 0x9C (use another
    # server); None sends 0x8B (server shutting down).
    server_reference: str | None = None


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # "sqlite": durable, in data_dir; "memory": nothing survives a restart.
    type: str = "sqlite"
    # "strict": acknowledge only after the commit; "relaxed": acknowledge at once.
    durability: str = "strict"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    # The operations endpoint (/metrics, /healthz, /readyz, /api/v1): HOST:PORT. It has
    # no authentication yet, so keep it on loopback or a private network.
    bind: str = "127.0.0.1:8080"
    enabled: bool = True

    @property
    def address(self) -> tuple[str, int]:
        """``bind`` as (host, port); the value was checked when the config was loaded."""
        parsed = parse_host_port(self.bind)
        assert parsed is not None
        return parsed


# A NATS subject token that is also a valid JetStream stream/bucket name part.
_NATS_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
NATS_SCHEMES = ("nats", "tls")


def default_node_id() -> str:
    """``<short host name>-<pid>``, reduced to a NATS token (``[A-Za-z0-9_-]``)."""
    host = socket.gethostname().split(".")[0] or "node"
    return re.sub(r"[^A-Za-z0-9_-]", "-", host) + f"-{os.getpid()}"


def check_nats_url(url: str) -> bool:
    """Whether ``url`` is ``nats://HOST[:PORT]`` or ``tls://HOST[:PORT]`` (user and
    password may be given in it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme in NATS_SCHEMES and bool(parts.hostname)
            and (port is None or 0 < port <= 65535) and parts.path in ("", "/")
            and not parts.query and not parts.fragment)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster mode (docs/cluster.md): present only when ``[cluster]`` is configured or
    ``roost serve --cluster`` is given."""

    # NATS servers to connect to: nats://HOST:PORT or tls://HOST:PORT.
    urls: tuple[str, ...] = ()
    # The Roost cluster's name: prefix of its NATS subjects (and later its streams and
    # buckets), so several Roost clusters can share one NATS.
    name: str = "roost"
    # This node's name in the cluster, unique among the nodes; a NATS token.
    node_id: str = field(default_factory=default_node_id)
    # A NATS .creds file (user JWT and NKey seed).
    credentials_file: str | None = None
    # TLS towards NATS: CA bundle to verify the servers, client certificate and key.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # The NATS servers' HTTP monitoring endpoints (http://HOST:8222), one per server,
    # for the start-up checks (roost.cluster.preflight).
    monitor_urls: tuple[str, ...] = ()
    # Replicas of the cluster's JetStream streams (the retained stream): 3 keeps them
    # through the loss of one NATS server; 1 for a lone server (tests).
    replicas: int = 3


def format_host_port(host: str, port: int) -> str:
    """The inverse of ``parse_host_port``: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); None if it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None
    return (host, int(port)) if host else None


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: str = "data"
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    log: LogConfig = field(default_factory=LogConfig)
    mqtt: EngineSettings = field(default_factory=EngineSettings)
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    sys: SysConfig = field(default_factory=SysConfig)
    drain: DrainConfig = field(default_factory=DrainConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    # None: the embedded broker, nothing of roost.cluster is loaded.
    cluster: ClusterConfig | None = None
    source: str = "<defaults>"


# (minimum, maximum) for integer settings; None means unbounded on that side.
_INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "replicas": (1, 5),
    "max_packet_size": (64, 268_435_460),
    "receive_maximum": (1, 65535),
    "max_inflight": (1, 65535),
    "max_queued_messages": (0, None),
    "max_queued_bytes": (0, None),
    "topic_alias_maximum": (0, 65535),
    "max_keepalive": (1, 65535),
    "maximum_qos": (0, 2),
    "persistent_session_expiry": (0, 0xFFFFFFFF),
    "max_output_buffer": (1024, None),
    "max_topic_levels": (1, 65535),
    "max_topic_length": (1, 65535),
    "max_subscriptions": (0, None),
    "max_client_id_length": (23, 65535),
    "max_user_properties": (0, 65535),
    "port": (0, 65535),
    "max_connections": (0, None),
}
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: expected {expected}, got {_describe(value)}")

    def section(self, data: dict[str, Any], prefix: str, cls: type) -> dict[str, Any]:
        """Check each key of a table against the fields of the dataclass it fills."""
        out: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, value in data.items():
            full = f"{prefix}{key}"
            if key not in types:
                names = ", ".join(sorted(types))
                raise ConfigError(f"{self.source}: {full}: unknown key (known keys: {names})")
            out[key] = self.value(full, key, str(types[key]), value)
        return out

    def value(self, full: str, key: str, type_name: str, value: Any) -> Any:
        optional = "None" in type_name
        if "bool" in type_name:
            if not isinstance(value, bool):
                raise self.error(full, "true or false", value)
            return value
        if "int" in type_name:
            low, high = _INT_BOUNDS.get(key, (0, None))
            if isinstance(value, bool) or not isinstance(value, int):
                if optional and value == "never":
                    return None
                raise self.error(full, self._int_range(low, high, optional), value)
            if value < low or (high is not None and value > high):
                raise self.error(full, self._int_range(low, high, optional), value)
            return value
        if "tuple" in type_name:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(full, "a list of strings", value)
            return tuple(value)
        if "float" in type_name:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise self.error(full, "a positive number of seconds", value)
            return float(value)
        if not isinstance(value, str):
            raise self.error(full, "a string", value)
        return value

    @staticmethod
    def _int_range(low: int, high: int | None, optional: bool) -> str:
        text = f"an integer from {low} to {high}" if high is not None else f"an integer ≥ {low}"
        return text + (' or "never"' if optional else "")


def load(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return from_dict(data, source)


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    r = _Reader(source)
    top_known = {"data_dir", "listeners", "log", "mqtt", "store", "auth", "http",
                 "sys", "drain", "cluster"}
    for key in data:
        if key not in top_known:
            raise ConfigError(f"{source}: {key}: unknown key (known keys: "
                              f"{', '.join(sorted(top_known))})")
    config = Config(source=source)
    if "data_dir" in data:
        if not isinstance(data["data_dir"], str) or not data["data_dir"]:
            raise r.error("data_dir", "a directory path", data["data_dir"])
        config = replace(config, data_dir=data["data_dir"])
    if "log" in data:
        log = _table(r, "log", data["log"])
        values = r.section(log, "log.", LogConfig)
        if values.get("level", "info") not in _LOG_LEVELS:
            raise r.error("log.level", " or ".join(_LOG_LEVELS), values["level"])
        if values.get("format", "text") not in ("text", "json"):
            raise r.error("log.format", '"text" or "json"', values["format"])
        config = replace(config, log=LogConfig(**values))
    if "auth" in data:
        auth = _table(r, "auth", data["auth"])
        values = r.section(auth, "auth.", AuthConfig)
        if "jwt_algorithms" in values:
            bad = check_jwt_algorithms(values["jwt_algorithms"])
            if bad is not None:
                raise r.error("auth.jwt_algorithms", bad[0], bad[1])
        config = replace(config, auth=AuthConfig(**values))
    if "http" in data:
        http = _table(r, "http", data["http"])
        values = r.section(http, "http.", HttpConfig)
        if "bind" in values and parse_host_port(values["bind"]) is None:
            raise r.error("http.bind", 'HOST:PORT such as "127.0.0.1:8080"', values["bind"])
        config = replace(config, http=HttpConfig(**values))
    if "sys" in data:
        sys_table = _table(r, "sys", data["sys"])
        values = r.section(sys_table, "sys.", SysConfig)
        config = replace(config, sys=SysConfig(**values))
    if "drain" in data:
        drain = _table(r, "drain", data["drain"])
        values = r.section(drain, "drain.", DrainConfig)
        config = replace(config, drain=DrainConfig(**values))
    if "store" in data:
        store = _table(r, "store", data["store"])
        values = r.section(store, "store.", StoreConfig)
        if values.get("type", "sqlite") not in ("sqlite", "memory"):
            raise r.error("store.type", '"sqlite" or "memory"', values["type"])
        if values.get("durability", "strict") not in ("strict", "relaxed"):
            raise r.error("store.durability", '"strict" or "relaxed"', values["durability"])
        config = replace(config, store=StoreConfig(**values))
    if "cluster" in data:
        cluster = _table(r, "cluster", data["cluster"])
        values = r.section(cluster, "cluster.", ClusterConfig)
        _check_cluster(r, values)
        config = replace(config, cluster=ClusterConfig(**values))
    if "mqtt" in data:
        mqtt = _table(r, "mqtt", data["mqtt"])
        values = r.section(mqtt, "mqtt.", EngineSettings)
        config = replace(config, mqtt=EngineSettings(**values))
    if "listeners" in data:
        items = data["listeners"]
        if not isinstance(items, list) or not items:
            raise r.error("listeners", "one or more [[listeners]] tables", items)
        listeners = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            prefix = f"listeners[{i}]."
            table = _table(r, f"listeners[{i}]", item)
            values = r.section(table, prefix, ListenerConfig)
            values.setdefault("name", "default" if i == 0 else f"listener{i}")
            _check_listener(r, prefix, values)
            if values["name"] in seen:
                raise r.error(prefix + "name", "a name no other listener has", values["name"])
            seen.add(values["name"])
            listeners.append(ListenerConfig(**values))
        config = replace(config, listeners=tuple(listeners))
    return config


def _table(r: _Reader, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise r.error(key, "a table", value)
    return value


def _check_listener(r: _Reader, prefix: str, values: dict[str, Any]) -> None:
    """Rules between a listener's keys that single-key checks cannot see."""
    kind = values.get("type", "tcp")
    if kind not in LISTENER_TYPES:
        raise r.error(prefix + "type", " or ".join(f'"{t}"' for t in LISTENER_TYPES), kind)
    if kind in ("tls", "wss"):
        for key in ("certfile", "keyfile"):
            if not values.get(key):
                raise ConfigError(f"{r.source}: {prefix}{key}: required for a {kind} listener")
    choice = values.get("require_certificate", "none")
    if choice not in ("none", "optional", "required"):
        raise r.error(prefix + "require_certificate", '"none", "optional" or "required"',
                      choice)
    if choice != "none" and not values.get("cafile"):
        raise ConfigError(f"{r.source}: {prefix}cafile: required when require_certificate "
                          f'is "{choice}"')
    if choice != "none" and kind not in ("tls", "wss"):
        raise r.error(prefix + "require_certificate", '"none" on a listener without TLS',
                      choice)
    identity = values.get("identity_from_certificate", "none")
    if identity not in ("none", "cn", "subject"):
        raise r.error(prefix + "identity_from_certificate", '"none", "cn" or "subject"',
                      identity)
    if identity != "none" and choice == "none" and not values.get("proxy_protocol"):
        raise ConfigError(f"{r.source}: {prefix}identity_from_certificate: needs "
                          "require_certificate or proxy_protocol (a certificate to read)")
    path = values.get("path", "/mqtt")
    if not path.startswith("/"):
        raise r.error(prefix + "path", 'an HTTP path starting with "/"', path)
    for i, net in enumerate(values.get("proxy_trusted", ())):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise r.error(f"{prefix}proxy_trusted[{i}]", "an address or network in CIDR form",
                          net) from None


def _check_cluster(r: _Reader, values: dict[str, Any]) -> None:
    urls = values.get("urls", ())
    if not urls:
        raise r.error("cluster.urls", 'one or more NATS URLs such as "nats://127.0.0.1:4222"',
                      list(urls))
    for i, url in enumerate(urls):
        if not check_nats_url(url):
            raise r.error(f"cluster.urls[{i}]", "a URL nats://HOST:PORT or tls://HOST:PORT",
                          url)
    for key in ("name", "node_id"):
        if key in values and not _NATS_TOKEN.fullmatch(values[key]):
            raise r.error(f"cluster.{key}", "a name of letters, digits, '_' and '-'",
                          values[key])
    for i, url in enumerate(values.get("monitor_urls", ())):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise r.error(f"cluster.monitor_urls[{i}]", "a URL http://HOST:PORT", url)
    if bool(values.get("tls_cert_file")) != bool(values.get("tls_key_file")):
        missing = "tls_key_file" if values.get("tls_cert_file") else "tls_cert_file"
        raise ConfigError(f"{r.source}: cluster.{missing}: required with "
                          f"{'tls_cert_file' if missing == 'tls_key_file' else 'tls_key_file'}")


def parse_nats_urls(value: str) -> tuple[str, ...] | None:
    """A comma-separated list of NATS URLs (``roost serve --cluster``); None if one of
    them is not a NATS URL."""
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    if not urls or not all(map(check_nats_url, urls)):
        return None
    return urls
