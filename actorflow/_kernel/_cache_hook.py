"""The product cache as hooks on an actor's cycle.

An actor with a cache role (:class:`~actorflow._kernel._cache_run.CacheRole`) gets one :class:`CacheHook`.
The actor calls it at fixed points of its life and knows nothing else of the cache:

- ``started()``: the task started with its decision made (an event says hit or miss);
- ``is_hit()``: before the body runs; an undecided role waits for the fingerprints of the tasks it
  reads from (early cutoff) and decides; True means the actor only replays;
- ``replay()``: a hit's product is loaded, or its stream replayed in order where it is read;
- ``sending(seqs, items)``: a miss records every batch it sends;
- ``finished()`` and ``after_finish()``: the entry is written (at once, or once every task read
  from has its final fingerprint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base import _events as ev
from .._storage import restore, restore_items
from ._cache_keys import upstreams
from ._cycle import run_pull

if TYPE_CHECKING:
    from ._actor import Actor
    from ._cache_run import CacheRole


class CacheHook:
    """One actor's part in the product cache (see the module docstring)."""

    __slots__ = ("actor", "role")

    def __init__(self, actor: Actor, role: CacheRole) -> None:
        self.actor = actor
        self.role = role

    def digests(self) -> dict[str, str | None]:
        """The output fingerprints of the tasks this one reads from (None: not known)."""
        actors = self.actor.run.actors
        return {u: (r.digest if (r := actors[u].cached) is not None else None) for u in upstreams(self.actor.spec)}

    def upstream_roles(self) -> list[CacheRole]:
        """The cache roles of the tasks this one reads from."""
        actors = self.actor.run.actors
        return [r for u in upstreams(self.actor.spec) if (r := actors[u].cached) is not None]

    def started(self) -> None:
        if self.role.decision != "pending":
            self.event()

    def event(self) -> None:
        actor, role = self.actor, self.role
        run = actor.run
        if role.hit:
            items = role.entry["items"] if role.entry else 0
            run.bus.publish(
                ev.CacheHit(run_id=run.run_id, task=actor.name, key=role.key, items=items, cutoff=role.cutoff)
            )
        else:
            run.bus.publish(ev.CacheMiss(run_id=run.run_id, task=actor.name, key=role.key, reason=role.reason))

    async def is_hit(self) -> bool:
        """Whether the actor replays a hit (an undecided role decides first: early cutoff)."""
        if self.role.decision == "pending":
            await self._cutoff()
        return self.role.hit

    async def _cutoff(self) -> None:
        """Early cutoff: wait until every task this one reads from has a final fingerprint, then
        decide. Meanwhile the inboxes spill rather than block their senders; a hit drops them."""
        actor, role = self.actor, self.role
        run = actor.run
        assert run.cache is not None
        for box in actor.inboxes:
            box.spill(True)
        for other in self.upstream_roles():
            await other.settled.wait()
        for box in actor.inboxes:
            box.spill(False)
        role.decide(run.cache, actor.spec, self.digests())
        if role.hit:
            for box in actor.inboxes:
                box.abandon()
            actor.outs = run.outs_to_running(actor)
            role.replay, role.load_items = bool(actor.outs or actor.taps), actor.in_result
        self.event()

    def sending(self, seqs: list[Any], items: list[Any]) -> None:
        """A batch about to be sent: a miss records it."""
        role, cache = self.role, self.actor.run.cache
        if role.fingerprint is not None and cache is not None:
            role.record(self.actor.name, cache, seqs, items)

    def finished(self) -> None:
        """The task finished: write its entry (or mark it to be written once its inputs settle)."""
        actor, role = self.actor, self.role
        run = actor.run
        if run.cache is None:
            return
        # an incomplete product hides nothing: a task that set items aside is not written
        write = not any(d["task"] == actor.name for d in actor.sup.dead_letters)
        later = write and not all(r.settled.is_set() for r in self.upstream_roles())
        role.finish(
            run.cache, run.flow_name, actor.spec, actor.items_in, actor.product.value, self.digests(), write, later
        )

    async def after_finish(self) -> None:
        """Write a finished miss's entry once every task it read from has its final fingerprint
        (a task can end before one of them does: a zip ends with its shortest input)."""
        if self.role.later is None:
            return
        for role in self.upstream_roles():
            await role.settled.wait()
        cache = self.actor.run.cache
        assert cache is not None
        self.role.save_later(cache, self.digests())

    async def replay(self) -> None:
        """A cache hit: load the product, or replay the stream in order where it is needed."""
        actor, role = self.actor, self.role
        cache = actor.run.cache
        assert cache is not None and role.entry is not None
        form = role.entry["form"]
        if form == "product":
            actor.product.set(restore(cache.product(role.key), actor.spec.out_type))
            actor.items_out = 1
            return
        if form == "sink":
            actor.items_in = role.entry["items"]
            actor.product.set(None)
            return
        if not (role.replay or role.load_items):
            actor.gather = None  # nobody reads these items this time
            actor.product.set(None)
            actor.items_out = role.entry["items"]
            return
        out_type = actor.spec.out_type
        chunks = role.chunks(cache)

        def pull(_: int) -> tuple[list[Any], list[Any]] | None:
            chunk = next(chunks, None)
            return None if chunk is None else (chunk[0], restore_items(chunk[1], out_type))

        await run_pull(actor, pull, None if role.replay else self._gather, count_in=False)

    async def _gather(self, seqs: list[Any], items: list[Any]) -> None:
        """Replayed items nobody reads downstream, kept for the result."""
        actor = self.actor
        assert actor.gather is not None
        actor.gather.extend(items)
        actor.items_out += len(items)
