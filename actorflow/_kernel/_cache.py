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
- ``p<key>``: a final product;
- ``r<partial>:<input>``: the key of the entry written for a task's definition and options (its
  *partial* key) when it read content fingerprinted *input*: where early cutoff looks (see
  :mod:`actorflow._kernel._cache_run`).

Headers of tasks that send also hold ``digest``, the fingerprint of what the task sent (items and
their sequence numbers, or its product: :class:`Fingerprint`), and ``input``, the fingerprint of
what it read (the digests of the tasks it reads from).

Entries are written in one transaction each. When the cache grows past its limit, the least
recently used entries that no running run needs are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, final

from .._base import ActorflowError, File, StoreError, content_hash
from .._storage import Store, open_store, pack, unpack

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


def _r(partial: str, inp: str = "") -> bytes:
    return b"r%s:%s" % (partial.encode(), inp.encode())


def run_start(seqs: list[Any]) -> int | None:
    """The first of *seqs* when they are consecutive integers (the common case), else None."""
    s0 = seqs[0]
    if isinstance(seqs, range) or (
        type(s0) is int and seqs[-1] - s0 == len(seqs) - 1 and seqs == list(range(s0, s0 + len(seqs)))
    ):
        return int(s0)
    return None


def encode_chunk(seqs: list[Any], items: list[Any], packed: bytes | None = None, start: int | None = -1) -> bytes:
    """One recorded batch as msgpack (consecutive integer seqs shrink to their first).

    *packed* is ``pack(items)`` and *start* is ``run_start(seqs)`` when the caller already has them.
    """
    if packed is None:
        packed = pack(items)
    if start == -1:
        start = run_start(seqs)
    if start is not None:
        return b"\x92" + pack(start) + packed  # a two-element msgpack array: [start, items]
    return b"\x92" + pack([list(s) if isinstance(s, tuple) else s for s in seqs]) + packed


def _elements(packed: bytes) -> memoryview:
    """A msgpack array without its header: its elements' encodings, one after the other."""
    first = packed[0]
    skip = 1 if first < 0xDC else 3 if first == 0xDC else 5  # fixarray, array 16, array 32
    return memoryview(packed)[skip:]


#: Marks a run of consecutive integer sequence numbers in a fingerprint (a byte msgpack never uses).
_RUN = b"\xc1"


@final
class Fingerprint:
    """The content fingerprint of a stream, fed batch by batch as it is sent.

    It hashes the msgpack encoding of every item and, apart, the sequence numbers (runs of
    consecutive integers by their bounds, others by their encoding), so the digest depends on the
    items, their order and their numbers, never on how they were cut into batches. (Hash states
    cannot be checkpointed: a resumed task that had already sent items has no fingerprint.)
    """

    __slots__ = ("_items", "_next", "_seqs", "_start", "count")

    def __init__(self) -> None:
        self._items = hashlib.sha256()
        self._seqs = hashlib.sha256()
        self.count = 0
        #: The open run of consecutive integer seqs: its first and one past its last (None: no run).
        self._start: int | None = None
        self._next: int | None = None

    def add(self, seqs: list[Any], packed_items: bytes, start: int | None = -1) -> None:
        """One sent batch: its sequence numbers, ``pack(items)`` and (if known) ``run_start(seqs)``."""
        self._items.update(_elements(packed_items))
        self.count += len(seqs)
        if start == -1:
            start = run_start(seqs)
        if start is not None:
            if start != self._next:
                self._close()
                self._start = start
            self._next = start + len(seqs)
        elif int not in set(map(type, seqs)):
            self._close()
            self._seqs.update(_elements(pack(seqs if type(seqs) is list else list(seqs))))
        else:
            self._mixed(seqs)

    def _mixed(self, seqs: list[Any]) -> None:
        for s in seqs:
            if type(s) is int:
                if s != self._next:
                    self._close()
                    self._start = s
                self._next = s + 1
            else:
                self._close()
                self._seqs.update(pack(s))

    def _close(self) -> None:
        if self._start is not None:
            self._seqs.update(_RUN + pack(self._start) + pack(self._next))
            self._start = self._next = None

    def digest(self) -> str:
        """The fingerprint of everything added so far."""
        self._close()
        return hashlib.sha256(b"%d:%s%s" % (self.count, self._items.digest(), self._seqs.digest())).hexdigest()[:32]


def product_digest(packed: bytes) -> str:
    """The fingerprint of a final product, given ``pack(product)``."""
    return "p" + hashlib.sha256(packed).hexdigest()[:31]


