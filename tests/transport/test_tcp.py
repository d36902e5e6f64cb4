"""The TCP edge: many packets in one segment, partial packets across segments."""

import socket

from roost.mqtt import Connack, Connect, Pingreq, Pingresp, Publish, encode
from roost.transport.tcp import is_loopback
from tests.broker import RawClient


def test_is_loopback():
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.0.0.9")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.0.2.1")
    assert not is_loopback("")


def test_many_packets_in_one_segment_all_answered(broker):
    c = RawClient(broker.port, 4)
    blob = encode(Connect("tcp-batch", 4), 4) + encode(Pingreq(), 4) * 500
    c.sock.sendall(blob)
    assert isinstance(c.recv(), Connack)
    for _ in range(500):
        assert isinstance(c.recv(), Pingresp)
    c.close()


def test_packet_split_across_segments(broker):
    sub = RawClient(broker.port, 4)
    sub.connect("tcp-split-sub")
    sub.subscribe("tcp/split")
    pub = RawClient(broker.port, 4)
    pub.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pub.connect("tcp-split-pub")
    data = encode(Publish("tcp/split", b"z" * 5000), 4)
    for i in range(0, len(data), 7):
        pub.sock.sendall(data[i:i + 7])
    msg = sub.expect(Publish)
    assert msg.payload == b"z" * 5000
    sub.close()
    pub.close()
