"""HTTP helpers for tests of the operations endpoint."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.broker import BrokerProcess


def http(broker: BrokerProcess, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    """(status, content type, body) of one request to ``broker``'s HTTP endpoint."""
    url = f"http://127.0.0.1:{broker.http_port}{path}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def api(broker: BrokerProcess, path: str, method: str = "GET") -> Any:
    status, _, body = http(broker, path, method)
    assert status == 200, (status, body)
    return json.loads(body)


def scrape(broker: BrokerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    status, ctype, body = http(broker, "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
