"""Actors for keyed folds and windows: thin adapters from today's actor loop to the pure logics.

:class:`KeyedCollectorActor` drives a :class:`~actorflow._kernel._keyed.KeyedFoldLogic` (``@flow.collector``
with ``key=``), :class:`WindowActor` a :class:`~actorflow._kernel._window_logic.WindowLogic`
(``@flow.window``). Each takes a batch at the checkpoint gate, hands it to its logic inside
``working(batch)``, applies the task's failure policy to an item whose code raised, sends what the
logic emitted, and gives the logic's state record to every checkpoint (``"keyed"`` or
``"window"``). Late items go to dead letters whatever ``on_error`` says, and are counted in
``late`` (``result.summary.tasks[name].late``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._base import ItemFailure, LateItem
from .._define import WindowResult, key_annotation
from .._storage import restore, restore_like
from ._actor import Actor
from ._keyed import KeyedFoldLogic, KeyedState
from ._loop import EXITS, is_failure
from ._mailbox import Batch, Mailbox
from ._state import ABSENT, CHECK, ActorState
from ._window_logic import ClosingFailed, WindowLogic, WindowState

if TYPE_CHECKING:
    from .._define import TaskDef
    from ._runtime import Runtime


def keyed_actor_for(run: Runtime, spec: TaskDef) -> Actor | None:
    """The actor of a keyed collector or a window task (None for any other task)."""
    settings = spec.settings
    if spec.kind != "collector" or (settings.key is None and settings.window is None):
        return None
    return WindowActor(run, spec) if settings.window is not None else KeyedCollectorActor(run, spec)


def keyed_figures(actor: Actor) -> dict[str, Any]:
    """A keyed collector's or window task's figures for its :class:`~actorflow.TaskStats`: ``late``,
    ``keys``, ``open_windows`` and ``watermark`` (nothing for other actors)."""
    if isinstance(actor, WindowActor):
        logic = actor.logic
        if logic is None:
            return {"late": actor.late}
        wm = logic.watermark
        return {"late": logic.late, "keys": len(logic.kidx), "open_windows": logic.open_windows(),
                "watermark": wm if -math.inf < wm < math.inf else None}
    if isinstance(actor, KeyedCollectorActor):
        return {"keys": len(actor.logic.accs) if actor.logic is not None else 0}
    return {}


def _fold_keyed(logic: KeyedFoldLogic, items: list[Any], pos: int) -> None:
    logic.on_batch(items, pos)


def _typed(annotation: Any) -> Callable[[Any], Any]:
    """Plain data back into *annotation*'s type (as it is for ``Any``)."""
    return lambda value: restore(value, annotation)


def _record_problem(*names: str) -> Callable[[Any], str | None]:
    def problem(value: Any) -> str | None:
        if not isinstance(value, dict) or any(n not in value for n in names):
            return f"is not a map with {', '.join(names)}"
        return None

    return problem


@attrs.define
class KeyedFoldState(ActorState):
    """A keyed collector's state: its accumulators (:class:`~actorflow._kernel._keyed.KeyedState` as a map)."""

    keyed: Any = attrs.field(default=ABSENT, metadata={CHECK: _record_problem("accs")})


@attrs.define
class WindowTaskState(ActorState):
    """A window task's state: its logic's record (:class:`~actorflow._kernel._window_logic.WindowState` as a map)."""

    window: Any = attrs.field(
        default=ABSENT,
        metadata={CHECK: _record_problem(*(f.name for f in attrs.fields(WindowState)))},
    )


class _LogicActor(Actor):
    """What both kinds share: a batch handed to a logic with the task's failure policy."""

    #: Late items so far (0 for keyed folds), for the summary's ``late``.
    late = 0

    async def handle(self, batch: Batch, call: Callable[[int], Any], at: Callable[[], int]) -> Any:
        """``call(pos)`` folds ``items[pos:]`` of *batch*; an item whose code raised (``at()``) gets
        the task's policy: called again, or skipped (dead letter), or the run fails on it."""
        seqs, items = batch
        attempt, last, pos = 0, -1, 0
        while True:
            try:
                return call(pos)
            except ClosingFailed as exc:  # not an item's fault: the run fails
                raise ItemFailure(None, exc.error) from exc.error
            except EXITS as exc:  # the logic holds the items before the one that raised: put back the rest
                i = at()
                self.items_in += i
                self.before_exit(seqs, items)
                self.put_back(seqs[i:], items[i:], exc)
                raise
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                i = at()
                attempt, last = (attempt + 1 if i == last else 1), i
                assert self.loop is not None and self.handler is not None
                pos = i if await self.loop.recover(seqs[i], items[i], exc, attempt) else i + 1
                logic = getattr(self, "logic", None)
                if logic is not None:  # the Restart policy rebinds the step (a new task-class instance)
                    logic.step = self.handler.item

    def before_exit(self, seqs: list[Any], items: list[Any]) -> None:
        """User code raised an exit in the middle of *items*: settle what the logic already did."""

    def item_type(self) -> Any:
        """The declared type of the items read (to restore items a checkpoint holds)."""
        return self.run.graph.tasks[self.spec.streaming_inputs[0].upstream].out_type

    def acc_restorer(self) -> Callable[[Any], Any]:
        init = self.spec.init
        return lambda value: restore_like(value, init)


