"""MQTT topic names and filters as NATS subjects: one injective encoding (cluster.md §3).

A topic becomes ``<prefix>.t.<level>.<level>…``, or ``<prefix>.sys.<level>…`` when it
starts with ``$`` (that ``$`` is dropped from the first level: the subtree says it). Each
level is one NATS token:

- a level made only of ``[A-Za-z0-9_-]`` stays as it is: ``sensors/room-1`` →
  ``….t.sensors.room-1``;
- anything else is ``~`` followed by the level with every other byte of its UTF-8 as
  ``%XX`` (uppercase hex; ``~`` and ``%`` included): ``a.b`` → ``~a%2Eb``, ``é`` →
  ``~%C3%A9``, ``*`` → ``~%2A``; the empty level is ``~`` alone.

So ``.``, ``*``, ``>``, whitespace and non-ASCII never reach a subject, no token is empty
(NATS rejects empty tokens and whitespace: nats-server ``server/sublist.go``,
``isValidSubject``), and a token decodes one way only: it is escaped exactly when it
starts with ``~``, which no plain level contains.

Filters: ``+`` → ``*`` (one token) and ``#`` → ``>`` (one or more tokens) plus the
parent level, because MQTT's ``a/#`` also matches ``a`` (MQTT 5.0 §4.7.1.2) while NATS's
``a.>`` does not. A filter whose first level is a wildcard lives in the ``t`` subtree
only, so it can never match a ``$`` topic ([MQTT-4.7.2-1]); a filter starting with a
literal ``$…`` level lives in ``sys``. The prefix (``roost.<cluster>.msg`` from
:func:`subject_prefix`) keeps two Roost clusters apart on one NATS.

Length: NATS has no subject limit of its own, but the whole protocol line that carries
it is limited by ``max_control_line`` (default 4096 bytes: ``MAX_CONTROL_LINE_SIZE`` in
nats-server ``server/const.go``; https://docs.nats.io/reference/config/max_control_line),
which covers ``HPUB <subject> <reply> <header size> <total size>`` and
``SUB <subject> <queue> <sid>``; a longer line makes the server close the connection
(``overMaxControlLineLimit`` in ``server/parser.go``), and nats-py does not check it
before sending. So subjects are capped at :data:`MAX_SUBJECT_BYTES`, which leaves room
for a reply inbox and the sizes; a topic whose subject would be longer raises
:class:`SubjectTooLong` for the caller to refuse (an MQTT topic may be 65,535 bytes).

Pure: no I/O, no NATS client.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from roost.mqtt.topics import SHARE_PREFIX, is_valid_topic_filter, parse_shared

# nats-server's default max_control_line (server/const.go, MAX_CONTROL_LINE_SIZE).
MAX_CONTROL_LINE = 4096
# What a subject (plus, for a queue subscription, its queue group) may take of that
# line: the rest is for the verb, a reply subject (a nats-py inbox is ~52 bytes), the
# header and total sizes, the spaces and CRLF.
MAX_SUBJECT_BYTES = MAX_CONTROL_LINE - 256

TOPICS = "t"  # subtree of topics that do not start with "$"
DOLLAR = "sys"  # subtree of "$" topics, first level without its "$"
ESCAPE = "~"

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SAFE_LEVEL = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX_TOKEN = re.compile(r"[A-Za-z0-9_~%-]+")
# Each byte's form inside an escaped token.
_BYTE = tuple(chr(b) if chr(b) in _SAFE else f"%{b:02X}" for b in range(256))


class SubjectTooLong(ValueError):
    """A topic or filter whose subject would not fit NATS's protocol line."""


def escape_level(level: str) -> str:
    """One topic level (or share name) as one NATS token, as the module docstring says."""
    if _SAFE_LEVEL.fullmatch(level):
        return level
    try:
        data = level.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"level {level!r} holds a lone surrogate, not UTF-8") from None
    return ESCAPE + "".join(map(_BYTE.__getitem__, data))


