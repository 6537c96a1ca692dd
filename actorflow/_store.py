"""The run store: one LMDB environment holding run metadata, checkpoints and dead letters.

Layout (named databases):

- ``meta``: ``kind`` (always ``b"actorflow-store"``), ``schema`` (an int), ``fingerprint`` of the
  run graph, ``run`` (msgpack: flow name, pipeline file, options) and ``created``.
- ``checkpoint``: ``latest`` (msgpack document, see :mod:`actorflow._checkpoint`).
- ``dead_letters``: one record per ``(task, seq)``; written with each checkpoint.
- ``cache`` and ``cache_files``: the product cache and the file fingerprints behind it (see
  :mod:`actorflow._cache`). They outlive runs: starting a new run in the store keeps them.

Every write is one transaction, so a failed write (full disk, map full, crash) leaves the last
good checkpoint intact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, final

import lmdb

from ._codec import pack, unpack
from ._errors import StoreError

SCHEMA_VERSION = 1
KIND = b"actorflow-store"
DEFAULT_MAP_SIZE = 1 << 30  # 1 GiB of address space; LMDB files grow only as data is written


@final
class Store:
    """An opened run store. Use :func:`open_store`.

    Args:
        path: the store's directory.
        create: create the store when missing (otherwise refuse).
        map_size: the most bytes the store may hold.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a file, not an actorflow store directory")
        if not self.path.exists():
            if not create:
                raise StoreError(f"store {str(self.path)!r} does not exist; nothing to resume")
            self.path.mkdir(parents=True)
        data = self.path / "data.mdb"
        if not data.exists() and not create:
            raise StoreError(f"store {str(self.path)!r} is not an actorflow store (no data.mdb)")
        if data.exists() and data.stat().st_size < 8192 and data.stat().st_size > 0:
            size = data.stat().st_size
            raise StoreError(f"store {str(self.path)!r} is truncated or corrupt ({size} bytes in data.mdb)")
        try:
            self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=8, subdir=True, lock=True)
        except lmdb.Error as exc:
            raise StoreError(f"store {str(self.path)!r} cannot be opened as an LMDB store: {exc}") from exc
        self._check_size(data)
        try:
            self._meta = self.env.open_db(b"meta")
            self._ckpt = self.env.open_db(b"checkpoint")
            self._dead = self.env.open_db(b"dead_letters")
            self._cache = self.env.open_db(b"cache")
            self._files = self.env.open_db(b"cache_files")
        except lmdb.Error as exc:
            self.close()
            raise StoreError(f"store {str(self.path)!r} cannot be opened as an LMDB store: {exc}") from exc
        with self.env.begin(db=self._meta) as txn:
            kind = txn.get(b"kind")
            schema = txn.get(b"schema")
        if kind is None:
            if not create or self._has_foreign_data():
                self.close()
                raise StoreError(f"{str(self.path)!r} is an LMDB environment but not an actorflow store")
            self._write({(self._meta, b"kind"): KIND, (self._meta, b"schema"): str(SCHEMA_VERSION).encode(),
                         (self._meta, b"created"): str(time.time()).encode()})
        elif kind != KIND:
            self.close()
            raise StoreError(f"{str(self.path)!r} is not an actorflow store (kind {kind!r})")
        elif schema is None or int(schema) != SCHEMA_VERSION:
            self.close()
            raise StoreError(
                f"store {str(self.path)!r} was written with schema version {schema.decode() if schema else '?'}; "
                f"this actorflow reads version {SCHEMA_VERSION}. Finish or delete it with the version that wrote it."
            )

    def _check_size(self, data: Path) -> None:
        """Refuse a data file shorter than its own header says: reading a missing page would SIGBUS.

        LMDB maps the file; a page past its end is not an error but a bus error that kills the
        process. The header (read without touching other pages) records the last page in use.
        """
        info, stat = self.env.info(), self.env.stat()
        expected = (info["last_pgno"] + 1) * stat["psize"]
        size = data.stat().st_size  # after reading the header: a concurrent writer only grows it
        if size < expected:
            self.close()
            raise StoreError(
                f"store {str(self.path)!r} is truncated or corrupt ({size} bytes in data.mdb, {expected} expected)"
            )

    def _has_foreign_data(self) -> bool:
        with self.env.begin() as txn:
            names = [k for k, _ in txn.cursor()]
        return any(n not in (b"meta", b"checkpoint", b"dead_letters", b"cache", b"cache_files") for n in names)

    def close(self) -> None:
        """Close the LMDB environment."""
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
            self.env = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, puts: dict[tuple[Any, bytes], bytes], deletes: list[tuple[Any, bytes]] = ()) -> None:  # type: ignore[assignment]
        with self.transaction() as txn:
            for (db, key), value in puts.items():
                txn.put(key, value, db=db)
            for db, key in deletes:
                txn.delete(key, db=db)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One LMDB write transaction: all of it is written, or (on any error) none of it.

        LMDB errors become :class:`StoreError` with a clear message.
        """
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError as exc:
            raise StoreError(
                f"store {str(self.path)!r} is full (map size {self.env.info()['map_size']:,} bytes); "
                "the last good checkpoint is intact. Use a larger map_size or a new store."
            ) from exc
        except lmdb.Error as exc:
            raise StoreError(
                f"store {str(self.path)!r}: write failed ({exc}); the last good checkpoint is intact"
            ) from exc

    # -- the cache's databases (see _cache): bytes in, bytes out ----------------------------------

    def db(self, name: str) -> Any:
        """The handle of a database the cache keeps here (``"cache"`` or ``"cache_files"``)."""
        if name == "cache":
            return self._cache
        if name == "cache_files":
            return self._files
        raise KeyError(f"store {str(self.path)!r} has no database {name!r} for the cache")

    def get(self, db: str, key: bytes) -> bytes | None:
        """The value under *key* in database *db*, or None (one short read transaction)."""
        with self.env.begin(db=self.db(db)) as txn:
            raw = txn.get(key)
        return bytes(raw) if raw is not None else None

    def scan(self, db: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of database *db* whose key starts with *prefix*, in key order."""
        out: list[tuple[bytes, bytes]] = []
        with self.env.begin(db=self.db(db)) as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                for k, v in cur:
                    if not bytes(k).startswith(prefix):
                        break
                    out.append((bytes(k), bytes(v)))
        return out

    def put(self, db: str, key: bytes, value: bytes) -> None:
        """Write one value in its own transaction."""
        self._write({(self.db(db), key): value})

    # -- run metadata --------------------------------------------------------------------------

    def run_info(self) -> dict[str, Any] | None:
        """What the store says about its run: fingerprint, flow, file, options; None if none."""
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(b"run")
            fp = txn.get(b"fingerprint")
        if raw is None:
            return None
        info: dict[str, Any] = unpack(raw)
        info["fingerprint"] = fp.decode() if fp else None
        return info

    def set_run_info(self, fingerprint: str, info: dict[str, Any]) -> None:
        """Record the run graph fingerprint and what is needed to rebuild it; clears old state."""
        run = pack(info)  # before the transaction: a value msgpack cannot hold changes nothing
        with self.transaction() as txn:
            txn.put(b"fingerprint", fingerprint.encode(), db=self._meta)
            txn.put(b"run", run, db=self._meta)
            txn.drop(self._ckpt, delete=False)
            txn.drop(self._dead, delete=False)

    # -- checkpoints ---------------------------------------------------------------------------

    def write_checkpoint(self, blob: bytes, dead_letters: list[dict[str, Any]]) -> None:
        """Write one checkpoint and the dead letters it covers, in one transaction."""
        self.write_encoded(blob, self.encode_dead_letters(dead_letters))

    @staticmethod
    def encode_dead_letters(dead_letters: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
        """Dead letters as the ``(key, value)`` pairs :meth:`write_encoded` writes."""
        return [(pack([d["task"], d["seq"]]), pack(d)) for d in dead_letters]

    def write_encoded(self, blob: bytes, dead_letters: list[tuple[bytes, bytes]]) -> None:
        """Write an encoded checkpoint and encoded dead letters in one transaction: a few large puts,
        nothing to encode (a writer thread then needs the GIL only a few times)."""
        puts: dict[tuple[Any, bytes], bytes] = {(self._ckpt, b"latest"): blob}
        for key, value in dead_letters:
            puts[(self._dead, key)] = value
        self._write(puts)

    def write_dead_letters(self, dead_letters: list[dict[str, Any]]) -> None:
        """Write dead letters on their own (when a run ends without a final checkpoint)."""
        self._write({(self._dead, pack([d["task"], d["seq"]])): pack(d) for d in dead_letters})

    def read_checkpoint(self) -> bytes | None:
        """The latest checkpoint's bytes, or None."""
        with self.env.begin(db=self._ckpt) as txn:
            raw = txn.get(b"latest")
        return bytes(raw) if raw is not None else None

    def dead_letters(self) -> Iterator[dict[str, Any]]:
        """Every dead letter: dicts with task, seq, item, error, time."""
        with self.env.begin(db=self._dead) as txn:
            for _, value in txn.cursor():
                yield unpack(value)


def open_store(path: str | os.PathLike[str], *, create: bool = True, map_size: int = DEFAULT_MAP_SIZE) -> Store:
    """Open (or create) the store at *path*; raises :class:`StoreError` with a clear message."""
    return Store(path, create=create, map_size=map_size)
