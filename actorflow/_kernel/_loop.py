"""The one item loop: how every actor calls the user's code on items.

A :class:`Handler` is the user's function made ready for one actor: options and final inputs
bound once, a task class instantiated once (and again only when the Restart policy restarts the
actor), and the calling convention — streaming inputs by position or keyword, ``af.Seq``,
``af.Context``, ``af.Cursor`` — decided once. An :class:`ItemLoop` calls it on batches: sync
handlers through ``map`` (a C loop), async ones awaited one by one, generators item by item; and
it owns what happens when user code raises: the task's policy (retry with backoff, restart,
dead letter, fail) through :meth:`ItemLoop.recover`. Sources, tasks, sinks, collectors,
per-collectors and executor-backed tasks all go through here.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from operator import length_hint
from typing import TYPE_CHECKING, Any, Protocol

import trio

from .._base import SKIP, HandlerStopped, ItemFailure, MailboxTypeError, bind, instance_of, item_caller, step_caller

if TYPE_CHECKING:
    from .._define import TaskDef

Batch = tuple[list[Any], list[Any]]

#: What user code may raise to stop the whole run (``Ctrl-C``, ``sys.exit``): it reaches the
#: caller as itself after a checkpoint, and the item it interrupted is put back (see ``docs/durability.md``).
EXITS = (KeyboardInterrupt, SystemExit)

#: Exceptions that are never a handler's failure on an item: exits, cancellation and the kernel's own.
_NOT_FAILURES = (KeyboardInterrupt, SystemExit, trio.Cancelled, ItemFailure, MailboxTypeError)


def is_failure(exc: BaseException) -> bool:
    """Whether *exc*, raised by user code, fails the item under its policy.

    Every exception does (``StopIteration``, ``GeneratorExit`` and ``BaseException`` subclasses of the
    user's own included) except exits (KeyboardInterrupt, SystemExit), trio's cancellation and the
    kernel's own errors -- also when they come inside an exception group.
    """
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(lambda e: isinstance(e, _NOT_FAILURES)) is None
    return not isinstance(exc, _NOT_FAILURES)


def _zero() -> int:
    return 0


def child_seq(seq: Any, j: int) -> Any:
    """Sequence number of the *j*-th item a generator task yields for the item *seq*."""
    return (seq, j) if type(seq) is int else (*seq, j)


def seq_prefix(seq: Any, depth: int) -> Any:
    """The sequence number of *seq*'s ancestor at generator level *depth*."""
    if type(seq) is int:
        return seq
    return seq[0] if depth == 1 else seq[:depth]


def after_seq(seq: Any, depth: int) -> Any:
    """The sequence number just after *seq* at its level (its last part plus one).

    ``end_of_stream`` numbers its items as the outputs of virtual input items following the last
    one: *seq* is the last input item's number (None: there was none, the level's first number).
    """
    if seq is None:
        return 0 if depth <= 1 else (0,) * depth
    return next_seq(seq, 1)


def next_seq(seq: Any, k: int) -> Any:
    """*seq* with its last part increased by *k*."""
    return seq + k if type(seq) is int else (*seq[:-1], seq[-1] + k)


async def end_items(value: Any) -> list[Any]:
    """The items ``end_of_stream`` gave: what a (sync or async) generator yields, or the iterable returned."""
    if inspect.isawaitable(value):
        value = await value
    if hasattr(value, "__aiter__"):
        async with aclosing(value) as agen:
            return [x async for x in agen]
    return [] if value is None else list(value)


#: Seconds one batch should take unless a task or run says otherwise. Small enough that a
#: checkpoint, a signal or a progress event never waits long behind a slow handler; large enough
#: that the per-batch costs (a scheduler pass, a type check, an event) stay a small share of it.
DEFAULT_BATCH_TIME = 0.01


class BatchSizer:
    """Sizes an actor's batches by time (see ``docs/architecture.md``).

    Starts at one item; after each batch it grows (at most doubling) while a full batch took less
    than *target* seconds, and shrinks to what fits in *target* when one took more. *limit* (the
    task's ``batch_size``) bounds it. A *fixed* sizer always gives *limit*: for batches that run in
    other processes, where the loop is not held and a round trip costs more than a batch time.
    """

    __slots__ = ("fixed", "limit", "size", "target")

    def __init__(self, target: float, limit: int, fixed: bool = False) -> None:
        self.target = target
        self.limit = limit
        self.fixed = fixed
        self.size = limit if fixed else 1

    def adjust(self, n: int, elapsed: float) -> None:
        """A batch of *n* items took *elapsed* seconds."""
        if n <= 0 or self.fixed:
            return
        size = self.size
        ideal = int(self.target * n / elapsed) if elapsed > 0 else self.limit
        if elapsed <= self.target:
            if n >= size:
                self.size = min(self.limit, max(size, min(2 * size, ideal)))
        else:
            self.size = max(1, min(size, ideal))


class RateLimiter:
    """Calls per second of one task, across all its workers: a burst of at most *burst* calls, then
    one call every ``1 / rate`` seconds (the generic cell rate algorithm, on trio's clock).

    ``tat`` is the time the limiter is booked until: *n* calls starting at *now* book ``n / rate``
    seconds from ``max(tat, now)``, and are allowed while the booking ends within ``burst / rate``
    of now. A worker asks :meth:`allowed` before it takes a batch (of at most that many items),
    sleeps :meth:`delay` when it is none -- holding no items, so a checkpoint or a cancellation
    never waits for it -- and :meth:`book` s the items it took before calling the task on them.

    Attributes:
        throttled: seconds the task's workers spent waiting for the limiter.
    """

    __slots__ = ("burst", "interval", "lock", "tat", "throttled")

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.burst = burst
        self.tat = float("-inf")
        self.throttled = 0.0
        #: Held from asking to booking, so the workers of one task never book the same room twice.
        self.lock = trio.Lock()

    def allowed(self, now: float) -> int:
        """How many calls may start at *now*."""
        room = now + self.burst * self.interval - max(self.tat, now)
        return max(0, min(self.burst, int(room / self.interval + 1e-9)))

    def delay(self, now: float) -> float:
        """Seconds from *now* until one call is allowed (0: now)."""
        return max(0.0, self.tat - (self.burst - 1) * self.interval - now)

    def book(self, n: int, now: float) -> None:
        """*n* calls start at *now*."""
        self.tat = max(self.tat, now) + n * self.interval


class Recovering(Protocol):
    """What the loop needs from its actor when user code raises: the supervisor's policy."""

    spec: TaskDef

    async def apply_policy(self, seq: Any, item: Any, exc: BaseException, attempt: int) -> bool: ...


def timed(call: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """*call* (an async item caller) cancelled after *seconds*: the item then fails with ``TimeoutError``."""

    async def within(*args: Any) -> Any:
        with trio.move_on_after(seconds) as scope:
            return await call(*args)
        if scope.cancelled_caught:
            raise TimeoutError(f"the item ran longer than its timeout of {seconds:g} s and was cancelled")
        raise AssertionError("unreachable")  # pragma: no cover - the body returned or the scope cancelled

    return within


class Handler:
    """The user's function bound for one actor (see the module docstring).

    Args:
        spec: the task's definition.
        consts: option values and final inputs (and the ``af.Context``), by parameter name.
    """

    def __init__(self, spec: TaskDef, consts: dict[str, Any]) -> None:
        self.spec = spec
        self.consts = consts
        #: Whether the collector's ``finish`` must be awaited (looked at once, not per product).
        self.finish_async = spec.finish is not None and inspect.iscoroutinefunction(spec.finish)
        self.fn: Callable[..., Any] = spec.fn
        self.item: Callable[..., Any] = spec.fn
        #: The task-class instance (None for a function task): ``end_of_stream``, transactions.
        self.instance: Any = None
        self.restart()

    def restart(self) -> None:
        """Bind afresh: a new task-class instance (the Restart policy) and new adapters."""
        self.fn = fn = bind(self.spec.fn, self.consts)  # a task class: one new instance
        self.instance = instance_of(fn) if hasattr(self.spec.fn, "__actorflow_class__") else None
        spec = self.spec
        names = [i.name for i in spec.streaming_inputs]
        if spec.kind == "collector":
            self.item = step_caller(fn, names, spec.positional)
        else:
            self.item = item_caller(fn, names, spec.positional, spec.seq_param)
            if spec.timeout is not None and spec.is_async and spec.executor is None:
                self.item = timed(self.item, spec.timeout)

    def open_stream(self, cursor: int) -> tuple[Any, int]:
        """A source's generator positioned at *cursor*, and how many items it must still skip."""
        if self.spec.cursor_param is not None:
            return self.fn(**{self.spec.cursor_param: cursor}), 0
        return self.fn(), cursor

    async def product(self) -> Any:
        """Call a task fed only final inputs: its return value is its product."""
        value = self.fn()
        return await value if self.spec.is_async else value

    def initial(self) -> Any:
        """A fresh accumulator for a collector (a deep copy of ``init``)."""
        return copy.deepcopy(self.spec.init)

    async def finish(self, acc: Any) -> Any:
        """A collector's product from its accumulator (``finish(acc)``, when it has one)."""
        finish = self.spec.finish
        if finish is None:
            return acc
        value = finish(acc)
        return await value if self.finish_async else value


class ItemLoop:
    """Calls a :class:`Handler` on batches for one actor, applying the task's failure policy."""

    def __init__(
        self, actor: Recovering, handler: Handler, skip_children: dict[Any, int] | None = None
    ) -> None:
        self.actor = actor
        self.handler = handler
        spec = handler.spec
        self.is_async = spec.is_async
        self.with_seq = spec.seq_param is not None
        #: Generator task: item seq -> children emitted before a resume or retry (skipped when re-run).
        self.skip_children: dict[Any, int] = skip_children if skip_children is not None else {}
        #: The index in the current batch of the item being processed (read by the slow-item watch
        #: while an async handler awaits; costs nothing per item: it is the length of the output).
        self.position: Callable[[], int] = _zero
        #: After a fold stopped by KeyboardInterrupt or SystemExit: the accumulator, and which item raised.
        self.stopped: tuple[Any, int] = (None, 0)
        #: The outputs of the batch :meth:`map` is on (those of the items before ``position()`` are done).
        self.current: list[Any] = []

    def where(self) -> int:
        """The index in its batch of the item being processed (read by the slow-item watch)."""
        return self.position()

    async def recover(self, seq: Any, item: Any, exc: BaseException, attempt: int) -> bool:
        """The policy's answer for one failed item: True to call it again, False to go on without it.

        Raises:
            ItemFailure: the task has no policy, or its policy gave up (the run fails on this item).
        """
        if self.actor.spec.on_error is None or isinstance(exc, MailboxTypeError):
            raise ItemFailure(seq, exc, item, with_item=True) from exc
        return await self.actor.apply_policy(seq, item, exc, attempt)

    async def _retrying(
        self, seqs: list[Any], items: list[Any], run_from: Callable[[int], Any], failed_at: Callable[[], int],
        skip: Callable[[int], None], first: BaseException,
    ) -> None:
        """Item ``failed_at()`` raised *first*: recover, then ``run_from`` it or past it, and so on."""
        exc: BaseException | None = first
        attempt, last = 1, -1
        while exc is not None:
            i = failed_at()
            attempt, last = (attempt + 1 if i == last else 1), i
            if await self.recover(seqs[i], items[i], exc, attempt):
                pos = i
            else:
                skip(i)
                pos = i + 1
            try:
                await run_from(pos)
                exc = None
            except BaseException as again:
                if not is_failure(again):
                    raise
                exc = again

    async def once(self, seq: Any, call: Callable[[], Any]) -> tuple[bool, Any]:
        """Call user code that runs once, not per item (a task fed only final products, a collector's
        ``finish``, ``end_of_stream``) under the task's policy, as an item numbered *seq*.

        Returns:
            ``(True, value)``, or ``(False, None)`` when the policy set it aside (a dead letter).
        """
        attempt = 1
        while True:
            try:
                value = call()  # looked up anew by *call*: a restart rebinds the handler
                if inspect.isawaitable(value):
                    value = await value
                return True, value
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                if not await self.recover(seq, None, exc, attempt):
                    return False, None
                attempt += 1

    async def map(self, seqs: list[Any], items: list[Any]) -> list[Any]:
        """The handler's result for every item, in order (:data:`SKIP` for items gone to dead letters)."""
        out: list[Any] = []
        self.position = out.__len__
        self.current = out
        try:
            await self._map_from(out, seqs, items, 0)  # the common case: no closures made
            return out
        except BaseException as exc:
            if not is_failure(exc):
                raise
            first = exc

        async def run_from(pos: int) -> None:
            await self._map_from(out, seqs, items, pos)

        await self._retrying(seqs, items, run_from, out.__len__, lambda _: out.append(SKIP), first)
        return out

    async def _map_from(self, out: list[Any], seqs: list[Any], items: list[Any], pos: int) -> None:
        """Append the handler's result for ``items[pos:]`` to *out* (which keeps what was done on an error)."""
        call = self.handler.item  # fetched anew: a restart rebinds it
        todo = items if pos == 0 else items[pos:]
        if self.with_seq:
            rest = seqs if pos == 0 else seqs[pos:]
            if self.is_async:
                for x, s in zip(todo, rest, strict=True):
                    out.append(await call(x, s))
            else:
                out.extend(map(call, todo, rest))  # a C loop
        elif self.is_async:
            for x in todo:
                out.append(await call(x))
        else:
            out.extend(map(call, todo))  # a C loop
        if len(out) < len(items):  # only StopIteration from the handler stops `map` early
            raise HandlerStopped()

    async def fold(self, acc: Any, seqs: list[Any], items: list[Any]) -> Any:
        """Fold *items* into *acc* with a collector's step; returns the new accumulator."""
        state = [acc, 0]  # the accumulator after the last good item, and the failing index
        self.position = lambda: state[1]
        try:
            await self._fold_from(state, items, 0)
            return state[0]
        except EXITS:
            self.stopped = (state[0], state[1])
            raise
        except BaseException as exc:
            if not is_failure(exc):
                raise
            first = exc

        async def run_from(pos: int) -> None:
            await self._fold_from(state, items, pos)

        await self._retrying(seqs, items, run_from, lambda: state[1], lambda _: None, first)
        return state[0]

    async def _fold_from(self, state: list[Any], items: list[Any], pos: int) -> None:
        """Fold ``items[pos:]`` into ``state[0]``; on an error ``state`` holds the last good accumulator
        and the failing index."""
        step = self.handler.item
        acc = state[0]
        if self.is_async:
            for i in range(pos, len(items)):
                state[1] = i
                acc = state[0] = await step(acc, items[i])
            return
        rest = iter(items[pos:] if pos else items)
        try:
            for x in rest:
                acc = step(acc, x)
        except BaseException:
            state[1] = len(items) - length_hint(rest) - 1  # the item that raised
            raise
        finally:
            state[0] = acc

    async def generate(self, seqs: list[Any], items: list[Any]) -> AsyncIterator[tuple[int, int, Any]]:
        """``(index, j, child)`` for the *j*-th item a generator task yields for ``items[index]``.

        Children already emitted for an item (before a resume or a retry) are not yielded again.
        """
        skips = self.skip_children
        for idx in range(len(items)):
            s, x = seqs[idx], items[idx]
            done = skips.pop(s, 0) if skips else 0
            attempt = 1
            while True:
                j = 0
                yielding = False  # GeneratorExit thrown in at our own yield is a close, not a failure
                try:
                    async with aclosing(self._children(x, s)) as children:
                        async for r in children:
                            if j >= done:
                                yielding = True
                                yield idx, j, r
                                yielding = False
                            j += 1
                    break
                except BaseException as exc:
                    if yielding or not is_failure(exc):
                        raise
                    done = max(done, j)
                    if not await self.recover(s, x, exc, attempt):
                        break
                    attempt += 1

    async def _children(self, x: Any, s: Any) -> AsyncGenerator[Any, None]:
        call = self.handler.item
        gen = call(x, s) if self.with_seq else call(x)
        if self.is_async:
            async with aclosing(gen) as agen:
                async for r in agen:
                    yield r
        else:
            with closing(gen):
                for r in gen:
                    yield r


@contextmanager
def closing(gen: Any) -> Iterator[None]:
    """Close a sync generator when leaving the block (also on cancellation)."""
    try:
        yield
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()

