"""The connection log: one line per client connected, refused and disconnected, made
from engine events. The JSON log format adds each event's fields as keys
(``roost.logs``), under ``event`` = connect, connect_refused or disconnect."""

from __future__ import annotations

import logging

from roost.engine.events import ClientConnected, ClientDisconnected, ClientRefused
from roost.engine.hooks import HookRegistry

log = logging.getLogger("roost.connection")


def _connected(e: ClientConnected) -> None:
    log.info("connected %s (%s) level %d%s", e.client_id, e.peer, e.protocol_level,
             " resumed" if e.resumed else "",
             extra={"event": "connect", "client_id": e.client_id, "peer": e.peer,
                    "listener": e.listener, "protocol_level": e.protocol_level,
                    "username": e.username, "clean_start": e.clean_start,
                    "resumed": e.resumed})


def _refused(e: ClientRefused) -> None:
    log.info("refused %s (%s): %s", e.client_id or "-", e.peer, e.why,
             extra={"event": "connect_refused", "client_id": e.client_id, "peer": e.peer,
                    "listener": e.listener, "protocol_level": e.protocol_level,
                    "reason": e.why, "reason_code": e.reason_code})


def _disconnected(e: ClientDisconnected) -> None:
    log.info("disconnected %s (%s): %s", e.client_id, e.peer, e.reason,
             extra={"event": "disconnect", "client_id": e.client_id, "peer": e.peer,
                    "listener": e.listener, "protocol_level": e.protocol_level,
                    "reason": e.reason})


def install(hooks: HookRegistry) -> None:
    """Log every connect, refusal and disconnect that ``hooks`` reports."""
    hooks.listen(ClientConnected, _connected)
    hooks.listen(ClientRefused, _refused)
    hooks.listen(ClientDisconnected, _disconnected)
