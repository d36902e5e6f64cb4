"""What the engine needs from a network connection (implemented by the transport)."""

from __future__ import annotations

from typing import Protocol


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

    def hold(self, publisher: Link) -> None:
        """Stop reading from ``publisher`` until this link drains (back-pressure)."""
        ...

    def write(self, data: bytes) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet sent to the socket."""
        ...

    def close(self) -> None:
        """Flush what was written, then close the connection."""
        ...
