"""MQTT topics as NATS subjects (roost/cluster/subjects.py, cluster.md §3): round trips,
injectivity, well-formed tokens, and matching parity with Roost's own topic matcher."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.cluster.subjects import (
    MAX_SUBJECT_BYTES,
    SubjectTooLong,
    escape_level,
    filter_to_subjects,
    queue_group,
    shared_filter_to_subjects,
    subject_prefix,
    subject_to_topic,
    topic_to_subject,
    unescape_level,
)
from roost.mqtt.topics import is_valid_topic_filter, is_valid_topic_name, matches

P = "roost.test.msg"


def nats_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching as documented (docs.nats.io, "Subject-Based Messaging"):
    ``*`` is exactly one token, ``>`` one or more tokens and only last."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


@pytest.mark.parametrize(("pattern", "subject", "expected"), [
    ("a.b", "a.b", True),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("a.>", "a.b.c", True),
    ("a.>", "a", False),
    ("*.b", "a.b", True),
    ("a.b", "a.b.c", False),
])
def test_reference_subject_matcher(pattern: str, subject: str, expected: bool) -> None:
    assert nats_matches(pattern, subject) is expected


# -- examples ------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "subject"), [
    ("sensors/room-1/temp_c", "roost.test.msg.t.sensors.room-1.temp_c"),
    ("a/b", "roost.test.msg.t.a.b"),
    ("/", "roost.test.msg.t.~.~"),
    ("a//b", "roost.test.msg.t.a.~.b"),
    ("a.b/*/>", "roost.test.msg.t.~a%2Eb.~%2A.~%3E"),
    ("x y", "roost.test.msg.t.~x%20y"),
    ("~/%", "roost.test.msg.t.~%7E.~%25"),
    ("\u00e9t\u00e9", "roost.test.msg.t.~%C3%A9t%C3%A9"),
    ("\U0001f600", "roost.test.msg.t.~%F0%9F%98%80"),
    ("a/$b", "roost.test.msg.t.a.~%24b"),  # only a leading $ is special
    ("$SYS/broker/uptime", "roost.test.msg.sys.SYS.broker.uptime"),
    ("$", "roost.test.msg.sys.~"),
    ("$/a", "roost.test.msg.sys.~.a"),
    ("$$x", "roost.test.msg.sys.~%24x"),
])
def test_topic_examples(topic: str, subject: str) -> None:
    assert topic_to_subject(P, topic) == subject
    assert subject_to_topic(P, subject) == topic


@pytest.mark.parametrize(("topic_filter", "subjects"), [
    ("a/b", ["roost.test.msg.t.a.b"]),
    ("a/+/c", ["roost.test.msg.t.a.*.c"]),
    ("+", ["roost.test.msg.t.*"]),
    ("#", ["roost.test.msg.t.>"]),
    ("a/#", ["roost.test.msg.t.a", "roost.test.msg.t.a.>"]),
    ("+/#", ["roost.test.msg.t.*", "roost.test.msg.t.*.>"]),
    ("/#", ["roost.test.msg.t.~", "roost.test.msg.t.~.>"]),
    ("$SYS/#", ["roost.test.msg.sys.SYS", "roost.test.msg.sys.SYS.>"]),
    ("$SYS/+/x", ["roost.test.msg.sys.SYS.*.x"]),
    ("a/*/>", ["roost.test.msg.t.a.~%2A.~%3E"]),  # literal, not wildcards
])
def test_filter_examples(topic_filter: str, subjects: list[str]) -> None:
    assert filter_to_subjects(P, topic_filter) == subjects


def test_prefix_per_cluster() -> None:
    assert subject_prefix("prod") == "roost.prod.msg"
    assert subject_prefix("eu west.1") == "roost.~eu%20west%2E1.msg"
    assert topic_to_subject(subject_prefix("a"), "x") != topic_to_subject(
        subject_prefix("b"), "x")
    with pytest.raises(ValueError):
        subject_prefix("")


@pytest.mark.parametrize("prefix", ["", "a..b", "a.>", "a.*", "a b", "roost.\u00e9"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        topic_to_subject(prefix, "a")


# -- decoding is exact ---------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    "roost.test.msg.t",             # no level
    "roost.test.msg.t.",            # empty token
    "roost.test.msg.t.a..b",
    "roost.test.msg.x.a",           # unknown subtree
    "roost.other.msg.t.a",          # another cluster
    "roost.test.msgs.t.a",
    "roost.test.msg.t.~a",          # escaped although plain
    "roost.test.msg.t.~%41",        # an escaped plain character
    "roost.test.msg.t.~%2e",        # lowercase hex
    "roost.test.msg.t.~%2",         # cut short
    "roost.test.msg.t.~%",
    "roost.test.msg.t.~~",          # "~" must be escaped inside
    "roost.test.msg.t.~a%",
    "roost.test.msg.t.~%2F",        # "/" inside a level would add a level
    "roost.test.msg.t.~%FF",        # not UTF-8
    "roost.test.msg.t.~%ED%A0%80",  # an encoded surrogate
    "roost.test.msg.t.~%24a",       # a $ topic outside the sys subtree
    "roost.test.msg.t.a b",         # not escaped
    "roost.test.msg.t.\u00e9",
    "roost.test.msg.t.*",           # wildcards are filters, not topics
    "roost.test.msg.t.>",
])
def test_subjects_no_topic_maps_to_are_refused(subject: str) -> None:
    with pytest.raises(ValueError):
        subject_to_topic(P, subject)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text("a~%2E4F$*>/ \u00e9", max_size=6), min_size=1, max_size=4))
def test_decoding_returns_the_topic_that_encodes_to_the_subject(tokens: list[str]) -> None:
    """Any subject: either refused, or decoded to the one topic that maps back to it."""
    subject = ".".join([P, "t", *tokens])
    try:
        topic = subject_to_topic(P, subject)
    except ValueError:
        return
    assert topic_to_subject(P, topic) == subject


# -- properties over arbitrary topics ------------------------------------------------

# Any Unicode but NUL, surrogates and the wildcards, with the awkward cases made likely.
free_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00/+#"),
                    max_size=8)
awkward = st.sampled_from(["", "a", "b", "$", "$SYS", ".", "a.b", "*", ">", " ", "~", "%",
                           "%41", "~a", "~%41", "A-z_9", "\u00e9", "\t", "\U0001f600"])
levels = st.one_of(awkward, free_text)
topics = st.lists(levels, min_size=1, max_size=6).map("/".join).filter(is_valid_topic_name)


def tokens_of(subject: str) -> list[str]:
    return subject.split(".")


def assert_well_formed(subject: str) -> None:
    assert subject.isascii()
    assert len(subject) <= MAX_SUBJECT_BYTES
    for token in tokens_of(subject):
        assert token
        assert not any(c.isspace() for c in token)


@settings(max_examples=1000, deadline=None)
@given(topics)
def test_round_trip(topic: str) -> None:
    subject = topic_to_subject(P, topic)
    assert subject_to_topic(P, subject) == topic


@settings(max_examples=1000, deadline=None)
@given(topics)
def test_subject_tokens_are_well_formed(topic: str) -> None:
    subject = topic_to_subject(P, topic)
    assert_well_formed(subject)
    body = tokens_of(subject)[len(tokens_of(P)) + 1:]
    assert len(body) == len(topic.split("/"))  # one token per level
    assert not {"*", ">"} & set(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(topics, min_size=2, max_size=20, unique=True))
def test_different_topics_give_different_subjects(names: list[str]) -> None:
    assert len({topic_to_subject(P, name) for name in names}) == len(names)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "~a", "~", "", "%", "%7E", "~%7E", ".", "a.b", "$",
                                 "$a", "*", "-", "_"]), min_size=2, max_size=2, unique=True))
def test_different_levels_give_different_tokens(pair: list[str]) -> None:
    a, b = pair
    assert escape_level(a) != escape_level(b)
    assert unescape_level(escape_level(a)) == a


# -- matching parity -----------------------------------------------------------------

# Few level names so that filters and topics often line up.
near_levels = st.sampled_from(["a", "b", "", "$", "$x", "a$", "c.d", "*", ">", "~", "%",
                               " ", "\u00e9"])
near_topics = st.lists(near_levels, min_size=1, max_size=5).map("/".join).filter(
    is_valid_topic_name)


@st.composite
def filters_from(draw: st.DrawFn, topic: str) -> str:
    """A filter made from ``topic`` so that it often matches: levels replaced by ``+``,
    cut by ``#``, or one level added."""
    parts = [draw(st.sampled_from([lv, lv, "+"])) for lv in topic.split("/")]
    if draw(st.booleans()):
        parts = [*parts[:draw(st.integers(0, len(parts)))], "#"]
    elif draw(st.booleans()):
        parts.append(draw(near_levels))
    return "/".join(parts)


