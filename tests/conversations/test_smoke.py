"""A first conversation, run for both protocol levels."""

from roost.mqtt import Publish, ReasonCode


def test_publish_subscribe_roundtrip(client, level):
    sub = client(level)
    assert sub.connect(f"smoke-sub-{level}").reason_code == ReasonCode.SUCCESS
    assert sub.subscribe("smoke/+", qos=1).reason_codes == [ReasonCode.GRANTED_QOS_1]
    pub = client(level)
    pub.connect(f"smoke-pub-{level}")
    pub.publish("smoke/a", b"hi")
    msg = sub.expect(Publish)
    assert (msg.topic, msg.payload, msg.qos) == ("smoke/a", b"hi", 0)
