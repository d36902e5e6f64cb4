"""Access control lists in the format of Mosquitto's ``acl_file``.

::

    # Lines before any "user" line apply to clients without a user name.
    topic read public/#
    user alice
    topic readwrite alice/#
    topic deny alice/secret
    # "pattern" lines apply to every client, wherever they stand in the file.
    pattern write devices/%c/state
    pattern read users/%u/inbox/#

``topic [read|write|readwrite|deny] <filter>``: the access is optional (readwrite
when absent), so a filter with a space needs it. A client gets the rules of its own
``user`` section (or of the anonymous section when it has no user name) plus every
``pattern``; ``%c`` and ``%u`` stand for its client id and user name and must fill a
whole topic level. Once a file is configured, anything no rule grants is denied.

Where Roost is stricter than the letter of mosquitto.conf(5), on purpose:

- ``deny`` wins over any grant that applies to the client, from its section or from a
  pattern (Mosquitto only lets a deny beat grants of the same kind of list).
- A client id or user name containing ``+``, ``#`` or ``/`` is never substituted: a
  granting pattern that uses it grants that client nothing, and a denying one denies
  that whole level (as if it were ``+``).
- A topic starting with ``$`` (``$SYS/...``) is granted only by a rule whose first level
  is that same literal text; ``#``, ``+``, ``%c`` and ``%u`` never grant it.

Subscriptions are checked against what the filter could ever deliver: SUBSCRIBE is
granted when some readable rule overlaps the filter and no ``deny`` covers all of it.
Each message is then checked for read access as it is delivered, so a wildcard
subscription only ever carries topics the client may read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntFlag
from pathlib import Path
from typing import NamedTuple

from roost.config import ConfigError
from roost.engine.hooks import AccessEvent, Action, Decision
from roost.mqtt.topics import is_valid_topic_filter, levels_match, parse_shared


class Access(IntFlag):
    NONE = 0
    READ = 1
    WRITE = 2
    READWRITE = 3


_ACCESS_WORDS = {"read": Access.READ, "write": Access.WRITE,
                 "readwrite": Access.READWRITE, "deny": Access.NONE}
_CLIENT = "%c"
_USER = "%u"
_UNSAFE = frozenset("+#/")


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``topic`` or ``pattern`` line; ``access`` NONE means deny."""

    levels: tuple[str, ...]
    access: Access
    pattern: bool = False
    line: int = 0

    @property
    def deny(self) -> bool:
        return self.access == Access.NONE

    @property
    def names_dollar(self) -> bool:
        """Whether the rule's first level is a literal ``$`` level (only such a rule
        concerns ``$`` topics)."""
        return self.levels[0].startswith("$")


@dataclass(slots=True)
class AclRules:
    """A parsed file: the anonymous section, one section per user, and the patterns."""

    anonymous: list[Rule] = field(default_factory=list)
    users: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[Rule] = field(default_factory=list)

    def rules_for(self, username: str | None) -> Iterator[Rule]:
        """The client's own section (anonymous without a user name), then patterns."""
        yield from self.anonymous if username is None else self.users.get(username, ())
        yield from self.patterns


def parse_acl(text: str, source: str) -> AclRules:
    """Parse an ACL file; ConfigError names ``source``, the line and the problem."""
    rules = AclRules()
    user: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "user":
            if not rest:
                raise ConfigError(f"{source}:{number}: user without a user name")
            user = rest
            rules.users.setdefault(user, [])
            continue
        if keyword not in ("topic", "pattern"):
            raise ConfigError(f"{source}:{number}: expected topic, pattern or user, "
                              f"got {keyword!r}")
        first, _, remainder = rest.partition(" ")
        if first in _ACCESS_WORDS and remainder.strip():
            access, topic = _ACCESS_WORDS[first], remainder.strip()
        elif first in _ACCESS_WORDS:
            raise ConfigError(f"{source}:{number}: {keyword} {first} without a topic")
        else:
            access, topic = Access.READWRITE, rest
        if not topic or not is_valid_topic_filter(topic):
            raise ConfigError(f"{source}:{number}: invalid topic filter {topic!r}")
        rule = Rule(tuple(topic.split("/")), access, keyword == "pattern", number)
        if rule.pattern:
            rules.patterns.append(rule)
        elif user is None:
            rules.anonymous.append(rule)
        else:
            rules.users[user].append(rule)
    return rules


def load_acl(path: str | Path) -> AclRules:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ACL file: {exc}") from None
    return parse_acl(text, str(path))


# -- Matching ----------------------------------------------------------------------------


