"""Authentication and authorization behind the engine's hooks.

``build_authenticators`` turns ``[auth]`` into the ordered chain the engine runs at
CONNECT; ``build_authorizers`` into the ACL checks run for every PUBLISH, SUBSCRIBE
and delivered message. Nothing here reaches into the engine beyond its public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from roost.auth.acl import AclAuthorizer
from roost.auth.passwords import PasswordFileAuthenticator
from roost.auth.tokens import JwtAuthenticator
from roost.config import AuthConfig, ConfigError
from roost.engine.hooks import AnonymousPolicy, Authenticator, Authorizer, ConnectEvent, Decision

if TYPE_CHECKING:
    from roost.engine.engine import Engine

__all__ = [
    "AclAuthorizer",
    "CertificateAuthenticator",
    "JwtAuthenticator",
    "PasswordFileAuthenticator",
    "build_authenticators",
    "build_authorizers",
    "reload",
]


class CertificateAuthenticator:
    """A client whose certificate the TLS layer (or a trusted proxy) verified is in;
    its identity has already become its user name."""

    def authenticate(self, event: ConnectEvent) -> Decision:
        return Decision.ALLOW if event.certificate_identity is not None else Decision.ABSTAIN


def build_authenticators(auth: AuthConfig,
                         allow_anonymous: dict[str, bool]) -> list[Authenticator]:
    """The CONNECT chain, in order: client certificate, password file, JWT, and last
    the anonymous policy of each listener (``allow_anonymous`` by listener name).

    Raises ConfigError (naming the file, and the line where there is one) for a file
    that cannot be used.
    """
    chain: list[Authenticator] = [CertificateAuthenticator()]
    if auth.password_file:
        chain.append(PasswordFileAuthenticator(auth.password_file))
    if auth.jwt_keys:
        chain.append(JwtAuthenticator(auth.jwt_keys, auth.jwt_algorithms, auth.jwt_audience))
    # With a credential checker configured, credentials nobody verified never get in.
    verifiers = bool(auth.password_file or auth.jwt_keys)
    chain.append(AnonymousPolicy(allow_anonymous, accept_unverified=not verifiers))
    return chain


def build_authorizers(auth: AuthConfig) -> list[Authorizer]:
    """The ACL checks; none at all (and so no per-message cost) without an acl_file."""
    return [AclAuthorizer(auth.acl_file)] if auth.acl_file else []


@runtime_checkable
class Reloadable(Protocol):
    def reload(self) -> None: ...


def reload(engine: Engine) -> int:
    """Reread every password file, key set and ACL file of ``engine``, then re-check
    every subscription against the new ACL; return how many subscriptions were removed.

    Every file is tried: one that fails to load keeps its previous contents in force,
    the others take their new ones. Afterwards ConfigError is raised, naming each file
    that failed (the subscriptions have been re-checked by then).
    """
    errors: list[str] = []
    for hook in (*engine.hooks.authenticators, *engine.hooks.authorizers):
        if isinstance(hook, Reloadable):
            try:
                hook.reload()
            except ConfigError as exc:
                errors.append(str(exc))
    removed = engine.reload_acl()
    if errors:
        raise ConfigError("; ".join(errors))
    return removed
