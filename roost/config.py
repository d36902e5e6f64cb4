"""Typed configuration, loaded from TOML and validated once at start-up.

Every error names the file, the key and what was expected, e.g.
``roost.toml: mqtt.max_inflight: expected an integer from 1 to 65535, got "lots"``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # "sqlite": durable, in data_dir; "memory": nothing survives a restart.
    type: str = "sqlite"
    # "strict": acknowledge only after the commit; "relaxed": acknowledge at once.
    durability: str = "strict"


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: str = "data"
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(),)
    log: LogConfig = field(default_factory=LogConfig)
    mqtt: EngineSettings = field(default_factory=EngineSettings)
    store: StoreConfig = field(default_factory=StoreConfig)
    source: str = "<defaults>"


# (minimum, maximum) for integer settings; None means unbounded on that side.
_INT_BOUNDS: dict[str, tuple[int, int | None]] = {
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
    "port": (0, 65535),
}
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: expected {expected}, got {_describe(value)}")

    def section(self, data: dict[str, Any], prefix: str, cls: type,
                known: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, value in data.items():
            full = f"{prefix}{key}"
            if key not in known:
                names = ", ".join(sorted(known))
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
    top_known = {"data_dir", "listeners", "log", "mqtt", "store"}
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
        values = r.section(log, "log.", LogConfig, {f.name for f in fields(LogConfig)})
        if values.get("level", "info") not in _LOG_LEVELS:
            raise r.error("log.level", " or ".join(_LOG_LEVELS), values["level"])
        config = replace(config, log=LogConfig(**values))
    if "store" in data:
        store = _table(r, "store", data["store"])
        values = r.section(store, "store.", StoreConfig, {f.name for f in fields(StoreConfig)})
        if values.get("type", "sqlite") not in ("sqlite", "memory"):
            raise r.error("store.type", '"sqlite" or "memory"', values["type"])
        if values.get("durability", "strict") not in ("strict", "relaxed"):
            raise r.error("store.durability", '"strict" or "relaxed"', values["durability"])
        config = replace(config, store=StoreConfig(**values))
    if "mqtt" in data:
        mqtt = _table(r, "mqtt", data["mqtt"])
        values = r.section(mqtt, "mqtt.", EngineSettings,
                           {f.name for f in fields(EngineSettings)})
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
            values = r.section(table, prefix, ListenerConfig,
                               {f.name for f in fields(ListenerConfig)})
            values.setdefault("name", "default" if i == 0 else f"listener{i}")
            if values.get("type", "tcp") != "tcp":
                raise r.error(prefix + "type", '"tcp" (TLS and WebSocket are not built yet)',
                              values["type"])
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
