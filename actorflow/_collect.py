"""Collectors: fold a stream into one product, or into one product per group with ``per=``.

A collector's state is its accumulator (``acc``), or with ``per=`` its open groups' accumulators
(``accs``), the groups announced but not finished (``known``) and how far the input has moved
(``mark``); :meth:`CollectorActor.state` hands exactly that to a checkpoint.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from ._actor import EXITS, Actor
from ._codec import plain_seqs, restore_like, seq_from_plain
from ._errors import ItemFailure
from ._loop import seq_prefix
from ._mailbox import Mailbox


class CollectorActor(Actor):
    """Folds a stream: ``acc = step(acc, item)``; one product, or one per group with ``per=``."""

    acc: Any = None
    #: True once ``acc`` (or the groups) hold state worth checkpointing (set from the first batch or a restore).
    has_state = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.known: deque[Any] = deque()
        self.accs: dict[Any, Any] = {}
        self.mark: Any = None

    async def main(self) -> None:
        if self.spec.per is not None:
            await self._per_groups()
            return
        handler, loop = self.handler, self.loop
        assert handler is not None and loop is not None
        inbox = self.inbox()
        if not self.has_state:
            self.acc = handler.initial()
            self.has_state = True
        while (batch := await self.take(inbox)) is not None:
            try:
                with self.working(batch):
                    self.acc = await loop.fold(self.acc, *batch)
            except EXITS as exc:  # the accumulator holds the items before the one that raised: put back the rest
                self.acc, at = loop.stopped
                self.items_in += at
                self.put_back(batch[0][at:], batch[1][at:], exc)
                raise
            self.out_check.state(self.acc, batch[0][-1], "its accumulator")
            self.items_in += len(batch[1])
            self.batch_event(len(batch[1]), 0)
        value = await self._product(self.acc)
        self.items_out = 1
        self.product.set(value)

    async def _product(self, acc: Any) -> Any:
        assert self.handler is not None
        try:
            value = await self.handler.finish(acc)
        except Exception as exc:
            raise ItemFailure(None, exc) from exc
        self.out_check.product(value)
        return value

    async def _per_groups(self) -> None:
        # `groups` is fed by a hidden mailbox from the `per` stream: it tells which groups exist
        # (also those with no items) and in which order. With ordered input a group is complete
        # once the input has moved past it; otherwise every group completes at the end.
        depth = self.run.graph.tasks[self.spec.per].depth  # type: ignore[index]
        groups_box = self.inboxes[-1]
        self.inboxes = self.inboxes[:-1]
        inbox = self.inbox()
        lot = trio.lowlevel.ParkingLot()
        groups_box.listener = lot
        if isinstance(inbox, Mailbox):
            inbox.listener = lot
        else:
            inbox.lot = lot
            for b in inbox.boxes:
                b.listener = lot
        self.has_state = True
        while True:
            if self.sup.pending:
                await self.sup.gate()
            await self.breathe()
            announced = self._take_announced(groups_box)
            took = await self._take_items(inbox, depth)
            progressed = announced or took
            ended = not took and (inbox.done if isinstance(inbox, Mailbox) else inbox.ended())
            all_done = ended and groups_box.done
            await self._emit_complete(all_done)
            if all_done:
                return
            if not progressed:
                await lot.park()

    def _take_announced(self, groups_box: Mailbox) -> bool:
        """Take the groups the ``per`` stream announced; True when any came."""
        came = False
        while (g := groups_box.get_nowait()) is not None:
            self.known.extend(g[0])
            came = True
        return came

    async def _take_items(self, inbox: Any, depth: int) -> bool:
        """Fold one batch of items into their groups; True when one came."""
        assert self.handler is not None and self.loop is not None
        batch = inbox.get_nowait(self.sizer.size)
        if batch is None:
            return False
        seqs, items = batch
        accs = self.accs
        at = 0
        try:
            with self.working(batch):
                for at, (s, x) in enumerate(zip(seqs, items, strict=True)):  # noqa: B007  # `at` is read on an exit
                    key = seq_prefix(s, depth)
                    acc = accs[key] if key in accs else self.handler.initial()
                    accs[key] = await self.loop.fold(acc, [s], [x])
        except EXITS as exc:  # the groups hold the items before the one that raised: put back the rest
            self.items_in += at
            if at:
                self.mark = seq_prefix(seqs[at - 1], depth)
            self.put_back(seqs[at:], items[at:], exc)
            raise
        self.out_check.state(accs[key], seqs[-1], "its accumulator")
        self.items_in += len(items)
        self.mark = seq_prefix(seqs[-1], depth)
        self.batch_event(len(items), 0)
        return True

    async def _emit_complete(self, all_done: bool) -> None:
        """Send the products of the groups that are complete (every group once all input ended)."""
        assert self.handler is not None
        known, accs, mark = self.known, self.accs, self.mark
        out_seqs: list[Any] = []
        out: list[Any] = []
        while known and (all_done or (self.spec.ordered and mark is not None and known[0] < mark)):
            key = known.popleft()
            acc = accs.pop(key) if key in accs else self.handler.initial()
            out_seqs.append(key)
            out.append(await self._product(acc))
        if all_done:
            for key in sorted(accs):  # items whose group was never announced
                out_seqs.append(key)
                out.append(await self._product(accs.pop(key)))
        if out:
            await self.send(out_seqs, out)

    def state(self) -> dict[str, Any]:
        st = super().state()
        if self.spec.per is None:
            if self.has_state:
                st["acc"] = self.acc
        elif self.has_state:
            st["accs"] = [[list(k) if isinstance(k, tuple) else k, v] for k, v in self.accs.items()]
            st["known"] = plain_seqs(list(self.known))
            st["mark"] = list(self.mark) if isinstance(self.mark, tuple) else self.mark
        return st

    def restore(self, st: dict[str, Any]) -> None:
        super().restore(st)
        init = self.spec.init
        if "acc" in st:
            self.acc = restore_like(st["acc"], init)
            self.has_state = True
        elif "accs" in st:
            self.accs = {seq_from_plain(k): restore_like(v, init) for k, v in st["accs"]}
            self.known = deque(seq_from_plain(k) for k in st["known"])
            self.mark = seq_from_plain(st["mark"])
            self.has_state = True
