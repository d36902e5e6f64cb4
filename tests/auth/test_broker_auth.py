"""Authentication and ACLs end to end: a real broker process configured with a password
file (written by mosquitto_passwd and by roost passwd), JWT keys and an ACL file, and
raw MQTT 3.1.1 / 5.0 clients over TCP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost.mqtt import Publish, ReasonCode, Will
from roost.mqtt.packets import Connack, Puback, Pubrec
from tests.auth.keys import KeyPair
from tests.broker import BrokerProcess, Closed, RawClient, free_port

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto_passwd = pytest.mark.skipif(MOSQUITTO_PASSWD is None,
                                            reason="mosquitto_passwd not installed")

ACL = """\
# Clients without a user name.
topic read public/#
pattern readwrite devices/%c/#
pattern read inbox/%u/#

user rp
topic readwrite rp/#
topic deny rp/secret
topic write public/#
topic write $SYS/rp

user admin
topic readwrite #
topic read $SYS/broker/#

user mosq
topic readwrite mosq/#

user mosq6
topic read mosq/#
"""

DEVICE = KeyPair("ec")
DEVICE_RSA = KeyPair("rsa")
STRANGER = KeyPair("ec")
AUDIENCE = "roost-test"


def roost_passwd(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "roost.cli", "passwd", *args], check=True,
                   capture_output=True, timeout=30)


@dataclass
class Setup:
    broker: BrokerProcess
    closed_port: int
    files: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    files = tmp_path_factory.mktemp("auth")
    pw = files / "passwords"
    roost_passwd("-c", str(pw), "rp", "--password", "rp-pass")
    roost_passwd(str(pw), "admin", "--password", "admin-pass")
    if MOSQUITTO_PASSWD:
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), "mosq", "mosq-pass"], check=True)
        subprocess.run([MOSQUITTO_PASSWD, "-H", "sha512", "-b", str(pw), "mosq6",
                        "mosq6-pass"], check=True)
    (files / "acl").write_text(ACL)
    keys = files / "keys"
    keys.mkdir()
    DEVICE.write(keys / "dev-1.pem")
    DEVICE_RSA.write(keys / "dev-rsa.pem")
    STRANGER.write(keys / "dev-2.pem")
    closed_port = free_port()
    config = f"""
[[listeners]]
name = "local"
[[listeners]]
name = "closed"
port = {closed_port}
allow_anonymous = false

