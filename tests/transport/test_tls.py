"""TLS listeners: mosquitto_pub/sub with client certificates, refusals at the handshake,
start-up errors that name the file, and certificate reload on SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost.mqtt import Publish
from tests.broker import ROOT, BrokerProcess, Closed, RawClient, free_port
from tests.interop.conftest import (
    Spawn,
    mosquitto_messages,
    mosquitto_pub_args,
    mosquitto_sub_args,
)
from tests.transport.certs import Issued
from tests.transport.conftest import Pki
from tests.transport.helpers import tls_client, toml_listener, wait_for_log

pytestmark = pytest.mark.usefixtures("mosquitto_bins")


@dataclass
class TlsBroker:
    proc: BrokerProcess
    port: int        # require_certificate = "required", identity from the CN
    subject_port: int  # require_certificate = "optional", identity from the subject


@pytest.fixture(scope="module")
def tls_broker(pki: Pki) -> Iterator[TlsBroker]:
    port, subject_port = free_port(), free_port()
    common = {"certfile": pki.server.certfile, "keyfile": pki.server.keyfile,
              "cafile": pki.ca.certfile}
    config = (toml_listener(name="plain")
              + toml_listener(name="mtls", type="tls", port=port, require_certificate="required",
                              identity_from_certificate="cn", **common)
              + toml_listener(name="subject", type="tls", port=subject_port,
                              require_certificate="optional",
                              identity_from_certificate="subject", **common))
    with BrokerProcess(config) as proc:
        yield TlsBroker(proc, port, subject_port)


def tls_args(pki: Pki, device: Issued | None) -> list[str]:
    args = ["--cafile", str(pki.ca.certfile)]
    if device is not None:
        args += ["--cert", str(device.certfile), "--key", str(device.keyfile)]
    return args


def test_device_certificates_pub_sub_and_cn_is_the_user_name(spawn: Spawn, pki: Pki,
                                                              tls_broker: TlsBroker) -> None:
    sub = spawn(mosquitto_sub_args(tls_broker.port, "tls/a", 1, 4, 1, "-i", "tls-sub",
                                   *tls_args(pki, pki.device)))
    sub.wait_for(lambda line: line.startswith("Subscribed"), "mosquitto_sub SUBACK")
    spawn(mosquitto_pub_args(tls_broker.port, "tls/a", 1, 5, "-i", "tls-pub", "-m", "hello",
                             *tls_args(pki, pki.device2))).finish_ok()
    sub.finish_ok()
    assert [m["payload"] for m in mosquitto_messages(sub)] == ["hello"]
    wait_for_log(tls_broker.proc, r"on mtls: certificate identity 'device-1' \(TLS client")
    wait_for_log(tls_broker.proc, r"on mtls: certificate identity 'device-2' \(TLS client")
    wait_for_log(tls_broker.proc, r"connected tls-pub \(127\.0\.0\.1:\d+\) level 5")


@pytest.mark.parametrize("who", ["expired", "stranger", "none"])
def test_bad_or_missing_client_certificate_is_refused(spawn: Spawn, pki: Pki,
                                                      tls_broker: TlsBroker, who: str) -> None:
    device = {"expired": pki.expired, "stranger": pki.stranger, "none": None}[who]
    before = len(tls_broker.proc.log())
    pub = spawn(mosquitto_pub_args(tls_broker.port, "tls/refused", 0, 4, "-i", f"tls-{who}",
                                   "-m", "x", *tls_args(pki, device)))
    assert pub.finish() != 0, pub.describe()
    why = {"expired": "certificate has expired", "stranger": "unable to get local issuer",
           "none": "peer did not return a certificate"}[who]
    wait_for_log(tls_broker.proc, rf"closing 127\.0\.0\.1:\d+ on mtls: TLS handshake: .*{why}",
                 after=before)
    assert f"connected tls-{who}" not in tls_broker.proc.log()


def test_subject_identity_and_optional_certificate(pki: Pki, tls_broker: TlsBroker) -> None:
    with_cert = tls_client(tls_broker.subject_port, pki.ca.certfile, pki.device.certfile,
                             pki.device.keyfile)
    assert with_cert.connect("subj-1").reason_code == 0
    wait_for_log(tls_broker.proc, r"on subject: certificate identity "
                 r"'CN=device-1,O=Roost Tests' \(TLS client certificate\)")
    # "optional": no certificate is fine, a bad one is not.
    without = tls_client(tls_broker.subject_port, pki.ca.certfile)
    assert without.connect("subj-2").reason_code == 0
    with pytest.raises((ssl.SSLError, Closed, ConnectionResetError)):
        bad = tls_client(tls_broker.subject_port, pki.ca.certfile, pki.stranger.certfile,
                           pki.stranger.keyfile)
        bad.connect("subj-3")
    for c in (with_cert, without):
        c.disconnect()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_below_1_2_is_refused(pki: Pki, tls_broker: TlsBroker) -> None:
    before = len(tls_broker.proc.log())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca.certfile))
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", tls_broker.subject_port), timeout=5) as raw, \
            pytest.raises((ssl.SSLError, ConnectionResetError)):
        ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    wait_for_log(tls_broker.proc, r"on subject: TLS handshake: unsupported protocol",
                 after=before)


def test_plain_mqtt_on_a_tls_port_is_closed(tls_broker: TlsBroker) -> None:
    c = RawClient(tls_broker.port)
    c.send_raw(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
    c.sock.settimeout(5)
    data = c.sock.recv(100)  # a TLS alert, then the close
    assert data[:1] in (b"\x15", b"")
    c.close()


# -- Start-up errors ----------------------------------------------------------------


def start_with(tmp_path: Path, listener: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "roost.toml"
    cfg.write_text(toml_listener(name="plain", port=free_port()) + listener)
    return subprocess.run([sys.executable, "-m", "roost.cli", "serve", "--config", str(cfg),
                           "--http", "", "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_missing_certificate_file_stops_start_up(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nope.crt"
    out = start_with(tmp_path, toml_listener(type="tls", port=free_port(), certfile=missing,
                                             keyfile=pki.server.keyfile))
    assert out.returncode != 0
    assert (f"{tmp_path / 'roost.toml'}: listeners[1].certfile: cannot load {missing}: "
            "No such file or directory") in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_bad_key_file_stops_start_up(tmp_path: Path, pki: Pki) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("this is not a key\n")
    out = start_with(tmp_path, toml_listener(type="wss", port=free_port(),
                                             certfile=pki.server.certfile, keyfile=bad))
    assert out.returncode != 0
    assert f"listeners[1].keyfile: cannot load {bad}: not a PEM file" in out.stderr, out.stderr
    # A key that does not belong to the certificate: OpenSSL cannot say which is wrong.
    out = start_with(tmp_path, toml_listener(type="tls", port=free_port(),
                                             certfile=pki.server.certfile,
                                             keyfile=pki.device.keyfile))
    assert out.returncode != 0
    assert "listeners[1].certfile/keyfile: cannot load" in out.stderr, out.stderr


# -- Reload on SIGHUP ---------------------------------------------------------------


def test_sighup_reloads_certificate_for_new_connections_only(tmp_path: Path, pki: Pki) -> None:
    certfile, keyfile = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki.server.certfile, certfile)
    shutil.copy(pki.server.keyfile, keyfile)
    port = free_port()
    config = toml_listener(name="plain") + toml_listener(
        name="tls", type="tls", port=port, certfile=certfile, keyfile=keyfile)
    with BrokerProcess(config) as broker:
        assert broker.proc is not None
        old = tls_client(port, pki.ca.certfile)
        assert old.server_serial() == pki.server.serial
        old.connect("reload-sub")
        old.subscribe("reload/t")

        renewed = pki.ca.issue("server-renewed", "localhost", server=True)
        shutil.copy(renewed.certfile, certfile)
        shutil.copy(renewed.keyfile, keyfile)
        os.kill(broker.proc.pid, signal.SIGHUP)
        wait_for_log(broker, r"listener tls: TLS certificate, key and CA reloaded")

        new = tls_client(port, pki.ca.certfile)
        assert new.server_serial() == renewed.serial
        new.connect("reload-pub")
        new.publish("reload/t", b"after reload")
        msg = old.expect(Publish)  # the connection made before the reload still works
        assert msg.payload == b"after reload"

        keyfile.write_text("garbage\n")
        mark = len(broker.log())
        os.kill(broker.proc.pid, signal.SIGHUP)
        wait_for_log(broker, r"listener tls: TLS reload failed, keeping the previous "
                     rf"certificate: .*listeners\[1\]\.keyfile: cannot load {keyfile}",
                     after=mark)
        third = tls_client(port, pki.ca.certfile)
        assert third.server_serial() == renewed.serial
        assert third.connect("reload-3").reason_code == 0
        for c in (old, new, third):
            c.disconnect()
        assert broker.returncode is None