def _substitute(rule: Rule, client_id: str,
                username: str | None) -> Sequence[str] | None:
    """The rule's levels for this client; None if it can match nothing for this client
    (a ``%u`` pattern for a client without a user name, or a grant through a name that
    cannot be substituted safely)."""
    if not rule.pattern:
        return rule.levels
    out: list[str] = []
    for level in rule.levels:
        if level == _CLIENT:
            value = client_id
        elif level == _USER:
            if username is None:
                return None
            value = username
        else:
            out.append(level)
            continue
        if not value or _UNSAFE.intersection(value):
            # A name must never act as a wildcard or span levels: a grant gives such a
            # client nothing, a deny takes the whole level.
            if not rule.deny:
                return None
            value = "+"
        out.append(value)
    return out


def _overlaps(levels: Sequence[str], filt: list[str]) -> bool:
    """Whether some topic name matches both the rule's levels and the filter."""
    for i in range(max(len(levels), len(filt))):
        a = levels[i] if i < len(levels) else None
        b = filt[i] if i < len(filt) else None
        if a == "#" or b == "#":
            return True  # "x/#" also matches "x", so one side may have ended here
        if a is None or b is None:
            return False
        if a != "+" and b != "+" and a != b:
            return False
    return True


def _covers(levels: Sequence[str], filt: list[str]) -> bool:
    """Whether every topic name the filter matches also matches the rule's levels."""
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(filt) or filt[i] == "#" or (level != "+" and filt[i] != level):
            return False
    return len(levels) == len(filt)


class _Compiled(NamedTuple):
    """A rule as it applies to one client: substitutions done, access as plain flags."""

    levels: Sequence[str]
    deny: bool
    read: bool
    write: bool
    # Whether the rule names a "$" first level literally: only such rules concern "$"
    # topics, and they concern nothing else.
    dollar: bool


# Clients whose compiled rules are kept; beyond it the cache starts over.
_CACHE_LIMIT = 65536


class AclAuthorizer:
    """Authorizes publish, subscribe and per-message reads against an ACL file.

    It never abstains: once a file is configured, what it does not grant is denied.
    The rules that apply to a client are compiled once per (client id, user name) and
    kept until the file is reloaded, so the check run for every delivered message is a
    plain loop over that client's rules.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rules = load_acl(self.path)
        self._compiled: dict[tuple[str, str | None], tuple[_Compiled, ...]] = {}
        # The last topic checked, split: a fan-out checks the same topic per receiver.
        self._last_topic = ""
        self._last_levels: list[str] = [""]

    def reload(self) -> None:
        """Read the file again; on error the old rules stay and ConfigError is raised."""
        self.rules = load_acl(self.path)
        self._compiled = {}

    def authorize(self, event: AccessEvent) -> Decision:
        rules = self._rules_of(event.client_id, event.username)
        if event.action is Action.SUBSCRIBE:
            allowed = _may_subscribe(rules, event.topic)
        else:
            topic = event.topic
            if topic != self._last_topic:
                self._last_topic, self._last_levels = topic, topic.split("/")
            allowed = _may_access(rules, self._last_levels, event.action is Action.READ)
        return Decision.ALLOW if allowed else Decision.DENY

    def _rules_of(self, client_id: str, username: str | None) -> tuple[_Compiled, ...]:
        key = (client_id, username)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= _CACHE_LIMIT:
                self._compiled = {}
            compiled = self._compiled[key] = _compile(self.rules, client_id, username)
        return compiled


def _compile(rules: AclRules, client_id: str, username: str | None) -> tuple[_Compiled, ...]:
    out = []
    for rule in rules.rules_for(username):
        levels = _substitute(rule, client_id, username)
        dollar = rule.names_dollar
        if levels is None or (levels[0].startswith("$") and not dollar):
            continue  # nothing to substitute, or "$..." put there by %c / %u
        out.append(_Compiled(levels, rule.deny, bool(rule.access & Access.READ),
                             bool(rule.access & Access.WRITE), dollar))
    return tuple(out)


def _may_access(rules: tuple[_Compiled, ...], topic: list[str], read: bool) -> bool:
    dollar = topic[0].startswith("$")
    granted = False
    for levels, deny, may_read, may_write, rule_dollar in rules:
        if rule_dollar is not dollar or not (deny or (may_read if read else may_write)):
            continue
        if levels_match(levels, topic):
            if deny:
                return False
            granted = True
    return granted


def _may_subscribe(rules: tuple[_Compiled, ...], topic_filter: str) -> bool:
    try:
        shared = parse_shared(topic_filter)
    except ValueError:
        return False
    filt = (shared.topic_filter if shared else topic_filter).split("/")
    # A filter starting with a wildcard never matches "$" topics (4.7.2).
    dollar = filt[0].startswith("$")
    readable = False
    for levels, deny, may_read, _, rule_dollar in rules:
        if rule_dollar is not dollar or not (deny or may_read):
            continue
        if deny:
            if _covers(levels, filt):
                return False
        elif not readable and _overlaps(levels, filt):
            readable = True
    return readable
