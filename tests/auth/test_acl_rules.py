"""ACL file parsing and decisions, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.auth.acl import Access, AclAuthorizer, parse_acl
from roost.config import ConfigError
from roost.engine.hooks import AccessEvent, Action, Decision

READ, WRITE, SUB = Action.READ, Action.PUBLISH, Action.SUBSCRIBE


def acl(tmp_path: Path, text: str) -> AclAuthorizer:
    path = tmp_path / "acl"
    path.write_text(text)
    return AclAuthorizer(path)


def may(a: AclAuthorizer, action: Action, topic: str, user: str | None = None,
        client: str = "c1") -> bool:
    return a.authorize(AccessEvent(client, user, action, topic)) is Decision.ALLOW


# -- Parsing ---------------------------------------------------------------------------

def test_parse_sections_and_access_words():
    rules = parse_acl(
        "# comment\n"
        "\n"
        "topic read public/#\n"
        "topic everything/+\n"
        "user alice\n"
        "topic write alice/out\n"
        "pattern readwrite devices/%c/#\n"
        "topic deny alice/secret\n"
        "  user   bob smith  \n"
        "topic readwrite a topic with spaces\n", "acl")
    assert [(r.levels, r.access) for r in rules.anonymous] == [
        (("public", "#"), Access.READ), (("everything", "+"), Access.READWRITE)]
    assert [(r.levels, r.access) for r in rules.users["alice"]] == [
        (("alice", "out"), Access.WRITE), (("alice", "secret"), Access.NONE)]
    assert [r.levels for r in rules.users["bob smith"]] == [("a topic with spaces",)]
    # A pattern applies to everyone even when it follows a user line.
    assert [(r.levels, r.pattern) for r in rules.patterns] == [
        (("devices", "%c", "#"), True)]


@pytest.mark.parametrize("line, message", [
    ("topic read", "topic read without a topic"),
    ("topic read a/#/b", "invalid topic filter"),
    ("topic a+/b", "invalid topic filter"),
    ("user", "user without a user name"),
    ("acl a/b", "expected topic, pattern or user"),
    ("topic", "invalid topic filter"),
])
def test_parse_errors_name_file_and_line(line, message):
    with pytest.raises(ConfigError) as exc:
        parse_acl(f"topic ok\n{line}\n", "my.acl")
    assert f"my.acl:2: {message}" in str(exc.value)


def test_unreadable_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read ACL file"):
        AclAuthorizer(tmp_path / "missing")


# -- Decisions -------------------------------------------------------------------------

def test_anonymous_section_applies_only_without_user_name(tmp_path):
    a = acl(tmp_path, "topic read public/#\nuser alice\ntopic alice/#\n")
    assert may(a, READ, "public/news")
    assert not may(a, WRITE, "public/news")
    assert not may(a, READ, "alice/x")
    # A user gets their own section, not the anonymous one.
    assert not may(a, READ, "public/news", "alice")
    assert may(a, READ, "alice/x", "alice") and may(a, WRITE, "alice/x", "alice")
    # A user the file does not name gets nothing but patterns.
    assert not may(a, READ, "public/news", "mallory")
    assert not may(a, READ, "alice/x", "mallory")


@pytest.mark.parametrize("word, read, write", [
    ("read", True, False), ("write", False, True), ("readwrite", True, True),
    ("", True, True), ("deny", False, False)])
def test_access_words(tmp_path, word, read, write):
    a = acl(tmp_path, f"user u\ntopic {word} t/+\n".replace("  ", " "))
    assert may(a, READ, "t/1", "u") is read
    assert may(a, WRITE, "t/1", "u") is write
    assert not may(a, READ, "other", "u")


def test_deny_overrides_broader_grant_in_any_order(tmp_path):
    a = acl(tmp_path, "user u\ntopic readwrite home/#\ntopic deny home/secret/#\n"
                      "pattern deny home/%c/private\n")
    assert may(a, WRITE, "home/kitchen", "u")
    assert not may(a, WRITE, "home/secret/x", "u")
    assert not may(a, READ, "home/secret", "u")
    assert not may(a, READ, "home/c1/private", "u")
    assert may(a, READ, "home/c2/private", "u")


def test_patterns_substitute_client_id_and_user_name(tmp_path):
    a = acl(tmp_path, "pattern readwrite devices/%c/#\npattern read users/%u/inbox\n"
                      "pattern write x%c/y\n")
    assert may(a, WRITE, "devices/c1/state", client="c1")
    assert not may(a, WRITE, "devices/c2/state", client="c1")
    assert may(a, READ, "users/bob/inbox", "bob")
    assert not may(a, READ, "users/ann/inbox", "bob")
    # Without a user name a %u pattern does not apply at all.
    assert not may(a, READ, "users/%u/inbox")
    # A substitution must fill the whole level; otherwise the text is literal.
    assert may(a, WRITE, "x%c/y", client="c1")
    assert not may(a, WRITE, "xc1/y", client="c1")


@pytest.mark.parametrize("name", ["+", "#", "a/b", "dev/+/x", "a+"])
def test_wildcard_or_slash_in_names_never_widens_a_pattern(tmp_path, name):
    a = acl(tmp_path, "pattern readwrite devices/%c/#\npattern readwrite users/%u\n"
                      "topic readwrite open/#\n")
    # The client id as a wildcard would otherwise reach every device.
    assert not may(a, WRITE, "devices/victim/state", client=name)
    assert not may(a, READ, f"devices/{name}/state", client=name)
    assert not may(a, SUB, "devices/#", client=name)
    assert not may(a, READ, "users/victim", user=None, client=name)
    # Same for the user name.
    b = acl(tmp_path, "pattern readwrite users/%u/#\nuser " + name + "\ntopic own\n")
    assert not may(b, WRITE, "users/victim/x", name)
    assert not may(b, SUB, "users/+/x", name)
    assert may(b, WRITE, "own", name)  # plain topic rules still apply


def test_deny_pattern_with_unsafe_name_denies_the_whole_level(tmp_path):
    a = acl(tmp_path, "topic readwrite a/#\npattern deny a/%c/secret\n")
    assert may(a, WRITE, "a/x/secret", client="ok")
    assert not may(a, WRITE, "a/ok/secret", client="ok")
    assert not may(a, WRITE, "a/x/secret", client="evil/")
    assert may(a, WRITE, "a/x/public", client="evil/")


def test_dollar_topics_need_a_rule_naming_them_literally(tmp_path):
    a = acl(tmp_path, "topic readwrite #\ntopic readwrite +/x\npattern readwrite %c/#\n"
                      "topic read $SYS/broker/#\n")
    assert may(a, READ, "any/thing")
    assert not may(a, WRITE, "$SYS/x")
    assert not may(a, READ, "$SYS/x")
    assert not may(a, READ, "$other/x")
    assert may(a, READ, "$SYS/broker/uptime")
    assert not may(a, WRITE, "$SYS/broker/uptime")
    # A client id of "$SYS" does not turn "%c/#" into "$SYS/#".
    assert not may(a, READ, "$SYS/secret", client="$SYS")
    assert may(a, SUB, "$SYS/broker/+")
    assert may(a, SUB, "$SYS/#")  # overlaps $SYS/broker/#; each message is checked
    b = acl(tmp_path, "topic readwrite #\npattern readwrite %c/#\n")
    assert not may(b, SUB, "$SYS/#", client="$SYS")
    assert not may(b, SUB, "$SYS/x")
    assert not may(b, WRITE, "$SYS/x", client="$SYS")


def test_no_rules_for_the_client_denies_everything(tmp_path):
    a = acl(tmp_path, "user alice\ntopic alice/#\n")
    for action in (READ, WRITE, SUB):
        assert not may(a, action, "x")
        assert not may(a, action, "alice/x")


# -- Subscriptions ---------------------------------------------------------------------

def test_subscribe_granted_when_some_readable_topic_overlaps(tmp_path):
    a = acl(tmp_path, "user u\ntopic read sensors/+/temp\ntopic write cmd/#\n"
                      "topic deny sensors/secret/#\n")
    for f in ("sensors/+/temp", "sensors/#", "#", "+/+/temp", "sensors/a/temp",
              "$share/g/sensors/#"):
        assert may(a, SUB, f, "u"), f
    # Nothing the filter matches is readable (write-only, or no rule at all).
    for f in ("cmd/#", "cmd/x", "sensors/a/humidity", "sensors", "other/#",
              "sensors/+/temp/x", "$share/g/cmd/#"):
        assert not may(a, SUB, f, "u"), f
    # Everything the filter matches is denied.
    for f in ("sensors/secret/temp", "sensors/secret/#", "sensors/secret"):
        assert not may(a, SUB, f, "u"), f


def test_subscribe_hash_parent_level_overlap(tmp_path):
    a = acl(tmp_path, "topic read a/#\n")
    assert may(a, SUB, "a")            # "a/#" also matches "a"
    assert may(a, SUB, "+")
    assert not may(a, SUB, "b/+")
    b = acl(tmp_path, "topic read a\n")
    assert may(b, SUB, "a/#")
    assert not may(b, SUB, "a/+")


def test_invalid_shared_filter_is_denied(tmp_path):
    a = acl(tmp_path, "topic #\n")
    assert not may(a, SUB, "$share/g")
