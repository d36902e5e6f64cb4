"""``roost bench``: an MQTT load generator in the manner of emqtt-bench.

It talks to any broker over sockets like devices do (TCP, TLS, WebSocket) and shares no
code path with Roost's broker; only the pure codec ``roost.mqtt`` is reused. Clients are
spread over worker processes and source addresses, each worker drives its clients from
one event loop, and the coordinator reports rates, loss and latency percentiles.
"""

from __future__ import annotations

import argparse
import sys

from roost.bench.options import BenchError, BenchOptions, add_arguments, options_from_args

__all__ = ["BenchError", "BenchOptions", "add_arguments", "main", "options_from_args", "run"]


def run(options: BenchOptions) -> dict[str, object]:
    """Run one benchmark; return its result (the JSON document)."""
    from roost.bench.runner import Coordinator

    return Coordinator(options).run()


def main(args: argparse.Namespace) -> int:
    """The ``roost bench`` subcommand; ``args`` come from a parser set up by
    ``add_arguments``. Returns the exit status."""
    from roost.bench.report import summary_text, write_json, write_plot

    try:
        options = options_from_args(args)
        if options.plot_path:
            try:
                import matplotlib  # noqa: F401
            except ImportError as exc:
                raise BenchError("--plot needs matplotlib: pip install 'roost[bench]'") from exc
        result = run(options)
    except BenchError as exc:
        print(f"roost bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("roost bench: interrupted", file=sys.stderr)
        return 130
    print(summary_text(result))
    if options.json_path:
        write_json(result, options.json_path)
    if options.plot_path:
        write_plot(result, options.plot_path)
    connections = result["connections"]
    assert isinstance(connections, dict)
    failed_all = connections["connected"] == 0
    return 1 if failed_all or result["errors"] else 0
