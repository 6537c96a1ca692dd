"""The supervisor: failure policies, the quiescent checkpoint gate, periodic checkpoints, signals.

Actors report to it at batch boundaries. ``busy`` counts actor units that are processing a batch
(user code may be running). To checkpoint, the supervisor sets ``pending``: actors stop taking
new batches at their gate, and once ``busy`` drops to zero every actor is parked — waiting at the
gate, on an empty inbox or on a full mailbox — with its state (cursor, outboxes, accumulators)
recorded. The snapshot is then copied and encoded in one synchronous step, so it is a consistent
cut, and written to LMDB in a worker thread while the actors go on.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio

from .._base import ActorflowError, ItemFailure, StoreError, describe
from .._base import _events as ev
from .._define import DeadLetter, Fail, Restart, Retry, redact
from .._storage import EncodeError, pack
from ._checkpoint import encode, snapshot
from ._signals import watch_signals

if TYPE_CHECKING:
    from .._storage import Store
    from ._actor import Actor
    from ._inbox import ZipInbox
    from ._runtime import Runtime


_FAIL = Fail()

#: Seconds a stalled zip waits for the whole run to stand still before it spills anyway.
STALL_PATIENCE = 0.25
#: Seconds without any mailbox moving after which the run counts as standing still.
STALL_CUSHION = 0.01

#: Checkpoints up to this size are written in the loop (an LMDB commit of it takes well under a
#: millisecond here); larger ones go to a worker thread as one transaction of a few large puts,
#: since a thread needs the GIL back for each LMDB call while handlers keep the loop busy.
INLINE_WRITE_BYTES = 256 * 1024
#: ...unless a commit in the loop took longer than this (the disk's flush is slow here): from then
#: on every write goes to the worker thread, so the loop never waits for the disk.
INLINE_WRITE_SECONDS = 0.002


def _err(exc: BaseException) -> str:
    return describe(exc)


class Supervisor:
    """Owns a run's failure policies and checkpoints. One per :class:`Run`."""

    def __init__(self, run: Runtime, store: Store | None = None, checkpoint_every: float | None = None) -> None:
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
        self._pending = False
        #: Set by a SIGINT/SIGTERM the moment it arrives (see ``_signals``): actors take no new batch.
        self.stopping = False
        self.busy = 0
        self.number = 0
        self._open = trio.Event()
        self._open.set()
        self._quiet = trio.lowlevel.ParkingLot()
        self._lock = trio.Lock()
        self._restarts: dict[str, deque[float]] = {}
        self.dead_letters: list[dict[str, Any]] = []
        #: Per task name: errors its code raised on items, retries (and restarts), dead letters.
        self.failures: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.dead_counts: Counter[str] = Counter()
        self._unsaved: list[dict[str, Any]] = []
        self.interrupted: int | None = None
        #: True once the run's final checkpoint is written: no checkpoint may come after it.
        self.wrote_final = False
        #: Whether small checkpoints are still committed in the loop (see ``INLINE_WRITE_SECONDS``).
        self._inline_writes = True
        self._stalls: set[ZipInbox] = set()
        self._stall = trio.Event()

    # -- actor hooks ---------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while actors must not take a new batch: a checkpoint is being taken, or the run stops on a signal."""
        return self._pending or self.stopping

    async def gate(self) -> None:
        """Actors call this between batches when ``pending`` is set."""
        while self.pending:
            if self.stopping:  # the run stops on a signal: wait, parked, to be cancelled
                await trio.sleep_forever()
            await self._open.wait()

    def enter(self) -> None:
        """An actor unit starts processing a batch (user code may run): a checkpoint waits for it.

        Actors call this and :meth:`leave` through their ``working(batch)`` context manager.
        """
        self.busy += 1

    def leave(self) -> None:
        """The unit that called :meth:`enter` finished its batch."""
        self.busy -= 1
        if self.pending and self.busy <= 0:
            self._quiet.unpark_all()

    @contextmanager
    def parked(self) -> Iterator[None]:
        """Inside :meth:`working`: the unit waits (to send) with its state recorded, so a checkpoint may go on."""
        self.leave()
        try:
            yield
        finally:
            self.enter()

    # -- stalls --------------------------------------------------------------------------------

    def stalled(self, inbox: ZipInbox) -> None:
        """A zip cannot match and waits on a lagging input (see ``_inbox``): look at it once the run stands still."""
        self._stalls.add(inbox)
        self._stall.set()

    async def watch_slow_items(self) -> None:
        """Report items that have run longer than the run's ``slow_item`` seconds (until cancelled):
        every actor's :class:`~actorflow._kernel._slow.SlowWatch` is sampled four times per ``slow_item``."""
        run = self.run
        while True:
            await trio.sleep(run.slow_item / 4)
            now = time.perf_counter()
            for actor in run.actors.values():
                actor.slow.sample(now)

    async def relieve_stalls(self) -> None:
        """The fallback of the local stall rule (see ``_inbox``): whenever the whole run stands still
        with a zip stalled, make that zip spill (until cancelled). A zip whose own senders are blocked
        on it spills by itself without waiting for this; this catches senders blocked elsewhere."""
        while True:
            await self._stall.wait()
            self._stall = trio.Event()
            with trio.move_on_after(STALL_PATIENCE):  # a run that keeps moving is not stalled: spill anyway then
                await self._until_still()
            stalls, self._stalls = self._stalls, set()
            for inbox in stalls:
                if inbox.stalled():
                    inbox.spill()

    async def _until_still(self) -> None:
        """Return once the run stands still: no actor is processing a batch and no mailbox took an
        item for a short cushion (read from the mailboxes' own counters, nothing added to the hot path)."""
        last = -1
        while True:
            moved = sum(box.sent for box, _, _ in self.run.mailboxes.values())
            if moved == last and self.busy <= 0:
                return
            last = moved
            await trio.sleep(STALL_CUSHION)

    # -- failure policies ----------------------------------------------------------------------

    async def on_item_error(self, actor: Actor, seq: Any, item: Any, exc: BaseException, attempt: int) -> bool:
        """Apply *actor*'s policy to a failure on one item.

        Returns:
            True to call the task on the item again, False to go on without it (dead letter).

        Raises:
            ItemFailure: the policy is to fail, or its limits are exceeded.
        """
        policy = actor.spec.on_error or _FAIL
        run = self.run
        self.failures[actor.name] += 1
        if isinstance(policy, Retry):
            if attempt < policy.attempts:
                self.retries[actor.name] += 1
                delay = policy.delay(attempt)
                run.bus.publish(ev.ItemRetried(run_id=run.run_id, task=actor.name, seq=seq, attempt=attempt + 1,
                                               delay=delay, error=self._text(exc)))
                await trio.sleep(delay)
                return True
            if isinstance(policy.then, DeadLetter):
                self.dead_letter(actor, seq, item, exc)
                return False
            self._escalate(actor, seq, f"{policy.attempts} attempts failed")
            raise ItemFailure(seq, exc, item, with_item=True)
        if isinstance(policy, Restart):
            now = trio.current_time()
            window = self._restarts.setdefault(actor.name, deque())
            while window and now - window[0] > policy.period:
                window.popleft()
            if len(window) >= policy.intensity:
                self._escalate(actor, seq, f"more than {policy.intensity} restarts in {policy.period}s")
                raise ItemFailure(seq, exc, item, with_item=True)
            window.append(now)
            self.retries[actor.name] += 1
            actor.restart()
            run.bus.publish(ev.ActorRestarted(run_id=run.run_id, task=actor.name, seq=seq, restarts=len(window),
                                              error=self._text(exc)))
            return True
        if isinstance(policy, DeadLetter):
            self.dead_letter(actor, seq, item, exc)
            return False
        assert isinstance(policy, Fail)
        raise ItemFailure(seq, exc, item, with_item=True)

    def counts(self, actor: Actor) -> tuple[int, int, int]:
        """(failures, retries, dead letters) of *actor* in this run, for its :class:`TaskStats`.

        A task without a policy fails on its first error, which no policy saw: it counts as one.
        """
        failures = self.failures[actor.name]
        if actor.status == "failed" and not failures:
            failures = 1
        return failures, self.retries[actor.name], self.dead_counts[actor.name]

    def _text(self, exc: BaseException) -> str:
        """An error's text with the run's secret values redacted."""
        return redact(_err(exc), self.run.secrets) if self.run.secrets else _err(exc)

    def _escalate(self, actor: Actor, seq: Any, reason: str) -> None:
        self.run.bus.publish(ev.Escalated(run_id=self.run.run_id, task=actor.name, seq=seq, reason=reason))

    def dead_letter(self, actor: Actor, seq: Any, item: Any, exc: BaseException) -> None:
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
        self.dead_counts[actor.name] += 1
        self._unsaved.append(record)
        self.run.bus.publish(
            ev.ItemDeadLettered(run_id=self.run.run_id, task=actor.name, seq=seq, error=self._text(exc))
        )

    # -- checkpoints ---------------------------------------------------------------------------

    def save_dead_letters(self) -> None:
        """Write dead letters not yet in the store (a failed run writes no final checkpoint)."""
        if self.store is not None and self._unsaved:
            unsaved, self._unsaved = self._unsaved, []
            self.store.write_dead_letters(unsaved)

    async def checkpoint(self, final: bool = False) -> bool:
        """Pause every actor at a batch boundary, snapshot, release them, write to the store.

        Returns:
            False when there is no store, or the final checkpoint was already written (nothing written).
        """
        if self.store is None:
            if final and self._prepare(final) and await self._settle():  # sinks: prepare and commit once, at the end
                await self._made_durable()
            return False
        async with self._lock:
            if self.wrote_final:  # a periodic checkpoint that waited for the final one must not follow it
                return False
            self.wrote_final = final
            t0 = time.perf_counter()
            if not final:
                self._pending = True
                self._open = trio.Event()
                try:
                    while self.busy > 0:
                        await self._quiet.park()
                    framed = self._frame(final)
                finally:
                    self._pending = False
                    self._open.set()
            else:
                framed = self._frame(final)
            if framed is None or not await self._settle():
                return False
            doc, blob = framed
            paused = time.perf_counter() - t0
            unsaved, self._unsaved = self._unsaved, []
            t1 = time.perf_counter()
            try:
                dead = self.store.encode_dead_letters(unsaved)  # encoded here, in the loop
                if self._inline_writes and len(blob) <= INLINE_WRITE_BYTES:  # cheaper than waiting for the GIL
                    self.store.write_encoded(blob, dead)
                    self._inline_writes = time.perf_counter() - t1 <= INLINE_WRITE_SECONDS
                else:
                    await trio.to_thread.run_sync(self.store.write_encoded, blob, dead)
            except BaseException:
                self._unsaved = unsaved + self._unsaved
                raise
            self.number += 1
            wrote = time.perf_counter() - t1
            await self._made_durable()
            self.run.bus.publish(ev.CheckpointWritten(run_id=self.run.run_id, number=self.number,
                                                      queued_items=doc["queued_items"], size_bytes=len(blob),
                                                      pause_seconds=paused, write_seconds=wrote, final=final))
        return True

    def _frame(self, final: bool) -> tuple[dict[str, Any], bytes] | None:
        """With every actor parked: prepare transactional sinks, then the snapshot and its encoding
        (None when a sink failed to prepare: no checkpoint then)."""
        assert self.store is not None
        if not self._prepare(final):
            return None
        doc = snapshot(self.run, self.number + 1, final)
        return doc, encode(doc, self.store)

    def _prepare(self, final: bool) -> bool:
        """Every transactional sink prepares its open transaction (actors are parked); False if one failed."""
        stored = self.store is not None
        for actor in self.run.transactional:
            try:
                actor.prepare_transaction(final, stored)
            except Exception as exc:  # user code: a failure of that task
                actor.failed(None, exc)
                return False
            except (KeyboardInterrupt, SystemExit) as exc:  # the run stops; the last durable checkpoint resumes
                self.run.exit_now(actor, exc)
                return False
        return True

    async def _settle(self) -> bool:
        """After the snapshot (the actors may run again): each sink finishes its prepared transactions
        (``finish_prepare``, may await a driver in a thread); False if one failed (no checkpoint then)."""
        for actor in self.run.transactional:
            try:
                await actor.finish_prepares()
            except Exception as exc:  # user code: a failure of that task
                actor.failed(None, exc)
                return False
            except (KeyboardInterrupt, SystemExit) as exc:
                self.run.exit_now(actor, exc)
                return False
        return True

    async def _made_durable(self) -> None:
        """The checkpoint holding the prepared tokens is durable: commit them (a failure fails that task)."""
        for actor in self.run.transactional:
            actor.made_durable()
            try:
                await actor.commit_durable()
            except Exception as exc:
                actor.failed(None, exc)
            except (KeyboardInterrupt, SystemExit) as exc:  # durable already: a resume commits it again
                self.run.exit_now(actor, exc)

    async def periodic(self) -> None:
        """Checkpoint every ``every`` seconds until cancelled."""
        assert self.every is not None
        while True:
            await trio.sleep(self.every)
            if self.stopping:  # the signal's checkpoint is the last one
                return
            try:
                await self.checkpoint()
            except StoreError as exc:
                self.run.fail(exc)
                return

    async def watch_signals(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """On SIGINT/SIGTERM: stop taking batches, a final checkpoint, stop the run (see ``_signals``)."""
        await watch_signals(self, task_status)
