"""The pure window and keyed-fold logics, on their own (no run): examples from the issue's words,
and a Hypothesis comparison with the plain reference (``window_reference``), whole and cut at
random batch boundaries with the state sent through msgpack and back."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from window_reference import reference_keyed, reference_windows

import actorflow as af
from actorflow._kernel._keyed import KeyedFoldLogic, KeyedState
from actorflow._kernel._window_logic import WindowLogic, WindowState
from actorflow._storage._codec import pack, unpack


def count(acc: int, _x: Any) -> int:
    return acc + 1


def plain(results: list[af.WindowResult]) -> list[tuple[Any, float, float, Any]]:
    return [(r.key, r.start, r.end, r.value) for r in results]


def test_tumbling_windows_are_aligned_to_zero_and_emitted_when_the_watermark_passes_their_end() -> None:
    # the watermark is 12 after the batch: [0, 10) closes with it
    logic2 = WindowLogic(af.Tumbling(10), count, 0, key=lambda x: x[0], time=lambda x: x[1])
    out = logic2.on_batch([("a", 3.0), ("b", 9.5), ("a", 12.0)])
    assert plain(out) == [("a", 0.0, 10.0, 1), ("b", 0.0, 10.0, 1)]
    assert plain(logic2.on_batch([("b", 19.0), ("a", 20.0)])) == [("a", 10.0, 20.0, 1), ("b", 10.0, 20.0, 1)]
    assert plain(logic2.on_eof()) == [("a", 20.0, 30.0, 1)]
    assert logic2.emitted == 5


def test_a_window_closes_when_the_watermark_reaches_its_end_exactly() -> None:
    logic = WindowLogic(af.Tumbling(10), count, 0, time=lambda t: t)
    assert plain(logic.on_batch([1.0, 10.0])) == [(None, 0.0, 10.0, 1)]


def test_late_items_are_listed_and_counted_never_folded() -> None:
    logic = WindowLogic(af.Tumbling(10), count, 0, time=lambda t: t, lateness=2)
    out = logic.on_batch([5.0, 21.0, 19.5, 18.9, 25.0])  # watermark 19 after 21.0: 19.5 is in time, 18.9 late
    assert [(i, t) for i, t, _ in logic.late_items] == [(3, 18.9)]
    assert logic.late == 1
    assert plain(out) == [(None, 0.0, 10.0, 1), (None, 10.0, 20.0, 1)]  # the watermark is 23 at the end
    assert plain(logic.on_eof()) == [(None, 20.0, 30.0, 2)]


def test_negative_times_and_datetimes() -> None:
    logic = WindowLogic(af.Tumbling(10), count, 0, time=lambda t: t)
    out = logic.on_batch([-3.0, dt.datetime(1970, 1, 1, 0, 0, 5), dt.datetime(1970, 1, 1, 0, 0, 7, tzinfo=dt.UTC)])
    assert plain(out + logic.on_eof()) == [(None, -10.0, 0.0, 1), (None, 0.0, 10.0, 2)]
    bad = WindowLogic(af.Tumbling(10), count, 0, time=lambda t: "noon")
    with pytest.raises(TypeError, match=r"float \(seconds\) or a datetime"):
        bad.on_batch([1])
    assert bad.at == 0


def test_sliding_windows_hold_an_item_in_every_window_over_its_time() -> None:
    logic = WindowLogic(af.Sliding(10, 5), count, 0, time=lambda t: t)
    logic.on_batch([7.0])
    assert plain(logic.on_eof()) == [(None, 0.0, 10.0, 1), (None, 5.0, 15.0, 1)]


def test_sessions_merge_when_they_come_to_overlap_and_fold_in_arrival_order() -> None:
    logic = WindowLogic(af.Session(5), lambda acc, x: [*acc, x], [], key=lambda x: "k", time=lambda x: x, lateness=100)
    logic.on_batch([1.0, 12.0, 4.0, 8.0])  # 8.0 bridges [1, 9) and [12, 17)
    assert plain(logic.on_eof()) == [("k", 1.0, 17.0, [1.0, 12.0, 4.0, 8.0])]
    merged = WindowLogic(af.Session(5), count, 0, time=lambda x: x, lateness=100, merge=lambda a, b: a + b)
    merged.on_batch([1.0, 12.0, 4.0, 8.0, 30.0])
    assert plain(merged.on_eof()) == [(None, 1.0, 17.0, 4), (None, 30.0, 35.0, 1)]


def test_processing_time_windows_close_on_the_clock() -> None:
    logic = WindowLogic(af.Tumbling(1), count, 0, key=lambda x: x)
    assert logic.on_batch(["a", "b", "a"], now=100.2) == []
    assert logic.next_due() == 101.0
    assert logic.on_time(100.9) == []
    assert plain(logic.on_time(101.0)) == [("a", 100.0, 101.0, 2), ("b", 100.0, 101.0, 1)]
    assert logic.next_due() == math.inf


def test_keyed_fold_keeps_first_seen_key_order() -> None:
    logic = KeyedFoldLogic(lambda x: x % 3, lambda acc, x: [*acc, x], [], finish=len)
    logic.on_batch([5, 3, 2, 9, 1])
    assert list(logic.on_eof().items()) == [(2, 2), (0, 2), (1, 1)]
    again = KeyedFoldLogic(lambda x: x % 3, lambda acc, x: [*acc, x], [], finish=len)
    again.restore(_through_msgpack(logic.state(), KeyedState))
    assert again.on_eof() == logic.on_eof()


def _through_msgpack(state: Any, cls: type) -> Any:
    return cls(**unpack(pack(attrs.asdict(state, recurse=False))))


# -- against the reference ---------------------------------------------------------------------------


@st.composite
def streams(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["tumbling", "sliding", "session"]))
    n = draw(st.integers(0, 60))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", 7, (1, 2)]), min_size=n, max_size=n))
    base = draw(st.lists(st.integers(-40, 120), min_size=n, max_size=n))
    times = sorted(b / 4 for b in base) if draw(st.booleans()) else [b / 4 for b in base]
    size = draw(st.sampled_from([1.0, 2.5, 4.0]))
    step = draw(st.sampled_from([0.5, 1.0, size])) if kind == "sliding" else None
    if step is not None and step > size:
        step = size
    lateness = draw(st.sampled_from([0.0, 1.0, 5.0]))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return {"kind": kind, "keys": keys, "times": times, "size": size, "step": step, "lateness": lateness,
            "cuts": cuts}


def _windower(s: dict[str, Any]) -> Any:
    if s["kind"] == "tumbling":
        return af.Tumbling(s["size"])
    if s["kind"] == "sliding":
        return af.Sliding(s["size"], s["step"])
    return af.Session(s["size"])


def _logic(s: dict[str, Any]) -> WindowLogic:
    return WindowLogic(_windower(s), lambda acc, x: [*acc, x[2]], [], key=lambda x: x[0], time=lambda x: x[1],
                       lateness=s["lateness"], finish=tuple)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(s=streams())
def test_windows_match_the_reference_whole_and_cut_and_restored(s: dict[str, Any]) -> None:
    items = [(k, t, i) for i, (k, t) in enumerate(zip(s["keys"], s["times"], strict=True))]
    want, late = reference_windows(
        s["kind"], s["keys"], s["times"], list(range(len(items))), size=s["size"], step=s["step"],
        lateness=s["lateness"], init=(), fold=lambda acc, x: (*acc, x),
    )
    logic = _logic(s)
    got, got_late, at = [], [], 0
    for cut in [*s["cuts"], len(items)]:
        got += plain(logic.on_batch(items[at:cut]))
        got_late += [at + i for i, _, _ in logic.late_items]
        at = cut
        restored = _logic(s)  # a resume: the state goes through msgpack into a new logic
        restored.restore(_through_msgpack(logic.state(), WindowState), acc=list, item=tuple)
        logic = restored
    got += plain(logic.on_eof())
    assert got == want
    assert got_late == late and logic.late == len(late)
    assert logic.emitted == len(want)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(keys=st.lists(st.sampled_from(["x", "y", 3, None, (1, "z")]), max_size=50), cut=st.integers(0, 50))
def test_keyed_fold_matches_the_reference(keys: list[Any], cut: int) -> None:
    items = list(enumerate(keys))
    logic = KeyedFoldLogic(lambda x: x[1], lambda acc, x: acc + x[0], 0)
    logic.on_batch(items[:cut])
    restored = KeyedFoldLogic(lambda x: x[1], lambda acc, x: acc + x[0], 0)
    restored.restore(_through_msgpack(logic.state(), KeyedState))
    restored.on_batch(items[cut:])
    got = restored.on_eof()
    want = reference_keyed(keys, [i for i, _ in items], 0, lambda acc, x: acc + x)
    assert list(got.items()) == list(want.items())


def test_open_state_is_bounded_by_open_windows_times_keys_not_by_the_stream() -> None:
    keys = 50
    tumbling = WindowLogic(af.Tumbling(1), count, 0, key=lambda x: x[0], time=lambda x: x[1], lateness=0.5)
    sessions = WindowLogic(af.Session(0.2), count, 0, key=lambda x: x[0], time=lambda x: x[1], lateness=0.5,
                           merge=lambda a, b: a + b)
    most = {"tumbling": 0, "sessions": 0}
    emitted = 0
    for start in range(0, 200_000, 1000):
        batch = [(i % keys, i * 0.001) for i in range(start, start + 1000)]
        emitted += len(tumbling.on_batch(batch))
        sessions.on_batch(batch)
        most["tumbling"] = max(most["tumbling"], tumbling.open_windows(), len(tumbling.wins) * keys)
        most["sessions"] = max(most["sessions"], sessions.open_windows())
    assert emitted >= 198 * keys  # windows close as the stream goes on ...
    assert most["tumbling"] <= 3 * keys  # ... so at most the windows within the lateness stay open
    assert most["sessions"] <= keys  # every key's items are 50 ms apart: one open session each
    assert len(tumbling.kidx) == keys
