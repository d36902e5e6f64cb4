"""Topic names, topic filters and the matching rules between them (4.7, 4.8.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_TOPIC_BYTES = 65535
SHARE_PREFIX = "$share/"


def utf8_longer_than(text: str, limit: int) -> int | None:
    """The UTF-8 length of ``text`` if it is above ``limit``, else None.

    Avoids encoding in the common case: a character is one to four bytes.
    """
    if len(text) * 4 <= limit:
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


def _is_valid_string(text: str) -> bool:
    """Non-empty, no U+0000, at most 65535 bytes of UTF-8 (4.7.3)."""
    if not text or "\x00" in text:
        return False
    return utf8_longer_than(text, MAX_TOPIC_BYTES) is None


def is_valid_topic_name(name: str) -> bool:
    """A name a PUBLISH may carry: non-empty and free of wildcards."""
    return _is_valid_string(name) and "+" not in name and "#" not in name


def is_valid_topic_filter(topic_filter: str) -> bool:
    """A filter with ``+`` and ``#`` each filling a whole level, ``#`` only last."""
    if not _is_valid_string(topic_filter):
        return False
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            return False
        if "+" in level and level != "+":
            return False
    return True


@dataclass(frozen=True, slots=True)
class SharedFilter:
    group: str
    topic_filter: str


def parse_shared(topic_filter: str) -> SharedFilter | None:
    """Split ``$share/group/filter``; None if not shared. Raise ValueError if invalid."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    rest = topic_filter[len(SHARE_PREFIX):]
    group, sep, inner = rest.partition("/")
    if not sep or not group or "+" in group or "#" in group or not is_valid_topic_filter(inner):
        raise ValueError(f"invalid shared subscription {topic_filter!r}")
    return SharedFilter(group, inner)


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter``; a leading wildcard never matches ``$``."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    return levels_match(topic_filter.split("/"), topic.split("/"))


def levels_match(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """Whether a topic name matches a filter, both split into levels (no ``$`` rule)."""
    for i, f in enumerate(filter_levels):
        if f == "#":
            return True
        if i >= len(topic_levels) or (f != "+" and f != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)
