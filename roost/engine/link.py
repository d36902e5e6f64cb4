"""What the engine needs from a network connection (implemented by the transport)."""

from __future__ import annotations

from typing import Protocol


class FlowSource(Protocol):
    """Where the messages being routed come from, for back-pressure.

    It goes with each message from ``Engine.publish`` down to the connection that
    writes it; a receiver whose link is congested asks that link to hold the source
    back (``Link.hold``) until it drains. A client connection passes its own ``Link``;
    a backplane or a bridge would pass the feed it reads from. Messages that no input
    caused (wills, $SYS, retained messages on SUBSCRIBE, resends) have none.
    What holding means is up to the link implementation, which knows the sources it
    can pause (TCP: a connection's reading).
    """


class Link(Protocol):
    @property
    def peer(self) -> str:
        """The client's address as ``host:port`` (the real one, behind a proxy)."""
        ...

    @property
    def listener(self) -> str:
        """Name of the listener the connection arrived on."""
        ...

    @property
    def certificate_identity(self) -> str | None:
        """The user name taken from a verified client certificate (the listener's
        ``identity_from_certificate``: its CN or full subject), from the TLS handshake
        or from a trusted load balancer's PROXY v2 header; None if there is none."""
        ...

    @property
    def congested(self) -> bool:
        """Whether output waits above the high-water mark (the client reads slowly)."""
        ...

    def hold(self, publisher: FlowSource) -> None:
        """Stop taking input from ``publisher`` until this link drains
        (back-pressure); a source it cannot hold, or itself, is ignored."""
        ...

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet sent to the socket."""
        ...

    def close(self) -> None:
        """Flush what was written, then close the connection."""
        ...
