"""Password files in mosquitto_passwd's format, and the authenticator that checks them.

Each line is ``user:hash``. Two hash forms are understood, both written by Mosquitto's
``mosquitto_passwd``:

- ``$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512 (Mosquitto 2.0's
  default, 101 iterations and a 12-byte salt);
- ``$6$<base64 salt>$<base64 hash>``: one SHA-512 of the password followed by the salt
  (Mosquitto 1.x).

Blank lines and lines starting with ``#`` are ignored. Anything else is an error that
names the file and line, found when the file is loaded rather than at a client's login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from roost.config import ConfigError
from roost.engine.hooks import ConnectEvent, Decision

log = logging.getLogger("roost.auth")

# What mosquitto_passwd 2.0 writes (PW_DEFAULT_ITERATIONS and SALT_LEN in its source).
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
# An entry asking for more work than this would let the file's author stall the broker
# on every login; no real file comes near it.
MAX_ITERATIONS = 10_000_000


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One parsed entry: ``iterations`` is None for the ``$6$`` (plain SHA-512) form."""

    salt: bytes
    digest: bytes
    iterations: int | None

    def verify(self, password: bytes) -> bool:
        if self.iterations is None:
            computed = hashlib.sha512(password + self.salt).digest()
        else:
            computed = hashlib.pbkdf2_hmac("sha512", password, self.salt, self.iterations,
                                           len(self.digest))
        return hmac.compare_digest(computed, self.digest)

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        if self.iterations is None:
            return f"$6${salt}${digest}"
        return f"$7${self.iterations}${salt}${digest}"


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> PasswordHash:
    """A new ``$7$`` entry for ``password`` with a random salt, as mosquitto_passwd makes."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return PasswordHash(salt, digest, iterations)


def parse_hash(text: str) -> PasswordHash:
    """Parse the part after ``user:``; ValueError says what is wrong with it."""
    parts = text.split("$")
    # "$7$i$s$h" splits into ["", "7", i, s, h]; "$6$s$h" into ["", "6", s, h].
    if len(parts) == 5 and parts[:2] == ["", "7"]:
        if not parts[2].isdigit():
            raise ValueError(f"iteration count {parts[2]!r} is not a number")
        iterations = int(parts[2])
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"iteration count {iterations} outside 1..{MAX_ITERATIONS}")
        salt_text, digest_text = parts[3], parts[4]
    elif len(parts) == 4 and parts[:2] == ["", "6"]:
        iterations = None
        salt_text, digest_text = parts[2], parts[3]
    else:
        raise ValueError("not a $6$ or $7$ hash (plain-text passwords are not accepted; "
                         "write the file with roost passwd or mosquitto_passwd)")
    try:
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except binascii.Error:
        raise ValueError("salt or hash is not valid base64") from None
    if not salt or len(digest) != 64:
        raise ValueError("empty salt, or a hash that is not 64 bytes of SHA-512")
    return PasswordHash(salt, digest, iterations)


def parse_password_file(text: str, source: str) -> dict[str, PasswordHash]:
    """User name → hash; ConfigError names ``source`` and the line of any bad entry."""
    entries: dict[str, PasswordHash] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise ConfigError(f"{source}:{number}: expected user:hash")
        try:
            entries[user] = parse_hash(hashed)
        except ValueError as exc:
            raise ConfigError(f"{source}:{number}: user {user!r}: {exc}") from None
    return entries


def load_password_file(path: str | Path) -> dict[str, PasswordHash]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read password file: {exc}") from None
    return parse_password_file(text, str(path))


class PasswordFileAuthenticator:
    """Checks the user name and password of a client against a password file.

    A user the file does not name is left to the next method (ABSTAIN); a named user
    with a wrong or missing password is refused (DENY).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries = load_password_file(self.path)

    def reload(self) -> None:
        """Read the file again; on error the old entries stay and ConfigError is raised."""
        self._entries = load_password_file(self.path)

    def authenticate(self, event: ConnectEvent) -> Decision:
        if event.username is None:
            return Decision.ABSTAIN
        entry = self._entries.get(event.username)
        if entry is None:
            return Decision.ABSTAIN
        if event.password is None or not entry.verify(event.password):
            log.info("wrong password for user %r (client %s)", event.username,
                     event.client_id)
            return Decision.DENY
        return Decision.ALLOW


# -- Editing a file (roost passwd) -------------------------------------------------------


def check_username(username: str) -> None:
    """ValueError unless ``username`` can be stored in a password file."""
    if not username:
        raise ValueError("the user name is empty")
    if ":" in username:
        raise ValueError("a user name must not contain ':'")
    if any(ord(c) < 0x20 or c == "\x7f" for c in username) or username != username.strip():
        raise ValueError("a user name must not contain control characters or start or "
                         "end with white space")
    if len(username.encode("utf-8")) > 65535:
        raise ValueError("a user name must be at most 65535 bytes")


def set_entry(lines: list[str], username: str, entry: str | None) -> tuple[list[str], bool]:
    """Replace (or with ``entry`` None, remove) ``username``'s line, keeping the others
    as they are; a new user is appended. Returns the lines and whether the user existed."""
    out: list[str] = []
    found = False
    for line in lines:
        name, sep, _ = line.strip().partition(":")
        if sep and name == username and not line.lstrip().startswith("#"):
            found = True
            if entry is not None:
                out.append(f"{username}:{entry}")
            continue
        out.append(line)
    if not found and entry is not None:
        out.append(f"{username}:{entry}")
    return out, found


def write_lines(path: Path, lines: list[str]) -> None:
    """Write the file atomically (temp file, fsync, rename), readable by its owner only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
