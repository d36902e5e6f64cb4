"""Key pairs and tokens for JWT tests, made fresh in each run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class KeyPair:
    def __init__(self, kind: str = "ec") -> None:
        self.private: Any = (ec.generate_private_key(ec.SECP256R1()) if kind == "ec"
                             else rsa.generate_private_key(public_exponent=65537,
                                                           key_size=2048))
        self.algorithm = "ES256" if kind == "ec" else "RS256"

    @property
    def public_pem(self) -> bytes:
        return bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def write(self, path: Path) -> Path:
        path.write_bytes(self.public_pem)
        return path

    def token(self, algorithm: str | None = None, **claims: Any) -> bytes:
        now = int(time.time())
        body: dict[str, Any] = {"iat": now, "exp": now + 600}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private, algorithm=algorithm or self.algorithm).encode()
