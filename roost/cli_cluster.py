"""The ``roost cluster`` subcommands' arguments and output; roost.cluster.launcher (imported
only when one runs, so the embedded broker never loads roost.cluster) does the work."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = "roost-cluster"


def add_parser(sub: Any) -> None:
    cluster = sub.add_parser(
        "cluster", help="run a local cluster: NATS, Roost nodes, HAProxy",
        description="A complete local cluster under one directory: see docs/cluster.md, "
                    "'A local cluster'.")
    actions = cluster.add_subparsers(dest="action", required=True)

    def with_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--dir", default=DEFAULT_DIR,
                            help=f"configs, data, logs and cluster.json (default "
                                 f"./{DEFAULT_DIR})")
        return parser

    up = with_dir(actions.add_parser("up", help="start NATS, the nodes and HAProxy"))
    up.add_argument("--nodes", type=int, default=3, help="Roost nodes (default 3)")
    up.add_argument("--nats", type=int, default=3, help="NATS servers (default 3)")
    up.add_argument("--port", type=int, default=1883,
                    help="HAProxy's MQTT port (default 1883)")
    up.add_argument("--host", default="127.0.0.1",
                    help="HAProxy's MQTT address (default 127.0.0.1)")
    with_dir(actions.add_parser("status", help="processes, readiness, connections"))
    scale = with_dir(actions.add_parser("scale", help="add nodes, or drain and remove "
                                                      "the newest ones"))
    scale.add_argument("count", type=int, help="the number of nodes wanted")
    with_dir(actions.add_parser("down", help="drain the nodes, stop HAProxy and NATS"))


def run(args: argparse.Namespace) -> int:
    from roost.cluster import launcher
    from roost.ctl import table

    directory = Path(args.dir)
    try:
        if args.action == "up":
            state = launcher.up(directory, nodes=args.nodes, nats=args.nats,
                                port=args.port, host=args.host)
            print(f"cluster up: MQTT on {state.host}:{state.port} (HAProxy), "
                  f"{len(state.nodes)} nodes, {len(state.nats)} NATS servers; "
                  f"logs in {state.path / 'logs'}")
        elif args.action == "status":
            rows = launcher.status(directory)
            print(table([{"kind": r.kind, "name": r.name, "pid": r.pid,
                          "alive": "yes" if r.alive else "no", "health": r.health,
                          "detail": r.detail} for r in rows],
                        [("kind", "KIND"), ("name", "NAME"), ("pid", "PID"),
                         ("alive", "ALIVE"), ("health", "HEALTH"), ("detail", "DETAIL")]))
            healthy = all(r.alive and r.health in ("ok", "ready", "accepting") for r in rows)
            return 0 if healthy else 1
        elif args.action == "scale":
            result = launcher.scale(directory, args.count)
            print(f"started: {', '.join(result.started) or '-'}; drained and stopped: "
                  f"{', '.join(result.stopped) or '-'}")
            if result.killed:
                print(f"roost cluster: {', '.join(result.killed)} did not exit within "
                      f"the drain grace period and were killed", file=sys.stderr)
        else:
            launcher.down(directory)
            print(f"cluster down; logs and data kept in {directory.resolve()}")
    except launcher.LauncherError as exc:
        print(f"roost cluster: {exc}", file=sys.stderr)
        return 1
    return 0
