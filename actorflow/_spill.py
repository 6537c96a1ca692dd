"""Where mailboxes put what must wait: a temporary LMDB environment, made on first use.

A task that streams one input while it waits for another input's whole product (``share(xs: int,
total: int)``) cannot read its stream yet, and its senders must not wait for it: they may be needed
to finish that very product. Its mailbox then **spills**: beyond its capacity, batches are encoded
with msgpack and written here, then read back in order once the task reads. Memory stays flat
however long the stream; the spilled batches are part of every checkpoint like any queued batch.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import lmdb

from ._codec import pack, plain_seqs, seq_from_plain, unpack
from ._errors import StoreError


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
