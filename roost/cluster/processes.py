"""Detached processes and their HTTP endpoints, for the local cluster launcher
(``roost.cluster.launcher``): start one in its own session, tell whether it still runs
and is one of ours, stop it (with its process group), and poll its monitoring endpoint.
Linux: process checks read ``/proc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def alive(pid: int | None) -> bool:
    """Whether ``pid`` runs (a zombie does not; one of ours is reaped on the way)."""
    if pid is None:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill(0) is all we know
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def ours(pid: int | None, directory: Path) -> bool:
    """Whether ``pid`` runs and its command line names ``directory`` (every process
    the launcher starts has a path under it in its arguments)."""
    if not alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    return str(directory).encode() in cmdline


def spawn(args: list[str], log: Path, cwd: Path) -> int:
    """Start ``args`` detached (own session, so its process group is its pid), output
    appended to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return proc.pid


def send_signal(pid: int | None, sig: signal.Signals) -> None:
    if alive(pid):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_processes(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM ``pids``, wait up to ``timeout`` s for them to exit, SIGKILL (with their
    process groups) those still there; return the pids that had to be killed."""
    for pid in pids:
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [pid for pid in pids if alive(pid)]
    for pid in pids:
        kill_group(pid)
    deadline = time.monotonic() + 5.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def kill_group(pid: int) -> None:
    """SIGKILL the process group that ``spawn`` gave ``pid`` (HAProxy's workers are in
    it), if that group still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def processes_under(directory: Path) -> list[int]:
    """Pids of processes whose command line names a path under ``directory`` (Linux):
    what the cluster in it started, whatever ``cluster.json`` says."""
    needle = str(directory.resolve()).encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(proc.name)
        if needle in cmdline and pid != os.getpid() and alive(pid):
            found.append(pid)
    return found


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str) -> dict[str, Any]:
    data = json.loads(http_get(url)[1])
    if not isinstance(data, dict):
        raise ValueError(f"{url}: not a JSON object")
    return data


def accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True
