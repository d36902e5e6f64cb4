"""The codec must stay pure: no I/O, no concurrency, no reaching into the rest of Roost."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import roost.mqtt

MQTT_DIR = Path(roost.mqtt.__file__).resolve().parent
REPO_ROOT = MQTT_DIR.parent.parent
FORBIDDEN_MODULES = {"asyncio", "socket", "selectors", "ssl", "threading"}


def _is_forbidden(module: str) -> bool:
    top = module.split(".")[0]
    if top in FORBIDDEN_MODULES:
        return True
    if module == "roost":
        return True
    return module.startswith("roost.") and not (
        module == "roost.mqtt" or module.startswith("roost.mqtt.")
    )


def forbidden_imports(source: str) -> list[str]:
    """Every module named by an absolute import in ``source`` that the codec must not use."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_forbidden(alias.name)]
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and _is_forbidden(node.module)):
            found.append(node.module)
    return found


def test_checker_catches_forbidden_imports() -> None:
    src = (
        "import asyncio\n"
        "import socket as s\n"
        "from selectors import DefaultSelector\n"
        "import ssl, threading\n"
        "from roost.engine import engine\n"
        "import roost.transport.tcp\n"
        "from roost import app\n"
        "def f():\n"
        "    import asyncio.streams\n"
    )
    assert forbidden_imports(src) == [
        "asyncio", "socket", "selectors", "ssl", "threading", "roost.engine",
        "roost.transport.tcp", "roost", "asyncio.streams",
    ]


def test_checker_allows_codec_and_stdlib_imports() -> None:
    src = (
        "import struct\n"
        "from collections.abc import Callable\n"
        "from roost.mqtt.errors import MalformedPacket\n"
        "import roost.mqtt.packets\n"
        "from . import topics\n"
        "import socketserverish\n"
    )
    assert forbidden_imports(src) == []


def test_codec_modules_import_nothing_impure() -> None:
    files = sorted(MQTT_DIR.rglob("*.py"))
    names = {f.name for f in files}
    assert {"__init__.py", "decoder.py", "encoder.py", "packets.py", "properties.py",
            "errors.py", "reason_codes.py", "topics.py"} <= names
    offenders = {
        str(f.relative_to(REPO_ROOT)): bad
        for f in files
        if (bad := forbidden_imports(f.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_importing_codec_does_not_load_asyncio() -> None:
    watched = sorted(FORBIDDEN_MODULES)
    code = (
        "import sys\n"
        "import roost.mqtt\n"
        f"print(sorted(m for m in {watched!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = ast.literal_eval(result.stdout.strip())
    assert "asyncio" not in loaded
    assert loaded == []
