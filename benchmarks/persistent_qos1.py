"""Benchmark: QoS 1 to a persistent subscriber, Roost against Mosquitto with
``persistence true``, measured in the same run.

    .venv/bin/python -m benchmarks.persistent_qos1 [--count N] [--write docs/benchmarks.md]

Scenarios (3.1.1, 64-byte payloads, publisher inflight window 100):
- online: the persistent subscriber (clean session 0) is connected and acknowledging;
  rate = messages delivered per second, from the first publish to the last delivery;
- offline: the subscriber is offline; rate = QoS 1 messages acknowledged per second
  (each stored for the subscriber), then the drain rate when it reconnects.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

from benchmarks.brokers import Broker, mosquitto_version, start_mosquitto, start_roost
from benchmarks.mqtt_load import Client, publish_qos1, receive_qos1

SIZE = 64
WINDOW = 100


def _receiver(port: int, cid: str, count: int, result: mp.Queue, ready: object) -> None:
    result.put(receive_qos1(port, cid, count, clean=False, topic_filter="bench/p", ready=ready))


def online(broker: Broker, count: int) -> dict[str, float]:
    ready = mp.Event()
    result: mp.Queue = mp.Queue()
    proc = mp.Process(target=_receiver, args=(broker.port, "bench-sub-on", count, result, ready))
    proc.start()
    ready.wait(10)
    start = time.perf_counter()
    lat = publish_qos1(broker.port, "bench/p", count, SIZE, WINDOW)
    result.get(timeout=300)
    elapsed = time.perf_counter() - start
    proc.join(10)
    lat.sort()
    return {"rate": count / elapsed, "ack_p50_ms": lat[len(lat) // 2] * 1000,
            "ack_p99_ms": lat[int(len(lat) * 0.99)] * 1000}


def offline(broker: Broker, count: int) -> dict[str, float]:
    c = Client(broker.port, "bench-sub-off", clean=False)
    c.subscribe("bench/o", 1)
    c.close()
    start = time.perf_counter()
    lat = publish_qos1(broker.port, "bench/o", count, SIZE, WINDOW)
    stored = count / (time.perf_counter() - start)
    drain = receive_qos1(broker.port, "bench-sub-off", count, clean=False)
    return {"rate": stored, "drain_rate": count / drain,
            "ack_p99_ms": sorted(lat)[int(len(lat) * 0.99)] * 1000}


def run(count: int) -> dict[str, dict[str, dict[str, float]]]:
    queue_cfg = f"[mqtt]\nmax_queued_messages = {count * 2}\n"
    subjects = {
        "mosquitto (persistence true)": lambda: start_mosquitto(
            "persistence true\npersistence_location {tmp}/\n"),
        "roost (strict, default)": lambda: start_roost(queue_cfg),
        "roost (relaxed)": lambda: start_roost(queue_cfg + '[store]\ndurability = "relaxed"\n'),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, start in subjects.items():
        broker = start()
        try:
            results[name] = {"online": online(broker, count), "offline": offline(broker, count)}
        finally:
            broker.stop()
        print(name, results[name], flush=True)
    return results


def report(results: dict[str, dict[str, dict[str, float]]], count: int, command: str) -> str:
    base = results["mosquitto (persistence true)"]
    lines = [
        "## QoS 1 to a persistent subscriber (issue 3)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {mosquitto_version()}.  ",
        f"{count} messages of {SIZE} bytes, MQTT 3.1.1, publisher window {WINDOW}, "
        "persistent subscriber (clean session 0) at QoS 1.",
        "",
        "| broker | online: delivered msg/s | ratio | PUBACK p50 / p99 ms | offline: stored msg/s "
        "| ratio | drain msg/s | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        on, off = r["online"], r["offline"]
        lines.append(
            f"| {name} | {on['rate']:,.0f} | {on['rate'] / base['online']['rate']:.2f}× "
            f"| {on['ack_p50_ms']:.1f} / {on['ack_p99_ms']:.1f} "
            f"| {off['rate']:,.0f} | {off['rate'] / base['offline']['rate']:.2f}× "
            f"| {off['drain_rate']:,.0f} "
            f"| {off['drain_rate'] / base['offline']['drain_rate']:.2f}× |")
    lines += [
        "",
        "Not like for like, on purpose: Mosquitto with `persistence true` writes its database "
        "only at `autosave_interval` (30 min) and at shutdown, so a crash loses everything "
        "since the last save; Roost in its default `strict` mode acknowledges a message only "
        "after the SQLite commit (WAL, synchronous=FULL) that holds it. `relaxed` "
        "acknowledges at once and still commits in groups.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--write", help="replace this scenario's section in a markdown file")
    args = parser.parse_args()
    results = run(args.count)
    command = f".venv/bin/python -m benchmarks.persistent_qos1 --count {args.count}"
    text = report(results, args.count, command)
    print(text)
    if args.write:
        path = Path(args.write)
        old = path.read_text() if path.exists() else "# Benchmarks\n\n"
        marker = "## QoS 1 to a persistent subscriber (issue 3)"
        if marker in old:
            head, _, rest = old.partition(marker)
            tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
            old = head + text + tail
        else:
            old = old.rstrip("\n") + "\n\n" + text
        path.write_text(old)


if __name__ == "__main__":
    main()
