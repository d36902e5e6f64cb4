"""The layers of a node (shared/design.md): imports point downward only, and no module of
Roost imports itself back through others.

Every import statement counts — at module level, inside functions, under
``if TYPE_CHECKING:`` — because each one is coupling even when it is not run at import
time. The checks read the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import roost

ROOST_DIR = Path(roost.__file__).resolve().parent
REPO_ROOT = ROOST_DIR.parent

IO = ("asyncio", "socket", "ssl", "selectors", "uvloop")

# Each layer and the modules it must not import (its own modules always allowed).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "roost.mqtt": (*IO, "roost"),
    "roost.engine": (*IO, "sqlite3", "roost.transport", "roost.store", "roost.admin",
                     "roost.app", "roost.cli", "roost.auth", "roost.cluster", "roost.bridge",
                     "roost.rules"),
    "roost.store": ("roost.transport", "roost.admin", "roost.app", "roost.cli"),
    "roost.transport": ("roost.admin", "roost.app", "roost.cli"),
    "roost.admin": ("roost.app", "roost.cli"),
    # The backplane plugs into the engine's seams; the node's wiring is app.py's.
    "roost.cluster": ("roost.transport", "roost.admin", "roost.app", "roost.cli"),
    # The load generator talks MQTT over sockets; it may use the codec, not the broker.
    "roost.bench": ("roost.engine", "roost.transport", "roost.store", "roost.admin",
                    "roost.app"),
}

@dataclass(frozen=True, slots=True)
class Module:
    name: str
    source: str
    is_package: bool = False

    @property
    def package(self) -> str:
        """The package relative imports in this module start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def within(name: str, prefix: str) -> bool:
    """Whether module ``name`` is ``prefix`` or inside it."""
    return name == prefix or name.startswith(prefix + ".")


def imports(module: Module) -> Iterator[tuple[int, list[str]]]:
    """Each import statement's line and the absolute names it may load: ``import a.b``
    gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a module)."""
    for node in ast.walk(ast.parse(module.source)):
        if isinstance(node, ast.Import):
            yield node.lineno, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield node.lineno, [base, *(f"{base}.{a.name}" for a in node.names
                                        if a.name != "*")]


def layer_violations(module: Module) -> list[str]:
    """``module:line imports name`` for every statement importing what its layer must
    not."""
    layer = next((key for key in FORBIDDEN if within(module.name, key)), None)
    if layer is None:
        return []
    found = []
    for line, names in imports(module):
        bad = [name for name in names if not within(name, layer)
               and any(within(name, forbidden) for forbidden in FORBIDDEN[layer])]
        if bad:
            found.append(f"{module.name}:{line} imports {bad[0]}")
    return found


def import_graph(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    """Which modules of ``modules`` each one imports. ``from a import b`` counts as an
    import of ``a.b`` when that is a module, else of ``a``; a name that is not a module
    counts as its nearest enclosing one. Implicit imports of enclosing packages (which
    Python runs first) are not edges."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        for _, names in imports(module):
            base, *members = names
            targets = {m if m in modules else base for m in members} or {base}
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module.name:
                    graph[module.name].add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def roost_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(ROOST_DIR.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path.read_text(encoding="utf-8"), is_package)
    return modules


# -- the checkers catch what they should ----------------------------------------------


def test_layer_checker_catches_every_kind_of_import() -> None:
    src = (
        "from __future__ import annotations\n"
        "import asyncio\n"
        "from typing import TYPE_CHECKING\n"
        "from roost.engine.message import Message\n"
        "from . import wheel\n"
        "from roost.mqtt import packets\n"
        "from roost import app\n"
        "import sqlite3, roost.store.sqlite\n"
        "from ..transport.tcp import MqttConnection\n"
        "if TYPE_CHECKING:\n"
        "    from roost.admin.node import Node\n"
        "def f():\n"
        "    import roost.cli\n"
        "def g():\n"
        "    from roost.auth import acl\n"
    )
    assert layer_violations(Module("roost.engine.fake", src)) == [
        "roost.engine.fake:2 imports asyncio",
        "roost.engine.fake:7 imports roost.app",
        "roost.engine.fake:8 imports sqlite3",
        "roost.engine.fake:9 imports roost.transport.tcp",
        "roost.engine.fake:11 imports roost.admin.node",
        "roost.engine.fake:13 imports roost.cli",
        "roost.engine.fake:15 imports roost.auth",
    ]


def test_layer_checker_applies_each_layers_own_rules() -> None:
    assert layer_violations(Module("roost.mqtt.fake", "from roost import app\n")) == [
        "roost.mqtt.fake:1 imports roost"]
    assert layer_violations(Module("roost.mqtt", "from . import packets\n", True)) == []
    assert layer_violations(Module("roost.bench.fake", "import roost.mqtt.packets\n"
                                   "from roost.engine import message\n")) == [
        "roost.bench.fake:2 imports roost.engine"]
    assert layer_violations(Module("roost.admin.fake", "from roost.engine import channel\n"
                                   "from .. import app\n")) == [
        "roost.admin.fake:2 imports roost.app"]
    assert layer_violations(Module("roost.cluster.fake", "from roost.engine import router\n"
                                   "from roost.transport import tcp\n")) == [
        "roost.cluster.fake:2 imports roost.transport"]
    assert layer_violations(Module("roost.engine.fake", "import roost.cluster.router\n")) \
        == ["roost.engine.fake:1 imports roost.cluster.router"]
    # The wiring at the top may import anything.
    assert layer_violations(Module("roost.app", "import asyncio\nfrom roost import cli\n")) \
        == []


def test_cycle_checker_finds_cycles_through_any_import() -> None:
    modules = {m.name: m for m in [
        Module("pkg", "", is_package=True),
        Module("pkg.a", "from pkg import b\n"),
        Module("pkg.b", "def f():\n    from .c import thing\n"),
        Module("pkg.c", "from typing import TYPE_CHECKING\n"
                        "if TYPE_CHECKING:\n    import pkg.a\n"),
        Module("pkg.d", "import pkg.a\nfrom pkg.e import x\n"),
        Module("pkg.e", "from . import d\n"),
        Module("pkg.f", "import pkg.f\nfrom pkg import missing\n"),
        Module("pkg.g", "from pkg import a, helper\nimport pkg.a.nothing\n"),
    ]}
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.f"] == {"pkg"}
    assert graph["pkg.g"] == {"pkg", "pkg.a"}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b", "pkg.c"}),
                             frozenset({"pkg.d", "pkg.e"})}


def test_the_checks_see_all_of_roost() -> None:
    modules = roost_modules()
    assert {"roost", "roost.app", "roost.mqtt", "roost.engine.channel",
            "roost.admin.http", "roost.bench.worker"} <= modules.keys()
    assert modules["roost.mqtt"].is_package
    graph = import_graph(modules)
    assert {"roost.engine.engine", "roost.admin.node"} <= graph["roost.app"]


# -- roost itself ----------------------------------------------------------------------


def test_imports_point_downward_only() -> None:
    found = [v for module in roost_modules().values() for v in layer_violations(module)]
    assert found == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(roost_modules())) == set()
