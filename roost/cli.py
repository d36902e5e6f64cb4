"""The ``roost`` command."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from roost import __version__, cli_cluster, ctl
from roost.auth import passwd_command
from roost.bench.options import add_arguments as add_bench_arguments
from roost.config import (
    ClusterConfig,
    Config,
    ConfigError,
    ListenerConfig,
    load,
    parse_host_port,
    parse_nats_urls,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="Roost MQTT broker")
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    serve.add_argument("--config", help="TOML config file (see docs/configuration.md)")
    serve.add_argument("--bind", help="address of the first listener (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port of the first listener (default 1883)")
    serve.add_argument("--data-dir", help="directory for durable state (default ./data)")
    serve.add_argument("--http", metavar="HOST:PORT",
                       help='operations endpoint (/metrics, /healthz, /readyz, /api/v1); '
                            'default 127.0.0.1:8080, "" disables it')
    serve.add_argument("--log-format", choices=("text", "json"),
                       help="log lines as text (default) or JSON objects")
    serve.add_argument("--cluster", metavar="URL[,URL...]",
                       help="cluster mode: NATS servers to join (nats://HOST:PORT,...), "
                            "replacing [cluster] urls; see docs/cluster.md")
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    passwd_command.add_parser(sub)
    ctl.add_parser(sub)
    cli_cluster.add_parser(sub)
    bench = sub.add_parser("bench", help="MQTT load generator (connections, rates, latency)",
                           description="Load-test an MQTT broker: see README, 'roost bench'.")
    add_bench_arguments(bench)
    return parser


def _apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    if args.data_dir:
        config = replace(config, data_dir=args.data_dir)
    if getattr(args, "http", None) is not None:
        if args.http == "":
            config = replace(config, http=replace(config.http, enabled=False))
        elif parse_host_port(args.http) is None:
            raise ConfigError(f'--http: expected HOST:PORT such as "127.0.0.1:8080" or "" '
                              f'to disable, got "{args.http}"')
        else:
            config = replace(config, http=replace(config.http, bind=args.http, enabled=True))
    if getattr(args, "cluster", None) is not None:
        urls = parse_nats_urls(args.cluster)
        if urls is None:
            raise ConfigError(f'--cluster: expected NATS URLs such as "nats://10.0.0.1:4222,'
                              f'nats://10.0.0.2:4222", got "{args.cluster}"')
        config = replace(config, cluster=replace(config.cluster or ClusterConfig(), urls=urls))
    if getattr(args, "log_format", None):
        config = replace(config, log=replace(config.log, format=args.log_format))
    if args.bind is not None or args.port is not None:
        first = config.listeners[0]
        if args.port is not None and not 0 <= args.port <= 65535:
            raise ConfigError(f"--port: expected a port from 0 to 65535, got {args.port}")
        first = replace(first, bind=args.bind if args.bind is not None else first.bind,
                        port=args.port if args.port is not None else first.port)
        config = replace(config, listeners=(first, *config.listeners[1:]))
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "passwd":
        return passwd_command.run(args)
    if args.command == "ctl":
        return ctl.run(args)
    if args.command == "cluster":
        return cli_cluster.run(args)
    if args.command == "bench":
        from roost.bench import main as bench_main

        return bench_main(args)
    try:
        if args.command == "check-config":
            config = load(args.file)
            print(f"{args.file}: ok ({len(config.listeners)} listener(s))")
            return 0
        config = load(args.config) if args.config else Config(listeners=(ListenerConfig(),))
        config = _apply_overrides(config, args)
    except ConfigError as exc:
        print(f"roost: config error: {exc}", file=sys.stderr)
        return 2
    from roost import logs

    logs.setup(config.log.level, config.log.format)
    from roost.app import run
    from roost.store.sqlite import StoreError

    try:
        run(config)
    except (OSError, StoreError, ConfigError) as exc:
        print(f"roost: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