class KeyedCollectorActor(_LogicActor):
    """``@flow.collector(init=..., key=fn)``: one accumulator per key; the product is their dict."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.logic: KeyedFoldLogic | None = None
        self._restored: dict[str, Any] | None = None

    async def main(self) -> None:
        assert self.handler is not None
        settings = self.spec.settings
        assert settings.key is not None
        self.logic = logic = KeyedFoldLogic(settings.key, self.handler.item, settings.init, settings.finish)
        if self._restored is not None:
            logic.restore(KeyedState(**self._restored), key=_typed(key_annotation(settings.key)),
                          acc=self.acc_restorer())
        inbox = self.inbox()
        while (batch := await self.take(inbox)) is not None:
            logic.step = self.handler.item  # a restart rebinds it
            items = batch[1]
            with self.working(batch):
                await self.handle(batch, functools.partial(_fold_keyed, logic, items), lambda: logic.at)
            self.items_in += len(items)
            self.batch_event(len(items), 0)
        try:
            value = logic.on_eof()
        except Exception as exc:
            raise ItemFailure(None, exc) from exc
        self.out_check.product(value)
        self.items_out = 1
        self.product.set(value)

    state_type = KeyedFoldState

    def state(self) -> KeyedFoldState:
        st = KeyedFoldState(**self.common_state())
        if self.logic is not None:
            st.keyed = attrs.asdict(self.logic.state(), recurse=False)
        elif self._restored is not None:
            st.keyed = self._restored
        return st

    def restore(self, st: Any) -> None:
        super().restore(st)
        self._restored = st.keyed if st.keyed is not ABSENT else None


class WindowActor(_LogicActor):
    """``@flow.window(...)``: per-key windows; each closed window goes downstream as an
    :class:`~actorflow.WindowResult`, numbered 0, 1, 2, … in the order they close."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.logic: WindowLogic | None = None
        self._restored: dict[str, Any] | None = None
        #: Processing time: the logic's clock is trio's clock plus this (a resumed run goes on from
        #: the clock its checkpoint recorded, so restored windows keep their times).
        self.shift = 0.0

    @property
    def processing(self) -> bool:
        return self.spec.settings.time is None

    def clock(self) -> float:
        return trio.current_time() + self.shift

    def make_logic(self) -> WindowLogic:
        assert self.handler is not None
        s = self.spec.settings
        assert s.window is not None
        logic = WindowLogic(s.window, self.handler.item, s.init, key=s.key, time=s.time, lateness=s.lateness,
                            finish=s.finish, merge=s.merge)
        if self._restored is not None:
            logic.restore(WindowState(**self._restored), key=_typed(key_annotation(s.key)), acc=self.acc_restorer(),
                          item=_typed(self.item_type()))
            if logic.clock is not None:
                self.shift = logic.clock - trio.current_time()
        return logic

    async def main(self) -> None:
        self.logic = logic = self.make_logic()
        self.late = logic.late
        inbox = self.inbox()
        while True:
            if self.processing:
                batch, woke = await self._take_or_wake(inbox)
                if woke:
                    if self.sup.pending:
                        await self.sup.gate()
                    now = max(self.clock(), logic.next_due())
                    await self._emit(self._closing(functools.partial(logic.on_time, now)))
                    continue
            else:
                batch = await self.take(inbox)
            if batch is None:
                break
            await self._batch(batch)
        await self._emit(self._closing(logic.on_eof))

    @staticmethod
    def _closing(close: Callable[[], list[WindowResult]]) -> list[WindowResult]:
        """Windows closed by *close* (``finish`` raising there fails the run, with no item at fault)."""
        try:
            return close()
        except ClosingFailed as exc:
            raise ItemFailure(None, exc.error) from exc.error

    async def _take_or_wake(self, inbox: Mailbox | Any) -> tuple[Batch | None, bool]:
        """The next batch, or ``(None, True)`` when the clock passes the end of an open window first."""
        assert self.logic is not None
        due = self.logic.next_due()
        if due == math.inf:
            return await self.take(inbox), False
        deadline = due - self.shift
        if trio.current_time() >= deadline:
            return None, True
        with trio.move_on_at(deadline):
            return await self.take(inbox), False
        return None, True

    async def _batch(self, batch: Batch) -> None:
        logic = self.logic
        assert logic is not None and self.handler is not None
        logic.step = self.handler.item  # a restart rebinds it
        seqs, items = batch
        now = self.clock() if self.processing else None
        with self.working(batch):
            out = await self.handle(batch, lambda pos: logic.on_batch(items, now, pos), lambda: logic.at)
            self._dead_letter_late(seqs, items)
        self.items_in += len(items)
        self.batch_event(len(items), len(out))
        await self._emit(out)

    def before_exit(self, seqs: list[Any], items: list[Any]) -> None:
        self._dead_letter_late(seqs, items)

    def _dead_letter_late(self, seqs: list[Any], items: list[Any]) -> None:
        logic = self.logic
        assert logic is not None
        for i, t, wm in logic.late_items:
            error = LateItem(
                f"late: event time {t} is behind the watermark {wm} of window task {self.name!r} (the largest "
                f"event time seen minus lateness={logic.lateness}); its window had closed"
            )
            self.sup.dead_letter(self, seqs[i], items[i], error)
        logic.late_items = []
        self.late = logic.late

    async def _emit(self, out: list[WindowResult]) -> None:
        if not out:
            return
        assert self.logic is not None
        n = self.logic.emitted
        await self.send(list(range(n - len(out), n)), out)

    state_type = WindowTaskState

    def state(self) -> WindowTaskState:
        st = WindowTaskState(**self.common_state())
        if self.logic is not None:
            st.window = attrs.asdict(self.logic.state(), recurse=False)
        elif self._restored is not None:
            st.window = self._restored
        return st

    def restore(self, st: Any) -> None:
        super().restore(st)
        self._restored = st.window if st.window is not ABSENT else None
        if self._restored is not None:
            self.late = self._restored["late"]
