"""``roost ctl``: look at and act on a running broker through its HTTP endpoint.

Talks to the operations endpoint (``roost serve --http``, default 127.0.0.1:8080) with
the standard library's urllib; prints a table, or the JSON as received with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

DEFAULT_HTTP = "127.0.0.1:8080"


def add_parser(sub: Any) -> None:
    ctl = sub.add_parser("ctl", help="inspect and manage a running broker (HTTP endpoint)",
                         description="Talk to a running broker's operations endpoint.")
    ctl.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                     help=f"the broker's HTTP endpoint (default {DEFAULT_HTTP})")
    ctl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = ctl.add_subparsers(dest="action", required=True)
    actions.add_parser("clients", help="list connected clients")
    actions.add_parser("subscriptions", help="list subscriptions of all sessions")
    disconnect = actions.add_parser("disconnect", help="disconnect a client (5.0: reason "
                                    "0x98 administrative action)")
    disconnect.add_argument("client_id")


class CtlError(Exception):
    pass


def request(http: str, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
    """Call the endpoint; return the decoded JSON answer (raise CtlError on failure)."""
    url = f"http://{http}{path}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        raise CtlError(f"{url}: {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CtlError(f"cannot reach {url}: {reason}") from None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Rows as an aligned text table with the given (key, heading) columns."""
    cells = [[heading for _, heading in columns]]
    cells += [["-" if row.get(key) is None else str(row[key]) for key, _ in columns]
              for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in cells)


def _since(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "clients":
            data = request(args.http, "/api/v1/clients")
            if not args.json:
                for row in data:
                    row["since"] = _since(row.get("connected_since"))
                print(table(data, [("client_id", "CLIENT ID"), ("peer", "PEER"),
                                   ("protocol_level", "LEVEL"), ("listener", "LISTENER"),
                                   ("since", "CONNECTED SINCE"),
                                   ("subscriptions", "SUBSCRIPTIONS")]))
                return 0
        elif args.action == "subscriptions":
            data = request(args.http, "/api/v1/subscriptions")
            if not args.json:
                print(table(data, [("client_id", "CLIENT ID"), ("filter", "FILTER"),
                                   ("qos", "QOS"), ("online", "ONLINE")]))
                return 0
        else:
            data = request(args.http, f"/api/v1/clients/{quote(args.client_id, safe='')}"
                           "/disconnect", method="POST")
            if not args.json:
                print(f"disconnected {args.client_id}")
                return 0
    except CtlError as exc:
        print(f"roost ctl: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return 0
