"""Fixtures of the transport tests: client subprocesses (from the interop tests) and a
PKI made fresh for the session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import mosquitto_bins, spawn  # noqa: F401 - fixtures
from tests.transport.certs import CertificateAuthority, Issued


@dataclass
class Pki:
    dir: Path
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    server: Issued
    device: Issued
    device2: Issued
    expired: Issued
    stranger: Issued


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server certificate for 127.0.0.1/localhost and device certificates
    (two good, one expired), and a device certificate from another CA."""
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(d)
    other = CertificateAuthority(d, "Other CA")
    return Pki(d, ca, other, ca.issue("server", "localhost", server=True),
               ca.issue("device-1", "device-1"), ca.issue("device-2", "device-2"),
               ca.issue("expired", "device-old", expired=True),
               other.issue("stranger", "device-1"))
