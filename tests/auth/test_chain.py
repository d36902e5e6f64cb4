"""The CONNECT chain built from ``[auth]``: order, certificate identities, and the
anonymous policy that never lets unverified credentials in once a checker exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.auth import (
    AclAuthorizer,
    CertificateAuthenticator,
    JwtAuthenticator,
    PasswordFileAuthenticator,
    build_authenticators,
    build_authorizers,
)
from roost.auth.passwords import hash_password
from roost.config import AuthConfig, ConfigError
from roost.engine.hooks import AnonymousPolicy, ConnectEvent, Decision, run_chain
from tests.auth.keys import KeyPair

OPEN = {"open": True, "closed": False}


def decide(chain, listener="open", user=None, password=None, client_id="c",
           certificate=None) -> Decision:
    return run_chain(chain, ConnectEvent(client_id, user, password, "1.2.3.4:5", listener,
                                         5, certificate))


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_text(f"ann:{hash_password('a').encode()}\n")
    return path


def test_no_auth_config_keeps_mosquitto_open_listener_behaviour():
    chain = build_authenticators(AuthConfig(), OPEN)
    assert [type(h) for h in chain] == [CertificateAuthenticator, AnonymousPolicy]
    assert decide(chain) is Decision.ALLOW
    assert decide(chain, user="anyone", password=b"x") is Decision.ALLOW
    assert decide(chain, "closed") is Decision.DENY
    assert decide(chain, "closed", user="anyone") is Decision.DENY
    assert build_authorizers(AuthConfig()) == []


def test_order_and_unverified_credentials(pw, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    device = KeyPair()
    device.write(keys / "dev.pem")
    chain = build_authenticators(AuthConfig(password_file=str(pw), jwt_keys=str(keys)), OPEN)
    assert [type(h) for h in chain] == [CertificateAuthenticator, PasswordFileAuthenticator,
                                        JwtAuthenticator, AnonymousPolicy]
    assert decide(chain, user="ann", password=b"a") is Decision.ALLOW
    assert decide(chain, "closed", user="ann", password=b"a") is Decision.ALLOW
    assert decide(chain, user="ann", password=b"b") is Decision.DENY
    assert decide(chain, client_id="dev", password=device.token()) is Decision.ALLOW
    assert decide(chain, client_id="dev", user="x", password=device.token()) is Decision.ALLOW
    # Credentials nobody verified never get in, even where anonymous clients may.
    assert decide(chain, user="ghost") is Decision.DENY
    assert decide(chain, user="ghost", password=b"x") is Decision.DENY
    assert decide(chain, password=b"x") is Decision.DENY
    # A client id with a registered key needs its token.
    assert decide(chain, client_id="dev") is Decision.DENY
    # No credentials at all: the listener's anonymous policy.
    assert decide(chain) is Decision.ALLOW
    assert decide(chain, "closed") is Decision.DENY


def test_verified_certificate_identity_is_enough(pw):
    chain = build_authenticators(AuthConfig(password_file=str(pw)), OPEN)
    # The TLS layer verified the certificate and made its CN the user name.
    assert decide(chain, "closed", user="dev-cn", certificate="dev-cn") is Decision.ALLOW
    assert decide(chain, "closed", user="dev-cn") is Decision.DENY


def test_acl_authorizer_built_and_bad_files_are_config_errors(pw, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read #\n")
    assert [type(a) for a in build_authorizers(AuthConfig(acl_file=str(acl)))] == [
        AclAuthorizer]
    acl.write_text("topic read #\nbogus line\n")
    with pytest.raises(ConfigError, match=r"acl:2: expected topic, pattern or user"):
        build_authorizers(AuthConfig(acl_file=str(acl)))
    pw.write_text("ann:plain\n")
    with pytest.raises(ConfigError, match=r"pw:1: user 'ann'"):
        build_authenticators(AuthConfig(password_file=str(pw)), OPEN)
    with pytest.raises(ConfigError, match="jwt_algorithms"):
        build_authenticators(AuthConfig(jwt_keys=str(tmp_path), jwt_algorithms=("none",)),
                             OPEN)


def test_broker_refuses_to_start_with_a_bad_acl_file(tmp_path):
    from tests.broker import BrokerProcess

    acl = tmp_path / "acl"
    acl.write_text("topic read a/#/b\n")
    broker = BrokerProcess(f'[auth]\nacl_file = "{acl}"\n')
    with pytest.raises(RuntimeError, match=r"acl:1: invalid topic filter"):
        broker.start()
    broker.stop()
