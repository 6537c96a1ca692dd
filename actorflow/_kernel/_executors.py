"""Executor sessions: run a task's function on whole batches of items outside the trio loop.

A trio loop runs on one core. A task defined with ``executor=`` sends each batch of items it
takes from its mailbox to a worker -- a local process (:class:`ProcessExecutor`, built on
trio-parallel) or a Dask distributed cluster (:class:`DaskExecutor`) -- and gets the batch of
results back in one round trip. Several batches are kept in flight (the task's ``concurrency``,
which defaults to the executor's ``in_flight``) and their outputs leave in input order, so
everything downstream sees exactly what an inline task would have produced.

The executors themselves are values (``_executor_choice``); :func:`open_session` opens one for a
run of a task.

Functions travel to workers by reference (module and qualified name), so an executor task must
be a module-level function: lambdas, closures and nested functions are refused when the task is
defined or the flow is bound, with a message naming the task.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, final

import attrs
import trio

from .._base import ActorflowError, bind, instance_of, item_caller, load
from .._define import Context, DaskExecutor, Executor, ProcessExecutor, Report, ThreadExecutor, is_client

# -- what runs in the worker -------------------------------------------------------------------


@attrs.frozen
class BatchCall:
    """A task's function with its options bound, as sent to a worker.

    Attributes:
        fn: the task's function (a module-level function, sent by reference).
        consts: option values and final inputs, passed by keyword.
        names: the streaming inputs' parameter names.
        positional: True when the streaming parameters come first (items are passed positionally).
        generator: True for a generator function (each item gives a list of outputs).
        seq: the parameter annotated ``af.Seq`` (each item's sequence number), if any.
        timeout: seconds one item may run (a task with ``timeout=``; thread executors only): an
            item that runs longer is abandoned -- its thread runs on unobserved until it returns --
            and fails with ``TimeoutError``.
    """

    fn: Callable[..., Any]
    consts: dict[str, Any]
    names: tuple[str, ...]
    positional: bool
    generator: bool
    seq: str | None = None
    timeout: float | None = None

    def caller(self) -> tuple[Callable[..., Any], Any]:
        """The function as a one-argument callable of an item (a tuple of items for zipped inputs),
        and the task-class instance it calls (None for a function)."""
        bound = bind(self.fn, self.consts)  # a task class: one new instance
        call = item_caller(bound, self.names, self.positional, self.seq)
        if self.generator and self.seq is not None:
            return (lambda item, seq: list(call(item, seq))), instance_of(bound)
        if self.generator:
            return (lambda item: list(call(item))), instance_of(bound)
        return call, instance_of(bound)


class TaskStateError(ActorflowError):
    """A task class changed its instance's attributes while running a batch on an executor."""


#: What a batch gives back: its results, the index of the item that raised (-1: none) and its
#: exception, what the task's ``af.Context`` reported meanwhile (see ``_context.route``), and the
#: seconds the worker spent on it (for sizing batches by their round trip).
Outcome = tuple[list[Any], int, BaseException | None, list[Report], float]


def run_batch(call: BatchCall, items: list[Any], seqs: list[Any] | None = None) -> Outcome:
    """Run *call* on every item (with its sequence number from *seqs* when the task asks); executed in the worker.

    Returns:
        ``(results, index, error, reports, seconds)``: on success every result, ``-1`` and None; when
        item *index* raised, the results before it, its index and the exception (with the worker's
        traceback added as a note, since tracebacks do not travel between processes); the
        progress reports and log records of the task's context, if it has one; and the time taken.

    Raises:
        TaskStateError: a task class's instance rebound an attribute during the batch (state that
            would reset with the next batch's new instance; :func:`stateful` refuses the cases its
            source shows at definition, this catches the rest).
    """
    t0 = time.perf_counter()
    out: list[Any] = []
    append = out.append
    f, instance = call.caller()
    before = dict(vars(instance)) if instance is not None and hasattr(instance, "__dict__") else None
    try:
        if seqs is not None:
            for x, s in zip(items, seqs, strict=True):
                append(f(x, s))  # an af.Seq task's caller takes the seq too
        else:
            for x in items:
                append(f(x))
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # an exit stops the run, not the worker
        exc.add_note("traceback in the worker:\n" + "".join(traceback.format_exception(exc)).rstrip())
        return out, len(out), exc, _reports(call), time.perf_counter() - t0
    if before is not None:
        after = vars(instance)
        changed = sorted({k for k in after if before.get(k, _ABSENT) is not after[k]} | (before.keys() - after.keys()))
        if changed:
            raise TaskStateError(
                f"task class {type(instance).__qualname__} changed self.{changed[0]} while running a batch on an "
                "executor; each batch runs on a new instance in a worker, so that state would reset between "
                "batches: run it inline (no executor), keep the state downstream in a collector, or set up what "
                "it reuses (a client, a model) in __init__"
            )
    return out, -1, None, _reports(call), time.perf_counter() - t0


def _reports(call: BatchCall) -> list[Report]:
    """What the task's context (a detached copy, sent with the batch) reported while it ran."""
    return [r for v in call.consts.values() if isinstance(v, Context) for r in v.take_reports()]


_ABSENT = object()


# -- sessions ----------------------------------------------------------------------------------


class Session:
    """An executor opened for one task of one run: sends batches, returns results."""

    async def run(self, call: BatchCall, items: list[Any], seqs: list[Any] | None = None) -> Outcome:
        """Run one batch remotely; returns what :func:`run_batch` returns."""
        raise NotImplementedError


@asynccontextmanager
async def open_session(executor: Executor) -> AsyncIterator[Session]:
    """*executor* opened for one run of one task: a :class:`Session` that runs its batches."""
    if isinstance(executor, ThreadExecutor):
        yield _ThreadSession(trio.CapacityLimiter(executor.threads))
    elif isinstance(executor, ProcessExecutor):
        async with _process_session(executor) as session:
            yield session
    elif isinstance(executor, DaskExecutor):
        async with _dask_session(executor) as session:
            yield session
    else:
        raise TypeError(
            f"{executor!r} is not an executor actorflow can open; use ThreadExecutor, ProcessExecutor or DaskExecutor"
        )


@asynccontextmanager
async def _process_session(self: ProcessExecutor) -> AsyncIterator[Session]:
    import trio_parallel

    # When the task ends its workers are idle: they are stopped at once (as a multiprocessing pool's
    # terminate() does) rather than asked to exit and waited for, which took a few hundred ms per
    # run. trio-parallel reports stopped workers as a BrokenWorkerError, which is then no error.
    raised: BaseException | None = None
    stopped = False
    try:
        async with trio_parallel.open_worker_context(idle_timeout=self.idle_timeout, grace_period=0.0) as ctx:
            try:
                yield _ProcessSession(ctx, trio.CapacityLimiter(self.workers))
            except BaseException as exc:
                raised = exc
                raise
    except trio_parallel.BrokenWorkerError as exc:
        if exc is raised:
            raise
        stopped = True
    if stopped and raised is not None:
        raise raised  # what ended the task, not the stopping of its workers


@asynccontextmanager
async def _dask_session(self: DaskExecutor) -> AsyncIterator[Session]:
    target = self.target
    if is_client(target):
        yield _DaskSession(target)
        return
    address = target if isinstance(target, str) else target.scheduler_address
    client = await trio.to_thread.run_sync(_connect, address)
    try:
        yield _DaskSession(client)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(client.close)


@final
class _ThreadSession(Session):
    def __init__(self, limiter: trio.CapacityLimiter) -> None:
        self.limiter = limiter
        #: The thread limiter of a timed call, around which the session's own limiter is held (an
        #: abandoned thread gives its place back at once).
        self.unlimited = trio.CapacityLimiter(1_000_000)

    async def run(self, call: BatchCall, items: list[Any], seqs: list[Any] | None = None) -> Outcome:
        if call.timeout is None:
            return await trio.to_thread.run_sync(run_batch, call, items, seqs, limiter=self.limiter)
        out: list[Any] = []
        reports: list[Report] = []
        worked = 0.0
        for i, x in enumerate(items):  # one item per call, timed from when a thread is free for it
            async with self.limiter:
                with trio.move_on_after(call.timeout) as scope:
                    done, _, error, said, took = await trio.to_thread.run_sync(
                        run_batch, call, [x], None if seqs is None else [seqs[i]], limiter=self.unlimited,
                        abandon_on_cancel=True,
                    )
            if scope.cancelled_caught:
                late = TimeoutError(
                    f"the item ran longer than its timeout of {call.timeout:g} s; its thread was abandoned"
                )
                return out, i, late, reports, worked + call.timeout
            out.extend(done)
            reports += said
            worked += took
            if error is not None:
                return out, i, error, reports, worked
        return out, -1, None, reports, worked


@final
class _ProcessSession(Session):
    def __init__(self, ctx: Any, limiter: trio.CapacityLimiter) -> None:
        self.ctx = ctx
        self.limiter = limiter

    async def run(self, call: BatchCall, items: list[Any], seqs: list[Any] | None = None) -> Outcome:
        result: Outcome = await self.ctx.run_sync(
            run_batch, call, items, seqs, limiter=self.limiter, kill_on_cancel=True
        )
        return result


def _connect(address: str) -> Any:
    return load("distributed", "DaskExecutor").Client(address, set_as_default=False, timeout=30)


@final
class _DaskSession(Session):
    """Submits batches through a synchronous Client; waits without blocking the trio loop.

    The client's own event loop (a thread owned by the client) gathers each result; its
    completion wakes the trio task through the trio token. No thread of ours waits on it.
    """

    def __init__(self, client: Any) -> None:
        import asyncio

        self.client = client
        self.token = trio.lowlevel.current_trio_token()
        loop = getattr(client.loop, "asyncio_loop", None)
        if loop is None or getattr(client, "asynchronous", False):
            raise TypeError(
                "DaskExecutor needs a synchronous distributed.Client (one with its own event loop thread); "
                "pass the scheduler address instead"
            )
        self.loop = loop
        self._run_coroutine = asyncio.run_coroutine_threadsafe

    async def run(self, call: BatchCall, items: list[Any], seqs: list[Any] | None = None) -> Outcome:
        client = self.client
        fut = client.submit(run_batch, call, items, seqs, pure=False)
        done = trio.Event()
        gathered = self._run_coroutine(_gather(client, fut), self.loop)
        token = self.token

        def wake(_: Any) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        gathered.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            gathered.cancel()
            self._run_coroutine(_cancel(client, fut), self.loop)
            raise
        result: Outcome = gathered.result()
        return result


async def _gather(client: Any, fut: Any) -> Any:
    return await client.gather(fut, asynchronous=True)


async def _cancel(client: Any, fut: Any) -> None:
    try:
        await client.cancel([fut], asynchronous=True)
    except Exception:  # the client may be closing already; the future is released with it
        pass