def nats_side(topic_filter: str, topic: str) -> bool:
    subject = topic_to_subject(P, topic)
    patterns = filter_to_subjects(P, topic_filter)
    for pattern in patterns:
        assert_well_formed(pattern)
    return any(nats_matches(pattern, subject) for pattern in patterns)


@settings(max_examples=1000, deadline=None)
@given(near_topics.flatmap(lambda t: st.tuples(filters_from(t), st.just(t))))
def test_matching_parity_on_related_pairs(pair: tuple[str, str]) -> None:
    topic_filter, topic = pair
    assert is_valid_topic_filter(topic_filter)
    assert matches(topic_filter, topic) is nats_side(topic_filter, topic)


@settings(max_examples=500, deadline=None)
@given(near_topics.flatmap(filters_from), near_topics)
def test_matching_parity_on_unrelated_pairs(topic_filter: str, topic: str) -> None:
    assert matches(topic_filter, topic) is nats_side(topic_filter, topic)


@settings(max_examples=300, deadline=None)
@given(topics.flatmap(lambda t: st.tuples(filters_from(t), st.just(t))))
def test_matching_parity_on_arbitrary_unicode(pair: tuple[str, str]) -> None:
    topic_filter, topic = pair
    assert matches(topic_filter, topic) is nats_side(topic_filter, topic)


