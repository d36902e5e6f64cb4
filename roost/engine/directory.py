"""The session directory: where a CONNECT finds its session, and who owns offline timers.

A CONNECT is handled in two phases. The channel validates and authenticates it, then
asks the directory to ``open`` the session; the answer comes through a callback, and
only then is the CONNACK sent (from the callback). In the embedded broker the answer
comes before ``open`` returns; a cluster's directory answers once it has fenced the
previous owner and won the compare-and-set on the session record (see
``../shared/cluster.md``, "Sessions and takeover"), which may be much later. The channel
holds whatever the client pipelined after CONNECT until then.

The directory also owns what happens when a connection ends: the will (with its delay)
and the session's expiry, so a cluster can run those timers where they survive the
node that held the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from roost.engine.session import Outlet, Session
from roost.engine.sessions import SessionRegistry
from roost.mqtt.packets import Will
from roost.mqtt.reason_codes import ReasonCode


@dataclass(frozen=True, slots=True)
class Opened:
    """The directory's answer to ``open``: the session and whether it was resumed
    (CONNACK's Session Present), or ``refusal``, a CONNACK reason code (for example
    0x88 Server unavailable when the directory cannot reach its store)."""

    session: Session | None
    present: bool = False
    refusal: ReasonCode | None = None


class SessionDirectory(Protocol):
    def open(self, client_id: str, clean_start: bool, expiry_interval: int | None,
             outlet: Outlet, done: Callable[[Opened], None]) -> None:
        """Take the session of ``client_id`` for ``outlet``: a connection still using
        it is ended first (5.0 DISCONNECT 0x8E Session taken over, [MQTT-3.1.4-3]);
        with ``clean_start`` an existing session is discarded, else it is resumed.
        ``expiry_interval`` is the new Session Expiry Interval in seconds (None: never).

        Calls ``done`` exactly once, possibly before returning. The caller sets the
        session's outlet when it sends the CONNACK; if its connection closed
        meanwhile, it hands the session back with ``closed(session, None)``.
        """
        ...

    def closed(self, session: Session, will: Will | None) -> None:
        """The session's connection ended; ``will`` is set if it must be published
        (after its Will Delay Interval, 3.1.3.2.2). Starts the session's expiry."""
        ...

    def get(self, client_id: str) -> Session | None:
        """The session of ``client_id`` known here, if any (online or not)."""
        ...


class LocalSessionDirectory:
    """The embedded broker's directory: every session lives in this process's
    ``SessionRegistry``, so ``open`` answers at once."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    def open(self, client_id: str, clean_start: bool, expiry_interval: int | None,
             outlet: Outlet, done: Callable[[Opened], None]) -> None:
        existing = self._registry.get(client_id)
        if existing is not None and existing.outlet is not None:
            existing.outlet.disconnect(ReasonCode.SESSION_TAKEN_OVER, "taken over")
        session, present = self._registry.open(client_id, clean_start, expiry_interval)
        if session.journal is None:
            done(Opened(session, present))
            return
        # A session that outlives its connection is on disk before the CONNACK says
        # it exists: a crash right after must not lose it (nor, later, its will).
        def stored(ok: bool) -> None:
            if ok:
                done(Opened(session, present))
            else:
                self._registry.closed(session, None)  # offline again, its expiry runs
                done(Opened(None, refusal=ReasonCode.SERVER_UNAVAILABLE))

        self._registry.commit(stored)

    def closed(self, session: Session, will: Will | None) -> None:
        self._registry.closed(session, will)

    def get(self, client_id: str) -> Session | None:
        return self._registry.get(client_id)