def unescape_level(token: str) -> str:
    """The level :func:`escape_level` made ``token`` from; ValueError for any token it
    cannot have made (so decoding is exact, not merely lenient)."""
    if not token.startswith(ESCAPE):
        if _SAFE_LEVEL.fullmatch(token):
            return token
        raise ValueError(f"subject token {token!r} is not an encoded topic level")
    try:
        level = unquote_to_bytes(token[1:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"subject token {token!r} is not UTF-8") from None
    # Lowercase hex, stray "%" or "~", escaped safe characters: not what we produce.
    if "/" in level or escape_level(level) != token:
        raise ValueError(f"subject token {token!r} is not an encoded topic level")
    return level


def subject_prefix(cluster: str) -> str:
    """The subject prefix of a Roost cluster's messages: ``roost.<cluster>.msg``."""
    if not cluster:
        raise ValueError("a cluster name must not be empty")
    return f"roost.{escape_level(cluster)}.msg"


@lru_cache(maxsize=16)
def _check_prefix(prefix: str) -> str:
    if not all(_PREFIX_TOKEN.fullmatch(t) for t in prefix.split(".")):
        raise ValueError(f"subject prefix {prefix!r} must be tokens of [A-Za-z0-9_~%-] "
                         "joined by '.'")
    return prefix


def check_subject_length(subject: str, what: str, limit: int = MAX_SUBJECT_BYTES) -> str:
    """``subject`` if it fits NATS's protocol line, else :class:`SubjectTooLong` naming
    ``what`` it was made from. Subjects made here are ASCII: length = bytes."""
    if len(subject) > limit:
        shown = what if len(what) <= 80 else what[:77] + "..."
        raise SubjectTooLong(
            f"{shown!r} maps to a NATS subject of {len(subject)} bytes, over the "
            f"{limit} that fit NATS's {MAX_CONTROL_LINE}-byte protocol line")
    return subject


def topic_to_subject(prefix: str, topic: str) -> str:
    """The subject a PUBLISH to ``topic`` (a valid topic name) goes out on."""
    _check_prefix(prefix)
    if topic.startswith("$"):
        levels = topic[1:].split("/")
        tree = DOLLAR
    else:
        levels = topic.split("/")
        tree = TOPICS
    subject = f"{prefix}.{tree}.{'.'.join(map(escape_level, levels))}"
    return check_subject_length(subject, topic)


def subject_to_topic(prefix: str, subject: str) -> str:
    """The topic :func:`topic_to_subject` maps to ``subject``; ValueError if none does."""
    _check_prefix(prefix)
    head = prefix + "."
    tree, sep, body = subject[len(head):].partition(".")
    if not subject.startswith(head) or not sep:
        raise ValueError(f"subject {subject!r} is not a topic under {prefix!r}")
    levels = [unescape_level(token) for token in body.split(".")]
    if tree == DOLLAR:
        levels[0] = "$" + levels[0]
    elif tree != TOPICS or levels[0].startswith("$"):
        raise ValueError(f"subject {subject!r} is not a topic under {prefix!r}")
    return "/".join(levels)


def filter_to_subjects(prefix: str, topic_filter: str) -> list[str]:
    """The subject filters that together match exactly what ``topic_filter`` matches:
    one, or two when it ends in ``#`` after at least one level (``a/#`` → ``….a`` and
    ``….a.>``). ValueError for an invalid filter or a ``$share/`` one (see
    :func:`shared_filter_to_subjects`), :class:`SubjectTooLong` if one would not fit."""
    _check_prefix(prefix)
    if not is_valid_topic_filter(topic_filter):
        raise ValueError(f"invalid topic filter {topic_filter!r}")
    if topic_filter.startswith(SHARE_PREFIX):
        raise ValueError(f"{topic_filter!r} is a shared subscription: use "
                         "shared_filter_to_subjects")
    levels = topic_filter.split("/")
    if levels[0].startswith("$"):
        levels[0] = levels[0][1:]
        root = f"{prefix}.{DOLLAR}"
    else:
        root = f"{prefix}.{TOPICS}"
    multi = levels[-1] == "#"
    if multi:
        levels.pop()
    tokens = ["*" if level == "+" else escape_level(level) for level in levels]
    exact = ".".join([root, *tokens])
    if not multi:
        subjects = [exact]
    elif tokens:
        subjects = [exact, exact + ".>"]
    else:  # "#" alone: every topic of the subtree, which has at least one level
        subjects = [exact + ".>"]
    return [check_subject_length(s, topic_filter) for s in subjects]


def queue_group(share_name: str, topic_filter: str) -> str:
    """The NATS queue group of the shared subscription ``$share/<share_name>/<filter>``.

    It names the filter too: NATS merges queue subscriptions of one queue name across
    every subject a message matches and delivers to one member of them all
    (``addNodeToResults`` in nats-server ``server/sublist.go``), whereas MQTT gives each
    shared subscription, a (share name, filter) pair, its own copy (MQTT 5.0 §4.8.2).
    Tokens escaped as levels (``+`` → ``~%2B``, ``#`` → ``~%23``) and joined by ``.``.
    """
    if not share_name:
        raise ValueError("a share name must not be empty")
    return ".".join([escape_level(share_name), *map(escape_level, topic_filter.split("/"))])


def shared_filter_to_subjects(prefix: str, shared_filter: str) -> tuple[str, list[str]]:
    """The queue group and subject filters of ``$share/<name>/<filter>``: subscribe to
    each subject in that queue group. ValueError if it is not a valid shared filter."""
    shared = parse_shared(shared_filter)
    if shared is None:
        raise ValueError(f"{shared_filter!r} is not a shared subscription")
    subjects = filter_to_subjects(prefix, shared.topic_filter)
    queue = queue_group(shared.group, shared.topic_filter)
    # SUB <subject> <queue> <sid>: both share one protocol line.
    for subject in subjects:
        check_subject_length(f"{subject} {queue}", shared_filter)
    return queue, subjects
