"""Hook points: authentication and authorization chains, and event listeners.

Each decision hook answers ALLOW, DENY or ABSTAIN; the first answer that is not ABSTAIN
decides. If every hook abstains, the chain's default applies. ``HookRegistry`` holds the
chains and the listeners of the engine's events (``roost.engine.events``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, Protocol, TypeVar

from roost.engine.events import MESSAGE_EVENTS

log = logging.getLogger("roost.hooks")
E = TypeVar("E")


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


class HookRegistry:
    """The engine's hook points in one place.

    - Decisions, each an ordered chain whose first answer other than ABSTAIN wins:
      ``authenticate`` (CONNECT; default deny; a hook may answer later, see
      ``DeferredAuthenticator``) and ``authorize`` (PUBLISH, SUBSCRIBE, delivery;
      default allow). ``authenticators`` and ``authorizers`` are the chains, in order;
      with no authorizer the per-message check costs one truth test.
    - Events (``roost.engine.events``): listeners by event type, called in the order
      they registered; a listener that raises is logged and the others still run.
    """

    def __init__(self, authenticators: Sequence[Authenticator | DeferredAuthenticator] = (),
                 authorizers: Sequence[Authorizer] = ()) -> None:
        self.authenticators: list[Authenticator | DeferredAuthenticator] = list(authenticators)
        self.authorizers: list[Authorizer] = list(authorizers)
        self._listeners: dict[type, list[Callable[[Any], None]]] = {}
        # Whether any per-message event (published, delivered, dropped) has a listener:
        # the one test the hot path makes before building such an event.
        self.message_events = False

    def authenticate(self, event: ConnectEvent, done: Callable[[Decision], None]) -> None:
        """Run the authentication chain; ``done`` gets the decision, perhaps later."""
        run_chain_deferred(self.authenticators, event, done)

    def authorize(self, event: AccessEvent) -> Decision:
        """Run the authorization chain (ALLOW when every hook abstains)."""
        return authorize(self.authorizers, event)

    def listen(self, event_type: type[E], listener: Callable[[E], None]) -> Callable[[], None]:
        """Call ``listener`` with every event of ``event_type``; returns a function that
        removes it again."""
        listeners = self._listeners.setdefault(event_type, [])
        listeners.append(listener)
        self._update_message_events()

        def remove() -> None:
            listeners.remove(listener)
            if not listeners:
                self._listeners.pop(event_type, None)
            self._update_message_events()

        return remove

    def _update_message_events(self) -> None:
        self.message_events = any(t in self._listeners for t in MESSAGE_EVENTS)

    def listens(self, event_type: type) -> bool:
        """Whether anyone listens for ``event_type`` (check before building a
        per-message event)."""
        return event_type in self._listeners

    def emit(self, event: object) -> None:
        for listener in tuple(self._listeners.get(type(event), ())):
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %s", listener, type(event).__name__)
