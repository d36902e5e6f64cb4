"""The operations HTTP endpoint on a real broker: health, readiness, the JSON API."""

from __future__ import annotations

from collections.abc import Iterator
from http.client import HTTPConnection

import pytest

from roost.mqtt import ReasonCode
from roost.mqtt.packets import Disconnect
from tests.admin.helpers import api, http
from tests.broker import BrokerProcess, Closed, RawClient


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(http_port=0) as proc:
        yield proc


def online(broker: BrokerProcess, client_id: str, level: int = 5) -> RawClient:
    c = RawClient(broker.port, level)
    assert c.connect(client_id).reason_code == ReasonCode.SUCCESS
    return c


def test_healthz_and_readyz(broker):
    assert http(broker, "/healthz")[0] == 200
    status, _, body = http(broker, "/readyz")
    assert status == 200 and body.strip() == b"ready"


def test_unknown_path_and_wrong_method(broker):
    assert http(broker, "/nope")[0] == 404
    assert http(broker, "/metrics", "POST")[0] == 405
    assert http(broker, "/api/v1/clients/x/disconnect", "GET")[0] == 405


def test_keep_alive_serves_several_requests_on_one_connection(broker):
    conn = HTTPConnection("127.0.0.1", broker.http_port, timeout=5)
    try:
        for path in ("/healthz", "/readyz", "/api/v1/clients"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()


def test_clients_and_subscriptions(broker):
    c = online(broker, "http-lister", level=5)
    c.subscribe("lister/+/x", qos=1)
    try:
        clients = {row["client_id"]: row for row in api(broker, "/api/v1/clients")}
        row = clients["http-lister"]
        assert row["protocol_level"] == 5
        assert row["listener"] == "default"
        assert row["peer"].startswith("127.0.0.1:")
        assert row["subscriptions"] == 1
        assert row["connected_since"] > 0
        subs = [s for s in api(broker, "/api/v1/subscriptions")
                if s["client_id"] == "http-lister"]
        assert subs == [{"client_id": "http-lister", "filter": "lister/+/x", "qos": 1,
                         "online": True}]
    finally:
        c.disconnect()


def test_disconnect_mqtt5_client_gets_administrative_action(broker):
    c = online(broker, "http-kick5", level=5)
    assert api(broker, "/api/v1/clients/http-kick5/disconnect", "POST")["disconnected"]
    got = c.expect_closed()
    assert got == [Disconnect(ReasonCode.ADMINISTRATIVE_ACTION)]
    assert "http-kick5" not in {r["client_id"] for r in api(broker, "/api/v1/clients")}


def test_disconnect_mqtt311_client_is_closed(broker):
    c = online(broker, "http/kick/3", level=4)
    assert api(broker, "/api/v1/clients/http%2Fkick%2F3/disconnect", "POST")["disconnected"]
    assert c.expect_closed() == []
    with pytest.raises(Closed):
        c.recv(1)


def test_disconnect_unknown_client_is_404(broker):
    assert http(broker, "/api/v1/clients/nobody-here/disconnect", "POST")[0] == 404
