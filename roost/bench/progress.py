"""The live progress line: once a second on stderr.

On a terminal the line is rewritten in place; anywhere else (a pipe, a CI log) each
second is a plain line of its own, so logs stay readable.
"""

from __future__ import annotations

from typing import TextIO


def _rate(n: float) -> str:
    return f"{n:,.0f}"


class Progress:
    def __init__(self, stream: TextIO, planned: int, messages: bool, quiet: bool = False) -> None:
        self.stream = stream
        self.planned = planned
        self.messages = messages
        self.quiet = quiet
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._dirty = False

    def format(self, t: int, open_: int, connects: int, failed_total: int, sent: int,
               received: int, p99_ms: float | None) -> str:
        line = (f"[{t:4d}s] connected {open_:,}/{self.planned:,} (+{connects:,}/s) "
                f"failed {failed_total:,}")
        if self.messages:
            p99 = f"{p99_ms:.2f} ms" if p99_ms is not None else "-"
            line += f" | sent {_rate(sent)}/s received {_rate(received)}/s | p99 {p99}"
        return line

    def show(self, line: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A one-off message (phase changes, warnings), never overwritten."""
        if self.quiet:
            return
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
