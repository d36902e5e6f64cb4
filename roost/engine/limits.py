"""The configured limits a client can run into, and the error that says which one.

A limit is policy, not protocol: breaking one is counted by name in ``Stats`` (the name
is the config key) and answered with the reason code docs/limits.md gives for it.
"""

from __future__ import annotations

from roost.engine.settings import EngineSettings
from roost.mqtt.errors import ProtocolViolation
from roost.mqtt.properties import Properties
from roost.mqtt.reason_codes import ReasonCode
from roost.mqtt.topics import utf8_longer_than

# The longest string MQTT can carry (a two-byte length prefix).
_WIRE_MAXIMUM = 65535


class LimitExceeded(ProtocolViolation):
    """The peer went past a configured limit; ``limit`` is its config key."""

    def __init__(self, limit: str, message: str, reason: ReasonCode) -> None:
        super().__init__(message, reason)
        self.limit = limit


def topic_over_limit(settings: EngineSettings, topic: str,
                     levels_of: str | None = None) -> tuple[str, str] | None:
    """(limit, detail) for a topic name or filter beyond its limits, None if within.

    ``levels_of`` is the part whose levels count (a shared subscription's inner filter).
    """
    levels = (levels_of if levels_of is not None else topic).count("/") + 1
    if levels > settings.max_topic_levels:
        return "max_topic_levels", f"{levels} topic levels, more than " \
                                   f"{settings.max_topic_levels}"
    limit = settings.max_topic_length
    if limit < _WIRE_MAXIMUM:
        size = utf8_longer_than(topic, limit)
        if size is not None:
            return "max_topic_length", f"topic of {size} bytes, more than {limit}"
    return None


def user_properties_over_limit(settings: EngineSettings, props: Properties) -> str | None:
    """A description if ``props`` holds more User Properties than allowed, else None."""
    limit = settings.max_user_properties
    count = len(props.user_properties)
    if limit and count > limit:
        return f"{count} user properties, more than {limit}"
    return None
