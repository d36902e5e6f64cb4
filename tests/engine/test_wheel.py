"""The timer wheel that carries every connection's keepalive and connect timeout."""

from __future__ import annotations

from roost.engine.wheel import TimerWheel
from tests.engine.memory import ManualClock


def test_fires_never_early_and_at_most_one_resolution_late():
    clock = ManualClock()
    w = TimerWheel(clock, 0.25)
    fired: list[float] = []
    w.call_later(1.1, lambda: fired.append(clock.now))
    clock.advance(1.09)
    assert fired == []
    clock.advance(0.3)
    assert len(fired) == 1
    assert 1000 + 1.1 <= fired[0] <= 1000 + 1.1 + 0.25


def test_timers_fire_in_deadline_order_on_one_clock_timer():
    clock = ManualClock()
    w = TimerWheel(clock, 1.0)
    fired: list[str] = []
    for name, delay in (("c", 30), ("a", 5), ("b", 12), ("a2", 5)):
        w.call_later(delay, lambda name=name: fired.append(name))
    # One armed clock timer, whatever the number of wheel timers (cancelled ones stay
    # in the heap of the manual clock, so count the live ones).
    assert sum(1 for *_, t, _cb in clock._heap if not t.cancelled) == 1
    clock.advance(5)
    assert sorted(fired) == ["a", "a2"]
    clock.advance(7)
    assert fired[-1] == "b"
    clock.advance(18)
    assert fired[-1] == "c"
    assert len(w) == 0


def test_an_earlier_timer_rearms_the_clock():
    clock = ManualClock()
    w = TimerWheel(clock, 0.5)
    fired: list[str] = []
    w.call_later(60, lambda: fired.append("late"))
    w.call_later(2, lambda: fired.append("soon"))
    clock.advance(2.0)
    assert fired == ["soon"]


def test_cancel_removes_the_timer():
    clock = ManualClock()
    w = TimerWheel(clock)
    fired: list[str] = []
    t = w.call_later(3, lambda: fired.append("x"))
    w.call_later(3, lambda: fired.append("y"))
    t.cancel()
    t.cancel()  # twice is harmless
    assert len(w) == 1
    clock.advance(4)
    assert fired == ["y"]


def test_a_callback_may_cancel_another_timer_of_its_own_slot():
    clock = ManualClock()
    w = TimerWheel(clock, 1.0)
    fired: list[str] = []
    timers = {}

    def first(name: str, other: str) -> None:
        fired.append(name)
        timers[other].cancel()

    timers["a"] = w.call_later(2, lambda: first("a", "b"))
    timers["b"] = w.call_later(2, lambda: first("b", "a"))
    clock.advance(2)
    assert len(fired) == 1  # whichever ran first cancelled the other


def test_a_callback_may_schedule_again():
    """The keepalive check re-arms itself for the rest of the interval."""
    clock = ManualClock()
    w = TimerWheel(clock, 0.25)
    fired: list[float] = []

    def tick() -> None:
        fired.append(clock.now)
        if len(fired) < 3:
            w.call_later(10, tick)

    w.call_later(10, tick)
    clock.advance(100)
    assert [round(t - 1000) for t in fired] == [10, 20, 30]
    assert len(w) == 0


def test_zero_and_negative_delays_fire_on_the_next_tick():
    clock = ManualClock()
    w = TimerWheel(clock, 0.25)
    fired: list[str] = []
    w.call_later(0, lambda: fired.append("zero"))
    w.call_later(-5, lambda: fired.append("negative"))
    clock.advance(0.25)
    assert sorted(fired) == ["negative", "zero"]


def test_a_failing_callback_does_not_stop_the_others(caplog):
    clock = ManualClock()
    w = TimerWheel(clock, 1.0)
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    w.call_later(1, boom)
    w.call_later(1, lambda: fired.append("same slot"))
    w.call_later(5, lambda: fired.append("later slot"))
    clock.advance(10)
    assert sorted(fired) == ["later slot", "same slot"]
    assert "boom" in caplog.text
