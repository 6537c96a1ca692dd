"""The supervisor: failure policies, the quiescent checkpoint gate, periodic checkpoints, signals.

Actors report to it at batch boundaries. ``busy`` counts actor units that are processing a batch
(user code may be running). To checkpoint, the supervisor sets ``pending``: actors stop taking
new batches at their gate, and once ``busy`` drops to zero every actor is parked — waiting at the
gate, on an empty inbox or on a full mailbox — with its state (cursor, outboxes, accumulators)
recorded. The snapshot is then copied and encoded in one synchronous step, so it is a consistent
cut, and written to LMDB in a worker thread while the actors go on.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from . import _events as ev
from ._codec import EncodeError, pack
from ._context import redact
from ._errors import ActorflowError, StoreError
from ._policy import DeadLetter, Fail, Restart, Retry

if TYPE_CHECKING:
    from ._actors import Actor
    from ._run import Run
    from ._store import Store


class ItemFailure(Exception):
    """Raised by the supervisor when a policy gives up on an item: the run fails."""

    def __init__(self, seq: Any, error: BaseException) -> None:
        self.seq = seq
        self.error = error


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Supervisor:
    """Owns a run's failure policies and checkpoints. One per :class:`Run`."""

    def __init__(self, run: Run, store: Store | None = None, checkpoint_every: float | None = None) -> None:
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int | float)
            or not 0 < checkpoint_every < float("inf")
        ):
            raise ActorflowError(
                f"checkpoint_every must be None or a positive, finite number of seconds, got {checkpoint_every!r}"
            )
        self.run = run
        self.store = store
        self.every = checkpoint_every
        self.pending = False
        self.busy = 0
        self.number = 0
        self._open = trio.Event()
        self._open.set()
        self._quiet = trio.lowlevel.ParkingLot()
        self._lock = trio.Lock()
        self._restarts: dict[str, deque[float]] = {}
        self.dead_letters: list[dict[str, Any]] = []
        self._unsaved: list[dict[str, Any]] = []
        self.interrupted: int | None = None
        self.last_checkpoint: dict[str, float] = {}

    # -- actor hooks ---------------------------------------------------------------------------

    async def gate(self) -> None:
        """Actors call this between batches when ``pending`` is set."""
        while self.pending:
            await self._open.wait()

    def leave(self) -> None:
        """An actor unit finished processing a batch."""
        self.busy -= 1
        if self.pending and self.busy <= 0:
            self._quiet.unpark_all()

    # -- failure policies ----------------------------------------------------------------------

    async def on_item_error(self, actor: Actor, seq: Any, item: Any, exc: Exception, attempt: int) -> bool:
        """Apply *actor*'s policy to a failure on one item.

        Returns:
            True to call the task on the item again, False to go on without it (dead letter).

        Raises:
            ItemFailure: the policy is to fail, or its limits are exceeded.
        """
        policy = actor.spec_policy
        run = self.run
        if isinstance(policy, Retry):
            if attempt < policy.attempts:
                delay = policy.delay(attempt)
                run.bus.publish(ev.ItemRetried(run_id=run.run_id, task=actor.name, seq=seq, attempt=attempt + 1,
                                               delay=delay, error=self._text(exc)))
                await trio.sleep(delay)
                return True
            if isinstance(policy.then, DeadLetter):
                self.dead_letter(actor, seq, item, exc)
                return False
            self._escalate(actor, seq, f"{policy.attempts} attempts failed")
            raise ItemFailure(seq, exc)
        if isinstance(policy, Restart):
            now = trio.current_time()
            window = self._restarts.setdefault(actor.name, deque())
            while window and now - window[0] > policy.period:
                window.popleft()
            if len(window) >= policy.intensity:
                self._escalate(actor, seq, f"more than {policy.intensity} restarts in {policy.period}s")
                raise ItemFailure(seq, exc)
            window.append(now)
            actor.restart()
            run.bus.publish(ev.ActorRestarted(run_id=run.run_id, task=actor.name, seq=seq, restarts=len(window),
                                              error=self._text(exc)))
            return True
        if isinstance(policy, DeadLetter):
            self.dead_letter(actor, seq, item, exc)
            return False
        assert isinstance(policy, Fail)
        raise ItemFailure(seq, exc)

    def _text(self, exc: BaseException) -> str:
        """An error's text with the run's secret values redacted."""
        return redact(_err(exc), self.run.secrets) if self.run.secrets else _err(exc)

    def _escalate(self, actor: Actor, seq: Any, reason: str) -> None:
        self.run.bus.publish(ev.Escalated(run_id=self.run.run_id, task=actor.name, seq=seq, reason=reason))

    def dead_letter(self, actor: Actor, seq: Any, item: Any, exc: Exception) -> None:
        """Set *item* aside with its error; it is written to the store with the next checkpoint."""
        try:
            pack(item)
            stored: Any = item
            encoded = True
        except (EncodeError, TypeError, ValueError, OverflowError):
            stored, encoded = repr(item), False
        record = {"task": actor.name, "seq": list(seq) if isinstance(seq, tuple) else seq, "item": stored,
                  "encoded": encoded, "error": self._text(exc), "time": time.time()}
        self.dead_letters.append(record)
        self._unsaved.append(record)
        self.run.bus.publish(ev.DeadLettered(run_id=self.run.run_id, task=actor.name, seq=seq, error=self._text(exc)))

    # -- checkpoints ---------------------------------------------------------------------------

    def save_dead_letters(self) -> None:
        """Write dead letters not yet in the store (a failed run writes no final checkpoint)."""
        if self.store is not None and self._unsaved:
            unsaved, self._unsaved = self._unsaved, []
            self.store.write_dead_letters(unsaved)

    async def checkpoint(self, final: bool = False) -> bool:
        """Pause every actor at a batch boundary, snapshot, release them, write to the store.

        Returns:
            False when there is no store (nothing written).
        """
        if self.store is None:
            return False
        from ._checkpoint import snapshot

        async with self._lock:
            t0 = time.perf_counter()
            if not final:
                self.pending = True
                self._open = trio.Event()
                try:
                    while self.busy > 0:
                        await self._quiet.park()
                    doc = snapshot(self.run, self.number + 1, final)
                    blob = self._pack(doc)
                finally:
                    self.pending = False
                    self._open.set()
            else:
                doc = snapshot(self.run, self.number + 1, final)
                blob = self._pack(doc)
            paused = time.perf_counter() - t0
            unsaved, self._unsaved = self._unsaved, []
            t1 = time.perf_counter()
            try:
                await trio.to_thread.run_sync(self.store.write_checkpoint, blob, unsaved)
            except BaseException:
                self._unsaved = unsaved + self._unsaved
                raise
            self.number += 1
            wrote = time.perf_counter() - t1
            self.last_checkpoint = {"pause_seconds": paused, "write_seconds": wrote, "size_bytes": len(blob),
                                    "queued_items": doc["queued_items"]}
            self.run.bus.publish(ev.CheckpointWritten(run_id=self.run.run_id, number=self.number,
                                                      queued_items=doc["queued_items"], size_bytes=len(blob),
                                                      pause_seconds=paused, write_seconds=wrote, final=final))
        return True

    def _pack(self, doc: dict[str, Any]) -> bytes:
        """Encode a snapshot; a value msgpack cannot hold becomes a :class:`StoreError` naming its holder."""
        try:
            return pack(doc)
        except (TypeError, ValueError, OverflowError) as exc:  # EncodeError is a TypeError
            where = _holder(doc)
            store = str(self.store.path) if self.store is not None else "?"
            raise StoreError(
                f"store {store!r}: cannot write checkpoint {doc['number']}: {where} holds a value that cannot be "
                f"stored ({exc}). Make it an attrs class or a dataclass (cattrs unstructures those) or plain data; "
                "the last good checkpoint is intact"
            ) from exc

    async def periodic(self) -> None:
        """Checkpoint every ``every`` seconds until cancelled."""
        assert self.every is not None
        while True:
            await trio.sleep(self.every)
            try:
                await self.checkpoint()
            except StoreError as exc:
                self.run.fail(exc)
                return

    async def watch_signals(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """On SIGINT/SIGTERM: final checkpoint, then stop the run. A second SIGINT exits at once."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    if self.interrupted is not None:
                        if signum == signal.SIGINT:
                            os._exit(130)
                        continue
                    self.interrupted = signum
                    nursery.start_soon(self._stop_after_checkpoint)

    async def _stop_after_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except StoreError as exc:
            self.run.fail(exc)
            return
        self.run.interrupt()


def _holder(doc: dict[str, Any]) -> str:
    """Which part of a snapshot msgpack cannot encode: ``task 'x' (its product)`` or ``mailbox 'y'``."""
    for name, st in doc["actors"].items():
        for key, value in st.items():
            if not _packs(value):
                what = _PARTS.get(key, key)
                return f"task {name!r} ({what})"
    for name, batches in doc["mailboxes"].items():
        if not _packs(batches):
            return f"mailbox {name!r} (items queued for it)"
    return "the run's state"


_PARTS = {
    "product": "its product",
    "gather": "the items it produced",
    "outboxes": "items it is sending",
    "inflight": "the batch it is working on",
    "acc": "its accumulator",
    "accs": "its accumulators",
}


def _packs(value: Any) -> bool:
    try:
        pack(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True
