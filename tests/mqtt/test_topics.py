"""Topic names, topic filters, shared subscriptions and matching (MQTT 5.0 4.7, 4.8.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.mqtt.topics import (
    SharedFilter,
    is_valid_topic_filter,
    is_valid_topic_name,
    matches,
    parse_shared,
)

TOO_LONG = "a" * 65536  # a topic must not encode to more than 65535 bytes (MQTT-4.7.3-3)
LONGEST = "a" * 65535


@pytest.mark.parametrize(("name", "valid"), [
    ("a", True),
    ("a/b", True),
    ("sport/tennis/player1", True),
    ("/", True),
    ("/finance", True),
    ("a/", True),
    ("a//b", True),
    (" ", True),
    ("$SYS/monitor/Clients", True),
    ("ACCOUNTS/accounts", True),
    ("\u00e9t\u00e9/\U0001f600", True),
    (LONGEST, True),
    ("", False),  # MQTT-4.7.3-1: at least one character
    ("a/+", False),
    ("+", False),
    ("#", False),
    ("a/#", False),
    ("sport+", False),
    ("a#b", False),
    ("a\x00b", False),  # MQTT-4.7.3-2: no U+0000
    (TOO_LONG, False),
    ("\u00e9" * 32768, False),  # 32768 characters, but 65536 bytes
])
def test_is_valid_topic_name(name: str, valid: bool) -> None:
    assert is_valid_topic_name(name) is valid


@pytest.mark.parametrize(("topic_filter", "valid"), [
    ("#", True),
    ("+", True),
    ("+/+", True),
    ("/+", True),
    ("+/", True),
    ("sport/#", True),
    ("sport/tennis/#", True),
    ("sport/tennis/player1/#", True),
    ("sport/+", True),
    ("sport/+/player1", True),
    ("+/tennis/#", True),
    ("$SYS/#", True),
    ("$SYS/monitor/+", True),
    ("a/b", True),
    ("/", True),
    ("a//b", True),
    (LONGEST, True),
    ("", False),
    ("sport/tennis#", False),
    ("sport/tennis/#/ranking", False),
    ("#/a", False),
    ("##", False),
    ("a/#/", False),
    ("sport+", False),
    ("sport/+a", False),
    ("+a/b", False),
    ("++", False),
    ("a\x00", False),
    (TOO_LONG, False),
])
def test_is_valid_topic_filter(topic_filter: str, valid: bool) -> None:
    assert is_valid_topic_filter(topic_filter) is valid


@pytest.mark.parametrize(("topic_filter", "expected"), [
    ("a/b", None),
    ("#", None),
    ("$SYS/#", None),
    ("$share", None),
    ("$SHARE/g/a", None),  # case-sensitive
    ("$sharegroup/a", None),
    ("$share/g/a/b", SharedFilter("g", "a/b")),
    ("$share/consumer1/sport/tennis/+", SharedFilter("consumer1", "sport/tennis/+")),
    ("$share/g/#", SharedFilter("g", "#")),
    ("$share/g/+/x", SharedFilter("g", "+/x")),
    ("$share/g//", SharedFilter("g", "/")),
    ("$share/$share/x", SharedFilter("$share", "x")),
])
def test_parse_shared(topic_filter: str, expected: SharedFilter | None) -> None:
    assert parse_shared(topic_filter) == expected


@pytest.mark.parametrize("topic_filter", [
    "$share/",
    "$share/g",        # no filter after the share name
    "$share/g/",       # empty filter
    "$share//a",       # empty share name
    "$share/g+/a",     # share name must not hold wildcards
    "$share/+/a",
    "$share/#/a",
    "$share/g#/a",
    "$share/g/a/#/b",  # invalid inner filter
    "$share/g/a+",
])
def test_parse_shared_rejects(topic_filter: str) -> None:
    with pytest.raises(ValueError):
        parse_shared(topic_filter)


MATCH_TABLE = [
    # 4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/tennis/player1/#", "sport/tennis", False),
    ("sport/#", "sport", True),
    ("sport/tennis/#", "sport/tennis", True),
    ("sport/tennis/#", "sport/tennisplayer1", False),
    ("#", "sport", True),
    ("#", "/", True),
    ("#", "a/b/c", True),
    # 4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+", "sport", True),
    ("+", "/finance", False),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+/tennis/#", "sport/tennis", True),
    ("+/tennis/#", "sport/tennis/player1/ranking", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport//player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/+/#", "a", False),
    ("+/#", "a", True),
    # 4.7.2 topics beginning with $
    ("#", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("+", "$SYS", False),
    ("#", "$", False),
    ("a/+", "a/$b", True),  # only a leading $ is special
    ("a/#", "a/$b", True),
    # exact and case-sensitive
    ("ACCOUNTS", "Accounts", False),
    ("a/b", "a/b", True),
    ("a/b", "a/b/", False),
    ("a/b/", "a/b", False),
    ("/", "/", True),
    ("a//b", "a//b", True),
    ("a//b", "a/b", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def reference_matches(topic_filter: str, topic: str) -> bool:
    """A regex translation of a filter: the obvious reading of 4.7.1 and 4.7.2."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    pattern = ""
    for i, level in enumerate(topic_filter.split("/")):
        if level == "#":
            # '#' also matches the parent level: "a/#" matches "a".
            pattern = ".*" if i == 0 else pattern + "(?:/.*)?"
            break
        if i:
            pattern += "/"
        pattern += "[^/]*" if level == "+" else re.escape(level)
    return re.fullmatch(pattern, topic, re.DOTALL) is not None


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_reference_agrees_with_the_table(topic_filter: str, topic: str, expected: bool) -> None:
    assert reference_matches(topic_filter, topic) is expected


# Few distinct level names so that filters and topics often line up.
level_names = st.sampled_from(["a", "b", "", "$x", "a$", "c.d", "*", "\n"])
topic_levels = st.lists(level_names, min_size=1, max_size=5)
topics = topic_levels.map("/".join).filter(is_valid_topic_name)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(topic_levels)
    levels = [draw(st.sampled_from([lv, lv, "+"])) for lv in levels]
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(levels)))
        levels = [*levels[:cut], "#"]
    return "/".join(levels) or "+"  # a filter is never empty


@st.composite
def filter_from_topic(draw: st.DrawFn, topic: str) -> str:
    """A filter derived from ``topic`` so that it frequently matches."""
    levels = topic.split("/")
    levels = [draw(st.sampled_from([lv, lv, "+"])) for lv in levels]
    if draw(st.booleans()):
        levels = [*levels[:draw(st.integers(0, len(levels)))], "#"]
    if levels[-1] != "#" and draw(st.booleans()):
        levels.append(draw(level_names))
    return "/".join(levels) or "+"


@settings(max_examples=300, deadline=None)
@given(filters(), topics)
def test_matches_agrees_with_reference(topic_filter: str, topic: str) -> None:
    assert is_valid_topic_filter(topic_filter)
    assert matches(topic_filter, topic) is reference_matches(topic_filter, topic)


@settings(max_examples=300, deadline=None)
@given(topics.flatmap(lambda t: st.tuples(filter_from_topic(t), st.just(t))))
def test_matches_agrees_with_reference_on_related_pairs(pair: tuple[str, str]) -> None:
    topic_filter, topic = pair
    assert is_valid_topic_filter(topic_filter)
    assert matches(topic_filter, topic) is reference_matches(topic_filter, topic)


@settings(max_examples=200, deadline=None)
@given(topics)
def test_a_topic_name_is_a_filter_matching_itself(topic: str) -> None:
    assert is_valid_topic_filter(topic)
    assert matches(topic, topic)
