"""The actor of a transactional sink: two-phase commit tied to checkpoints.

A sink whose task class is an :class:`~actorflow.TransactionalSink` writes each item into an open
transaction of its one instance. The supervisor drives the rest (``_supervisor``):

- while a checkpoint is taken (every actor parked, after the epoch's last item) it calls
  :meth:`TransactionalSinkActor.prepare_transaction`: the instance's ``prepare()`` gives a token,
  which goes into this actor's checkpoint state, and ``begin()`` opens the next transaction;
- once that checkpoint is durable, :meth:`TransactionalSinkActor.commit_durable` calls
  ``commit(token)``;
- on resume the tokens of the restored checkpoint are committed again (``commit`` is idempotent)
  before the first item, then ``begin()``;
- when the run ends without success, :meth:`TransactionalSinkActor.end_transactions` aborts the
  transactions no durable checkpoint holds: ``abort(token)`` for prepared ones, ``abort(None)``
  for the open one.

So work written in a transaction that never became part of a durable checkpoint is never
committed, and after a resume those items are delivered again, into a new transaction. Without a
store the run's end prepares and commits once.

``prepare`` and ``begin`` are plain calls made while every actor is parked (the consistent cut):
``prepare`` only closes the transaction and names it. Its durable part, ``finish_prepare(token)``,
may be async (a database sink runs its driver in a thread): the supervisor awaits it after the
snapshot, once the actors run again, and writes the checkpoint only when it returned. ``commit``
may be async too. ``abort`` is always called as a plain function, at the run's end.
"""

from __future__ import annotations

import inspect
from typing import Any

import trio

from .._storage import pack, unpack
from ._actor_kinds import SinkActor
from ._state import TransactionState


class TransactionalSinkActor(SinkActor):
    """A sink actor whose handler instance is a :class:`~actorflow.TransactionalSink`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: A transaction is open (begun and not prepared).
        self.txn_open = False
        #: Tokens prepared for a checkpoint that is not durable yet.
        self.prepared: list[Any] = []
        #: Tokens a durable checkpoint holds that are not committed yet (restored ones included).
        self.durable: list[Any] = []
        #: Tokens prepared whose ``finish_prepare`` has not returned yet.
        self.unsettled: list[Any] = []
        #: One commit loop at a time: an async commit of restored tokens (the actor's start) may still
        #: await when the first checkpoint commits (the supervisor).
        self.committing = trio.Lock()
        #: Restored from a checkpoint (a resumed run).
        self.resumed = False

    @property
    def instance(self) -> Any:
        """The task-class instance (None before the handler is bound, or on a cache hit)."""
        return self.handler.instance if self.handler is not None else None

    async def _run_body(self) -> None:
        if self.restored_finished:  # its items were all written: commit what the checkpoint holds, await the end
            await self.bind_handler()
            await self.start_transactions()
            return
        await super()._run_body()

    async def main(self) -> None:
        await self.start_transactions()
        await super().main()

    async def start_transactions(self) -> None:
        """Commit the tokens a restored checkpoint holds (idempotent), then open a transaction."""
        starting = getattr(self.instance, "starting", None)
        if callable(starting):  # a sink that prepares its target for a new or a resumed run (JsonLinesSink)
            starting(resumed=self.resumed)
        await self.commit_durable()
        _plain(self.instance.begin(), "begin")
        self.txn_open = True

    def prepare_transaction(self, final: bool, stored: bool) -> None:
        """At a checkpoint: prepare the open transaction and, unless *final*, open the next one.

        With a store (*stored*) the token is passed through msgpack at once, so a token that cannot
        be stored fails here, and ``commit`` gets the same value now and after a resume.
        """
        instance = self.instance
        if not self.txn_open or instance is None:
            return
        token = _plain(instance.prepare(), "prepare")
        self.txn_open = False
        if stored:
            try:
                token = unpack(pack(token))
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(f"prepare() returned a token that cannot be stored with msgpack: {token!r}") from exc
        self.prepared.append(token)
        self.unsettled.append(token)
        if not final:
            _plain(instance.begin(), "begin")
            self.txn_open = True

    async def finish_prepares(self) -> None:
        """Await ``finish_prepare`` of each token prepared for the checkpoint being written."""
        instance = self.instance
        while self.unsettled and instance is not None:
            await _maybe_await(instance.finish_prepare(self.unsettled[0]))
            self.unsettled.pop(0)

    def made_durable(self) -> None:
        """The checkpoint holding the prepared tokens is written."""
        self.durable += self.prepared
        self.prepared = []

    async def commit_durable(self) -> None:
        """Commit every token a durable checkpoint holds (a token stays listed until its commit returns)."""
        instance = self.instance
        async with self.committing:
            while self.durable and instance is not None:
                await _maybe_await(instance.commit(self.durable[0]))
                self.durable.pop(0)

    def end_transactions(self, ok: bool) -> None:
        """At the run's end: unless it succeeded, abort what no durable checkpoint holds; then ``close()``.

        Tokens of a durable checkpoint are never aborted (a resume commits them). An exception from
        ``abort`` is dropped: the run already failed, and the transaction is never committed.
        """
        instance = self.instance
        if instance is None:
            return
        if not ok:
            for token in [*self.prepared, *([None] if self.txn_open else [])]:
                try:
                    instance.abort(token)
                except Exception:  # see the docstring
                    pass
            self.prepared = []
            self.unsettled = []
            self.txn_open = False
        close = getattr(instance, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # the run's outcome is decided; a failing close changes nothing written
                pass

    state_type = TransactionState

    def state(self) -> TransactionState:
        return TransactionState(**self.common_state(), tokens=[*self.durable, *self.prepared])

    def restore(self, st: Any) -> None:
        super().restore(st)
        self.resumed = True
        tokens = st.tokens if isinstance(st, TransactionState) else []
        self.durable = list(tokens) if isinstance(tokens, list) else []


async def _maybe_await(value: Any) -> Any:
    """*value*, awaited when a method of the sink was async."""
    return await value if inspect.isawaitable(value) else value


def _plain(value: Any, method: str) -> Any:
    """The result of a method that must not be async (it runs while every actor is parked)."""
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if callable(close):
            close()
        raise TypeError(f"TransactionalSink.{method}() must be a plain method (it runs while every actor is "
                        "parked); put slow work in finish_prepare() or commit(), which may be async")
    return value
