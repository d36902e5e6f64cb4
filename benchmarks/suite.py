"""Benchmark suite of issue 5: the same ``roost bench`` scenarios against Roost,
Mosquitto (Debian package) and amqtt (PyPI, in a separate virtualenv), in one run.

    .venv/bin/python -m benchmarks.suite [--write docs/benchmarks.md] [--no-amqtt]
                                         [--no-profile] [--duration S]

Every scenario starts a fresh broker, runs ``roost bench`` against it (JSON and PNG
output), samples the broker's VmRSS from /proc every 0.1 s, and stops the broker. Roost
is reported as a ratio to Mosquitto measured in the same run, against the targets of
issue 5. With py-spy in the amqtt virtualenv, a profile of Roost is recorded during an
extra (unmeasured) run of the pairs QoS 0 scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.brokers import (
    AMQTT_VENV,
    AMQTT_VERSION,
    ROOT,
    Broker,
    mosquitto_version,
    start_amqtt,
    start_mosquitto,
    start_roost,
)

HEADING = "## Issue 5 scenarios"
PLOTS = ROOT / "docs" / "benchmarks"
ROOST_BENCH = str(ROOT / ".venv" / "bin" / "roost")
IDLE_CONNECTIONS = 15000


@dataclass
class Scenario:
    key: str
    title: str
    args: list[str]
    metric: str  # "delivered", "p99", "conn"
    target: float  # ratio to Mosquitto (or KB per connection for memory)
    floor: float | None = None  # the "must" bound, where there is one
    hold: bool = False  # sample memory only when every connection is open


def scenarios(duration: int) -> list[Scenario]:
    d = ["-s", "64", "-d", str(duration), "--drain", "3"]
    return [
        Scenario("pairs-qos0-c1", "Pairs QoS 0, 1 pair, 64 B, unpaced",
                 ["pairs", "-c", "1", "--msg-rate", "0", "-q", "0", *d], "delivered", 1.0, 0.7),
        Scenario("pairs-qos0-c10", "Pairs QoS 0, 10 pairs, 64 B, unpaced",
                 ["pairs", "-c", "10", "--msg-rate", "0", "-q", "0", *d], "delivered", 1.0, 0.7),
        Scenario("fanout-qos0-100", "Fan-out QoS 0, 1 publisher to 100 subscribers, 64 B, "
                 "unpaced", ["fanout", "-c", "100", "--msg-rate", "0", "-q", "0", *d],
                 "delivered", 1.0),
        Scenario("pairs-qos1-c10", "Pairs QoS 1, 10 pairs, inflight window 100, 64 B, unpaced",
                 ["pairs", "-c", "10", "--msg-rate", "0", "-q", "1", "--inflight", "100", *d],
                 "delivered", 0.7),
        Scenario("latency-qos1-1000", "Latency, QoS 1 at 1,000 messages/s (1 pair), 64 B",
                 ["pairs", "-c", "1", "--msg-rate", "1000", "-q", "1", "--inflight", "100", *d],
                 "p99", 2.0),
        Scenario("idle-15000", f"{IDLE_CONNECTIONS:,} idle connections",
                 ["conn", "-c", str(IDLE_CONNECTIONS), "-R", "0", "-k", "600", "-d", "4"],
                 "conn", 0.5, hold=True),
    ]


# -- running -------------------------------------------------------------------------------


def _rss_sampler(broker: Broker, stop: threading.Event,
                 samples: list[tuple[float, int]]) -> None:
    while not stop.is_set():
        try:
            samples.append((time.monotonic(), broker.rss_kib()))
        except OSError:
            return
        stop.wait(0.1)


def run_bench(broker: Broker, sc: Scenario, out: Path) -> dict[str, Any]:
    """One ``roost bench`` run; the result JSON plus the broker's memory."""
    json_path, png_path = out / f"{sc.key}-{broker.name}.json", out / f"{sc.key}-{broker.name}.png"
    time.sleep(0.5)
    base = broker.rss_kib()
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_rss_sampler, args=(broker, stop, samples), daemon=True)
    sampler.start()
    cmd = [ROOST_BENCH, "bench", *sc.args, "-p", str(broker.port), "--json", str(json_path),
           "--plot", str(png_path), "--quiet"]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    stop.set()
    sampler.join()
    if not json_path.exists():
        raise RuntimeError(f"roost bench failed ({proc.returncode}): {proc.stderr[-500:]}")
    result: dict[str, Any] = json.loads(json_path.read_text())
    result["rss_base_kib"] = base
    result["rss_peak_kib"] = max((rss for _, rss in samples), default=base)
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["png"] = str(png_path) if png_path.exists() else None
    if sc.hold:
        # memory while every connection is open: the median of the samples from 3 s to
        # 1 s before the end of the run (the hold is 4 s, then the clients disconnect).
        end = max((t for t, _ in samples), default=0.0)
        held = sorted(rss for t, rss in samples if end - 3.0 <= t <= end - 1.0)
        result["rss_held_kib"] = held[len(held) // 2] if held else result["rss_peak_kib"]
    return result


def profile_roost(sc: Scenario, out: Path, venv: Path = AMQTT_VENV) -> dict[str, Any] | None:
    """py-spy (installed in the amqtt virtualenv) samples of Roost during an extra,
    unmeasured run of ``sc``."""
    pyspy = venv / "bin" / "py-spy"
    if not pyspy.exists():
        try:
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            "py-spy"], check=True, timeout=300)
        except (OSError, subprocess.SubprocessError):
            return None
    broker = start_roost()
    raw = out / "roost-profile.txt"
    try:
        cmd = [ROOST_BENCH, "bench", *sc.args, "-p", str(broker.port), "--quiet"]
        bench = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        spy = subprocess.run([str(pyspy), "record", "-d", "5", "-r", "200", "--format", "raw",
                              "-o", str(raw), "--pid", str(broker.proc.pid)],
                             capture_output=True, text=True, timeout=60)
        bench.wait(120)
    finally:
        broker.stop()
    if spy.returncode != 0 or not raw.exists():
        print("py-spy failed:", spy.stderr[-500:], flush=True)
        return None
    return summarize_profile(raw.read_text())


