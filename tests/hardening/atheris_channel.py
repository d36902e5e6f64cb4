"""Coverage-guided fuzzing of one connection's state machine with atheris (libFuzzer).

Not part of ``make test``: run ``make fuzz-atheris`` (it installs atheris into the venv),
or ``python -m tests.hardening.atheris_channel -max_total_time=600 [corpus dir]``.

Each input drives a fresh engine in memory (no sockets, a manual clock): two bytes pick
the chunking and whether time passes, the rest is fed to a Channel, usually after a valid
CONNECT. A bug is any exception escaping the Channel (violations must end in ``_fail``),
anything it writes that does not decode as whole packets, or a connection left open
after its input ended with a violation.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from roost.engine.channel import Channel
    from roost.engine.engine import Engine
    from roost.engine.hooks import AnonymousPolicy
    from roost.engine.settings import EngineSettings
    from roost.mqtt import Connect, Decoder, ProtocolViolation, encode

from tests.engine.memory import ManualClock

SETTINGS = EngineSettings(max_packet_size=4096, receive_maximum=4, max_topic_levels=8,
                          max_topic_length=64, max_subscriptions=4, max_client_id_length=32,
                          max_user_properties=4, connect_timeout=5)


class Link:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    peer = "fuzz:1"
    listener = "default"
    certificate_identity: str | None = None

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def buffered(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def _decodes(data: bytes) -> bool:
    for level in (4, 5):
        decoder = Decoder(level)
        try:
            decoder.feed(data)
        except ProtocolViolation:
            continue
        if decoder.buffered == 0:
            return True
    return False


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, chunk = data[0], data[1] or 1
    body = data[2:]
    clock = ManualClock()
    engine = Engine(clock, SETTINGS, authenticators=[AnonymousPolicy({"default": True}, True)])
    if mode & 0x03:
        level = (3, 4, 5)[(mode & 0x03) - 1]
        body = encode(Connect("fuzz", level, True, 10), level) + body
    link = Link()
    channel = Channel(engine, link)
    for i in range(0, len(body), chunk):
        channel.data_received(body[i:i + chunk])
        if mode & 0x04:
            clock.advance(1.0)
        if channel.closed:
            break
    if mode & 0x08:
        clock.advance(60.0)  # timers: connect timeout, keepalive, expiry, will delay
    if not channel.closed:
        channel.connection_lost()
    assert _decodes(bytes(link.out)), bytes(link.out)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