[auth]
password_file = "{pw}"
acl_file = "{files / 'acl'}"
jwt_keys = "{keys}"
jwt_audience = "{AUDIENCE}"
"""
    with BrokerProcess(config) as broker:
        yield Setup(broker, closed_port, files)


@pytest.fixture
def connect(setup: Setup) -> Iterator[Callable[..., tuple[RawClient, Connack]]]:
    made: list[RawClient] = []

    def make(client_id: str, level: int = 5, closed: bool = False,
             **kw: object) -> tuple[RawClient, Connack]:
        c = RawClient(setup.closed_port if closed else setup.broker.port, level)
        made.append(c)
        return c, c.connect(client_id, **kw)

    yield make
    for c in made:
        c.close()


LEVELS = pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])


# -- Passwords -------------------------------------------------------------------------

@LEVELS
def test_roost_passwd_user_accepted_and_wrong_password_refused(connect, level):
    _, ack = connect(f"rp-ok-{level}", level, username="rp", password=b"rp-pass")
    assert ack.reason_code == ReasonCode.SUCCESS
    c, ack = connect(f"rp-bad-{level}", level, username="rp", password=b"nope")
    # 5.0: 0x86; 3.1.1: return code 4 (decoded to the same name).
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    c.expect_closed()


@needs_mosquitto_passwd
@LEVELS
@pytest.mark.parametrize("user", ["mosq", "mosq6"], ids=["pbkdf2", "sha512"])
def test_mosquitto_passwd_users_accepted(connect, level, user):
    _, ack = connect(f"{user}-{level}", level, username=user, password=f"{user}-pass".encode())
    assert ack.reason_code == ReasonCode.SUCCESS
    _, ack = connect(f"{user}-x-{level}", level, username=user, password=b"rp-pass")
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


@LEVELS
def test_user_name_is_never_let_in_unverified(connect, level):
    # The listener allows anonymous clients, but a password file is configured.
    _, ack = connect(f"ghost-{level}", level, username="ghost", password=b"x")
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    _, ack = connect(f"ghost2-{level}", level, username="ghost")
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    _, ack = connect(f"anon-{level}", level)
    assert ack.reason_code == ReasonCode.SUCCESS


@LEVELS
def test_anonymous_refused_on_closed_listener_but_users_accepted(connect, level):
    _, ack = connect(f"anon-c-{level}", level, closed=True)
    assert ack.reason_code == ReasonCode.NOT_AUTHORIZED
    _, ack = connect(f"rp-c-{level}", level, closed=True, username="rp", password=b"rp-pass")
    assert ack.reason_code == ReasonCode.SUCCESS


# -- JWT -------------------------------------------------------------------------------

def forged_hs256() -> bytes:
    now = int(time.time())

    def part(obj: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")

    signing = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(
        {"iat": now, "exp": now + 600, "aud": AUDIENCE})
    sig = hmac.new(DEVICE.public_pem, signing, hashlib.sha256).digest()
    return signing + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")


@LEVELS
def test_jwt_login(connect, level):
    # 3.1.1 cannot send a password without a user name; devices send any name.
    user = "device" if level == 4 else None
    token = DEVICE.token(aud=AUDIENCE)
    _, ack = connect("dev-1", level, username=user, password=token)
    assert ack.reason_code == ReasonCode.SUCCESS
    _, ack = connect("dev-rsa", level, username=user,
                     password=DEVICE_RSA.token(aud=AUDIENCE))
    assert ack.reason_code == ReasonCode.SUCCESS
    # The JWT-authenticated device gets its %c pattern.
    c, _ = connect("dev-1", level, username=user, password=token)
    c.publish("devices/dev-1/state", b"on", qos=1)
    assert not c.expect(Puback).reason_code.is_error
    c.publish("devices/dev-2/state", b"on", qos=1, packet_id=2)
    assert c.expect(Puback).reason_code == (
        ReasonCode.NOT_AUTHORIZED if level == 5 else ReasonCode.SUCCESS)


@LEVELS
@pytest.mark.parametrize("case", ["expired", "other key", "wrong audience", "no audience",
                                  "future iat", "HS256 forged", "garbage"])
def test_jwt_refused(connect, level, case):
    now = int(time.time())
    token = {
        "expired": lambda: DEVICE.token(aud=AUDIENCE, iat=now - 7200, exp=now - 3600),
        "other key": lambda: STRANGER.token(aud=AUDIENCE),
        "wrong audience": lambda: DEVICE.token(aud="elsewhere"),
        "no audience": lambda: DEVICE.token(),
        "future iat": lambda: DEVICE.token(aud=AUDIENCE, iat=now + 3600, exp=now + 7200),
        "HS256 forged": forged_hs256,
        "garbage": lambda: b"x.y.z",
    }[case]()
    c, ack = connect("dev-1", level, username="device" if level == 4 else None,
                     password=token)
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    c.expect_closed()


def test_token_for_one_device_fails_for_another(connect):
    _, ack = connect("dev-2", 5, password=DEVICE.token(aud=AUDIENCE))
    assert ack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD


# -- ACL -------------------------------------------------------------------------------

def login(connect: Callable[..., tuple[RawClient, Connack]], client_id: str,
          user: str | None, level: int = 5) -> RawClient:
    password = {"rp": b"rp-pass", "admin": b"admin-pass"}.get(user or "")
    c, ack = connect(client_id, level, username=user, password=password)
    assert ack.reason_code == ReasonCode.SUCCESS, ack
    return c


def received(c: RawClient, wait: float = 0.4) -> list[str]:
    got = []
    while True:
        try:
            p = c.recv(wait)
        except TimeoutError:
            c.sock.settimeout(5.0)
            return got
        if isinstance(p, Publish):
            got.append(p.topic)


def test_publish_denied_v5_puback_and_pubrec_0x87(connect):
    watcher = login(connect, "acl-watch-1", "admin")
    watcher.subscribe("rp/#")
    c = login(connect, "acl-rp-1", "rp")
    c.publish("rp/secret", b"x", qos=1, packet_id=1)
    assert c.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED
    c.publish("elsewhere/x", b"x", qos=2, packet_id=2)
    assert c.expect(Pubrec).reason_code == ReasonCode.NOT_AUTHORIZED
    c.publish("rp/ok", b"x", qos=1, packet_id=3)
    assert c.expect(Puback).reason_code == ReasonCode.SUCCESS
    assert received(watcher) == ["rp/ok"]


def test_publish_denied_v311_acknowledged_and_dropped(connect):
    watcher = login(connect, "acl-watch-2", "admin")
    watcher.subscribe("#")
    c = login(connect, "acl-rp-2", "rp", level=4)
    c.publish("rp/secret", b"x", qos=1, packet_id=1)
    assert c.expect(Puback).reason_code == ReasonCode.SUCCESS
    c.publish("rp/fine", b"x", qos=1, packet_id=2)
    c.expect(Puback)
    assert received(watcher) == ["rp/fine"]


@LEVELS
def test_subscribe_denied(connect, level):
    c = login(connect, f"acl-sub-{level}", "rp", level)
    denied = ReasonCode.NOT_AUTHORIZED if level == 5 else ReasonCode.UNSPECIFIED_ERROR
    assert c.subscribe("other/#").reason_codes == [denied]
    assert c.subscribe("rp/secret", packet_id=2).reason_codes == [denied]
    assert c.subscribe("rp/+", packet_id=3).reason_codes == [ReasonCode.SUCCESS]


def test_every_rule_type_over_the_wire(connect):
    admin = login(connect, "acl-admin-3", "admin")
    admin.subscribe("#")
    anon = login(connect, "acl-anon-3", None)
    rp = login(connect, "acl-rp-3", "rp")
    # Anonymous section: read public/#; no write there.
    assert anon.subscribe("public/#").reason_codes == [ReasonCode.SUCCESS]
    anon.publish("public/x", b"", qos=1, packet_id=1)
    assert anon.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED
    # User section: write-only public/# for rp (no read), readwrite rp/#.
    assert rp.subscribe("public/#").reason_codes == [ReasonCode.NOT_AUTHORIZED]
    rp.publish("public/news", b"n", qos=1, packet_id=1)
    assert rp.expect(Puback).reason_code == ReasonCode.SUCCESS
    assert received(anon) == ["public/news"]
    # Pattern with %c: an anonymous client owns devices/<its id>/#, not another's.
    anon.publish("devices/acl-anon-3/t", b"", qos=1, packet_id=2)
    assert anon.expect(Puback).reason_code == ReasonCode.SUCCESS
    anon.publish("devices/other/t", b"", qos=1, packet_id=3)
    assert anon.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED
    # Pattern with %u: read inbox/<user>/#, and none at all without a user name.
    assert rp.subscribe("inbox/rp/#", packet_id=2).reason_codes == [ReasonCode.SUCCESS]
    assert rp.subscribe("inbox/admin/#", packet_id=3).reason_codes == [
        ReasonCode.NOT_AUTHORIZED]
    assert anon.subscribe("inbox/+/#", packet_id=4).reason_codes == [
        ReasonCode.NOT_AUTHORIZED]
    admin.publish("inbox/rp/1", b"", qos=0)
    admin.publish("inbox/admin/1", b"", qos=0)
    assert received(rp) == ["inbox/rp/1"]
    assert sorted(received(admin)) == ["devices/acl-anon-3/t", "inbox/admin/1",
                                       "inbox/rp/1", "public/news"]


@LEVELS
def test_wildcard_client_id_does_not_widen_a_pattern(connect, level):
    victim = login(connect, "victim", None, level)
    assert victim.subscribe("devices/victim/#").reason_codes == [ReasonCode.SUCCESS]
    for evil in ("+", "#", "devices/victim"):
        c = login(connect, evil, None, level)
        denied = ReasonCode.NOT_AUTHORIZED if level == 5 else ReasonCode.UNSPECIFIED_ERROR
        assert c.subscribe("devices/+/#").reason_codes == [denied]
        c.publish("devices/victim/cmd", b"boom", qos=1, packet_id=1)
        c.expect(Puback)
        c.close()
    assert received(victim) == []


def test_hash_never_grants_dollar_topics(connect):
    admin = login(connect, "acl-admin-4", "admin")
    # readwrite # does not reach $SYS; only the literal "$SYS/broker/#" read rule does.
    admin.publish("$SYS/broker/x", b"", qos=1, packet_id=1)
    assert admin.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED
    assert admin.subscribe("$other/#", packet_id=2).reason_codes == [
        ReasonCode.NOT_AUTHORIZED]
    # Last: the retained $SYS values follow this SUBACK.
    assert admin.subscribe("$SYS/#").reason_codes == [ReasonCode.SUCCESS]
    rp = login(connect, "acl-rp-4", "rp")
    # Named literally in the ACL, yet refused: $SYS is the broker's whatever the ACL
    # grants (as in Mosquitto; tests/conversations/test_reserved_topics.py).
    rp.publish("$SYS/rp", b"", qos=1, packet_id=1)
    assert rp.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED
    rp.publish("$SYS/broker/x", b"", qos=1, packet_id=2)
    assert rp.expect(Puback).reason_code == ReasonCode.NOT_AUTHORIZED


@LEVELS
def test_denied_will_refused_at_connect(connect, level):
    c, ack = connect(f"acl-will-{level}", level, username="rp", password=b"rp-pass",
                     will=Will("public/will", b"x", 0, False))
    # write public/# is granted to rp: accepted.
    assert ack.reason_code == ReasonCode.SUCCESS
    c, ack = connect(f"acl-will2-{level}", level, username="rp", password=b"rp-pass",
                     will=Will("rp/secret", b"x", 0, False))
    # 5.0: 0x87; 3.1.1: return code 5.
    assert ack.reason_code == ReasonCode.NOT_AUTHORIZED
    with pytest.raises(Closed):
        c.recv(2)


def test_retained_delivered_only_to_allowed_readers(connect):
    admin = login(connect, "acl-admin-5", "admin")
    admin.publish("rp/retained-secret", b"s", qos=1, retain=True, packet_id=1)
    admin.expect(Puback)
    admin.publish("public/retained", b"p", qos=1, retain=True, packet_id=2)
    admin.expect(Puback)
    anon = login(connect, "acl-anon-5", None)
    assert anon.subscribe("#").reason_codes == [ReasonCode.SUCCESS]
    assert received(anon) == ["public/retained"]
    rp = login(connect, "acl-rp-5", "rp")
    assert rp.subscribe("+/+").reason_codes == [ReasonCode.SUCCESS]
    assert received(rp) == ["rp/retained-secret"]
    for topic in ("rp/retained-secret", "public/retained"):
        admin.publish(topic, b"", qos=1, retain=True, packet_id=3)
        admin.expect(Puback)
    assert sorted(received(anon) + received(rp)) == ["public/retained",
                                                      "rp/retained-secret"]


def test_wildcard_subscription_delivers_only_readable_topics(connect):
    anon = login(connect, "acl-anon-6", None)
    assert anon.subscribe("#").reason_codes == [ReasonCode.SUCCESS]
    rp = login(connect, "acl-rp-6", "rp", level=4)
    assert rp.subscribe("#").reason_codes == [ReasonCode.SUCCESS]
    admin = login(connect, "acl-admin-6", "admin")
    for topic in ("public/live", "rp/live", "rp/secret", "devices/acl-anon-6/x",
                  "devices/other/x", "elsewhere"):
        admin.publish(topic, b"", qos=1, packet_id=1)
        admin.expect(Puback)
    assert received(anon) == ["public/live", "devices/acl-anon-6/x"]
    assert received(rp) == ["rp/live"]


# -- A session changing hands across a restart ----------------------------------------

def test_restored_session_checked_against_its_next_owner(tmp_path):
    pw = tmp_path / "pw"
    roost_passwd("-c", str(pw), "rp", "--password", "rp-pass")
    roost_passwd(str(pw), "admin", "--password", "admin-pass")
    roost_passwd(str(pw), "other", "--password", "other-pass")
    (tmp_path / "acl").write_text(ACL)
    config = f'[auth]\npassword_file = "{pw}"\nacl_file = "{tmp_path / "acl"}"\n'
    with BrokerProcess(config) as broker:
        def connect(client_id: str, user: str, clean: bool = False) -> tuple[RawClient,
                                                                             Connack]:
            c = RawClient(broker.port, 4)
            return c, c.connect(client_id, clean=clean, username=user,
                                password=f"{user}-pass".encode())

        c, _ = connect("phone", "rp")
        c.subscribe("rp/#", qos=1)
        c.disconnect()
        broker.restart()
        admin, _ = connect("admin-r", "admin", clean=True)
        admin.publish("rp/a", b"1", qos=1, packet_id=1)
        admin.expect(Puback)
        # Someone else resumes "phone": neither the subscription nor the queued message
        # follows the client id to them.
        other, ack = connect("phone", "other")
        assert ack.session_present
        assert received(other) == []
        admin.publish("rp/b", b"2", qos=1, packet_id=2)
        admin.expect(Puback)
        assert received(other) == []
        other.close()
        # rp itself resumes: the subscription was removed for good.
        rp, ack = connect("phone", "rp")
        assert ack.session_present
        assert received(rp) == []
