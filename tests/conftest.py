"""Shared fixtures: a broker subprocess per test module, and raw clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.broker import BrokerProcess, RawClient


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    """One broker for the whole module; tests use distinct client ids and topics."""
    with BrokerProcess() as proc:
        yield proc


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Callable[..., RawClient]]:
    """A factory of raw clients connected by TCP (not yet by MQTT) to ``broker``."""
    made: list[RawClient] = []

    def make(level: int = 4) -> RawClient:
        c = RawClient(broker.port, level)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(params=[4, 5], ids=["mqtt311", "mqtt5"])
def level(request: pytest.FixtureRequest) -> int:
    """Run a conversation once for MQTT 3.1.1 and once for 5.0."""
    return int(request.param)
