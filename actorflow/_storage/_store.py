"""The run store: one LMDB environment holding run metadata, checkpoints and dead letters.

Layout (named databases):

- ``meta``: ``kind`` (always ``b"actorflow-store"``), ``schema`` (an int), ``fingerprint`` of the
  run graph, ``run`` (msgpack: flow name, pipeline file, options) and ``created``.
- ``checkpoint``: two slots, ``0`` and ``1``, and ``head`` naming the slot of the latest checkpoint
  (msgpack documents, see :mod:`actorflow._kernel._checkpoint`). A new checkpoint goes to the other slot
  and moves ``head`` in the same transaction, so the previous checkpoint stays, whole, beside it:
  when the latest is found damaged, the error offers the previous one (``from_previous=True``).
- ``dead_letters``: one record per ``(task, seq)``; written with each checkpoint.

Checkpoints, the run record and dead letters are *sealed*: a header (magic, CRC-32, length) in
front of the msgpack bytes, checked on every read, so a damaged or cut record is an error naming
the store and what is wrong, never a value silently wrong. An LMDB error while reading (a damaged
page) is one :class:`StoreError` too.
- ``cache`` and ``cache_files``: the product cache and the file fingerprints behind it (see
  :mod:`actorflow._kernel._cache`). They outlive runs: starting a new run in the store keeps them.

Every write is one transaction, so a failed write (full disk, map full, crash) leaves the last
good checkpoint intact.

A run owns its store: :meth:`Store.acquire` takes an exclusive ``fcntl.flock`` on ``owner.lock``
in the store directory (holding the owner's process id) before any task runs, so a second run or
resume on the same store fails at once. The kernel drops the lock when its process dies; a lock
file left by a dead process is taken over with a warning. Read-only openings
(``readonly=True``) take no lock and write nothing, so they work on a read-only file system.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, final

import lmdb

from .._base import StoreError
from ._codec import pack, unpack

SCHEMA_VERSION = 2  # 2: sealed records, two checkpoint slots
KIND = b"actorflow-store"
DEFAULT_MAP_SIZE = 1 << 30  # 1 GiB of address space; LMDB files grow only as data is written
LOCK_FILE = "owner.lock"

log = logging.getLogger("actorflow.store")

_MAGIC = b"afR1"
_HEADER = struct.Struct(">4sIQ")  # magic, CRC-32 of the payload, payload length
_SLOTS = (b"0", b"1")
_DBS = (b"meta", b"checkpoint", b"dead_letters", b"cache", b"cache_files")


def seal(payload: bytes) -> bytes:
    """*payload* with the header :func:`unseal` checks (magic, CRC-32, length)."""
    return _HEADER.pack(_MAGIC, zlib.crc32(payload), len(payload)) + payload


def unseal(raw: bytes | memoryview) -> tuple[bytes | None, str | None]:
    """The payload of a sealed record and None, or None and what is wrong with it."""
    if len(raw) < _HEADER.size:
        return None, f"{len(raw)} bytes, shorter than a record's header"
    magic, crc, length = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        return None, "not a record actorflow wrote (no header)"
    payload = bytes(raw[_HEADER.size:])
    if len(payload) != length:
        return None, f"cut short: {len(payload)} of {length} bytes"
    if zlib.crc32(payload) != crc:
        return None, "its checksum does not match: its bytes were damaged"
    return payload, None


_CUT = "; a copy cut short cannot be read: start the run afresh in a new store, or copy the whole file again"

#: What a damaged data file means for the user (a read of a page failed or found garbage).
_DAMAGED = (
    "the store's data file is damaged ({exc}); what it holds cannot be trusted: start the run afresh in a "
    "new store (its last good state cannot be read)"
)


def dangling(path: Path) -> str:
    """What to say about a store path that is a symbolic link to nothing."""
    return (
        f"store {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; create that "
        "directory or give another store path"
    )


def _alive(pid: int) -> bool:
    """Whether process *pid* exists (a process we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_in(path: Path) -> int | None:
    """The process id written in the lock file *path* (None: none, or no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


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
        self._lock_fd: int | None = None
        self._dir_fd: int | None = None
        create = create and not readonly
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a file, not an actorflow store directory")
        if not self.path.exists():
            if self.path.is_symlink():
                raise StoreError(dangling(self.path))
            if not create:
                raise StoreError(f"store {str(self.path)!r} does not exist; nothing to resume")
            self.path.mkdir(parents=True)
        data = self.path / "data.mdb"
        if not data.exists() and not create:
            raise StoreError(
                f"store {str(self.path)!r} is not an actorflow store (no data.mdb); if a run was cut off while "
                "creating it, start the run again with the same store"
            )
        if data.exists() and data.stat().st_size == 0 and not create:
            raise StoreError(self.unmade())  # opening it would write it: leave it as it is
        if data.exists() and data.stat().st_size < 8192 and data.stat().st_size > 0:
            size = data.stat().st_size
            raise StoreError(f"store {str(self.path)!r} is truncated or corrupt ({size} bytes in data.mdb){_CUT}")
        if owner:
            self.acquire()
        try:
            self.env = lmdb.open(
                str(self.path), map_size=map_size, max_dbs=8, subdir=True, lock=not readonly, readonly=readonly
            )
        except lmdb.Error as exc:
            self.release()
            damaged = "" if isinstance(exc, lmdb.ReadonlyError) or "ermission" in str(exc) else (
                "; its data.mdb is damaged or not an LMDB file: start the run afresh in a new store")
            raise StoreError(f"store {str(self.path)!r} cannot be opened as an LMDB store ({exc}){damaged}") from exc
        kind, schema = self._open_dbs(data, create)
        if kind is None:
            if not create:
                self.close()
                raise StoreError(self.unmade())
            self._write({(self._meta, b"kind"): KIND, (self._meta, b"schema"): str(SCHEMA_VERSION).encode(),
                         (self._meta, b"created"): str(time.time()).encode()})
        elif kind != KIND:
            self.close()
            raise StoreError(f"{str(self.path)!r} is not an actorflow store (kind {kind!r})")
        elif schema is None or not schema.isdigit() or int(schema) != SCHEMA_VERSION:
            self.close()
            raise StoreError(
                f"store {str(self.path)!r} was written with schema version {schema.decode() if schema else '?'}; "
                f"this actorflow reads version {SCHEMA_VERSION}. Finish or delete it with the version that wrote it."
            )

    def unmade(self) -> str:
        """What to say about a store cut off while it was being made (a kill before its run was recorded)."""
        return (
            f"store {str(self.path)!r} was cut off while it was being created, before its run was recorded: it "
            "holds nothing to resume or read. Start the run again with the same store (a new run reuses it), or "
            "delete the directory"
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
                + _CUT
            )

    def _open_dbs(self, data: Path, create: bool) -> tuple[bytes | None, bytes | None]:
        """Open the named databases and read the store's kind and schema.

        Nothing is written unless *create*: a foreign LMDB environment is refused before its first
        write, and a store cut off while it was made (a database missing) is left as it is.
        """
        try:
            self._check_size(data)
            with self.env.begin() as txn:
                names = {bytes(k) for k, _ in txn.cursor()}
            if names - set(_DBS):
                self.close()
                raise StoreError(f"{str(self.path)!r} is an LMDB environment but not an actorflow store")
            if not create and set(_DBS) - names:
                self.close()
                raise StoreError(self.unmade())
            self._meta, self._ckpt, self._dead, self._cache, self._files = (self.env.open_db(n) for n in _DBS)
            with self.env.begin(db=self._meta) as txn:
                kind, schema = txn.get(b"kind"), txn.get(b"schema")
            return (bytes(kind) if kind is not None else None), (bytes(schema) if schema is not None else None)
        except lmdb.Error as exc:
            self.close()
            raise StoreError(f"store {str(self.path)!r}: " + _DAMAGED.format(exc=exc)) from exc

    def acquire(self) -> None:
        """Make this process the store's only owner until :meth:`close` (a no-op when it already is).

        Takes an exclusive, non-blocking ``flock`` on the store **directory itself**, held through a
        descriptor the run keeps open: removing or replacing any file in the store (``owner.lock``
        included) cannot release it, and the kernel releases it when the process dies. The process id
        is written to ``owner.lock`` only to name the owner in messages; a lock file left by a process
        that died is taken over with a warning.

        Raises:
            StoreError: another run (in this or another process) owns the store, or the lock cannot
                be taken.
        """
        if self._lock_fd is not None:
            return
        lock_path = self.path / LOCK_FILE
        try:
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise StoreError(f"store {str(self.path)!r}: cannot open it to lock it: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(dir_fd)
            holder = _pid_in(lock_path)
            who = f"process {holder}" if holder is not None else "another process"
            if holder == os.getpid():
                who += " (this process: another run in it)"
            raise StoreError(
                f"store {str(self.path)!r} is in use by {who}, which holds its lock; a store serves one "
                "run at a time: wait for that run to end, stop it, or use another store"
            ) from exc
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            os.close(dir_fd)
            raise StoreError(
                f"store {str(self.path)!r}: cannot create its lock file {str(lock_path)!r}: {exc.strerror or exc}"
            ) from exc
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid() and not _alive(previous):
            log.warning(
                "store %r: taking over the lock of process %d, which is no longer running (its run ended "
                "without closing the store)", str(self.path), previous,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd, self._dir_fd = fd, dir_fd

    def release(self) -> None:
        """Give up ownership taken by :meth:`acquire` (the store stays open)."""
        fd, self._lock_fd = self._lock_fd, None
        dir_fd, self._dir_fd = self._dir_fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # an empty lock file: nobody to warn about
            except OSError:
                pass
            os.close(fd)
        if dir_fd is not None:
            os.close(dir_fd)  # releases the flock

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

    def _write(self, puts: dict[tuple[Any, bytes], bytes]) -> None:
        with self.transaction(needed=sum(len(v) for v in puts.values())) as txn:
            for (db, key), value in puts.items():
                txn.put(key, value, db=db)

    @contextmanager
    def transaction(self, needed: int = 0) -> Iterator[Any]:
        """One LMDB write transaction: all of it is written, or (on any error) none of it.

        LMDB errors become :class:`StoreError` with a clear message; a full map or file system
        says so, with the bytes the write needs (*needed*: the bytes put, if the caller knows).
        """
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError as exc:
            info = self.env.info()
            used = (info["last_pgno"] + 1) * self.env.stat()["psize"]
            raise StoreError(
                f"store {str(self.path)!r} is full: its map size is {info['map_size']:,} bytes, {used:,} in use, "
                f"and this write needs about {needed:,} more; {self._kept()}. Open the "
                "store with a larger map_size (af.store.open_store(path, map_size=...), passed as store=) or "
                "use a new store"
            ) from exc
        except lmdb.Error as exc:
            raise StoreError(self._write_failed(exc, needed)) from exc

    def _write_failed(self, exc: lmdb.Error, needed: int) -> str:
        """The message for a failed write: a full file system as such (LMDB reports it as EIO)."""
        try:
            fs = os.statvfs(self.path)
            free = fs.f_bavail * fs.f_frsize
        except OSError:
            free = None
        nospace = os.strerror(errno.ENOSPC) in str(exc)
        if nospace or (free is not None and free < needed + (1 << 16)):
            has = f"{free:,} bytes free" if free is not None else "no space left"
            return (
                f"store {str(self.path)!r}: the file system is full ({has}; this write needs about {needed:,} "
                f"bytes): {exc}; {self._kept()}. Free some space (or move the store elsewhere) and resume"
            )
        return f"store {str(self.path)!r}: write failed ({exc}); {self._kept()}"

    def _kept(self) -> str:
        """What a failed write leaves: the last good checkpoint, if the store holds one."""
        try:
            with self.env.begin(db=self._ckpt) as txn:
                held = txn.get(b"head") is not None
        except lmdb.Error:
            held = False
        return "the last good checkpoint is intact" if held else "no checkpoint was written yet"

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """An LMDB error while reading *what* (a damaged page) as one :class:`StoreError`."""
        try:
            yield
        except lmdb.Error as exc:
            raise StoreError(f"store {str(self.path)!r}: cannot read {what}: " + _DAMAGED.format(exc=exc)) from exc

    def _unsealed(self, raw: bytes | memoryview, what: str) -> bytes:
        payload, problem = unseal(raw)
        if payload is None:
            raise StoreError(f"store {str(self.path)!r}: {what} is damaged ({problem})")
        return payload

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
        with self._reading(f"the {db} database"), self.env.begin(db=self.db(db)) as txn:
            raw = txn.get(key)
            return bytes(raw) if raw is not None else None

    def scan(self, db: str, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of database *db* whose key starts with *prefix*, in key order."""
        out: list[tuple[bytes, bytes]] = []
        with self._reading(f"the {db} database"), self.env.begin(db=self.db(db)) as txn:
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
        with self._reading("its run record"), self.env.begin(db=self._meta) as txn:
            raw = txn.get(b"run")
            fp = txn.get(b"fingerprint")
            if raw is None:
                return None
            payload = self._unsealed(raw, "its run record")
        try:
            info: dict[str, Any] = unpack(payload)
        except Exception as exc:  # a sealed record that does not decode: written by another program
            raise StoreError(f"store {str(self.path)!r}: its run record cannot be decoded ({exc})") from exc
        info["fingerprint"] = bytes(fp).decode() if fp else None
        return info

    def set_run_info(self, fingerprint: str, info: dict[str, Any]) -> None:
        """Record the run graph fingerprint and what is needed to rebuild it; clears old state."""
        run = seal(pack(info))  # before the transaction: a value msgpack cannot hold changes nothing
        with self.transaction(needed=len(run)) as txn:
            txn.put(b"fingerprint", fingerprint.encode(), db=self._meta)
            txn.put(b"run", run, db=self._meta)
            txn.drop(self._ckpt, delete=False)
            txn.drop(self._dead, delete=False)

    def update_run_info(self, **fields: Any) -> None:
        """Change fields of the recorded run (its checkpoint and dead letters stay)."""
        info = self.run_info() or {}
        info.pop("fingerprint", None)
        info.update(fields)
        self._write({(self._meta, b"run"): seal(pack(info))})

    # -- checkpoints ---------------------------------------------------------------------------

    def write_checkpoint(self, blob: bytes, dead_letters: list[dict[str, Any]]) -> None:
        """Write one checkpoint and the dead letters it covers, in one transaction."""
        self.write_encoded(blob, self.encode_dead_letters(dead_letters))

    @staticmethod
    def encode_dead_letters(dead_letters: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
        """Dead letters as the ``(key, value)`` pairs :meth:`write_encoded` writes."""
        return [(pack([d["task"], d["seq"]]), seal(pack(d))) for d in dead_letters]

    def write_encoded(self, blob: bytes, dead_letters: list[tuple[bytes, bytes]]) -> None:
        """Write an encoded checkpoint and encoded dead letters in one transaction: a few large puts,
        nothing to encode (a writer thread then needs the GIL only a few times).

        The checkpoint goes to the slot the latest one is not in, so the previous one stays whole.
        """
        record = seal(blob)
        with self.transaction(needed=len(record) + sum(len(v) for _, v in dead_letters)) as txn:
            head = txn.get(b"head", db=self._ckpt)
            slot = _SLOTS[1] if head == _SLOTS[0] else _SLOTS[0]
            txn.put(slot, record, db=self._ckpt)
            txn.put(b"head", slot, db=self._ckpt)
            for key, value in dead_letters:
                txn.put(key, value, db=self._dead)

    def write_dead_letters(self, dead_letters: list[dict[str, Any]]) -> None:
        """Write dead letters on their own (when a run ends without a final checkpoint)."""
        self._write({(self._dead, key): value for key, value in self.encode_dead_letters(dead_letters)})

    def checkpoint(self, previous: bool = False) -> tuple[bytes | None, str | None] | None:
        """The latest checkpoint (with *previous*, the one before it), or None when there is none:
        its msgpack bytes and None, or None and what is wrong with its record (the checksum checked)."""
        with self._reading("its checkpoints"), self.env.begin(db=self._ckpt) as txn:
            head = txn.get(b"head")
            if head is None:
                return None
            raw = txn.get((_SLOTS[1] if head == _SLOTS[0] else _SLOTS[0]) if previous else head)
            return None if raw is None else unseal(raw)

    def checkpoints(self) -> list[tuple[bytes | None, str | None]]:
        """The latest checkpoint and the one before it, as far as there are any (see :meth:`checkpoint`)."""
        return [c for c in (self.checkpoint(), self.checkpoint(previous=True)) if c is not None]

    def drop_latest_checkpoint(self) -> None:
        """Make the previous checkpoint the latest (resuming from it): the next checkpoint then
        replaces the dropped one, and the one resumed from stays beside it."""
        with self.transaction() as txn:
            head = txn.get(b"head", db=self._ckpt)
            if head is None:
                return
            txn.delete(bytes(head), db=self._ckpt)
            txn.put(b"head", _SLOTS[1] if head == _SLOTS[0] else _SLOTS[0], db=self._ckpt)

    def read_checkpoint(self) -> bytes | None:
        """The latest checkpoint's msgpack bytes, or None when there is none.

        Raises:
            StoreError: its record is damaged (see :func:`actorflow._kernel._checkpoint.load` for one that
                offers the previous checkpoint).
        """
        latest = self.checkpoint()
        if latest is None:
            return None
        payload, problem = latest
        if payload is None:
            raise StoreError(f"store {str(self.path)!r}: the latest checkpoint is damaged ({problem})")
        return payload

    def dead_letters(self) -> Iterator[dict[str, Any]]:
        """Every dead letter: dicts with task, seq, item, error, time."""
        with self._reading("its dead letters"), self.env.begin(db=self._dead) as txn:
            values = [bytes(v) for _, v in txn.cursor()]
        for value in values:
            try:
                yield unpack(self._unsealed(value, "a dead letter"))
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"store {str(self.path)!r}: a dead letter cannot be decoded ({exc})") from exc


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
