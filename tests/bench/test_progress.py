"""The progress line: rewritten in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from roost.bench.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(out, 10, messages=True)
    p.show(p.format(1, 5, 5, 0, 100, 99, 1.5))
    p.show(p.format(2, 10, 5, 0, 100, 100, None))
    p.end()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[   1s] connected 5/10 (+5/s) failed 0 | sent 100/s received 99/s | p99 1.50 ms",
        "[   2s] connected 10/10 (+5/s) failed 0 | sent 100/s received 100/s | p99 -",
    ]
    assert "\r" not in out.getvalue()


def test_terminal_line_is_rewritten():
    out = Tty()
    p = Progress(out, 3, messages=False)
    p.show(p.format(1, 3, 3, 0, 0, 0, None))
    p.note("done")
    assert out.getvalue() == "\r\x1b[K[   1s] connected 3/3 (+3/s) failed 0\ndone\n"


def test_quiet_shows_nothing():
    out = io.StringIO()
    p = Progress(out, 3, messages=False, quiet=True)
    p.show("x")
    p.note("y")
    assert out.getvalue() == ""
