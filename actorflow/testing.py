"""Helpers for testing your own flows: a mock clock, test doubles, injected faults, recorded events.

- :func:`run_with_clock` runs a flow under trio's :class:`~trio.testing.MockClock`, so retry
  backoffs, timeouts and ``trio.sleep`` in tasks take no real time;
- :func:`double` gives a copy of a flow with one task replaced (``Flow.copy`` + ``Flow.replace``);
- :func:`fail_item` wraps a task's function so that its n-th call raises (:class:`InjectedFault`);
- :func:`kill_at_checkpoint` starts a run with a store and cuts it off, as a crash would, right
  after its k-th checkpoint, ready to be resumed;
- :func:`corrupt_store` damages a store on disk in ways it must refuse with a clear error;
- :func:`collect_events` (an :class:`EventRecorder`) records a run's events and waits for one.

See ``docs/testing.md``. Nothing here is needed to run flows; ``import actorflow`` does not load it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, Unpack, final

import lmdb
import trio
import trio.testing

from ._base import RunResult
from ._base import _events as ev
from ._define import Flow, RunGraph
from ._run import Options, Run, RunOptions, open_run
from ._storage import open_store

__all__ = [
    "EventRecorder",
    "InjectedFault",
    "collect_events",
    "corrupt_store",
    "double",
    "fail_item",
    "kill_at_checkpoint",
    "run_with_clock",
]

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=ev.Event)


# -- recording events ------------------------------------------------------------------------------


@final
class EventRecorder:
    """Every event of a run, kept in order. Get it with :func:`collect_events`.

    It subscribes when created: create it right after entering :func:`~actorflow.open_run` to
    see everything from ``RunStarted``. Nothing has to run in the background: :attr:`events`
    takes in what arrived so far; :meth:`wait_for` waits for the next event you name.
    """

    def __init__(self, run: Run, maxlen: int = 1_000_000) -> None:
        self.run = run
        self._stream = run.events(maxlen=maxlen)
        self._seen: list[ev.Event] = []

    def _take(self) -> None:
        while (event := self._stream.get_nowait()) is not None:
            self._seen.append(event)

    @property
    def events(self) -> list[ev.Event]:
        """Every event received so far, oldest first (a copy)."""
        self._take()
        return list(self._seen)

    @property
    def kinds(self) -> list[str]:
        """The ``kind`` of every event so far (``["run_started", "task_started", ...]``)."""
        return [e.kind for e in self.events]

    def of(self, event_type: type[E]) -> list[E]:
        """The events so far of *event_type* (``recorder.of(af.events.ItemRetried)``)."""
        return [e for e in self.events if isinstance(e, event_type)]

    @property
    def dropped(self) -> int:
        """Batch events dropped because the recorder fell more than its *maxlen* behind."""
        return self._stream.dropped

    async def wait_for(self, event_type: type[E], where: Callable[[E], bool] | None = None) -> E:
        """Wait for the next event of *event_type* (for which *where* holds, if given), and return it.

        Events already received are not searched: this waits for a new one.

        Raises:
            AssertionError: the run ended without publishing one.
        """
        self._take()
        async for event in self._stream:
            self._seen.append(event)
            if isinstance(event, event_type) and (where is None or where(event)):
                return event
        raise AssertionError(f"the run ended without a {event_type.__name__} event")

    def close(self) -> None:
        """Stop recording (what was received is kept)."""
        self._take()
        self._stream.close()


def collect_events(run: Run, maxlen: int = 1_000_000) -> EventRecorder:
    """Record *run*'s events from now on (see :class:`EventRecorder`).

    Args:
        run: an open run; call this right after entering :func:`~actorflow.open_run`.
        maxlen: how many batch events may pile up unread before further ones are dropped
            (lifecycle events are always kept).
    """
    return EventRecorder(run, maxlen)


# -- running under a mock clock --------------------------------------------------------------------


def run_with_clock(
    flow: Flow | RunGraph,
    options: Options | None = None,
    *,
    clock: trio.abc.Clock | None = None,
    events: list[ev.Event] | None = None,
    **settings: Unpack[RunOptions],
) -> RunResult:
    """Run *flow* to completion under a mock clock (from synchronous code) and return its products.

    Time moves only when every task is waiting: with the default ``MockClock(autojump_threshold=0)``
    a retry's backoff, a ``trio.sleep`` in a task and ``checkpoint_every`` pass at once, and the
    run's timings are exact. Work done in threads (checkpoint writes, thread executors) still
    takes real time.

    Args:
        flow: a :class:`~actorflow.Flow` or a bound run graph.
        options: option values by task, as for :func:`~actorflow.run`.
        clock: the clock to run under (keep it to read ``clock.current_time()`` afterwards).
        events: a list that receives every event of the run, also when the run fails.
        settings: the run settings of :func:`~actorflow.run` (``store=``, ``resume=``, ...).

    Raises:
        Whatever :func:`~actorflow.run` raises.
    """
    the_clock = clock if clock is not None else trio.testing.MockClock(autojump_threshold=0)

    async def main() -> RunResult:
        async with open_run(flow, options, **settings) as run:
            recorder = EventRecorder(run) if events is not None else None
            try:
                return await run.result()
            finally:
                if recorder is not None and events is not None:
                    events.extend(recorder.events)
                    recorder.close()

    return trio.run(main, clock=the_clock)


# -- test doubles and injected faults --------------------------------------------------------------


def double(flow: Flow, name: str, fn: Callable[..., Any]) -> Flow:
    """A copy of *flow* whose task *name* runs *fn* instead; *flow* itself is left alone.

    *fn* is checked as :meth:`Flow.replace` checks it: its inputs must exist and its output must
    still fit every task that reads it. The task keeps its settings (policy, concurrency, ...).

    Raises:
        DefinitionError: *fn* does not fit the task's place.
    """
    copy = flow.copy()
    copy.replace(name, fn)
    return copy


class InjectedFault(Exception):
    """The error :func:`fail_item` raises by default."""


def fail_item(
    fn: F,
    n: int,
    exc: BaseException | type[BaseException] | None = None,
    *,
    times: int = 1,
) -> F:
    """*fn*, wrapped so that its call number *n* (and the *times* - 1 calls after it) raises.

    Calls count from 0, so for a task fed one call per item, with nothing retried, ``n`` is the
    sequence number of the item that fails. A retried item is called again and counts again:
    ``times=2`` with ``af.Retry(attempts=3)`` makes an item fail twice and then succeed.

    The wrapper keeps *fn*'s name, signature and annotations, so a flow wires it by parameter
    name as it wired *fn*; it is of the same kind (sync or async function, generator or async
    generator: a generator raises before its first item). Use it with :func:`double`::

        flaky = af.testing.double(flow, "fetch", af.testing.fail_item(fetch, 3))

    A wrapped function is a closure, so it runs inline or with a thread executor, not in worker
    processes. It has the cache key of *fn* (the work is the same): with a store whose cache
    already holds the task, its code, and so the fault, does not run; pass ``cache=False``.

    Args:
        fn: the task's function.
        n: the first call that raises (0 for the first call).
        exc: the exception (an instance or a class) to raise; default :class:`InjectedFault`.
        times: how many calls in a row raise, from call *n*.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"fail_item: n must be an int >= 0, got {n!r}")
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError(f"fail_item: times must be an int >= 1, got {times!r}")
    calls = itertools.count()  # next() is atomic: safe with thread executors too
    label = getattr(fn, "__qualname__", repr(fn))

    def check() -> None:
        call = next(calls)
        if n <= call < n + times:
            if exc is None:
                raise InjectedFault(f"injected fault in {label} at call {call}")
            raise exc

    wrapper = _wrapper(fn, check)
    functools.update_wrapper(wrapper, fn)
    wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _wrapper(fn: Callable[..., Any], check: Callable[[], None]) -> Callable[..., Any]:
    """A function of *fn*'s kind that calls *check* first, then *fn*."""
    if inspect.isasyncgenfunction(fn):

        async def agen(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            check()
            async for item in fn(*args, **kwargs):
                yield item

        return agen
    if inspect.isgeneratorfunction(fn):

        def gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
            check()
            yield from fn(*args, **kwargs)

        return gen
    if inspect.iscoroutinefunction(fn):

        async def coro(*args: Any, **kwargs: Any) -> Any:
            check()
            return await fn(*args, **kwargs)

        return coro

    def plain(*args: Any, **kwargs: Any) -> Any:
        check()
        return fn(*args, **kwargs)

    return plain


# -- crashes and damaged stores --------------------------------------------------------------------


async def kill_at_checkpoint(
    flow: Flow | RunGraph,
    options: Options | None = None,
    *,
    k: int,
    **settings: Unpack[RunOptions],
) -> list[ev.Event]:
    """Start a run with a store and cut it off, as a crash would, right after its *k*-th checkpoint.

    *settings* are those of :func:`~actorflow.open_run` and must name the ``store``. The run is
    cancelled as soon as its *k*-th periodic checkpoint is written (counted in this run, from 1;
    final checkpoints do not count), so no final checkpoint is written and the store holds an
    unfinished run: resume it with ``af.run(flow, options, store=store, resume=True)``. Pass
    ``checkpoint_every=`` (seconds) to get checkpoints soon enough, and ``resume=True`` to cut a
    resumed run again.

    Example:
        events = await af.testing.kill_at_checkpoint(flow, opts, k=3, store=path, checkpoint_every=0.02)
        result = await af.run_async(flow, opts, store=path, resume=True)

    Returns:
        Every event the run published (its last checkpoint is the *k*-th; its last event is
        ``RunFinished`` with status ``"cancelled"``).

    Raises:
        AssertionError: the run ended before its *k*-th checkpoint.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"kill_at_checkpoint: k must be an int >= 1, got {k!r}")
    if settings.get("store") is None:
        raise TypeError("kill_at_checkpoint() needs store=...: checkpoints are written to a store")
    written = 0
    with trio.CancelScope() as scope:

        def cut(event: ev.Event) -> None:
            nonlocal written
            if isinstance(event, ev.CheckpointWritten) and not event.final:
                written += 1
                if written == k:
                    scope.cancel()  # in the supervisor's own step: no later checkpoint can be written

        async with open_run(flow, options, **settings) as run:
            recorder = EventRecorder(run)
            run.bus.hook(cut)
            with contextlib.suppress(AssertionError):  # the run ended first: said below
                await recorder.wait_for(ev.RunFinished)
    if not scope.cancelled_caught:
        raise AssertionError(f"the run ended after {written} checkpoint(s), before checkpoint {k} was written")
    return recorder.events


StoreDamage = Literal["truncate", "header", "checkpoint"]


def corrupt_store(path: str | os.PathLike[str], how: StoreDamage = "truncate") -> None:
    """Damage the store at *path* on disk in a way it must detect and refuse with a ``StoreError``.

    The store must not be open (in this process or another) while it is damaged.

    Args:
        path: the store's directory.
        how: ``"truncate"`` cuts ``data.mdb`` to half the pages it uses (as a full disk or a
            copy cut short would); ``"header"`` overwrites the LMDB meta pages at the start of
            ``data.mdb`` (it is no LMDB file any more); ``"checkpoint"`` replaces the latest
            checkpoint with bytes that do not decode.

    Raises:
        ValueError: an unknown *how*.
        FileNotFoundError: no store there.
    """
    data = Path(path) / "data.mdb"
    if not data.is_file():
        raise FileNotFoundError(f"no store at {str(path)!r} (no data.mdb)")
    if how == "checkpoint":
        with open_store(path, create=False) as st:
            st.write_checkpoint(b"\xc1 this is not a checkpoint", [])
        return
    if how not in ("truncate", "header"):
        raise ValueError(f"corrupt_store: how must be 'truncate', 'header' or 'checkpoint', got {how!r}")
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=8, subdir=True)
    try:
        pages, psize = env.info()["last_pgno"] + 1, env.stat()["psize"]
    finally:
        env.close()
    if how == "truncate":
        os.truncate(data, max(2, pages // 2) * psize if pages > 3 else psize)
        return
    with open(data, "r+b") as f:  # both meta pages: LMDB finds no valid one
        f.write(b"\xde\xad" * psize)
