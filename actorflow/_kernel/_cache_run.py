"""The cache's part in a run: which tasks are hits, what misses record, what a checkpoint keeps.

Before a fresh run starts, :func:`plan` gives every cacheable task a :class:`CacheRole`: a
**hit** (its key is in the cache and every task it reads from is a hit too) does not run; its
product is loaded, and its stream is replayed in order only where a task that runs reads it. A
**miss** runs, and what it sends downstream is recorded (:meth:`CacheRole.record`) and written
when it finishes (:meth:`CacheRole.finish`). Actors hold their role; a checkpoint keeps
:meth:`CacheRole.state` so a resumed run goes on with the same decisions.

**Early cutoff.** Every miss also fingerprints what it sends (:class:`~actorflow._kernel._cache.Fingerprint`)
and its entry keeps that ``digest`` and the ``input`` fingerprint of what it read. A task that
reads from a task that runs is **pending** when the cache holds an entry of its own definition
and options (its partial key): it starts, lets its inboxes spill instead of blocking its senders,
and waits until every task it reads from has a final digest (a miss: when it finishes; a hit: at
once). Then it decides (:meth:`CacheRole.decide`): if an entry of its partial key read content
with the same fingerprint, it is a hit (``cutoff``), drops what it was sent and replays that
entry; else it is a miss and processes its inboxes. A task with no entry of its partial key does
not wait: it runs at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._base import ResumeError, StoreError
from .._storage import EncodeError, pack
from ._cache import Cache, Fingerprint, encode_chunk, product_digest, run_start
from ._cache_keys import compute_key_pairs, input_digest, upstreams
from ._state import CacheState

if TYPE_CHECKING:
    from .._define import RunGraph, TaskDef

log = logging.getLogger("actorflow.cache")

_ENCODE_ERRORS = (EncodeError, TypeError, ValueError, OverflowError)


class CacheRole:
    """One task's decision for one run: ``"hit"``, ``"miss"`` or ``"pending"`` (early cutoff
    decides it once what the task reads is known), under its key."""

    def __init__(
        self, decision: str, key: str, entry: dict[str, Any] | None = None, reason: str = "", partial: str = ""
    ) -> None:
        self.decision = decision
        self.key = key
        #: The entry's header (hits).
        self.entry = entry
        #: Why a miss runs ("not in the cache", "a task it reads from runs", "what it reads changed").
        self.reason = reason
        #: The task's partial key (its definition and options; see ``compute_key_pairs``).
        self.partial = partial
        #: A hit found by early cutoff: a task it reads from ran again and sent the same content.
        self.cutoff = False
        #: A key this role pinned after the run started (a cutoff hit's entry), unpinned at its end.
        self.pinned: str | None = None
        #: The fingerprint of what the task reads (None: not known yet).
        self.input: str | None = None
        #: A hit replays its stream (a task that runs reads it) / loads its items (the result needs them).
        self.replay = False
        self.load_items = False
        #: Batches of a hit's stream already replayed (a checkpoint keeps it).
        self.replayed = 0
        #: A miss's sent batches, encoded, until it finishes and they are written (None: not recording).
        self.recording: list[bytes] | None = None
        self.recorded = 0
        self._bytes = 0
        #: A finished miss's entry waiting for its input's fingerprint: (flow, spec, items_in, packed product).
        self.later: tuple[str, TaskDef, int, bytes | None] | None = None
        #: A running stream's content fingerprint (None: none is taken).
        self.fingerprint: Fingerprint | None = None
        #: The fingerprint of what the task sends (None: not known, or not yet).
        self.digest: str | None = entry.get("digest") if entry is not None else None
        #: Set once :attr:`digest` is final; pending readers wait for it.
        self.settled = trio.Event()
        if decision == "hit":
            self.settled.set()

    @property
    def hit(self) -> bool:
        return self.decision == "hit"

    @property
    def outcome(self) -> str | None:
        """What the summary says: ``"hit"``, ``"cutoff"`` (a hit by early cutoff), ``"miss"``, or
        None while pending."""
        if self.decision == "pending":
            return None
        return "cutoff" if self.cutoff and self.hit else self.decision

    def start_miss(self, streaming: bool) -> None:
        """Record and fingerprint what a miss sends from now on (streams only: products are whole)."""
        if streaming:
            self.recording = []
            self.fingerprint = Fingerprint()

    def record(self, task: str, cache: Cache, seqs: list[Any], items: list[Any]) -> None:
        """Fingerprint one sent batch and keep it for the entry (a value msgpack cannot hold stops both)."""
        try:
            packed, start = pack(items), run_start(seqs)
            if self.fingerprint is not None:
                self.fingerprint.add(seqs, packed, start)
            if self.recording is None:
                return
            raw = encode_chunk(seqs, items, packed, start)
        except _ENCODE_ERRORS as exc:
            self.recording = self.fingerprint = None
            log.warning("cache: task %s not cached: %s", task, exc)
            return
        self.recording.append(raw)
        self.recorded += len(items)
        self._bytes += len(raw)
        if self._bytes > cache.limit:
            self.recording = None  # it could never be stored: stop holding it in memory
            log.warning("cache: task %s not cached: its stream is larger than the cache limit", task)

    def adopt(self, found: tuple[str, dict[str, Any]]) -> None:
        """Become a hit by early cutoff on *found*, the ``(key, header)`` of an entry of this
        task's partial key that read the same content (see :func:`_same_content`)."""
        self.decision, self.cutoff = "hit", True
        self.key, self.entry = found
        self.digest = self.entry.get("digest")
        self.settled.set()

    def decide(self, cache: Cache, spec: TaskDef, digests: dict[str, str | None]) -> None:
        """A pending task's decision, once *digests* (of the tasks it reads from) are final."""
        self.input, found = _same_content(cache, spec, self.partial, digests)
        if found is not None:
            self.adopt(found)
            cache.pin([self.key])  # the run has started: keep the entry from eviction until it ends
            self.pinned = self.key
            cache.touch({self.key: found[1]})
            return
        self.decision = "miss"
        self.reason = "what it reads changed" if self.input is not None else "what it reads is not known"
        self.start_miss(spec.streaming)

    def finish(
        self, cache: Cache, flow: str, spec: TaskDef, items_in: int, product: Any,
        digests: dict[str, str | None], write: bool, later: bool = False,
    ) -> None:
        """A task finished: a miss's digest becomes final (pending readers go on) and, if *write*,
        its entry is written: now, or with *later* by :meth:`save_later` once the tasks it read from
        have theirs. Failures to write never fail the run (they are logged)."""
        if self.decision != "miss":
            self.settled.set()
            return
        if self.input is None:
            self.input = input_digest(spec, digests)
        packed = None
        if spec.streaming:
            self.digest = self.fingerprint.digest() if self.fingerprint is not None else None
        elif spec.kind != "sink":
            try:
                packed = pack(product)
                self.digest = product_digest(packed)
            except _ENCODE_ERRORS as exc:
                log.warning("cache: task %s not cached: %s", spec.name, exc)
                write = False
        self.settled.set()
        if later:
            self.later = (flow, spec, items_in, packed)
        elif write:
            self._save(cache, flow, spec, items_in, packed)

    def save_later(self, cache: Cache, digests: dict[str, str | None]) -> None:
        """Write the entry :meth:`finish` held back, now that *digests* are final."""
        assert self.later is not None
        flow, spec, items_in, packed = self.later
        self.later = None
        self.input = input_digest(spec, digests)
        self._save(cache, flow, spec, items_in, packed)

    def _save(self, cache: Cache, flow: str, spec: TaskDef, items_in: int, packed: bytes | None) -> None:
        header = {"task": spec.name, "flow": flow, "kind": spec.kind, "partial": self.partial, "input": self.input,
                  "digest": self.digest}
        try:
            if spec.kind == "sink":
                cache.save(self.key, {**header, "form": "sink", "items": items_in})
            elif spec.streaming:
                if self.recording is None:
                    return
                cache.save(self.key, {**header, "form": "stream", "items": self.recorded}, self.recording)
                self.recording = None
            elif packed is not None:
                cache.save(self.key, {**header, "form": "product", "items": 1}, product=packed)
        except (StoreError, *_ENCODE_ERRORS) as exc:
            log.warning("cache: task %s not cached: %s", spec.name, exc)

    def chunks(self, cache: Cache) -> Iterator[tuple[list[Any], list[Any]]]:
        """A hit's recorded batches from where replay stopped (counted as they are taken)."""
        assert self.entry is not None
        for chunk in cache.chunks(self.key, self.replayed, expect=self.entry["chunks"]):
            self.replayed += 1
            yield chunk

    def state(self) -> CacheState:
        """What a checkpoint keeps of this role."""
        return CacheState(self.decision, self.key, self.replayed, self.replay, self.load_items, self.digest,
                          self.cutoff, self.partial, self.input)

    @staticmethod
    def recorded_outcome(state: Any) -> tuple[str | None, str | None]:
        """The :attr:`outcome` and key a checkpoint's :meth:`state` holds (``"pending"`` while
        undecided), or ``(None, None)`` when it holds none."""
        try:
            st = CacheState.from_plain(state)
        except (TypeError, ValueError):
            return None, None
        decision = "cutoff" if st.decision == "hit" and st.cutoff else st.decision
        return (str(decision), str(st.key)) if isinstance(decision, str) and isinstance(st.key, str) else (None, None)

    @classmethod
    def restored(cls, task: str, cache: Cache | None, st: CacheState, fresh: bool, streaming: bool) -> CacheRole:
        """The role a checkpoint recorded. *fresh*: the task had sent nothing yet (it may still record).

        Raises:
            ResumeError: a hit's entry is no longer in the cache.
        """
        role = cls(st.decision, st.key, partial=st.partial)
        role.cutoff, role.input, role.digest = st.cutoff, st.input, st.digest  # a digest is known once finished
        if st.decision == "hit":
            header = cache.lookup(st.key) if cache is not None else None
            if header is None:
                raise ResumeError(
                    f"task {task!r} was replaying cache entry {st.key}, which is no longer in the store; start the run "
                    "afresh"
                )
            role.entry, role.replayed, role.replay, role.load_items = header, st.replayed, st.replay, st.load_items
            role.digest = header.get("digest")
        elif fresh and st.decision != "pending":
            role.start_miss(streaming)  # nothing was sent yet: the whole stream can still be recorded
        return role  # a miss that had sent part of its stream has no fingerprint: its digest stays unknown