@pytest.mark.parametrize(("topic_filter", "topic"), [
    ("#", "$SYS/x"),
    ("+/x", "$SYS/x"),
    ("+", "$"),
    ("+/#", "$a/b"),
    ("#", "$"),
])
def test_leading_wildcards_never_match_dollar_topics(topic_filter: str, topic: str) -> None:
    assert not matches(topic_filter, topic)
    assert not nats_side(topic_filter, topic)


# -- refusals ------------------------------------------------------------------------


def test_a_topic_too_long_for_nats_is_refused() -> None:
    room = MAX_SUBJECT_BYTES - len(P) - len(".t.")
    assert len(topic_to_subject(P, "a" * room)) == MAX_SUBJECT_BYTES
    with pytest.raises(SubjectTooLong, match="protocol line"):
        topic_to_subject(P, "a" * (room + 1))
    # 1,000 characters, but each is escaped to 6 bytes: too long although a valid topic.
    with pytest.raises(SubjectTooLong):
        topic_to_subject(P, "\u00e9" * 1000)


def test_a_filter_too_long_for_nats_is_refused() -> None:
    room = MAX_SUBJECT_BYTES - len(P) - len(".t.")
    assert filter_to_subjects(P, "a" * room) == [f"{P}.t.{'a' * room}"]
    with pytest.raises(SubjectTooLong):  # the ".>" of "#" does not fit
        filter_to_subjects(P, "a" * room + "/#")


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        topic_to_subject(P, "a/\ud800")


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a+", "a\x00", "$share/g/a"])
def test_invalid_or_shared_filters_are_refused(topic_filter: str) -> None:
    with pytest.raises(ValueError):
        filter_to_subjects(P, topic_filter)


# -- shared subscriptions ------------------------------------------------------------


def test_shared_subscription() -> None:
    queue, subjects = shared_filter_to_subjects(P, "$share/g 1/sensors/#")
    assert queue == "~g%201.sensors.~%23"
    assert subjects == [f"{P}.t.sensors", f"{P}.t.sensors.>"]
    assert shared_filter_to_subjects(P, "$share/g/$SYS/+")[1] == [f"{P}.sys.SYS.*"]


def test_one_share_name_with_two_filters_gives_two_queue_groups() -> None:
    """NATS merges a queue name across subjects; MQTT gives each filter its own copy."""
    assert queue_group("g", "a/#") != queue_group("g", "a/+")


@pytest.mark.parametrize("shared_filter", ["a/b", "$share/g", "$share//a", "$share/g/a/#/b"])
def test_invalid_shared_filters_are_refused(shared_filter: str) -> None:
    with pytest.raises(ValueError):
        shared_filter_to_subjects(P, shared_filter)


group_names = st.one_of(st.sampled_from(["g", "g.h", "~g", "g/h", "", "a"]), free_text)
filter_texts = near_topics.flatmap(filters_from)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(group_names.filter(bool), filter_texts), min_size=2, max_size=2,
                unique=True))
def test_queue_groups_are_injective_and_well_formed(pairs: list[tuple[str, str]]) -> None:
    (g1, f1), (g2, f2) = pairs
    q1, q2 = queue_group(g1, f1), queue_group(g2, f2)
    assert q1 != q2
    for token in q1.split("."):
        assert token
        assert token.isascii()
        assert not any(c.isspace() for c in token)
        assert token not in ("*", ">")
