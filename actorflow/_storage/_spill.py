"""Where mailboxes put what must wait: a temporary LMDB environment, made on first use.

A task that streams one input while it waits for another input's whole product (``share(xs: int,
total: int)``) cannot read its stream yet, and its senders must not wait for it: they may be needed
to finish that very product. Its mailbox then **spills**: beyond its capacity, batches are encoded
with msgpack and written here, then read back in order once the task reads. Memory stays flat
however long the stream; the spilled batches are part of every checkpoint like any queued batch.

A stream nothing reads is kept for the run's result the same way (:class:`SpilledStream`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, final, overload

import lmdb

from .._base import StoreError
from ._codec import EncodeError, pack, plain_seqs, restore_items, seq_from_plain, storable_problem, unpack


class SpillStore:
    """A temporary LMDB environment holding spilled batches by key; removed by :meth:`close`."""

    def __init__(self, map_size: int = 1 << 36) -> None:
        self._map_size = map_size
        self._env: Any = None
        self._dir: str | None = None
        self._next = 0

    def _open(self) -> Any:
        if self._env is None:
            self._dir = tempfile.mkdtemp(prefix="actorflow-spill-")
            try:
                # No fsync: nothing here outlives the process (checkpoints hold what must survive).
                self._env = lmdb.open(self._dir, map_size=self._map_size, sync=False, metasync=False, lock=False)
            except lmdb.Error as exc:
                raise StoreError(f"cannot open a spill area in {self._dir!r}: {exc}") from exc
        return self._env

    def put(self, seqs: Any, items: list[Any]) -> int:
        """Write one batch; returns its key."""
        key = self._next
        self._next += 1
        try:
            with self._open().begin(write=True) as txn:
                txn.put(key.to_bytes(8, "big"), pack([plain_seqs(seqs), items]))
        except lmdb.Error as exc:
            raise StoreError(f"cannot spill a batch to {self._dir!r}: {exc}") from exc
        return key

    def get(self, key: int, delete: bool = True) -> tuple[list[Any], list[Any]]:
        """Read the batch under *key* (plain items; sequence numbers as the runtime uses them)."""
        seqs, items = self.plain(key, delete)
        return [seq_from_plain(s) for s in seqs], items

    def plain(self, key: int, delete: bool = False) -> list[Any]:
        """The batch under *key* as it was stored: ``[seqs, items]``, plain data (what a checkpoint holds)."""
        raw_key = key.to_bytes(8, "big")
        with self._open().begin(write=delete) as txn:
            raw = txn.get(raw_key)
            if raw is None:
                raise StoreError(f"spilled batch {key} is missing from {self._dir!r}")
            batch: list[Any] = unpack(bytes(raw))
            if delete:
                txn.delete(raw_key)
        return batch

    def discard(self) -> None:
        """Remove the spill area's files at once, without closing it (the process is about to exit)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def close(self) -> None:
        """Close and remove the spill area (if one was made)."""
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


#: Items of an unread stream a :class:`SpilledStream` keeps in memory before it spills them.
RESULT_BOUND = 1 << 16

#: Item types whose msgpack round trip gives back an equal value of the same type whatever the
#: stream declares (what an ``Any`` stream's items must be for their batch to spill).
_ROUND_TRIP = frozenset({int, float, str, bytes, bool, type(None)})


@final
class SpilledStream(Sequence[Any]):
    """The items of a stream nothing reads, kept for the run's result in flat memory.

    It is what ``result["name"]`` gives for such a stream: a read-only sequence of every item in
    order (``len``, iteration, indexing, slicing, ``==`` with a list; ``list(...)`` for a real list).
    Past :data:`RESULT_BOUND` items it writes them, a bound's worth at a time, to a temporary LMDB
    area of its own (msgpack, as a spilling mailbox does) and reads them back as it is iterated,
    structured back into the stream's declared type. Items whose round trip msgpack cannot promise
    (an ``Any`` stream of custom objects, values that cannot be encoded) stay in memory.
    """

    def __init__(self, annotation: Any = Any, bound: int = RESULT_BOUND) -> None:
        self._annotation = annotation
        self._bound = bound
        self._faithful = annotation is not Any and storable_problem(annotation) is None
        self._spill: SpillStore | None = None
        #: Spilled (key, count) and in-memory (None, items) parts, in order; then the open tail.
        self._parts: list[tuple[int | None, int | list[Any]]] = []
        self._tail: list[Any] = []
        self._len = 0

    def extend(self, items: Iterable[Any]) -> None:
        """Add items at the end (spilling a full bound's worth)."""
        before = len(self._tail)
        self._tail.extend(items)
        self._len += len(self._tail) - before
        while len(self._tail) >= self._bound:
            chunk, self._tail = self._tail[: self._bound], self._tail[self._bound:]
            self._parts.append(self._store(chunk))

    def _store(self, chunk: list[Any]) -> tuple[int | None, int | list[Any]]:
        if not (self._faithful or set(map(type, chunk)) <= _ROUND_TRIP):
            return None, chunk
        if self._spill is None:
            self._spill = SpillStore(map_size=1 << 40)
            self._finalizer = weakref.finalize(self, self._spill.close)
        try:
            return self._spill.put([], chunk), len(chunk)
        except EncodeError:
            return None, chunk

    def _chunks(self) -> Iterator[list[Any]]:
        for key, part in self._parts:
            if key is None:
                assert isinstance(part, list)
                yield part
            else:
                assert self._spill is not None
                yield restore_items(self._spill.plain(key)[1], self._annotation)
        yield self._tail

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks():
            yield from chunk

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("SpilledStream index out of range")
        for chunk in self._chunks():
            if index < len(chunk):
                return chunk[index]
            index -= len(chunk)
        raise IndexError("SpilledStream index out of range")  # pragma: no cover -- counted above

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(other) == self._len and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # a mutable sequence, like a list

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x, _ in zip(self, range(5), strict=False))
        return f"SpilledStream([{head}{', ...' if self._len > 5 else ''}], len={self._len})"

    def close(self) -> None:
        """Remove the spill area now (it goes anyway when the sequence is garbage-collected)."""
        if self._spill is not None:
            self._finalizer()