def plan(graph: RunGraph, cache: Cache, in_result: set[str]) -> dict[str, CacheRole]:
    """Decide, before a fresh run starts, which tasks are hits, which run and get recorded, and
    which wait for early cutoff.

    Args:
        graph: the run graph.
        cache: the cache to look keys up in.
        in_result: tasks whose items the run's result holds (unread streams, per-collectors).
    """
    pairs = compute_key_pairs(graph, cache)
    roles: dict[str, CacheRole] = {}
    for name, spec in graph.tasks.items():
        pair = pairs[name]
        if pair is None:
            continue
        key, partial = pair
        header = cache.lookup(key)
        if all(roles[u].hit for u in upstreams(spec)):
            if header is not None:
                roles[name] = CacheRole("hit", key, header, partial=partial)
                continue
            role = _by_content(cache, spec, key, partial, roles)
        elif cache.known(partial):  # early cutoff may find an entry once what it reads is known
            role = CacheRole("pending", key, partial=partial)
        else:
            role = CacheRole("miss", key, partial=partial)
            role.reason = "not in the cache" if header is None else "a task it reads from runs"
        if role.decision == "miss":
            role.start_miss(spec.streaming)
        roles[name] = role
    _settle(graph, roles, in_result)
    cache.touch({r.key: r.entry for r in roles.values() if r.entry is not None})
    return roles


def _same_content(
    cache: Cache, spec: TaskDef, partial: str, digests: dict[str, str | None]
) -> tuple[str | None, tuple[str, dict[str, Any]] | None]:
    """The fingerprint of what *spec* reads, given the *digests* of the tasks it reads from (None:
    not known), and the ``(key, header)`` of an entry of its *partial* key that read the same
    content (None: there is none)."""
    inp = input_digest(spec, digests)
    return inp, cache.by_content(partial, inp) if inp is not None else None


def _by_content(cache: Cache, spec: TaskDef, key: str, partial: str, roles: Mapping[str, CacheRole]) -> CacheRole:
    """A task whose inputs are all hits but whose key is not cached: a hit if an entry of its
    partial key read the same content (found by early cutoff in an earlier run), else a miss."""
    inp, found = _same_content(cache, spec, partial, {u: roles[u].digest for u in upstreams(spec)})
    if found is not None:
        role = CacheRole("pending", key, partial=partial)
        role.adopt(found)
        return role
    role = CacheRole("miss", key, reason="not in the cache", partial=partial)
    role.input = inp
    return role


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
