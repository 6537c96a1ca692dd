"""The cache's part in a run: which tasks are hits, what misses record, what a checkpoint keeps.

Before a fresh run starts, :func:`plan` gives every cacheable task a :class:`CacheRole`: a
**hit** (its key is in the cache and every task it reads from is a hit too) does not run; its
product is loaded, and its stream is replayed in order only where a task that runs reads it. A
**miss** runs, and what it sends downstream is recorded (:meth:`CacheRole.record`) and written
when it finishes (:meth:`CacheRole.save`). Actors hold their role; a checkpoint keeps
:meth:`CacheRole.state` so a resumed run goes on with the same decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._cache import Cache, encode_chunk
from ._cache_keys import compute_keys
from ._codec import EncodeError, pack
from ._errors import ResumeError, StoreError

if TYPE_CHECKING:
    from ._bind import RunGraph
    from ._spec import TaskDef

log = logging.getLogger("actorflow.cache")


class CacheRole:
    """One task's decision for one run: ``"hit"`` or ``"miss"``, under its key."""

    def __init__(self, decision: str, key: str, entry: dict[str, Any] | None = None, reason: str = "") -> None:
        self.decision = decision
        self.key = key
        #: The entry's header (hits).
        self.entry = entry
        #: Why a miss runs ("not in the cache", "a task it reads from runs").
        self.reason = reason
        #: A hit replays its stream (a task that runs reads it) / loads its items (the result needs them).
        self.replay = False
        self.load_items = False
        #: Batches of a hit's stream already replayed (a checkpoint keeps it).
        self.replayed = 0
        #: A miss's sent batches, encoded, until it finishes and they are written (None: not recording).
        self.recording: list[bytes] | None = None
        self.recorded = 0
        self._bytes = 0

    @property
    def hit(self) -> bool:
        return self.decision == "hit"

    def record(self, task: str, cache: Cache, seqs: list[Any], items: list[Any]) -> None:
        """Keep one sent batch for the entry (a value msgpack cannot hold stops recording)."""
        try:
            raw = encode_chunk(seqs, items)
        except (EncodeError, TypeError, ValueError, OverflowError) as exc:
            self.recording = None
            log.warning("cache: task %s not cached: %s", task, exc)
            return
        assert self.recording is not None
        self.recording.append(raw)
        self.recorded += len(items)
        self._bytes += len(raw)
        if self._bytes > cache.limit:
            self.recording = None  # it could never be stored: stop holding it in memory
            log.warning("cache: task %s not cached: its stream is larger than the cache limit", task)

    def save(self, cache: Cache, flow: str, spec: TaskDef, items_in: int, product: Any) -> None:
        """Write a finished miss's entry. Failures to write never fail the run (they are logged)."""
        if self.decision != "miss":
            return
        header = {"task": spec.name, "flow": flow, "kind": spec.kind}
        try:
            if spec.kind == "sink":
                cache.save(self.key, {**header, "form": "sink", "items": items_in})
            elif spec.streaming:
                if self.recording is None:
                    return
                cache.save(self.key, {**header, "form": "stream", "items": self.recorded}, self.recording)
                self.recording = None
            else:
                cache.save(self.key, {**header, "form": "product", "items": 1}, product=pack(product))
        except (EncodeError, StoreError, TypeError, ValueError, OverflowError) as exc:
            log.warning("cache: task %s not cached: %s", spec.name, exc)

    def chunks(self, cache: Cache) -> Iterator[tuple[list[Any], list[Any]]]:
        """A hit's recorded batches from where replay stopped (counted as they are taken)."""
        assert self.entry is not None
        for chunk in cache.chunks(self.key, self.replayed, expect=self.entry["chunks"]):
            self.replayed += 1
            yield chunk

    def state(self) -> list[Any]:
        """What a checkpoint keeps: ``[decision, key, replayed, replay, load_items]``."""
        return [self.decision, self.key, self.replayed, self.replay, self.load_items]

    @classmethod
    def restored(cls, task: str, cache: Cache | None, state: list[Any], fresh: bool, streaming: bool) -> CacheRole:
        """The role a checkpoint recorded. *fresh*: the task had sent nothing yet (it may still record).

        Raises:
            ResumeError: a hit's entry is no longer in the cache.
        """
        decision, key, replayed, replay, load_items = state
        role = cls(decision, key)
        if decision == "hit":
            header = cache.lookup(key) if cache is not None else None
            if header is None:
                raise ResumeError(
                    f"task {task!r} was replaying cache entry {key}, which is no longer in the store; start the run "
                    "afresh"
                )
            role.entry, role.replayed, role.replay, role.load_items = header, replayed, replay, load_items
        elif streaming and fresh:
            role.recording = []  # nothing was sent yet: the whole stream can still be recorded
        return role


def _upstreams(spec: TaskDef) -> list[str]:
    ups = [i.upstream for i in spec.inputs]
    if spec.per is not None:
        ups.append(spec.per)
    return ups


def plan(graph: RunGraph, cache: Cache, in_result: set[str]) -> dict[str, CacheRole]:
    """Decide, before a fresh run starts, which tasks are hits and which run and get recorded.

    Args:
        graph: the run graph.
        cache: the cache to look keys up in.
        in_result: tasks whose items the run's result holds (unread streams, per-collectors).
    """
    keys = compute_keys(graph, cache)
    roles: dict[str, CacheRole] = {}
    for name, spec in graph.tasks.items():
        key = keys[name]
        if key is None:
            continue
        header = cache.lookup(key)
        if header is not None and all(u in roles and roles[u].hit for u in _upstreams(spec)):
            roles[name] = CacheRole("hit", key, header)
        else:
            reason = "not in the cache" if header is None else "a task it reads from runs"
            roles[name] = role = CacheRole("miss", key, reason=reason)
            if spec.streaming:
                role.recording = []
    _settle(graph, roles, in_result)
    cache.touch({r.key: r.entry for r in roles.values() if r.entry is not None})
    return roles


def _settle(graph: RunGraph, roles: Mapping[str, CacheRole], in_result: set[str]) -> None:
    """For every hit: must its stream be replayed (a task that runs reads it), must its items be loaded?"""
    for name, role in roles.items():
        if not role.hit:
            continue
        for other in graph.tasks.values():
            if other.name in roles and roles[other.name].hit:
                continue
            for inp in other.inputs:
                if inp.upstream == name:
                    role.replay |= inp.streaming
                    role.load_items |= not inp.streaming
            if other.per == name:
                role.replay = True
        role.load_items |= name in in_result
