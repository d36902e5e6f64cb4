"""JWT login: a device signs a token with its private key and sends it as its password.

The broker holds the matching public keys (``[auth] jwt_keys``):

- a directory of ``<client id>.pem`` files: each device has its own key, so the key
  itself ties the token to the client id (a token signed for one device's key fails
  for every other client id). A file added, replaced or deleted takes effect at the
  next login, without a reload.
- one PEM file: a single key for every client (e.g. a backend that issues tokens);
  the token's ``sub`` claim must then equal the client id.

A PEM file may hold a public key or an X.509 certificate. A token must be signed with
an allowed algorithm that fits the key (ES256 needs an EC P-256 key, RS256 an RSA
key), carry ``exp`` (not passed) and ``iat`` (not in the future beyond
``LEEWAY_SECONDS``), and, if ``jwt_audience`` is set, that ``aud``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from roost.config import JWT_ALGORITHMS, ConfigError, check_jwt_algorithms
from roost.engine.hooks import ConnectEvent, Decision

log = logging.getLogger("roost.auth")

# Clock difference tolerated between device and broker, for exp and iat.
LEEWAY_SECONDS = 60
SUPPORTED_ALGORITHMS = JWT_ALGORITHMS
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def load_public_key(data: bytes, source: str) -> PublicKey:
    """An EC or RSA public key from PEM text holding a public key or a certificate."""
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: not a PEM public key or certificate: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise ConfigError(f"{source}: expected an EC or RSA public key")
    return key


def algorithms_for(key: PublicKey, allowed: tuple[str, ...]) -> list[str]:
    """The allowed algorithms this key can verify; never HMAC, never "none"."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        fits = {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name)
        return [a for a in allowed if a == fits]
    return [a for a in allowed if a[:2] in ("RS", "PS")]


def check_algorithms(algorithms: tuple[str, ...]) -> None:
    """The config's own check, for authenticators built without a config file."""
    bad = check_jwt_algorithms(algorithms)
    if bad is not None:
        expected, got = bad
        shown = f' got "{got}"' if isinstance(got, str) else ""
        raise ConfigError(f"auth.jwt_algorithms: expected {expected}{',' if shown else ''}"
                          f"{shown}")


def _safe_file_name(client_id: str) -> bool:
    """Whether ``<client_id>.pem`` names a file inside the key directory and nothing
    else (no separators, no hidden or relative names)."""
    return (bool(client_id) and not client_id.startswith(".") and "/" not in client_id
            and "\\" not in client_id and "\x00" not in client_id
            and len(client_id.encode("utf-8", "surrogatepass")) <= 250)


@dataclass(slots=True)
class _CachedKey:
    stamp: tuple[int, int]
    key: PublicKey


class JwtAuthenticator:
    """Verifies a JWT sent as the MQTT password against the client id's public key.

    A client id without a key is left to the next method (ABSTAIN). A client id with a
    key must present a valid token: a missing or failing one is refused (DENY), so
    holding the client id alone is never enough.
    """

    def __init__(self, keys: str | Path, algorithms: tuple[str, ...] = ("ES256", "RS256"),
                 audience: str | None = None) -> None:
        check_algorithms(algorithms)
        self.path = Path(keys)
        self.algorithms = algorithms
        self.audience = audience
        self._cache: dict[str, _CachedKey] = {}
        self._single = None if self.path.is_dir() else self._load_single()

    def _load_single(self) -> PublicKey:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read JWT keys: {exc.strerror}") from None
        return load_public_key(data, str(self.path))

    def reload(self) -> None:
        """Forget cached keys (the directory form rereads each file when it changes);
        reread the single key file. On error the old key stays and ConfigError is
        raised."""
        self._cache.clear()
        if self._single is not None:
            self._single = self._load_single()

    def key_for(self, client_id: str) -> PublicKey | None:
        if self._single is not None:
            return self._single
        if not _safe_file_name(client_id):
            return None
        file = self.path / f"{client_id}.pem"
        try:
            st = os.stat(file)
        except OSError:
            self._cache.pop(client_id, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(client_id)
        if cached is not None and cached.stamp == stamp:
            return cached.key
        try:
            key = load_public_key(file.read_bytes(), str(file))
        except (OSError, ConfigError) as exc:
            log.warning("JWT key for client %r unusable: %s", client_id, exc)
            return None
        self._cache[client_id] = _CachedKey(stamp, key)
        return key

    def authenticate(self, event: ConnectEvent) -> Decision:
        key = self.key_for(event.client_id)
        if key is None:
            return Decision.ABSTAIN
        why = self._verify(key, event)
        if why is None:
            return Decision.ALLOW
        log.info("JWT of client %s refused: %s", event.client_id, why)
        return Decision.DENY

    def _verify(self, key: PublicKey, event: ConnectEvent) -> str | None:
        """None if the token is good, else why not."""
        if not event.password:
            return "no token in the password field"
        algorithms = algorithms_for(key, self.algorithms)
        if not algorithms:
            return "no allowed algorithm fits the registered key"
        try:
            token = event.password.decode("ascii")
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat"],
                         "verify_aud": self.audience is not None})
        except UnicodeDecodeError:
            return "password is not a token"
        except jwt.PyJWTError as exc:
            return str(exc) or type(exc).__name__
        if self._single is not None and claims.get("sub") != event.client_id:
            return "sub claim does not name the client id"
        return None