def _frame(f: str) -> str:
    # "function (path/to/file.py:123)" -> "function (roost/x/file.py)"
    name, _, where = f.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    inside = "/roost/" in path
    path = "roost/" + path.rsplit("/roost/", 1)[1] if inside else os.path.basename(path)
    return f"{name} ({path})"


def summarize_profile(text: str, top: int = 12) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    # frames on every stack (the entry point, asyncio's loop) say nothing: left out
    inclusive = [(f, n) for f, n in total.most_common() if n < samples]
    return {"samples": samples, "self": own.most_common(top), "total": inclusive[:top]}


def shrink_plots(results: dict[str, dict[str, dict[str, Any]]], names: list[str]) -> dict[str, str]:
    """One PNG per scenario: the brokers' ``--plot`` images side by side, scaled down and
    reduced to a small palette, so each is a few tens of KB."""
    from PIL import Image

    PLOTS.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for key, by_broker in results.items():
        images = [Image.open(by_broker[n]["png"]).convert("RGB") for n in names
                  if n in by_broker and by_broker[n].get("png")]
        if not images:
            continue
        w, h = 560, 392
        sheet = Image.new("RGB", (w * len(images), h + 24), "white")
        from PIL import ImageDraw

        draw = ImageDraw.Draw(sheet)
        labels = [n for n in names if n in by_broker and by_broker[n].get("png")]
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            sheet.paste(img.resize((w, h), Image.Resampling.LANCZOS), (i * w, 24))
            draw.text((i * w + w // 2 - 30, 6), label, fill="black")
        path = PLOTS / f"issue5-{key}.png"
        sheet.quantize(colors=24).save(path, optimize=True)
        written[key] = str(path.relative_to(ROOT / "docs"))
    return written


# -- report --------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    import roost

    return (f"{os.cpu_count()} cores ({cpu}), {mem_kib / 1048576:.0f} GiB RAM, "
            f"{platform.platform()}, Python {platform.python_version()}; Roost "
            f"{roost.__version__}; {mosquitto_version()}; amqtt {AMQTT_VERSION}")


def _metric(sc: Scenario, r: dict[str, Any]) -> float:
    if sc.metric == "delivered":
        return float(r["messages"]["receive_rate_per_s"])
    if sc.metric == "p99":
        return float(r["latency_ms"].get("p99") or 0.0)
    return float(r["connections"]["rate_per_s"])


def _kb_per_conn(r: dict[str, Any]) -> float:
    n = r["connections"]["peak_open"] or 1
    return float(r["rss_held_kib"] - r["rss_base_kib"]) * 1.024 / n  # KiB -> KB (1000 B)


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _verdict(sc: Scenario, ratio: float) -> str:
    if sc.metric == "p99":
        return _met(ratio <= sc.target)
    text = _met(ratio >= sc.target)
    if sc.floor is not None and ratio < sc.target:
        text += f" (must ≥{sc.floor:.1f}×: {'met' if ratio >= sc.floor else 'not met'})"
    return text


def report(scs: list[Scenario], results: dict[str, dict[str, dict[str, Any]]],
           errors: dict[str, str], plots: dict[str, str], profile: dict[str, Any] | None,
           command: str) -> str:
    names = ["roost", "mosquitto", "amqtt"]
    lines = [
        HEADING, "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}.  ",
        "Load generator: `roost bench` (the same command line against every broker; its "
        "worker processes share the machine with the broker). A fresh broker for every "
        "scenario; Mosquitto with `max_queued_messages 0` and `max_inflight_messages 0`, "
        "amqtt with one TCP listener, anonymous access and no other plugin (installed in "
        "`.venv/amqtt-venv` with py-spy, never a Roost dependency). Ratios are to Mosquitto "
        "in the same run; the targets are issue 5's and apply to Roost. Delivered msg/s = messages "
        "received by subscribers / seconds from the first publish to the last delivery "
        "(`receive_rate_per_s`). Memory = broker VmRSS from `/proc/<pid>/status`, sampled "
        "every 0.1 s; KB per connection = (RSS while all connections are held − RSS "
        "before) / connections, 1 KB = 1,000 bytes.",
        "",
        "In the unpaced QoS 0 scenarios the publishers outrun every broker on purpose: the "
        "latencies there are seconds of queueing, and *lost* counts QoS 0 messages a broker "
        "discarded or had not delivered by the end of the 3 s drain (Roost drops QoS 0 "
        "messages for a subscriber whose socket buffer is over its limit); the delivered "
        f"rate is the measure. The load generator and the broker share the {os.cpu_count()} "
        "cores, so numbers vary from run to run: compare the ratios within one run.",
        "",
    ]
    if errors:
        for name, err in errors.items():
            lines.append(f"**{name} not measured**: {err}  ")
        lines.append("")
    lines += ["### Summary", "",
              "| scenario | metric | Roost | Mosquitto | amqtt | Roost ÷ Mosquitto | target "
              "| result |", "|---|---|---|---|---|---|---|---|"]
    for sc in scs:
        by = results.get(sc.key, {})
        if "roost" not in by or "mosquitto" not in by:
            continue
        vals = {n: _metric(sc, by[n]) if n in by else None for n in names}
        ratio = vals["roost"] / vals["mosquitto"] if vals["mosquitto"] else 0.0  # type: ignore[operator]
        unit = {"delivered": "delivered msg/s", "p99": "p99 latency ms",
                "conn": "connects/s"}[sc.metric]
        fmt = "{:,.1f}" if sc.metric == "p99" else "{:,.0f}"
        cell = {n: fmt.format(v) if v is not None else "—" for n, v in vals.items()}
        op = "≤" if sc.metric == "p99" else "≥"
        lines.append(f"| {sc.title} | {unit} | {cell['roost']} | {cell['mosquitto']} "
                     f"| {cell['amqtt']} | {ratio:.2f}× | {op}{sc.target:.1f}× "
                     f"| {_verdict(sc, ratio)} |")
        if sc.metric == "conn":
            kb = {n: _kb_per_conn(by[n]) if n in by else None for n in names}
            kcell = {n: f"{v:.2f}" if v is not None else "—" for n, v in kb.items()}
            lines.append(f"| {sc.title} | broker KB per connection | {kcell['roost']} "
                         f"| {kcell['mosquitto']} | {kcell['amqtt']} "
                         f"| {kb['roost'] / kb['mosquitto']:.2f}× "  # type: ignore[operator]
                         f"| ≤4 KB | {_met(kb['roost'] <= 4.0)} |")  # type: ignore[operator]
    lines.append("")
    for sc in scs:
        by = results.get(sc.key, {})
        if not by:
            continue
        base = by.get("mosquitto")
        lines += [f"### {sc.title}", "",
                  f"`roost bench {' '.join(sc.args)} -p PORT`", ""]
        if sc.metric == "conn":
            lines += ["| broker | connected | failed | connects/s | ratio | connect p99 ms "
                      "| RSS before → held (peak) MiB | KB per connection |",
                      "|---|---|---|---|---|---|---|---|"]
            for n in names:
                if n not in by:
                    continue
                r, c = by[n], by[n]["connections"]
                ratio = c["rate_per_s"] / base["connections"]["rate_per_s"] if base else 0
                lines.append(
                    f"| {n} | {c['connected']:,} | {c['failed']:,} | {c['rate_per_s']:,.0f} "
                    f"| {ratio:.2f}× | {c['latency_ms'].get('p99', 0):.1f} "
                    f"| {r['rss_base_kib'] / 1024:.1f} → {r['rss_held_kib'] / 1024:.1f} "
                    f"({r['rss_peak_kib'] / 1024:.1f}) "
                    f"| {_kb_per_conn(r):.2f} |")
        else:
            lines += ["| broker | sent msg/s | delivered msg/s | ratio | lost | latency p50 / "
                      "p99 ms | ratio (p99) | broker peak RSS MiB |",
                      "|---|---|---|---|---|---|---|---|"]
            for n in names:
                if n not in by:
                    continue
                r, m, lat = by[n], by[n]["messages"], by[n]["latency_ms"]
                bm = base["messages"]["receive_rate_per_s"] if base else 0
                bp = base["latency_ms"].get("p99") if base else 0
                lines.append(
                    f"| {n} | {m['send_rate_per_s']:,.0f} | {m['receive_rate_per_s']:,.0f} "
                    f"| {m['receive_rate_per_s'] / bm if bm else 0:.2f}× | {m['lost']:,} "
                    f"| {lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f} "
                    f"| {lat.get('p99', 0) / bp if bp else 0:.2f}× "
                    f"| {r['rss_peak_kib'] / 1024:.1f} |")
        if sc.key in plots:
            lines += ["", f"![{sc.title}]({plots[sc.key]})"]
        lines.append("")
    if profile:
        lines += ["### Profile of Roost, pairs QoS 0 (10 pairs)", "",
                  f"py-spy, 200 samples/s for 5 s during an extra run of the 10-pair QoS 0 "
                  f"scenario ({profile['samples']:,} samples of the busy thread; idle "
                  "waiting in the event loop excluded). Text: "
                  "`docs/benchmarks/roost-pairs-qos0-profile.txt`.", "",
                  "| own time (function) | % | including callees | % |", "|---|---|---|---|"]
        s = profile["samples"] or 1
        for (fn, n), (tfn, tn) in zip(profile["self"], profile["total"], strict=False):
            lines.append(f"| `{fn}` | {100 * n / s:.1f} | `{tfn}` | {100 * tn / s:.1f} |")
        lines.append("")
    return "\n".join(lines)


def write_profile_text(profile: dict[str, Any]) -> None:
    s = profile["samples"] or 1
    out = [f"py-spy profile of Roost, pairs QoS 0 (10 pairs, 64 B, unpaced); "
           f"{profile['samples']} samples", "", "own time:"]
    out += [f"  {100 * n / s:5.1f}%  {fn}" for fn, n in profile["self"]]
    out += ["", "including callees:"]
    out += [f"  {100 * n / s:5.1f}%  {fn}" for fn, n in profile["total"]]
    PLOTS.mkdir(parents=True, exist_ok=True)
    (PLOTS / "roost-pairs-qos0-profile.txt").write_text("\n".join(out) + "\n")


def write_section(path: Path, text: str, heading: str = HEADING) -> None:
    """Replace the section under ``heading`` in a markdown file (or append it)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if heading in old:
        head, _, rest = old.partition(heading)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        old = head + text + tail
    else:
        old = old.rstrip("\n") + "\n\n" + text
    path.write_text(old.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=6, help="seconds of load per run")
    parser.add_argument("--amqtt-venv", type=Path, default=AMQTT_VENV,
                        help="virtualenv for amqtt (created on first use)")
    parser.add_argument("--only", help="comma-separated scenario keys")
    parser.add_argument("--no-amqtt", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--write", help="replace this suite's section in a markdown file")
    args = parser.parse_args()
    scs = scenarios(args.duration)
    if args.only:
        scs = [s for s in scs if s.key in args.only.split(",")]
    starters: dict[str, Callable[[], Broker]] = {"roost": start_roost,
                                                  "mosquitto": start_mosquitto}
    errors: dict[str, str] = {}
    if not args.no_amqtt:
        starters["amqtt"] = lambda: start_amqtt(args.amqtt_venv)
    out = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    began = time.monotonic()
    for sc in scs:
        results[sc.key] = {}
        for name, start in starters.items():
            if name in errors:
                continue
            try:
                broker = start()
            except Exception as exc:  # noqa: BLE001 - reported in the doc
                errors[name] = f"could not be started: {exc}"
                continue
            try:
                results[sc.key][name] = run_bench(broker, sc, out)
            except Exception as exc:  # noqa: BLE001
                errors.setdefault(name, f"{sc.key}: {exc}")
            finally:
                broker.stop()
            r = results[sc.key].get(name)
            if r:
                print(f"{sc.key:18} {name:10} delivered/s "
                      f"{r['messages']['receive_rate_per_s']:>10,.0f} p99 "
                      f"{r['latency_ms'].get('p99', 0):8.1f} ms connects/s "
                      f"{r['connections']['rate_per_s']:>8,.0f} RSS {r['rss_base_kib']}"
                      f"→{r['rss_peak_kib']} KiB ({r['wall_s']} s)", flush=True)
    profile = None
    if not args.no_profile:
        pairs = next((s for s in scs if s.key == "pairs-qos0-c10"), None)
        if pairs is not None:
            profile = profile_roost(pairs, out, args.amqtt_venv)
            if profile:
                write_profile_text(profile)
    plots = shrink_plots(results, list(starters))
    command = ".venv/bin/python -m benchmarks.suite" + (
        f" --duration {args.duration}" if args.duration != 6 else "") + (
        " --write docs/benchmarks.md" if args.write else "")
    text = report(scs, results, errors, plots, profile, command)
    text = text.replace("\n\n### Summary",
                        f"  \nWhole suite: {time.monotonic() - began:.0f} s.\n\n### Summary", 1)
    print(text)
    if args.write:
        write_section(Path(args.write), text)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
