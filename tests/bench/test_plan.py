"""Scenarios, options and how clients are spread over workers and source addresses."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from roost.bench.options import BenchError, add_arguments, options_from_args
from roost.bench.plan import PUB, SUB, build_plan, scenario_clients


def opts(*argv: str):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return options_from_args(p.parse_args(list(argv)))


def test_pairs_give_each_publisher_its_subscriber():
    clients = scenario_clients(opts("pairs", "-c", "3"))
    subs = [c for c in clients if c.role == SUB]
    pubs = [c for c in clients if c.role == PUB]
    assert [(s.number, s.topic, list(s.expects)) for s in subs] == [
        (1, "bench/pairs/1", [1]), (2, "bench/pairs/2", [2]), (3, "bench/pairs/3", [3])]
    assert [p.topic for p in pubs] == ["bench/pairs/1", "bench/pairs/2", "bench/pairs/3"]
    assert len({c.client_id for c in clients}) == 6


def test_fanout_and_fanin():
    fanout = scenario_clients(opts("fanout", "-c", "4", "-t", "f/%i"))
    assert [c.role for c in fanout].count(SUB) == 4
    assert {c.topic for c in fanout} == {"f/1"}
    fanin = scenario_clients(opts("fanin", "-c", "4", "-t", "in/%i/x"))
    [sub] = [c for c in fanin if c.role == SUB]
    assert sub.topic == "in/+/x" and list(sub.expects) == [1, 2, 3, 4]
    assert [c.topic for c in fanin if c.role == PUB] == [f"in/{i}/x" for i in range(1, 5)]


def test_workers_and_sources_follow_the_limits():
    plans = build_plan(opts("conn", "-c", "250", "--conns-per-worker", "100",
                            "--conns-per-source", "100", "--rate", "500"))
    assert [len(p.clients) for p in plans] == [84, 83, 83]
    sources = Counter(c.source for p in plans for c in p.clients)
    assert sources == {"127.0.0.1": 84, "127.0.0.2": 83, "127.0.0.3": 83}
    assert sum(p.connect_rate for p in plans) == pytest.approx(500)


def test_small_runs_use_one_worker_and_the_default_source():
    [plan] = build_plan(opts("pairs", "-c", "2"))
    assert {c.source for c in plan.clients} == {None}


def test_explicit_source_addresses():
    plans = build_plan(opts("conn", "-c", "4", "--ifaddr", "127.0.0.5,127.0.0.6"))
    assert [c.source for c in plans[0].clients] == ["127.0.0.5", "127.0.0.6"] * 2


@pytest.mark.parametrize("argv, message", [
    (["pub", "--size", "10"], "--size"),
    (["pub", "-t", "a/+"], "without wildcards"),
    (["fanin", "-t", "a/x%i"], "whole topic level"),
    (["conn", "-c", "0"], "--clients"),
    (["pub", "--interval", "0"], "--interval"),
    (["conn", "--cafile", "/nonexistent"], "--cafile"),
    (["conn", "--insecure"], "need --tls"),
    (["conn", "--ws-path", "mqtt"], "--ws-path"),
])
def test_bad_options_are_named(argv, message):
    with pytest.raises(BenchError, match=message):
        opts(*argv)


def test_default_ports_and_rates():
    assert opts("conn").port == 1883
    assert opts("conn", "--tls", "--insecure").port == 8883
    assert opts("conn", "--ws").port == 8083
    assert opts("pub", "-I", "250").msg_rate == 4.0
    assert opts("pub", "--msg-rate", "0").msg_rate == 0
    assert opts("pub", "--persistent").session_expiry == 3600


def test_workers_must_fit_the_open_file_limit(monkeypatch):
    monkeypatch.setattr("roost.bench.plan.resource.getrlimit", lambda which: (1024, 4096))
    with pytest.raises(BenchError, match="open-file limit of 4096"):
        build_plan(opts("conn", "-c", "5000", "--conns-per-worker", "5000"))
    assert len(build_plan(opts("conn", "-c", "5000", "--conns-per-worker", "2500"))) == 2
