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
"""

from __future__ import annotations

from typing import Any

from ._actor_kinds import SinkActor
from ._codec import pack, unpack
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
        #: Restored from a checkpoint (a resumed run).
        self.resumed = False

    @property
    def instance(self) -> Any:
        """The task-class instance (None before the handler is bound, or on a cache hit)."""
        return self.handler.instance if self.handler is not None else None

    async def _run_body(self) -> None:
        if self.restored_finished:  # its items were all written: commit what the checkpoint holds, await the end
            await self.bind_handler()
            self.start_transactions()
            return
        await super()._run_body()

    async def main(self) -> None:
        self.start_transactions()
        await super().main()

    def start_transactions(self) -> None:
        """Commit the tokens a restored checkpoint holds (idempotent), then open a transaction."""
        starting = getattr(self.instance, "starting", None)
        if callable(starting):  # a sink that prepares its target for a new or a resumed run (JsonLinesSink)
            starting(resumed=self.resumed)
        self.commit_durable()
        self.instance.begin()
        self.txn_open = True

    def prepare_transaction(self, final: bool, stored: bool) -> None:
        """At a checkpoint: prepare the open transaction and, unless *final*, open the next one.

        With a store (*stored*) the token is passed through msgpack at once, so a token that cannot
        be stored fails here, and ``commit`` gets the same value now and after a resume.
        """
        instance = self.instance
        if not self.txn_open or instance is None:
            return
        token = instance.prepare()
        self.txn_open = False
        if stored:
            try:
                token = unpack(pack(token))
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(f"prepare() returned a token that cannot be stored with msgpack: {token!r}") from exc
        self.prepared.append(token)
        if not final:
            instance.begin()
            self.txn_open = True

    def made_durable(self) -> None:
        """The checkpoint holding the prepared tokens is written."""
        self.durable += self.prepared
        self.prepared = []

    def commit_durable(self) -> None:
        """Commit every token a durable checkpoint holds (a token stays listed until its commit returns)."""
        instance = self.instance
        while self.durable and instance is not None:
            instance.commit(self.durable[0])
            self.durable.pop(0)

    def end_transactions(self, ok: bool) -> None:
        """At the run's end: unless it succeeded, abort what no durable checkpoint holds.

        Tokens of a durable checkpoint are never aborted (a resume commits them). An exception from
        ``abort`` is dropped: the run already failed, and the transaction is never committed.
        """
        instance = self.instance
        if ok or instance is None:
            return
        for token in [*self.prepared, *([None] if self.txn_open else [])]:
            try:
                instance.abort(token)
            except Exception:  # see the docstring
                pass
        self.prepared = []
        self.txn_open = False

    state_type = TransactionState

    def state(self) -> TransactionState:
        return TransactionState(**self.common_state(), tokens=[*self.durable, *self.prepared])

    def restore(self, st: Any) -> None:
        super().restore(st)
        self.resumed = True
        tokens = st.tokens if isinstance(st, TransactionState) else []
        self.durable = list(tokens) if isinstance(tokens, list) else []
