"""Model-based test of keyed folds and windows in real runs, against the plain reference
(``window_reference``): random keys, event times out of order within and beyond the lateness, all
three window kinds, random batch sizes and mailbox capacities; run plainly, and cut at a random
moment (cancelled after a checkpoint) then resumed from the store, possibly several times.

This sits beside ``test_model.py`` (which draws whole random graphs) rather than inside it: the
window tasks need their own reference, and a window's output is checked in order, late items
and all. The default profile runs a fixed, derandomized set of examples (CI).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from window_reference import reference_keyed, reference_windows

import actorflow as af

_EXAMPLES = int(os.environ.get("ACTORFLOW_MODEL_EXAMPLES", "0") or 0)

Event = tuple[Any, float, int]


def model_settings(ci: int) -> settings:
    return settings(
        max_examples=_EXAMPLES or ci, deadline=None, derandomize=not _EXAMPLES, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass(frozen=True)
class Case:
    kind: str
    keys: list[Any]
    times: list[float]
    size: float
    step: float | None
    lateness: float
    batch_size: int
    capacity: int
    merge: bool

    @property
    def events(self) -> list[Event]:
        return [(k, t, i) for i, (k, t) in enumerate(zip(self.keys, self.times, strict=True))]

    def windower(self) -> Any:
        if self.kind == "tumbling":
            return af.Tumbling(self.size)
        if self.kind == "sliding":
            return af.Sliding(self.size, self.step or self.size)
        return af.Session(self.size)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["tumbling", "sliding", "session"]))
    n = draw(st.one_of(st.integers(0, 40), st.integers(200, 1500)))
    keys = draw(st.lists(st.sampled_from(["a", "b", 3, (1, "x"), None]), min_size=n, max_size=n))
    # event times on a quarter-second grid (exact in binary): mostly rising, with jitter
    # within and beyond the lateness
    jitter = draw(st.lists(st.integers(-12, 2), min_size=n, max_size=n))
    times = [max(-20.0, i / 8 + j / 4) for i, j in enumerate(jitter)]
    size = draw(st.sampled_from([0.5, 1.0, 2.5]))
    step = draw(st.sampled_from([0.25, 0.5, size])) if kind == "sliding" else None
    if step is not None and step > size:
        step = size
    return Case(
        kind=kind, keys=keys, times=times, size=size, step=step,
        lateness=draw(st.sampled_from([0.0, 0.5, 2.0])),
        batch_size=draw(st.sampled_from([1, 3, 64, 1024])),
        capacity=draw(st.sampled_from([1, 8, 1024])),
        merge=kind == "session" and draw(st.booleans()),
    )


def build(case: Case) -> af.Flow:
    flow = af.Flow("model_windows")
    events = case.events

    @flow.source(batch_size=case.batch_size)
    def source() -> af.Stream[Event]:
        yield from events

    def fold(acc: list[int], source: Event) -> list[int]:
        return [*acc, source[2]]

    merge = (lambda a, b: sorted(a + b)) if case.merge else None
    flow.window(case.windower(), key=lambda e: e[0], time=lambda e: e[1], lateness=case.lateness, init=[],
                merge=merge, capacity=case.capacity, name="win")(fold)

    def count(acc: int, source: Event) -> int:
        return acc + source[2]

    flow.collector(init=0, key=lambda e: e[0], capacity=case.capacity, name="keyed")(count)
    return flow


def expected(case: Case) -> tuple[list[tuple[Any, float, float, Any]], list[int], dict[Any, int]]:
    finish = sorted if case.merge else list
    wins, late = reference_windows(
        case.kind, case.keys, case.times, list(range(len(case.keys))), size=case.size, step=case.step,
        lateness=case.lateness, init=[], fold=lambda acc, x: [*acc, x], finish=finish,
    )
    keyed = reference_keyed(case.keys, list(range(len(case.keys))), 0, lambda acc, x: acc + x)
    return wins, late, keyed


def rows(result: af.RunResult, merge: bool) -> list[tuple[Any, float, float, Any]]:
    return [(r.key, r.start, r.end, sorted(r.value) if merge else list(r.value)) for r in result["win"]]


def check(case: Case, result: af.RunResult, what: str, dead: bool = True) -> None:
    wins, late, keyed = expected(case)
    assert rows(result, case.merge) == wins, what
    assert list(result["keyed"].items()) == list(keyed.items()), what
    assert result.summary.tasks["win"].late == len(late), what
    if dead:
        assert [d["seq"] for d in result.dead_letters] == late, what
        assert all("late" in d["error"] for d in result.dead_letters), what


def run_trio(fn: Any, *args: Any, **kwargs: Any) -> Any:
    async def main() -> Any:
        with trio.fail_after(30):
            return await fn(*args, **kwargs)

    return trio.run(main)


@contextmanager
def temp_store() -> Iterator[str]:
    root = tempfile.mkdtemp(prefix="actorflow-windows-")
    try:
        yield os.path.join(root, "store")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@model_settings(60)
@given(case=cases())
def test_windows_and_keyed_folds_match_the_reference(case: Case) -> None:
    note(repr(case))
    check(case, run_trio(af.run_async, build(case)), "plain run")


async def run_and_cut(flow: af.Flow, store: str, resume: bool, stop: int) -> bool:
    """A run cancelled after *stop* batches of the window task (a checkpoint first); True when it finished."""
    batches = 0
    async with af.open_run(flow, store=store, resume=resume, checkpoint_every=0.001) as run:
        async for event in run.events():
            if isinstance(event, af.events.BatchProcessed) and event.task == "win":
                batches += 1
                if batches >= stop:
                    if run.status == "running":
                        await run.checkpoint_now()
                    run.cancel()
                    break
        try:
            await run.result()
        except af.RunCancelled:
            return False
    return True


@model_settings(40)
@given(case=cases(), stops=st.lists(st.integers(1, 30), min_size=1, max_size=3))
def test_windows_cut_and_resumed_match_the_reference(case: Case, stops: list[int]) -> None:
    note(repr(case))
    flow = build(case)
    with temp_store() as store:
        resume = False
        for stop in stops:
            if run_trio(run_and_cut, flow, store, resume, stop):
                event("finished before its cut")
                return  # nothing to resume (the plain property covers it)
            resume = True
        event("resumed")
        final = run_trio(af.run_async, flow, store=store, resume=True)
        check(case, final, f"resumed after {len(stops)} cut(s)", dead=False)
