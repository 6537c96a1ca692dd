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

A run owns its store: :meth:`Store.acquire` takes an exclusive ``fcntl.flock`` on ``owner.lock``
in the store directory (holding the owner's process id) before any task runs, so a second run or
resume on the same store fails at once. The kernel drops the lock when its process dies; a lock
file left by a dead process is taken over with a warning. Read-only openings
(``readonly=True``) take no lock and write nothing, so they work on a read-only file system.
"""

from __future__ import annotations

import fcntl
import logging
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
LOCK_FILE = "owner.lock"

log = logging.getLogger("actorflow.store")


def _alive(pid: int) -> bool:
    """Whether process *pid* exists (a process we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    """The process id recorded in an open lock file, or None when it records none."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@final
class Store:
    """An opened run store. Use :func:`open_store`.

    Args:
        path: the store's directory.
        create: create the store when missing (otherwise refuse).
        map_size: the most bytes the store may hold.
        readonly: open for reading only (no LMDB lock file, no writes; works on a read-only file
            system); implies ``create=False``.
        owner: take ownership (:meth:`acquire`) before the LMDB environment is opened, so a store in
            use by another run is refused with the owner's process id.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, map_size: int = DEFAULT_MAP_SIZE,
        readonly: bool = False, owner: bool = False,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        create = create and not readonly
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
        if owner:
            self.acquire()
        try:
            self.env = lmdb.open(
                str(self.path), map_size=map_size, max_dbs=8, subdir=True, lock=not readonly, readonly=readonly
            )
        except lmdb.Error as exc:
            self.release()
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

    def acquire(self) -> None:
        """Make this process the store's only owner until :meth:`close` (a no-op when it already is).

        Takes an exclusive, non-blocking ``flock`` on ``owner.lock`` and writes this process's id
        into it. A lock file whose process died holds no lock any more (the kernel released it); it
        is taken over with a warning.

        Raises:
            StoreError: another run (in this or another process) owns the store, or the lock file
                cannot be created.
        """
        if self._lock_fd is not None:
            return
        lock_path = self.path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"store {str(self.path)!r}: cannot create its lock file {str(lock_path)!r}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder is not None else "another process"
            if holder == os.getpid():
                who += " (this process: another run in it)"
            raise StoreError(
                f"store {str(self.path)!r} is in use by {who}, which holds {str(lock_path)!r}; a store serves one "
                "run at a time: wait for that run to end, stop it, or use another store"
            ) from exc
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid() and not _alive(previous):
            log.warning(
                "store %r: taking over the lock of process %d, which is no longer running (its run ended "
                "without closing the store)", str(self.path), previous,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def owner(self) -> int | None:
        """The process id recorded in the store's lock file (a live owner or a stale one), or None."""
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _read_pid(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Give up ownership taken by :meth:`acquire` (the store stays open)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # an empty lock file: nobody to warn about
            except OSError:
                pass
            os.close(fd)  # releases the flock

    def close(self) -> None:
        """Close the LMDB environment and give up ownership (see :meth:`acquire`)."""
        self.release()
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

    def update_run_info(self, **fields: Any) -> None:
        """Change fields of the recorded run (its checkpoint and dead letters stay)."""
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(b"run")
        info: dict[str, Any] = unpack(raw) if raw is not None else {}
        info.update(fields)
        self._write({(self._meta, b"run"): pack(info)})

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


def open_store(
    path: str | os.PathLike[str], *, create: bool = True, map_size: int = DEFAULT_MAP_SIZE, readonly: bool = False,
    owner: bool = False,
) -> Store:
    """Open (or create) the store at *path*; raises :class:`StoreError` with a clear message.

    With *readonly*, nothing is created, locked or written (read-only commands use this); with
    *owner*, the store is owned by the caller until it is closed (runs use this, see
    :meth:`Store.acquire`).
    """
    return Store(path, create=create, map_size=map_size, readonly=readonly, owner=owner)
