"""Hook points for authentication and authorization: typed events, ordered chains.

Each hook answers ALLOW, DENY or ABSTAIN; the first answer that is not ABSTAIN
decides. If every hook abstains, the chain's default applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
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


class Action(Enum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class AccessEvent:
    client_id: str
    username: str | None
    action: Action
    topic: str


class Authorizer(Protocol):
    def authorize(self, event: AccessEvent) -> Decision: ...


class AnonymousPolicy:
    """Decides for clients that no credential check recognised.

    On a listener that allows anonymous access, a client without a user name is let in;
    so is one with a user name when no credential checker is configured at all (as in
    Mosquitto with ``allow_anonymous true`` and no password file). Elsewhere it denies.
    """

    def __init__(self, allow_by_listener: dict[str, bool], accept_unverified: bool) -> None:
        self._allow = allow_by_listener
        self._accept_unverified = accept_unverified

    def authenticate(self, event: ConnectEvent) -> Decision:
        if not self._allow.get(event.listener, False):
            return Decision.DENY
        if event.username is None or self._accept_unverified:
            return Decision.ALLOW
        return Decision.DENY


def run_chain(hooks: Sequence[Authenticator], event: ConnectEvent,
              default: Decision = Decision.DENY) -> Decision:
    for hook in hooks:
        answer = hook.authenticate(event)
        if answer is not Decision.ABSTAIN:
            return answer
    return default


def authorize(hooks: Sequence[Authorizer], event: AccessEvent,
              default: Decision = Decision.ALLOW) -> Decision:
    for hook in hooks:
        answer = hook.authorize(event)
        if answer is not Decision.ABSTAIN:
            return answer
    return default
