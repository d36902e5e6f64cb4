"""Three real nodes (``roost serve`` with [cluster]), each on its own server of the
3-server NATS cluster, and MQTT clients on real sockets: what one node's clients publish
reaches the others' subscribers, once, as it was published."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from roost.mqtt import Properties, ReasonCode
from roost.mqtt.packets import Puback, Unsuback, Unsubscribe
from tests.broker import BrokerProcess, RawClient
from tests.cluster.nats_cluster import NatsCluster
from tests.cluster.nodes import cluster_nodes, nats_subjects, receive, routed, settle


@pytest.fixture(scope="module")
def nodes(jetstream_cluster: NatsCluster) -> Iterator[list[BrokerProcess]]:
    with cluster_nodes(jetstream_cluster, 3) as started:
        yield started


def test_nodes_joined_the_cluster_and_warn_of_at_most_once(
        nodes: list[BrokerProcess], jetstream_cluster: NatsCluster) -> None:
    for i, node in enumerate(nodes):
        log = node.log()
        assert f"NATS connection 'main' up, to {jetstream_cluster.urls[i]}" in log
        assert "cluster preflight: NATS and JetStream are fit for the cluster" in log
        assert "messages cross nodes at most once (QoS 1 and 2 included)" in log


def test_qos0_and_qos1_cross_with_their_properties(on: Callable[..., RawClient]) -> None:
    as_published = on(1, "rap")
    as_published.subscribe("cross/#", 1, retain_as_published=True)
    old = on(1, "v311", level=4)
    old.subscribe("cross/#", 1)
    pub = on(2, "cross-pub")
    routed(pub, "cross/probe", as_published, old)
    props = Properties(content_type="application/json", response_topic="cross/reply",
                       correlation_data=b"\x00id", payload_format_indicator=1,
                       user_properties=[("k", "v"), ("k", "é\r\n")])
    pub.publish("cross/zero", b"q0", 0, properties=props)
    pub.publish("cross/one", b"q1", 1, retain=True, packet_id=7, properties=props)
    ack = pub.expect(Puback)
    assert (ack.packet_id, ack.reason_code) == (7, ReasonCode.SUCCESS)  # type: ignore[attr-defined]
    got = receive(as_published, 2)
    assert [(p.topic, p.payload, p.qos, p.retain) for p in got] == [
        ("cross/zero", b"q0", 0, False), ("cross/one", b"q1", 1, True)]
    for p in got:
        assert (p.properties.content_type, p.properties.response_topic,
                p.properties.correlation_data, p.properties.payload_format_indicator,
                p.properties.user_properties) == (
            "application/json", "cross/reply", b"\x00id", 1, [("k", "v"), ("k", "é\r\n")])
    assert [(p.topic, p.qos, p.retain) for p in receive(old, 2)] == [
        ("cross/zero", 0, False), ("cross/one", 1, False)]
    settle(as_published, old)


def test_wildcards_across_nodes(on: Callable[..., RawClient]) -> None:
    one_level, everything = on(1, "plus"), on(3, "hash")
    one_level.subscribe("w/+/x")
    everything.subscribe("w/#")
    pub = on(2, "w-pub")
    routed(pub, "w/probe/x", one_level, everything)
    for topic in ("w/a/x", "w/b/y", "w", "w/a/x/z"):
        pub.publish(topic, topic.encode())
    assert [p.topic for p in receive(one_level, 1)] == ["w/a/x"]
    # "w" comes through the NATS subscription of "w", the others through "w.>": order
    # holds per topic, not between topics.
    assert sorted(p.topic for p in receive(everything, 4)) == ["w", "w/a/x", "w/a/x/z",
                                                                "w/b/y"]
    settle(one_level, everything)


def test_dollar_topics_cross_but_not_to_leading_wildcards(
        on: Callable[..., RawClient]) -> None:
    everything, dollar = on(1, "all"), on(1, "dollar")
    everything.subscribe("#")
    dollar.subscribe("$app/#")
    pub = on(2, "dollar-pub")
    routed(pub, "probe-topic", everything)
    routed(pub, "$app/probe", dollar)
    pub.publish("$app/status", b"dollar")
    pub.publish("marker", b"plain")
    assert [p.payload for p in receive(everything, 1)] == [b"plain"]
    assert [p.topic for p in receive(dollar, 1)] == ["$app/status"]
    settle(everything, dollar)


def test_the_publishing_node_delivers_once_and_honours_no_local(
        on: Callable[..., RawClient]) -> None:
    publisher, neighbour, remote = on(2, "nl-pub"), on(2, "nl-neighbour"), on(1, "nl-remote")
    publisher.subscribe("nl/#", no_local=True)
    neighbour.subscribe("nl/#")
    neighbour.subscribe("nl/+", packet_id=2)
    remote.subscribe("nl/#")
    routed(publisher, "nl/probe", remote)
    settle(neighbour)
    for i in range(5):
        publisher.publish(f"nl/{i}", b"%d" % i)
    expected = [b"%d" % i for i in range(5)]
    assert [p.payload for p in receive(neighbour, 5)] == expected
    assert [p.payload for p in receive(remote, 5)] == expected
    settle(publisher, neighbour, remote)


def test_a_shared_group_across_nodes_gets_each_message_once(
        on: Callable[..., RawClient]) -> None:
    members = [on(1, "member-1"), on(2, "member-2")]
    for member in members:
        member.subscribe("$share/workers/jobs/#")
    publishers = [on(3, "jobs-pub-3"), on(1, "jobs-pub-1")]
    routed(publishers[0], "jobs/probe", *members)
    for i in range(20):
        publishers[i % 2].publish(f"jobs/{i}", b"%d" % i)
    got: list[bytes] = []
    for member in members:
        try:
            while True:
                got += [p.payload for p in receive(member, 1, timeout=0.5)]
        except TimeoutError:
            member.sock.settimeout(5.0)
    assert sorted(got) == sorted(b"%d" % i for i in range(20))
    settle(*members)


def test_unsubscribing_ends_the_nodes_interest(
        on: Callable[..., RawClient], jetstream_cluster: NatsCluster) -> None:
    subject = "roost.roost.msg.t.gone"
    first, second = on(1, "gone-1"), on(1, "gone-2")
    first.subscribe("gone/#")
    second.subscribe("gone/#")
    pub = on(2, "gone-pub")
    routed(pub, "gone/probe", first, second)
    assert {subject, subject + ".>"} <= nats_subjects(jetstream_cluster, 0,
                                                      "roost roost node-1 main")
    first.send(Unsubscribe(5, ["gone/#"]))
    first.expect(Unsuback)
    routed(pub, "gone/probe", second)  # one subscriber left: the node still listens
    second.send(Unsubscribe(5, ["gone/#"]))
    second.expect(Unsuback)
    for _ in range(50):
        if subject not in nats_subjects(jetstream_cluster, 0, "roost roost node-1 main"):
            break
        time.sleep(0.02)
    assert not {subject, subject + ".>"} & nats_subjects(jetstream_cluster, 0,
                                                         "roost roost node-1 main")
    pub.publish("gone/late", b"late")
    settle(first, second)


def test_awkward_topics_round_trip(on: Callable[..., RawClient]) -> None:
    sub, pub = on(1, "odd-sub"), on(3, "odd-pub")
    sub.subscribe("odd/#")
    routed(pub, "odd/probe", sub)
    topics = ["odd/a.b", "odd/*", "odd/>", "odd/with space", "odd/été/日本", "odd//x",
              "odd/~%41", "odd/a.*.>", "odd/"]
    for topic in topics:
        pub.publish(topic, topic.encode())
    assert [(p.topic, p.payload) for p in receive(sub, len(topics))] == [
        (t, t.encode()) for t in topics]
    settle(sub)


def test_a_topic_too_long_for_nats_stays_on_its_node(
        on: Callable[..., RawClient], nodes: list[BrokerProcess]) -> None:
    long_topic = "long/" + "/".join(["x" * 100] * 40)
    local, remote, pub = on(2, "long-local"), on(1, "long-remote"), on(2, "long-pub")
    local.subscribe("long/#")
    remote.subscribe("long/#")
    routed(pub, "long/probe", remote)
    settle(local)
    pub.publish(long_topic, b"1")
    pub.publish(long_topic, b"2")
    assert [p.payload for p in receive(local, 2)] == [b"1", b"2"]
    settle(remote)
    log = nodes[1].wait_log("a message stays on this node")
    assert log.count("a message stays on this node") == 1
