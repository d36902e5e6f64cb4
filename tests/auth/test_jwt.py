"""JWT login decisions, without a broker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest

from roost.auth.tokens import JwtAuthenticator
from roost.config import ConfigError
from roost.engine.hooks import ConnectEvent, Decision
from tests.auth.keys import KeyPair

EC = KeyPair("ec")
RSA = KeyPair("rsa")
OTHER = KeyPair("ec")


def login(auth: JwtAuthenticator, client_id: str, token: bytes | None,
          username: str | None = "unused") -> Decision:
    return auth.authenticate(ConnectEvent(client_id, username, token, "127.0.0.1:1",
                                          "default", 5))


@pytest.fixture
def keydir(tmp_path):
    EC.write(tmp_path / "dev-ec.pem")
    RSA.write(tmp_path / "dev-rsa.pem")
    return tmp_path


def test_valid_tokens_for_registered_keys(keydir):
    auth = JwtAuthenticator(keydir)
    assert login(auth, "dev-ec", EC.token()) is Decision.ALLOW
    assert login(auth, "dev-rsa", RSA.token()) is Decision.ALLOW
    assert login(auth, "dev-ec", EC.token(), username=None) is Decision.ALLOW


def test_client_without_key_is_left_to_the_next_method(keydir):
    auth = JwtAuthenticator(keydir)
    assert login(auth, "unknown", EC.token()) is Decision.ABSTAIN
    # Names that would reach outside the directory are never looked up.
    (keydir.parent / "outside.pem").write_bytes(EC.public_pem)
    for client_id in ("../outside", "sub/../../outside", ".hidden", "", "a\x00b"):
        assert login(auth, client_id, EC.token()) is Decision.ABSTAIN


@pytest.mark.parametrize("name, make", [
    ("expired", lambda: EC.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    ("iat in the future", lambda: EC.token(iat=int(time.time()) + 3600,
                                           exp=int(time.time()) + 7200)),
    ("no exp", lambda: EC.token(exp=None)),
    ("no iat", lambda: EC.token(iat=None)),
    ("another client's key", lambda: OTHER.token()),
    ("RSA token for an EC key", lambda: RSA.token()),
    ("garbage", lambda: b"not-a-token"),
    ("not ascii", lambda: "é".encode()),
    ("empty", lambda: b""),
    ("no password", lambda: None),
])
def test_bad_tokens_are_refused(keydir, name, make):
    assert login(JwtAuthenticator(keydir), "dev-ec", make()) is Decision.DENY, name


def test_token_of_one_client_fails_for_another(keydir):
    OTHER.write(keydir / "dev-other.pem")
    auth = JwtAuthenticator(keydir)
    assert login(auth, "dev-other", EC.token()) is Decision.DENY
    assert login(auth, "dev-ec", OTHER.token()) is Decision.DENY


def test_small_clock_skew_is_tolerated(keydir):
    now = int(time.time())
    auth = JwtAuthenticator(keydir)
    assert login(auth, "dev-ec", EC.token(iat=now + 20)) is Decision.ALLOW
    assert login(auth, "dev-ec", EC.token(iat=now - 100, exp=now - 20)) is Decision.ALLOW


def _unsigned(header: dict[str, str], claims: dict[str, int]) -> bytes:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}.".encode()


def test_wrong_algorithms_are_refused(keydir):
    auth = JwtAuthenticator(keydir)
    now = int(time.time())
    claims = {"iat": now, "exp": now + 600}
    # "none": no signature at all.
    assert login(auth, "dev-ec", _unsigned({"alg": "none", "typ": "JWT"}, claims)) \
        is Decision.DENY
    # HS256 keyed with the public key's PEM text (the classic confusion attack).
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    sig = hmac.new(EC.public_pem, header + b"." + body, hashlib.sha256).digest()
    forged = header + b"." + body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")
    assert login(auth, "dev-ec", forged) is Decision.DENY
    # A valid ES256 token when only RS256 is allowed.
    rs_only = JwtAuthenticator(keydir, algorithms=("RS256",))
    assert login(rs_only, "dev-ec", EC.token()) is Decision.DENY
    assert login(rs_only, "dev-rsa", RSA.token()) is Decision.ALLOW
    # PS256 (allowed by the key type, not by the configuration).
    assert login(auth, "dev-rsa", jwt.encode(claims, RSA.private, algorithm="PS256").encode()) \
        is Decision.DENY


def test_audience(keydir):
    auth = JwtAuthenticator(keydir, audience="roost-prod")
    assert login(auth, "dev-ec", EC.token(aud="roost-prod")) is Decision.ALLOW
    assert login(auth, "dev-ec", EC.token(aud=["x", "roost-prod"])) is Decision.ALLOW
    assert login(auth, "dev-ec", EC.token(aud="roost-test")) is Decision.DENY
    assert login(auth, "dev-ec", EC.token()) is Decision.DENY
    # Without a configured audience, "aud" is not checked.
    assert login(JwtAuthenticator(keydir), "dev-ec", EC.token(aud="any")) is Decision.ALLOW


def test_single_key_file_requires_sub_to_name_the_client(tmp_path):
    auth = JwtAuthenticator(EC.write(tmp_path / "fleet.pem"))
    assert login(auth, "dev-1", EC.token(sub="dev-1")) is Decision.ALLOW
    assert login(auth, "dev-2", EC.token(sub="dev-1")) is Decision.DENY
    assert login(auth, "dev-1", EC.token()) is Decision.DENY
    assert login(auth, "dev-1", OTHER.token(sub="dev-1")) is Decision.DENY


def test_certificate_file_is_a_key(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-cert")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(EC.private.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(EC.private, hashes.SHA256()))
    (tmp_path / "dev-cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    assert login(JwtAuthenticator(tmp_path), "dev-cert", EC.token()) is Decision.ALLOW


def test_key_files_changed_at_run_time(keydir):
    auth = JwtAuthenticator(keydir)
    assert login(auth, "dev-new", OTHER.token()) is Decision.ABSTAIN
    OTHER.write(keydir / "dev-new.pem")
    assert login(auth, "dev-new", OTHER.token()) is Decision.ALLOW
    # Replaced key: the old token no longer works.
    EC.write(keydir / "dev-new.pem")
    st = os.stat(keydir / "dev-new.pem")
    os.utime(keydir / "dev-new.pem", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert login(auth, "dev-new", OTHER.token()) is Decision.DENY
    # Removed key: the client is no longer known.
    (keydir / "dev-new.pem").unlink()
    assert login(auth, "dev-new", EC.token()) is Decision.ABSTAIN
    # An unusable file refuses nobody else and logs in no one.
    (keydir / "dev-bad.pem").write_text("not a key")
    assert login(auth, "dev-bad", EC.token()) is Decision.ABSTAIN


def test_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read JWT keys"):
        JwtAuthenticator(tmp_path / "missing.pem")
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        JwtAuthenticator(tmp_path / "bad.pem")
    with pytest.raises(ConfigError, match="jwt_algorithms"):
        JwtAuthenticator(tmp_path, algorithms=("HS256",))
    with pytest.raises(ConfigError, match="jwt_algorithms"):
        JwtAuthenticator(tmp_path, algorithms=())
