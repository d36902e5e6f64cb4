"""Graceful drain (SIGTERM): stop taking clients, send the connected ones away, flush.

Order:

1. readiness goes false at once (``/readyz`` answers 503), and
2. the listeners stop accepting connections (open ones stay);
3. every connected client is disconnected: MQTT 5 clients get DISCONNECT 0x8B (server
   shutting down), or 0x9C (use another server) with a Server Reference when
   ``[drain] server_reference`` is set; 3.x clients are closed;
4. the broker waits (up to ``[drain] grace_period`` in all) for those connections to be
   gone, then the caller closes the store, which writes everything staged.

Nothing acknowledged is lost: with strict durability an acknowledgement is only sent
after its commit, and whatever was staged is written by the final flush. Persistent
sessions, their subscriptions and queued messages are in the store and resume after
the restart.

Wills: a server shutdown closes the network connection without a DISCONNECT from the
client, so — as the MQTT specification says and as Mosquitto does at shutdown — wills
are published. A will with a delay interval belonging to a persistent session is not
published at once: it is stored with its due time and published after the restart
only if the client has not reconnected by then (the restored session's will timer), so a
device that simply reconnects to the restarted (or another) node sends no false alarm.
A clean session (expiry 0) ends with the connection, and its will is published then.
"""

from __future__ import annotations

import asyncio
import logging

from roost.admin.node import Node
from roost.config import DrainConfig
from roost.mqtt import ReasonCode
from roost.mqtt.properties import Properties

log = logging.getLogger("roost.drain")

POLL = 0.05
SETTLE = 2.0


def disconnect_all(node: Node, config: DrainConfig) -> int:
    """Send every connected client away; return how many were connected."""
    reference = config.server_reference
    if reference:
        return node.disconnect_all(ReasonCode.USE_ANOTHER_SERVER, "server draining",
                                   Properties(server_reference=reference))
    return node.disconnect_all(ReasonCode.SERVER_SHUTTING_DOWN, "server shutting down")


def _open_connections(node: Node) -> int:
    return sum(state.active for state in node.listeners())


async def drain(node: Node, config: DrainConfig) -> None:
    """Run steps 1 to 4 above within ``config.grace_period`` seconds."""
    grace = config.grace_period
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    node.stop_accepting()
    log.info("drain: readiness false, stopping listeners (grace period %g s)", grace,
             extra={"event": "drain", "phase": "not_ready"})
    count = disconnect_all(node, config)
    log.info("drain: %d clients disconnected", count,
             extra={"event": "drain", "phase": "disconnected", "clients": count})
    # Let the DISCONNECT packets reach the clients and the sockets close. Connections
    # accepted but not through CONNECT yet are waited for only SETTLE seconds, then cut
    # when the process exits.
    settle = min(deadline, loop.time() + SETTLE)
    while loop.time() < deadline - POLL:
        await asyncio.sleep(POLL)
        # A client whose CONNECT was on its way when the listener closed goes too.
        disconnect_all(node, config)
        if _open_connections(node) == 0 or loop.time() >= settle:
            break
    else:
        log.warning("drain: %d connections still open after the grace period",
                    _open_connections(node))
