"""Hook points for authentication and authorization: typed events, ordered chains.

Each hook answers ALLOW, DENY or ABSTAIN; the first answer that is not ABSTAIN
decides. If every hook abstains, the chain's default applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Protocol


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"
    ABSTAIN = "abstain"


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    client_id: str
    username: str | None
    password: bytes | None
    peer: str
    listener: str
    protocol_level: int
    # Set when the listener takes identities from verified client certificates.
    certificate_identity: str | None = None


class Authenticator(Protocol):
    def authenticate(self, event: ConnectEvent) -> Decision: ...


class DeferredAuthenticator(Protocol):
    """An authenticator whose answer may need I/O (a registry lookup, a password hash
    computed off the event loop): it calls ``done`` with its decision exactly once,
    possibly later, on the event loop's thread. ``run_chain_deferred`` prefers this
    method when a hook has it."""

    def authenticate_deferred(self, event: ConnectEvent,
                              done: Callable[[Decision], None]) -> None: ...


class Action(Enum):
    # A client sends a message to the topic (its PUBLISH, or its will at CONNECT).
    PUBLISH = "publish"
    # A client subscribes to the topic filter (``$share/group/`` included).
    SUBSCRIBE = "subscribe"
    # A message on the topic is about to be delivered to the client.
    READ = "read"


@dataclass(frozen=True, slots=True)
class AccessEvent:
    client_id: str
    username: str | None
    action: Action
    topic: str


class Authorizer(Protocol):
    def authorize(self, event: AccessEvent) -> Decision: ...


class AnonymousPolicy:
    """Decides for clients that no credential check recognised; the chain's last hook.

    On a listener that allows anonymous access, a client without credentials (no user
    name, no password) is let in; so is one with credentials when ``accept_unverified``
    says no credential checker is configured at all (as in Mosquitto with
    ``allow_anonymous true`` and no password file). With a checker configured,
    credentials that none of them verified are refused. Elsewhere it denies.
    """

    def __init__(self, allow_by_listener: dict[str, bool], accept_unverified: bool) -> None:
        self._allow = allow_by_listener
        self._accept_unverified = accept_unverified

    def authenticate(self, event: ConnectEvent) -> Decision:
        if not self._allow.get(event.listener, False):
            return Decision.DENY
        if self._accept_unverified or (event.username is None and event.password is None):
            return Decision.ALLOW
        return Decision.DENY


def run_chain(hooks: Sequence[Authenticator], event: ConnectEvent,
              default: Decision = Decision.DENY) -> Decision:
    for hook in hooks:
        answer = hook.authenticate(event)
        if answer is not Decision.ABSTAIN:
            return answer
    return default


def run_chain_deferred(hooks: Sequence[Authenticator | DeferredAuthenticator],
                       event: ConnectEvent, done: Callable[[Decision], None],
                       default: Decision = Decision.DENY) -> None:
    """Run the authentication chain as ``run_chain`` does, calling ``done`` with the
    decision once: at once if every hook answers at once, later if one defers."""

    def step(i: int) -> None:
        while i < len(hooks):
            hook = hooks[i]
            i += 1
            deferred = getattr(hook, "authenticate_deferred", None)
            if deferred is not None:
                deferred(event, partial(answered, resume_at=i))
                return
            answer = hook.authenticate(event)  # type: ignore[union-attr]
            if answer is not Decision.ABSTAIN:
                done(answer)
                return
        done(default)

    def answered(answer: Decision, resume_at: int) -> None:
        if answer is Decision.ABSTAIN:
            step(resume_at)
        else:
            done(answer)

    step(0)


def authorize(hooks: Sequence[Authorizer], event: AccessEvent,
              default: Decision = Decision.ALLOW) -> Decision:
    for hook in hooks:
        answer = hook.authorize(event)
        if answer is not Decision.ABSTAIN:
            return answer
    return default
