"""The session queue behaves like collections.deque for the operations sessions use."""

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.engine.session import Fifo

ops = st.lists(st.one_of(st.integers(0, 10**6).map(lambda i: ("append", i)),
                         st.just(("popleft", None)), st.just(("clear", None))), max_size=400)


@settings(max_examples=200)
@given(ops)
def test_fifo_matches_deque(operations):
    fifo, reference = Fifo(), deque()
    for op, value in operations:
        if op == "append":
            fifo.append(value)  # type: ignore[arg-type]
            reference.append(value)
        elif op == "popleft":
            if reference:
                assert fifo.popleft() == reference.popleft()
            else:
                try:
                    fifo.popleft()
                except IndexError:
                    pass
                else:
                    raise AssertionError("popleft on an empty Fifo must raise IndexError")
        else:
            fifo.clear()
            reference.clear()
        assert len(fifo) == len(reference)
        assert bool(fifo) == bool(reference)
        assert list(fifo) == list(reference)
