"""The product cache: work that did not change is not done again.

Every cacheable task of a run gets a **key**: a fingerprint of its definition (the source code
of its function, or the ``version=`` it declares), its option values (an :class:`~actorflow.File`
counts by content) and the keys of the tasks it reads from. A task whose key is in the cache,
and whose upstream tasks are all cache hits too, is a **hit**: its code does not run; its product
is loaded, and its stream is replayed in order (with the original sequence numbers) only when a
task that does run reads it. Every other cacheable task is a **miss**: it runs, and what it sends
downstream is recorded, then written when it finishes.

A task is not cacheable (no key) when it says ``cache=False``, when it is an external source, or
when a task it reads from is not cacheable. Entries of tasks that set items aside as dead letters
are not written. Sinks are cached too: a hit sink has already seen exactly these items.

Layout in the store's ``cache`` database (values are msgpack):

- ``h<key>``: the entry's header (task, flow, kind, items, chunks, bytes, created, used);
- ``c<key>:<n>``: the n-th batch of a stream, ``[seqs, items]`` (``seqs`` is the first sequence
  number when they are consecutive integers);
- ``p<key>``: a final product.

Entries are written in one transaction each. When the cache grows past its limit, the least
recently used entries that no running run needs are removed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import marshal
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, final

from ._codec import EncodeError, pack, unpack
from ._errors import ActorflowError, StoreError
from ._file import File, content_hash, files_in
from ._store import Store, open_store
from ._typing import type_name

if TYPE_CHECKING:
    from ._actors import Actor
    from ._bind import RunGraph
    from ._flow import TaskDef
    from ._run import Run

#: Bytes the cache may hold before least-recently-used entries are evicted.
DEFAULT_CACHE_LIMIT = 256 << 20

log = logging.getLogger("actorflow.cache")


#: The running total of entry bytes (a key outside the ``h``/``c``/``p`` prefixes).
_TOTAL = b"total"


def _h(key: str) -> bytes:
    return b"h" + key.encode()


def _p(key: str) -> bytes:
    return b"p" + key.encode()


def _c(key: str, n: int) -> bytes:
    return b"c%s:%08d" % (key.encode(), n)


def encode_chunk(seqs: list[Any], items: list[Any]) -> bytes:
    """One recorded batch as msgpack (consecutive integer seqs shrink to their first)."""
    s0 = seqs[0]
    if type(s0) is int and seqs[-1] - s0 == len(seqs) - 1 and seqs == list(range(s0, s0 + len(seqs))):
        return pack([s0, items])
    return pack([[list(s) if isinstance(s, tuple) else s for s in seqs], items])


def decode_chunk(raw: bytes) -> tuple[list[Any], list[Any]]:
    """A recorded batch back as (seqs, plain items)."""
    enc, items = unpack(raw)
    if type(enc) is int:
        return list(range(enc, enc + len(items))), items
    return [tuple(s) if isinstance(s, list) else s for s in enc], items


@final
class Cache:
    """The product cache kept in a :class:`~actorflow._store.Store`.

    Runs get one through ``af.run(..., store=DIR)`` (the cache lives beside the checkpoints) or
    ``cache=DIR``; one Cache may serve several runs at once (:func:`~actorflow.concat` does).

    Args:
        store: the opened store.
        limit: the most bytes of entries to keep; least recently used entries go first.
    """

    def __init__(self, store: Store, limit: int | None = None) -> None:
        limit = DEFAULT_CACHE_LIMIT if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ActorflowError(f"cache limit must be a positive number of bytes, got {limit!r}")
        self.store = store
        self.limit = limit
        #: Keys in use by running runs: never evicted.
        self._pins: Counter[str] = Counter()

    @property
    def _env(self) -> Any:
        return self.store.env

    # -- reading -------------------------------------------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The header of *key*'s entry, or None."""
        with self._env.begin(db=self.store._cache) as txn:
            raw = txn.get(_h(key))
        return unpack(raw) if raw is not None else None

    def chunks(
        self, key: str, start: int = 0, expect: int | None = None
    ) -> Iterator[tuple[list[Any], list[Any]]]:
        """The recorded batches of a stream entry from batch *start* on, one short read each.

        With *expect* (the header's batch count) a missing batch raises :class:`StoreError`
        instead of silently ending the stream early.
        """
        n = start
        while expect is None or n < expect:
            with self._env.begin(db=self.store._cache) as txn:
                raw = txn.get(_c(key, n))
                if raw is None:
                    if expect is None:
                        return
                    raise StoreError(
                        f"cache entry {key} in store {str(self.store.path)!r} is damaged (batch {n} of {expect} "
                        "is missing); clear it with `actorflow cache clear --store DIR` and run again"
                    )
                chunk = decode_chunk(raw)
            yield chunk
            n += 1

    def product(self, key: str) -> Any:
        """The stored final product of *key* (plain data)."""
        with self._env.begin(db=self.store._cache) as txn:
            raw = txn.get(_p(key))
        if raw is None:
            raise StoreError(f"cache entry {key} has no product (the store is damaged); clear the cache")
        return unpack(raw)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry's header (with its ``key``), most recently used first."""
        out = []
        with self._env.begin(db=self.store._cache) as txn:
            cur = txn.cursor()
            if cur.set_range(b"h"):
                for k, v in cur:
                    if not k.startswith(b"h"):
                        break
                    out.append({"key": bytes(k[1:]).decode(), **unpack(v)})
        out.sort(key=lambda e: -e["used"])
        return out

    # -- writing -------------------------------------------------------------------------------

    def save(self, key: str, header: dict[str, Any], chunks: list[bytes] = (), product: bytes | None = None) -> bool:  # type: ignore[assignment]
        """Write one entry in one transaction, then evict down to the limit. False if it does not fit."""
        size = sum(map(len, chunks)) + (len(product) if product is not None else 0)
        if size > self.limit:
            log.warning("cache: %s (%s bytes) is larger than the cache limit; not cached", header.get("task"), size)
            return False
        now = time.time()
        header = {**header, "chunks": len(chunks), "bytes": size, "created": now, "used": now}
        db = self.store._cache
        with self.store.transaction() as txn:
            total = self._total(txn) - self._drop(txn, key)  # an older entry under the key goes
            txn.put(_h(key), pack(header), db=db)
            for n, raw in enumerate(chunks):
                txn.put(_c(key, n), raw, db=db)
            if product is not None:
                txn.put(_p(key), product, db=db)
            total += size
            txn.put(_TOTAL, str(total).encode(), db=db)
        if total > self.limit:
            self._evict()
        return True

    def touch(self, headers: Mapping[str, dict[str, Any]]) -> None:
        """Mark entries as just used (for least-recently-used eviction), given their headers by key."""
        if not headers:
            return
        now = time.time()
        db = self.store._cache
        with self.store.transaction() as txn:
            for key, header in headers.items():
                txn.put(_h(key), pack({**header, "used": now}), db=db)

    def pin(self, keys: list[str]) -> None:
        """Keep *keys* from eviction until :meth:`unpin` (a run that uses them is running)."""
        self._pins.update(keys)

    def unpin(self, keys: list[str]) -> None:
        """Release keys pinned with :meth:`pin`."""
        self._pins.subtract(keys)
        self._pins = +self._pins

    def clear(self, task: str | None = None) -> int:
        """Remove every entry (or those of *task*); returns how many were removed."""
        gone = [e["key"] for e in self.entries() if task is None or e["task"] == task]
        self._remove(gone)
        return len(gone)

    def total_bytes(self) -> int:
        """Bytes held by all entries (kept as a running total, so this is one read)."""
        with self._env.begin(db=self.store._cache) as txn:
            return self._total(txn)

    def _total(self, txn: Any) -> int:
        raw = txn.get(_TOTAL, db=self.store._cache)
        if raw is not None:
            return int(raw)
        total = 0  # no running total yet: count once
        cur = txn.cursor(db=self.store._cache)
        if cur.set_range(b"h"):
            for k, v in cur:
                if not k.startswith(b"h"):
                    break
                total += unpack(v)["bytes"]
        return total

    def _drop(self, txn: Any, key: str) -> int:
        """Delete *key*'s entry inside *txn*; returns the bytes it held (0 when there was none)."""
        db = self.store._cache
        raw = txn.get(_h(key), db=db)
        if raw is None:
            return 0
        header = unpack(raw)
        txn.delete(_h(key), db=db)
        txn.delete(_p(key), db=db)
        for n in range(header["chunks"]):
            txn.delete(_c(key, n), db=db)
        return int(header["bytes"])

    def _evict(self) -> None:
        """Remove least recently used entries, never pinned ones, until the cache fits its limit."""
        entries = self.entries()
        total = self.total_bytes()
        gone = []
        for e in reversed(entries):  # least recently used first
            if total <= self.limit:
                break
            if e["key"] in self._pins:
                continue
            gone.append(e["key"])
            total -= e["bytes"]
        if gone:
            log.info("cache: evicting %d entries to stay under %d bytes", len(gone), self.limit)
            self._remove(gone)

    def _remove(self, keys: list[str]) -> None:
        if not keys:
            return
        with self.store.transaction() as txn:
            total = self._total(txn)
            for key in keys:
                total -= self._drop(txn, key)
            txn.put(_TOTAL, str(max(total, 0)).encode(), db=self.store._cache)

    # -- files ---------------------------------------------------------------------------------

    def file_token(self, file: File) -> str:
        """A file's content hash, re-computed only when its size or modification time changed."""
        path = os.path.abspath(file.path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ActorflowError(f"file {str(file.path)!r} cannot be read: {exc.strerror}") from exc
        stamp = [st.st_size, st.st_mtime_ns]
        key = path.encode()
        with self._env.begin(db=self.store._files) as txn:
            raw = txn.get(key)
        if raw is not None:
            known = unpack(raw)
            if known[:2] == stamp:
                return str(known[2])
        digest = content_hash(path)
        self.store._write({(self.store._files, key): pack([*stamp, digest])})
        return digest


def open_cache(cache: Any, store: Store | None, limit: int | None) -> tuple[Cache | None, Store | None]:
    """The cache that ``cache=`` asks for, and a store opened just for it (to close afterwards).

    *cache* is None (the cache of *store*, if any), True (that cache, which must exist), False (no
    cache), a :class:`Cache`, a :class:`~actorflow._store.Store` or a store directory.
    """
    if cache is False:
        return None, None
    if isinstance(cache, Cache):
        return cache, None
    if cache is None or cache is True:
        if store is None:
            if cache is True:
                raise ActorflowError("cache=True needs a store to keep the cache in: pass store=DIR or cache=DIR")
            return None, None
        return Cache(store, limit), None
    if isinstance(cache, Store):
        return Cache(cache, limit), None
    if not isinstance(cache, str | os.PathLike):
        raise ActorflowError(f"cache must be True, False, a directory or a Store, got {type(cache).__name__}")
    if store is not None and os.path.realpath(cache) == os.path.realpath(store.path):
        return Cache(store, limit), None
    opened = open_store(cache)
    try:
        return Cache(opened, limit), opened
    except BaseException:
        opened.close()
        raise


# -- keys ------------------------------------------------------------------------------------------


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return hashlib.sha256(marshal.dumps(code)).hexdigest()
        return repr(obj)


_PLAIN = (int, float, str, bytes, bool, type(None))


def _constants(fn: Any) -> str:
    """The plain module-level constants a function reads (``WEIGHT = 10``), as text."""
    code, glob = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if code is None or glob is None:
        return ""
    names: set[str] = set()
    todo = [code]
    while todo:
        c = todo.pop()
        names.update(c.co_names)
        todo.extend(k for k in c.co_consts if inspect.iscode(k))
    found = []
    for name in sorted(names):
        value = glob.get(name)
        if isinstance(value, _PLAIN) or (
            isinstance(value, tuple | frozenset) and all(isinstance(v, _PLAIN) for v in value)
        ):
            found.append(f"{name}={value!r}")
    return ";".join(found)


def definition_token(spec: TaskDef) -> str:
    """What identifies a task's code: its ``version=``, or the source of its function(s) and the
    plain module constants they read."""
    if spec.version is not None:
        return "version:" + spec.version
    cls = getattr(spec.fn, "__actorflow_class__", None)
    if cls is not None:
        classes = [c for c in cls.__mro__ if c.__module__ not in ("builtins", "actorflow._taskclass")]
        parts = [_source(c) for c in classes]
        parts += [_constants(f) for c in classes for f in vars(c).values() if inspect.isfunction(f)]
    else:
        fn = inspect.unwrap(spec.fn)
        parts = [_source(fn), _constants(fn)]
    if spec.finish is not None:
        parts += [_source(spec.finish), _constants(spec.finish)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _token(value: Any, cache: Cache) -> Any:
    """An option value as plain data for the key; files by content."""
    from ._bind import _plain

    if isinstance(value, File):
        return {"file": cache.file_token(value)}
    if isinstance(value, list | tuple):
        return [_token(v, cache) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_token(v, cache) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): _token(v, cache) for k, v in value.items()}
    if files_in(value):  # an attrs class holding files
        import attrs

        return {a.name: _token(getattr(value, a.name), cache) for a in attrs.fields(type(value))}
    return _plain(value)


def _upstreams(spec: TaskDef) -> list[str]:
    ups = [i.upstream for i in spec.inputs]
    if spec.per is not None:
        ups.append(spec.per)
    return ups


def compute_keys(graph: RunGraph, cache: Cache) -> dict[str, str | None]:
    """Every task's cache key (None: not cacheable), in the graph's topological order."""
    from ._bind import _plain
    from ._gateway import EXTERNAL_ATTR

    keys: dict[str, str | None] = {}
    for name, spec in graph.tasks.items():
        ups = _upstreams(spec)
        if not spec.cache or hasattr(spec.fn, EXTERNAL_ATTR) or any(keys.get(u) is None for u in ups):
            keys[name] = None
            continue
        doc = {
            "task": name,
            "kind": spec.kind,
            "def": definition_token(spec),
            "init": _plain(spec.init) if spec.kind == "collector" else None,
            "options": {k: _token(v, cache) for k, v in graph.options[name].items()},
            "inputs": [[i.name, keys[i.upstream], i.streaming, i.gather] for i in spec.inputs],
            "per": keys[spec.per] if spec.per is not None else None,
            "out": type_name(spec.out_type),
            "depth": spec.depth,
        }
        text = json.dumps(doc, sort_keys=True, default=repr)
        keys[name] = hashlib.sha256(text.encode()).hexdigest()[:32]
    return keys


# -- runs --------------------------------------------------------------------------------------------


def plan(run: Run, cache: Cache) -> None:
    """Decide, before a fresh run starts, which tasks are hits and which run and get recorded."""
    keys = compute_keys(run.graph, cache)
    actors = run.actors
    for name, spec in run.graph.tasks.items():
        key = keys[name]
        if key is None:
            continue
        actor = actors[name]
        actor.cache_key = key
        header = cache.lookup(key)
        if header is not None and all(actors[u].cache == "hit" for u in _upstreams(spec)):
            actor.cache, actor.cache_entry = "hit", header
        else:
            actor.cache = "miss"
            actor.cache_reason = "not in the cache" if header is None else "a task it reads from runs"
            if spec.streaming:
                actor.recording = []
    settle(run)
    route(run)
    cache.touch({a.cache_key: a.cache_entry for a in actors.values() if a.cache_key and a.cache_entry})


def settle(run: Run) -> None:
    """For every hit: must its stream be replayed (a consumer runs), must its items be loaded?"""
    for name, actor in run.actors.items():
        if actor.cache != "hit":
            continue
        replay = need_items = False
        for other in run.actors.values():
            if other.cache == "hit":
                continue
            for inp in other.spec.inputs:
                if inp.upstream == name:
                    if inp.streaming:
                        replay = True
                    else:
                        need_items = True
            if other.spec.per == name:
                replay = True
        actor.cache_replay = replay
        actor.cache_items = need_items or actor.in_result


def route(run: Run) -> None:
    """A hit sends only to the mailboxes of tasks that run: a hit consumer never reads its inbox."""
    consumer = {id(box): actor for box, actor, _ in run.mailboxes.values()}
    for actor in run.actors.values():
        if actor.cache == "hit":
            actor.outs = [box for box in actor.outs if consumer[id(box)].cache != "hit"]


def pin_run(run: Run) -> list[str]:
    keys = [a.cache_key for a in run.actors.values() if a.cache is not None and a.cache_key is not None]
    if run.cache is not None:
        run.cache.pin(keys)
    return keys


def record(actor: Actor, seqs: list[Any], items: list[Any]) -> None:
    """Keep one sent batch for the actor's cache entry (a value msgpack cannot hold stops recording)."""
    try:
        raw = encode_chunk(seqs, items)
    except (EncodeError, TypeError, ValueError, OverflowError) as exc:
        actor.recording = None
        log.warning("cache: task %s not cached: %s", actor.name, exc)
        return
    actor.recording.append(raw)  # type: ignore[union-attr]
    actor.recorded += len(items)
    actor.recorded_bytes += len(raw)
    cache = actor.run.cache
    if cache is not None and actor.recorded_bytes > cache.limit:
        actor.recording = None  # it could never be stored: stop holding it in memory
        log.warning("cache: task %s not cached: its stream is larger than the cache limit", actor.name)


def save(actor: Actor) -> None:
    """Write a finished miss's entry. Failures to write never fail the run (they are logged)."""
    run = actor.run
    cache = run.cache
    spec = actor.spec
    if cache is None or actor.cache != "miss" or actor.cache_key is None or actor.restored_finished:
        return
    if any(d["task"] == actor.name for d in run.supervisor.dead_letters):
        return  # an incomplete product must not hide the items it set aside
    header = {"task": actor.name, "flow": run.flow_name, "kind": spec.kind}
    try:
        if spec.kind == "sink":
            cache.save(actor.cache_key, {**header, "form": "sink", "items": actor.items_in})
        elif spec.streaming:
            if actor.recording is None:
                return
            cache.save(actor.cache_key, {**header, "form": "stream", "items": actor.recorded}, actor.recording)
            actor.recording = None
        else:
            cache.save(actor.cache_key, {**header, "form": "product", "items": 1}, product=pack(actor.product.value))
    except (EncodeError, StoreError, TypeError, ValueError, OverflowError) as exc:
        log.warning("cache: task %s not cached: %s", actor.name, exc)


def restore_state(run: Run, name: str, state: Mapping[str, Any]) -> None:
    """Put a checkpointed cache decision back on a resumed actor (see ``_checkpoint``)."""
    decision, key, replayed, replay, items = state["cache"]
    actor = run.actors[name]
    actor.cache, actor.cache_key = decision, key
    if decision == "hit":
        header = run.cache.lookup(key) if run.cache is not None else None
        if header is None:
            from ._errors import ResumeError

            raise ResumeError(
                f"task {name!r} was replaying cache entry {key}, which is no longer in the store; "
                "start the run afresh"
            )
        actor.cache_entry = header
        actor.replayed, actor.cache_replay, actor.cache_items = replayed, replay, items
    elif (
        actor.spec.streaming
        and state["items_out"] == 0
        and not state["outboxes"]
        and "inflight" not in state
        and not state.get("cursor")
    ):
        actor.recording = []  # nothing was sent yet: the whole stream can still be recorded
