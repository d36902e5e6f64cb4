"""Start the brokers compared by the benchmarks: Roost, Mosquitto and amqtt, on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


class Broker:
    def __init__(self, name: str, port: int, proc: subprocess.Popen[bytes], tmp: str) -> None:
        self.name, self.port, self.proc, self.tmp = name, port, proc, tmp

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_roost(config: str = "", source: Path = ROOT, name: str = "roost") -> Broker:
    """Roost from the source tree ``source`` (another checkout, for an A/B run)."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench-roost-")
    args = [sys.executable, "-m", "roost.cli", "serve", "--port", str(port),
            "--data-dir", f"{tmp}/data", "--http", ""]
    if config:
        Path(tmp, "roost.toml").write_text(config)
        args += ["--config", f"{tmp}/roost.toml"]
    proc = subprocess.Popen(args, cwd=source, stdout=subprocess.DEVNULL,
                            stderr=open(f"{tmp}/log", "wb"))  # noqa: SIM115
    _wait(port, proc, name)
    return Broker(name, port, proc, tmp)


def start_mosquitto(extra: str = "") -> Broker:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench-mosq-")
    conf = Path(tmp, "mosquitto.conf")
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"max_queued_messages 0\nmax_inflight_messages 0\n"
                    + extra.replace("{tmp}", tmp) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait(port, proc, "mosquitto")
    return Broker("mosquitto", port, proc, tmp)


def mosquitto_version() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0] if out else "mosquitto"


AMQTT_VERSION = "0.12.1"
AMQTT_VENV = ROOT / ".venv" / "amqtt-venv"


def ensure_amqtt(venv: Path = AMQTT_VENV) -> Path:
    """The ``amqtt`` command of a separate virtualenv (inside .venv, so gitignored),
    created and filled with the pinned amqtt on first use: never a Roost dependency."""
    exe = venv / "bin" / "amqtt"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        f"amqtt=={AMQTT_VERSION}"], check=True)
    return exe


def start_amqtt(venv: Path = AMQTT_VENV) -> Broker:
    """amqtt with one TCP listener on 127.0.0.1 and anonymous access, nothing else: no
    $SYS plugin, no event or packet logging."""
    exe = ensure_amqtt(venv)
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench-amqtt-")
    conf = Path(tmp, "amqtt.yaml")
    conf.write_text("listeners:\n  default:\n    type: tcp\n"
                    f"    bind: 127.0.0.1:{port}\n"
                    "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                    "    allow_anonymous: true\n")
    proc = subprocess.Popen([str(exe), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(f"{tmp}/log", "wb"))  # noqa: SIM115
    _wait(port, proc, "amqtt")
    return Broker("amqtt", port, proc, tmp)
