"""Topics that start with ``$``: reserved for the server, and who may publish to them.

MQTT reserves topics beginning with ``$`` for the server's own use (MQTT 5.0 4.7.2,
3.1.1 4.7.2): wildcards at the first level never match them, and the server should stop
clients from using them to exchange messages. Roost applies that in two tiers:

- ``$SYS`` and everything under ``$SYS/`` belong to the broker. No client may publish
  there, nor leave a will there, whatever the ACL grants — as Mosquitto 2.0 does. The one
  exception is a bridge's own connection-state notification,
  ``$SYS/broker/connection/<its client id>/state``, which Mosquitto bridges publish (and
  use as their will) when they connect to a broker; that topic is then subject to the
  ACL like any other.
- Other ``$`` topics (``$aws/...``, ``$iothub/...``, ``$share/...`` used as a name) are
  allowed by default, as in Mosquitto, since device platforms use them; ``[mqtt]
  allow_dollar_topics = false`` refuses them as well.

A refused PUBLISH is answered as an ACL denial: 5.0 PUBACK/PUBREC 0x87, 3.x acknowledged
and dropped; a refused will is CONNACK 0x87 / return code 5.
"""

from __future__ import annotations

SYS_TOPIC = "$SYS"


def bridge_state_topic(client_id: str) -> str:
    """The ``$SYS`` topic a bridge with ``client_id`` may publish its state to."""
    return f"$SYS/broker/connection/{client_id}/state"


def client_may_publish(topic: str, client_id: str, allow_dollar_topics: bool) -> bool:
    """Whether a client may publish (or leave a will) on ``topic``, which must start
    with ``$`` (callers test ``topic[0] == "$"`` first, so other topics cost nothing)."""
    if topic == SYS_TOPIC or topic.startswith("$SYS/"):
        return topic == bridge_state_topic(client_id)
    return allow_dollar_topics


def is_broker_topic(topic: str) -> bool:
    """Whether only the broker itself may write ``topic``: ``$SYS`` and everything under
    it except bridges' ``$SYS/broker/connection/<client id>/state`` topics."""
    if topic != SYS_TOPIC and not topic.startswith("$SYS/"):
        return False
    prefix = "$SYS/broker/connection/"
    return not (topic.startswith(prefix) and topic.endswith("/state")
                and len(topic) > len(prefix) + len("/state"))
