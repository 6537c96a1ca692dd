"""Collectors: fold a stream into one product, or into one product per group with ``per=``.

A collector's state is its accumulator (``acc``), or with ``per=`` its open groups' accumulators
(``accs``), the groups announced but not finished (``known``) and how far the input has moved
(``mark``); :meth:`CollectorActor.state` hands exactly that to a checkpoint.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from .._base import SKIP
from .._storage import plain_seqs, restore_like, seq_from_plain
from ._actor import Actor
from ._cycle import NO_OUTPUT, run_cycle, step
from ._loop import seq_prefix
from ._mailbox import Batch, Mailbox
from ._state import ABSENT, FoldState, GroupsState


class CollectorActor(Actor):
    """Folds a stream: ``acc = step(acc, item)``; one product, or one per group with ``per=``."""

    acc: Any = None
    #: True once ``acc`` (or the groups) hold state worth checkpointing (set from the first batch or a restore).
    has_state = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.state_type = GroupsState if self.spec.per is not None else FoldState
        self.known: deque[Any] = deque()
        self.accs: dict[Any, Any] = {}
        self.mark: Any = None
        #: With ``per=``: the generator level of the groups, and the index in its batch of the item being folded.
        self.depth = 1
        self.group_at = 0

    async def main(self) -> None:
        if self.spec.per is not None:
            await self._per_groups()
            return
        assert self.handler is not None
        if not self.has_state:
            self.acc = self.handler.initial()
            self.has_state = True
        await run_cycle(self, self, self.inbox())

    # -- the collector's logic in the batch cycle (see ``_cycle``) -----------------------------------

    pooled = False

    async def on_batch(self, seqs: list[Any], items: list[Any], flush: bool, order: int) -> Batch:
        assert self.loop is not None
        if self.spec.per is not None:
            await self._fold_groups(seqs, items)
            return NO_OUTPUT
        self.acc = await self.loop.fold(self.acc, seqs, items)
        self.out_check.state(self.acc, seqs[-1], "its accumulator")
        return NO_OUTPUT

    def on_exit(self, seqs: list[Any], items: list[Any], exc: BaseException, order: int) -> int:
        """The accumulator (or the groups) hold the items before the one that raised: put back the rest."""
        assert self.loop is not None
        if self.spec.per is not None:
            at = self.group_at
            if at:
                self.mark = seq_prefix(seqs[at - 1], self.depth)
            self.put_back(seqs[at:], items[at:], exc)
            return at
        self.acc, at = self.loop.stopped
        self.put_back(seqs[at:], items[at:], exc)
        return int(at)

    def sent(self, in_seqs: list[Any]) -> None:
        pass

    async def on_eof(self) -> None:
        value = await self._product(self.acc)
        if value is SKIP:
            value = None
        else:
            self.items_out = 1
        self.product.set(value)

    async def _product(self, acc: Any, seq: Any = None) -> Any:
        """The product of *acc* through ``finish`` under the task's policy (SKIP: set aside)."""
        handler, loop = self.handler, self.loop
        assert handler is not None and loop is not None
        made, value = await loop.once(seq, lambda: handler.finish(acc))
        if not made:
            return SKIP
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
        """Fold one batch of items into their groups (one pass of the cycle); True when one came."""
        batch = inbox.get_nowait(self.sizer.size)
        if batch is None:
            return False
        self.depth = depth
        await step(self, self, batch, flush=True)
        return True

    async def _fold_groups(self, seqs: list[Any], items: list[Any]) -> None:
        assert self.handler is not None and self.loop is not None
        accs, depth, loop, initial = self.accs, self.depth, self.loop, self.handler.initial
        for at, (s, x) in enumerate(zip(seqs, items, strict=True)):
            self.group_at = at
            key = seq_prefix(s, depth)
            acc = accs[key] if key in accs else initial()
            accs[key] = await loop.fold(acc, [s], [x])
        self.out_check.state(accs[key], seqs[-1], "its accumulator")
        self.mark = seq_prefix(seqs[-1], depth)

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
            out.append(await self._product(acc, key))
        if all_done:
            for key in sorted(accs):  # items whose group was never announced
                out_seqs.append(key)
                out.append(await self._product(accs.pop(key), key))
        if any(x is SKIP for x in out):  # products set aside by the policy
            keep = [i for i, x in enumerate(out) if x is not SKIP]
            out_seqs, out = [out_seqs[i] for i in keep], [out[i] for i in keep]
        if out:
            await self.send(out_seqs, out)

    def state(self) -> FoldState | GroupsState:
        if self.spec.per is None:
            st = FoldState(**self.common_state())
            if self.has_state:
                st.acc = self.acc
            return st
        groups = GroupsState(**self.common_state())
        if self.has_state:
            groups.accs = [[list(k) if isinstance(k, tuple) else k, v] for k, v in self.accs.items()]
            groups.known = plain_seqs(list(self.known))
            groups.mark = list(self.mark) if isinstance(self.mark, tuple) else self.mark
        return groups

    def restore(self, st: Any) -> None:
        super().restore(st)
        init = self.spec.init
        if isinstance(st, FoldState) and st.acc is not ABSENT:
            self.acc = restore_like(st.acc, init)
            self.has_state = True
        elif isinstance(st, GroupsState) and st.accs is not ABSENT:
            if st.known is ABSENT or st.mark is ABSENT:
                raise ValueError('"known" or "mark" is missing beside "accs"')
            self.accs = {seq_from_plain(k): restore_like(v, init) for k, v in st.accs}
            self.known = deque(seq_from_plain(k) for k in st.known)
            self.mark = seq_from_plain(st.mark)
            self.has_state = True
