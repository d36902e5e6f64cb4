"""The result of a run: a JSON-ready dict, a text summary and a PNG plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from roost.bench.options import BenchOptions
from roost.bench.plan import WorkerPlan, role_counts
from roost.bench.records import Marks, Second, Totals, WorkerState
from roost.bench.stats import add_counts, latency_summary

FORMAT = 1
OPTION_FIELDS = ("host", "port", "clients", "rate", "msg_rate", "qos", "size", "topic",
                 "clean", "session_expiry", "keepalive", "protocol", "tls", "ws", "duration",
                 "inflight", "conns_per_worker", "conns_per_source")


class Run(Protocol):
    """A finished run, as the coordinator (``runner.Coordinator``) recorded it."""

    @property
    def o(self) -> BenchOptions: ...
    @property
    def plans(self) -> list[WorkerPlan]: ...
    @property
    def planned(self) -> int: ...
    @property
    def workers(self) -> Sequence[WorkerState]: ...
    @property
    def totals(self) -> Totals: ...
    @property
    def seconds(self) -> Sequence[Second]: ...
    @property
    def marks(self) -> Marks: ...
    @property
    def expected(self) -> int | None: ...
    @property
    def peak_open(self) -> int: ...
    @property
    def errors(self) -> list[str]: ...


def _rate(count: int, seconds: float | None) -> float:
    return round(count / seconds, 1) if seconds and seconds > 0 else 0.0


def _merged(c: Run, key: str) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for w in c.workers:
        if w.final:
            add_counts(out, w.final[key])
    return out


def build_result(c: Run) -> dict[str, Any]:
    """Everything the run measured, in plain JSON types."""
    o, t, m = c.o, c.totals, c.marks
    roles = role_counts(c.plans)
    finals = [w.final for w in c.workers if w.final]
    starts = [f["connect_started"] for f in finals if f["connect_started"]]
    ends = [f["connect_ended"] for f in finals if f["connect_ended"]]
    connect_seconds = (max(ends) - min(starts)) if starts and ends else None
    load_seconds = (m.stop - m.go) if m.go is not None and m.stop is not None else None
    receive_seconds = None
    if m.go is not None and m.last_received is not None:
        receive_seconds = max(m.last_received, m.stop or 0.0) - m.go
    received_from = _merged(c, "received_from")
    delivered = t.received - t.foreign
    if c.expected is not None:
        expected_by: dict[int, int] = {}
        sent_by: dict[int, int] = {}
        for w in c.workers:
            add_counts(expected_by, w.expecting)
            add_counts(sent_by, w.sent_by_pub)
        delivered = sum(min(received_from.get(pub, 0), n * expected_by.get(pub, 0))
                        for pub, n in sent_by.items())
        lost = max(0, c.expected - delivered)
    else:
        lost = t.gaps
    sources = {str(k): v for k, v in sorted(_merged(c, "sources").items())}
    return {
        "format": FORMAT,
        "scenario": o.scenario,
        "options": {k: getattr(o, k) for k in OPTION_FIELDS},
        "workers": len(c.plans),
        "sources": sources,
        "elapsed_s": round((m.end or m.start) - m.start, 3),
        "load_s": round(load_seconds, 3) if load_seconds is not None else None,
        "connections": {
            "planned": c.planned,
            "attempted": t.attempted,
            "connected": t.connected,
            "peak_open": c.peak_open,
            "failed": t.failed,
            "failure_reasons": _merged(c, "fail_reasons"),
            "disconnected": t.disconnected,
            "disconnect_reasons": _merged(c, "disconnect_reasons"),
            "seconds": round(connect_seconds, 3) if connect_seconds is not None else None,
            "rate_per_s": _rate(t.connected, connect_seconds),
            "latency_ms": latency_summary(t.connect_hist),
        },
        "messages": {
            "publishers": roles["pub"],
            "subscribers": roles["sub"],
            "sent": t.sent,
            "acked": t.acked,
            "publish_errors": t.pub_errors,
            "expected": c.expected,
            "received": t.received,
            "delivered": delivered,
            "lost": lost,
            "duplicates": t.duplicates,
            "foreign": t.foreign,
            "send_rate_per_s": _rate(t.sent, load_seconds),
            "receive_rate_per_s": _rate(t.received, receive_seconds),
        },
        "latency_ms": latency_summary(t.hist),
        "timeline": [
            {
                "t": row.t, "connected": row.open, "connects": row.connects,
                "failed": row.failed, "sent": row.sent, "acked": row.acked,
                "received": row.received,
                **({f"{k}_ms": v for k, v in latency_summary(row.hist).items()
                    if k in ("p50", "p90", "p99", "max")} if row.hist.count else {}),
            }
            for row in c.seconds
        ],
        "errors": c.errors,
    }


def summary_text(r: dict[str, Any]) -> str:
    """A few human-readable lines of the result."""
    conn, msg, lat = r["connections"], r["messages"], r["latency_ms"]
    lines = [
        f"roost bench {r['scenario']}: {r['workers']} worker(s), "
        f"{len(r['sources']) or 1} source address(es), {r['elapsed_s']:.1f} s",
        f"  connections  {conn['connected']:,}/{conn['planned']:,} connected, "
        f"{conn['failed']:,} failed, {conn['disconnected']:,} dropped, "
        f"{conn['rate_per_s']:,.0f}/s",
    ]
    if conn["failure_reasons"]:
        lines.append("  failures     " + ", ".join(f"{k}: {v}" for k, v in
                                                   sorted(conn["failure_reasons"].items())))
    parts = []
    if msg["publishers"]:
        parts.append(f"sent {msg['sent']:,} ({msg['send_rate_per_s']:,.0f}/s)")
        if r["options"]["qos"]:
            parts.append(f"acknowledged {msg['acked']:,}")
        if msg["publish_errors"]:
            parts.append(f"refused {msg['publish_errors']:,}")
    if msg["subscribers"]:
        expected = "" if msg["expected"] is None else f" of {msg['expected']:,} expected"
        parts += [f"received {msg['received']:,}{expected} "
                  f"({msg['receive_rate_per_s']:,.0f}/s)",
                  f"lost {msg['lost']:,}", f"duplicates {msg['duplicates']:,}"]
    if parts:
        lines.append("  messages     " + ", ".join(parts))
        if lat.get("count"):
            lines.append(f"  latency ms   p50 {lat['p50']:.3f}  p90 {lat['p90']:.3f}  "
                         f"p99 {lat['p99']:.3f}  max {lat['max']:.3f}  (n={lat['count']:,})")
    for err in r["errors"]:
        lines.append(f"  error        {err}")
    return "\n".join(lines)


def write_json(r: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(r, indent=2) + "\n")


def write_plot(r: dict[str, Any], path: str) -> None:
    """A PNG with message rates and connections (top) and latency (bottom) per second."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'roost[bench]'") from exc
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = r["timeline"]
    ts = [row["t"] for row in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    o = r["options"]
    fig.suptitle(f"roost bench {r['scenario']} -c {o['clients']:,}"
                 + ("" if r["scenario"] == "conn" else f", QoS {o['qos']}, {o['size']} B"))
    if r["scenario"] == "conn":
        top.plot(ts, [row["connected"] for row in rows], label="connected")
        top.set_ylabel("connections")
        top.legend(loc="upper left")
        bottom.plot(ts, [row["connects"] for row in rows], marker=".", label="connects/s")
        bottom.plot(ts, [row["failed"] for row in rows], marker=".", label="failures/s")
        bottom.set_ylabel("per second")
        bottom.legend(loc="upper left")
    else:
        _message_axes(top, bottom, rows, ts)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3, which="both")
    bottom.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _message_axes(top: Any, bottom: Any, rows: list[dict[str, Any]], ts: list[int]) -> None:
    top.plot(ts, [row["sent"] for row in rows], label="sent/s")
    top.plot(ts, [row["received"] for row in rows], label="received/s")
    top.set_ylabel("messages per second")
    conns = top.twinx()
    conns.plot(ts, [row["connected"] for row in rows], color="grey", linestyle="--",
               label="connected")
    conns.set_ylabel("connections")
    handles = top.get_legend_handles_labels()[0] + conns.get_legend_handles_labels()[0]
    top.legend(handles=handles, loc="upper left")
    timed = [row for row in rows if "p50_ms" in row]
    for key in ("p50", "p90", "p99", "max"):
        bottom.plot([row["t"] for row in timed], [row[f"{key}_ms"] for row in timed],
                    marker=".", label=key)
    if timed:
        bottom.set_yscale("log")
        bottom.legend(loc="upper left")
    else:
        bottom.text(0.5, 0.5, "no messages received", ha="center", va="center",
                    transform=bottom.transAxes)
    bottom.set_ylabel("latency (ms)")
