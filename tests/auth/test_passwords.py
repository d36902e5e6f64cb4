"""Password files: parsing, verification, mosquitto_passwd compatibility both ways, and
the ``roost passwd`` command."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys

import pytest

from roost.auth.passwords import (
    PasswordFileAuthenticator,
    hash_password,
    parse_hash,
    parse_password_file,
)
from roost.config import ConfigError
from roost.engine.hooks import ConnectEvent, Decision

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto_passwd = pytest.mark.skipif(MOSQUITTO_PASSWD is None,
                                            reason="mosquitto_passwd not installed")


def event(user: str | None, password: bytes | None) -> ConnectEvent:
    return ConnectEvent("c", user, password, "127.0.0.1:1", "default", 4)


def roost_passwd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roost.cli", "passwd", *args],
                          input=stdin, capture_output=True, text=True, timeout=30)


def test_pbkdf2_entry_round_trip():
    h = hash_password("s3cret")
    text = h.encode()
    assert text.startswith("$7$101$")
    salt = base64.b64decode(text.split("$")[3])
    assert len(salt) == 12
    parsed = parse_hash(text)
    assert parsed.verify(b"s3cret") and not parsed.verify(b"s3cre") and not parsed.verify(b"")
    # Two hashes of one password differ: the salt is random.
    assert hash_password("s3cret").encode() != text


def test_sha512_entry():
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"pw" + salt).digest()
    h = parse_hash(f"$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
    assert h.iterations is None
    assert h.verify(b"pw") and not h.verify(b"pW")


def test_known_mosquitto_entry():
    # Written by mosquitto_passwd 2.0.11 for password "secret".
    line = ("alice:$7$101$kHzkd4y5e3yjK2Uy$kGbUkxeNnAQZ096A0oKgQlRcta10nlo6cp4Ef1SENlv8cp0j"
            "2g6Bcdd8OYqns+nJ2BvfXjchw1rx5/5Lt+tUew==")
    entries = parse_password_file(line, "pw")
    assert entries["alice"].verify(b"secret")


@pytest.mark.parametrize("entry, message", [
    ("bob", "expected user:hash"),
    (":$7$1$AAAA$AAAA", "expected user:hash"),
    ("bob:plaintext", "not a $6$ or $7$ hash"),
    ("bob:$7$x$AAAA$AAAA", "not a number"),
    ("bob:$7$0$AAAA$AAAA", "outside"),
    ("bob:$7$101$!!$AAAA", "not valid base64"),
    ("bob:$6$AAAA$AAAA", "not 64 bytes"),
    ("bob:$5$AAAA$AAAA", "not a $6$ or $7$ hash"),
])
def test_bad_entries_name_file_and_line(entry, message):
    with pytest.raises(ConfigError) as exc:
        parse_password_file(f"# users\n\n{entry}\n", "pw.txt")
    assert str(exc.value).startswith("pw.txt:3: ")
    assert message in str(exc.value)


def test_authenticator_allows_denies_and_abstains(tmp_path):
    path = tmp_path / "pw"
    path.write_text(f"alice:{hash_password('pw1').encode()}\n")
    auth = PasswordFileAuthenticator(path)
    assert auth.authenticate(event("alice", b"pw1")) is Decision.ALLOW
    assert auth.authenticate(event("alice", b"pw2")) is Decision.DENY
    assert auth.authenticate(event("alice", None)) is Decision.DENY
    assert auth.authenticate(event("bob", b"pw1")) is Decision.ABSTAIN
    assert auth.authenticate(event(None, None)) is Decision.ABSTAIN
    path.write_text(f"bob:{hash_password('pw3').encode()}\n")
    auth.reload()
    assert auth.authenticate(event("alice", b"pw1")) is Decision.ABSTAIN
    assert auth.authenticate(event("bob", b"pw3")) is Decision.ALLOW
    path.write_text("broken\n")
    with pytest.raises(ConfigError):
        auth.reload()
    assert auth.authenticate(event("bob", b"pw3")) is Decision.ALLOW  # old entries kept


@needs_mosquitto_passwd
@pytest.mark.parametrize("algorithm", ["sha512-pbkdf2", "sha512"])
def test_mosquitto_passwd_files_are_read(tmp_path, algorithm):
    path = tmp_path / "pw"
    subprocess.run([MOSQUITTO_PASSWD, "-H", algorithm, "-c", "-b", str(path), "ann", "a1"],
                   check=True)
    subprocess.run([MOSQUITTO_PASSWD, "-H", algorithm, "-b", str(path), "bo", "b:2 x"],
                   check=True)
    auth = PasswordFileAuthenticator(path)
    assert auth.authenticate(event("ann", b"a1")) is Decision.ALLOW
    assert auth.authenticate(event("bo", b"b:2 x")) is Decision.ALLOW
    assert auth.authenticate(event("bo", b"a1")) is Decision.DENY


# -- roost passwd ------------------------------------------------------------------------

def test_passwd_create_add_change_delete(tmp_path):
    path = tmp_path / "pw"
    assert roost_passwd("-c", str(path), "ann", "--password", "one").returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert roost_passwd(str(path), "bob", stdin="two\n").returncode == 0
    auth = PasswordFileAuthenticator(path)
    assert auth.authenticate(event("ann", b"one")) is Decision.ALLOW
    assert auth.authenticate(event("bob", b"two")) is Decision.ALLOW
    assert roost_passwd(str(path), "ann", "--password", "uno").returncode == 0
    assert roost_passwd("-D", str(path), "bob").returncode == 0
    auth.reload()
    assert auth.authenticate(event("ann", b"uno")) is Decision.ALLOW
    assert auth.authenticate(event("bob", b"two")) is Decision.ABSTAIN
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == ["ann"]
    # -c starts over.
    assert roost_passwd("-c", str(path), "cy", "--password", "3").returncode == 0
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == ["cy"]


def test_passwd_keeps_comments_and_other_lines(tmp_path):
    path = tmp_path / "pw"
    path.write_text(f"# fleet\nann:{hash_password('a').encode()}\n")
    assert roost_passwd(str(path), "bob", "--password", "b").returncode == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "# fleet" and lines[1].startswith("ann:$7$")
    assert lines[2].startswith("bob:$7$101$")


@pytest.mark.parametrize("args, stdin, message", [
    (["missing", "ann", "--password", "x"], None, "no such file"),
    (["-D", "pw", "nobody"], None, "not found"),
    (["pw", "a:b", "--password", "x"], None, "must not contain ':'"),
    (["pw", "ann"], "\n", "empty password"),
    (["pw", "ann", "-I", "0", "--password", "x"], None, "iterations"),
])
def test_passwd_errors(tmp_path, args, stdin, message):
    (tmp_path / "pw").write_text(f"ann:{hash_password('a').encode()}\n")
    args = [str(tmp_path / a) if a in ("pw", "missing") else a for a in args]
    out = roost_passwd(*args, stdin=stdin)
    assert out.returncode == 1
    assert message in out.stderr
    assert (tmp_path / "pw").read_text().startswith("ann:")


MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_mosquitto_accepts_a_file_written_by_roost_passwd(tmp_path):
    """The other direction: Mosquitto itself logs in a user that roost passwd wrote."""
    import socket
    import time

    from roost.mqtt.reason_codes import ReasonCode
    from tests.broker import RawClient, free_port

    path = tmp_path / "pw"
    assert roost_passwd("-c", str(path), "ann", "--password", "a-pass").returncode == 0
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # "user root": started as root, Mosquitto would otherwise switch to its own user,
    # which cannot read a file in pytest's private temp directory.
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {path}\n")
    proc = subprocess.Popen([str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)
        for password, accepted in ((b"a-pass", True), (b"wrong", False)):
            c = RawClient(port, 5)
            code = c.connect("roost-file", username="ann", password=password).reason_code
            assert (code == ReasonCode.SUCCESS) is accepted, code
            c.close()
    finally:
        proc.terminate()
        proc.wait(5)