def decode_chunk(raw: bytes) -> tuple[list[Any], list[Any]]:
    """A recorded batch back as (seqs, plain items)."""
    enc, items = unpack(raw)
    if type(enc) is int:
        return list(range(enc, enc + len(items))), items
    return [tuple(s) if isinstance(s, list) else s for s in enc], items


@final
class Cache:
    """The product cache kept in a :class:`~actorflow._storage._store.Store`.

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

    # -- reading -------------------------------------------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The header of *key*'s entry, or None."""
        raw = self.store.get("cache", _h(key))
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
            raw = self.store.get("cache", _c(key, n))
            if raw is None:
                if expect is None:
                    return
                raise StoreError(
                    f"cache entry {key} in store {str(self.store.path)!r} is damaged (batch {n} of {expect} "
                    "is missing); clear it with `actorflow cache clear --store DIR` and run again"
                )
            yield decode_chunk(raw)
            n += 1

    def product(self, key: str) -> Any:
        """The stored final product of *key* (plain data)."""
        raw = self.store.get("cache", _p(key))
        if raw is None:
            raise StoreError(f"cache entry {key} has no product (the store is damaged); clear the cache")
        return unpack(raw)

    def known(self, partial: str) -> bool:
        """Whether an entry was written for the partial key *partial* (whatever it read)."""
        return bool(self.store.scan("cache", _r(partial)))

    def by_content(self, partial: str, inp: str) -> tuple[str, dict[str, Any]] | None:
        """The key and header of the entry written for *partial* when it read *inp*, or None."""
        raw = self.store.get("cache", _r(partial, inp))
        if raw is None:
            return None
        key = raw.decode()
        header = self.lookup(key)
        return (key, header) if header is not None else None

    def entries(self) -> list[dict[str, Any]]:
        """Every entry's header (with its ``key``), most recently used first."""
        out = [{"key": k[1:].decode(), **unpack(v)} for k, v in self.store.scan("cache", b"h")]
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
        db = self.store.db("cache")
        with self.store.transaction() as txn:
            total = self._total(txn) - self._drop(txn, key)  # an older entry under the key goes
            txn.put(_h(key), pack(header), db=db)
            for n, raw in enumerate(chunks):
                txn.put(_c(key, n), raw, db=db)
            if product is not None:
                txn.put(_p(key), product, db=db)
            if header.get("partial") and header.get("input"):  # findable by what it read
                txn.put(_r(header["partial"], header["input"]), key.encode(), db=db)
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
        db = self.store.db("cache")
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
        raw = self.store.get("cache", _TOTAL)
        if raw is not None:
            return int(raw)
        return sum(unpack(v)["bytes"] for _, v in self.store.scan("cache", b"h"))

    def _total(self, txn: Any) -> int:
        raw = txn.get(_TOTAL, db=self.store.db("cache"))
        if raw is not None:
            return int(raw)
        total = 0  # no running total yet: count once
        cur = txn.cursor(db=self.store.db("cache"))
        if cur.set_range(b"h"):
            for k, v in cur:
                if not k.startswith(b"h"):
                    break
                total += unpack(v)["bytes"]
        return total

    def _drop(self, txn: Any, key: str) -> int:
        """Delete *key*'s entry inside *txn*; returns the bytes it held (0 when there was none)."""
        db = self.store.db("cache")
        raw = txn.get(_h(key), db=db)
        if raw is None:
            return 0
        header = unpack(raw)
        partial, inp = header.get("partial"), header.get("input")
        if partial and inp and txn.get(_r(partial, inp), db=db) == key.encode():
            txn.delete(_r(partial, inp), db=db)
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
            txn.put(_TOTAL, str(max(total, 0)).encode(), db=self.store.db("cache"))

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
        raw = self.store.get("cache_files", key)
        if raw is not None:
            known = unpack(raw)
            if known[:2] == stamp:
                return str(known[2])
        digest = content_hash(path)
        self.store.put("cache_files", key, pack([*stamp, digest]))
        return digest


def open_cache(cache: Any, store: Store | None, limit: int | None) -> tuple[Cache | None, Store | None]:
    """The cache that ``cache=`` asks for, and a store opened just for it (to close afterwards).

    *cache* is None (the cache of *store*, if any), True (that cache, which must exist), False (no
    cache), a :class:`Cache`, a :class:`~actorflow._storage._store.Store` or a store directory.
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
