"""File sources that resume at their byte offset: text lines and JSON lines (CSV: ``_connect_csv``).

A file source reads the file named by its option ``path``, or every file a glob matches (sorted by
path). Its position is the file (its index in the sorted list), the byte offset after the last item
and the line number there; for a ``.gz`` file the offset cannot be sought, so the line count is the
cursor and a resume reads the compressed file again up to it. Each checkpoint saves the position
through the source-position hook (``_source_position``) together with what identifies the file:
its size, modification time and hashes of its first block and of the block before the cursor (for
a ``.gz`` file: of the compressed bytes it had). A resume checks them and refuses, naming the file,
when the file was edited, truncated or replaced; a file that only grew is read on from the cursor.

A line that cannot be read (bad UTF-8, bad JSON) is a failed item: its error names the file's
base name and its 1-based line number, and the task's policy applies (``af.DeadLetter()`` sets it
aside and reading goes on after it).
"""

from __future__ import annotations

import glob as globbing
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from .._base import Cursor, InputChangedError, MalformedLineError
from ._taskclass import Task

#: The cursor's default: a new run starts at item 0.
FIRST = Cursor(0)

#: Bytes hashed at the start of a file and before the cursor.
BLOCK = 1 << 16

#: A position: [file index, byte offset (a .gz file: 0), line number, items so far].
Live = list[int]


def files_of(pattern: str) -> list[str]:
    """The files *pattern* names: itself, or the sorted matches of a glob (``**`` recurses).

    Raises:
        FileNotFoundError: a glob matches no file.
    """
    if not globbing.has_magic(pattern):
        return [pattern]
    found = sorted(p for p in globbing.glob(pattern, recursive=True) if os.path.isfile(p))
    if not found:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    return found


def is_gzip(path: str) -> bool:
    """True for a ``.gz`` file (read through gzip; its cursor is a line count)."""
    return path.endswith(".gz")


def open_binary(path: str) -> IO[bytes]:
    """*path* opened for reading bytes (decompressed for ``.gz``)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads bytes like a file
    return open(path, "rb")  # closed by the caller


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _names_digest(names: list[str]) -> str:
    return _digest("\0".join(names).encode("utf-8", "surrogateescape"))


def fingerprint(path: str, upto: int) -> dict[str, Any]:
    """What identifies the first *upto* bytes of *path* now: size, mtime and two block hashes."""
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(min(BLOCK, upto))
        f.seek(max(0, upto - BLOCK))
        tail = f.read(upto - max(0, upto - BLOCK))
    return {"checked": upto, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": _digest(head),
            "tail": _digest(tail)}


def check_unchanged(path: str, saved: dict[str, Any]) -> None:
    """Refuse when *path* is not the file a checkpoint saw, or more than an append changed it.

    Raises:
        InputChangedError: the file is gone, shorter than what was read, or its bytes before the cursor differ.
    """
    upto = int(saved["checked"])
    try:
        now = fingerprint(path, upto)
    except FileNotFoundError:
        raise InputChangedError(path, "it is gone") from None
    if now["size"] < upto:
        raise InputChangedError(path, f"it was truncated to {now['size']} bytes, but {upto} had been read")
    if now["head"] != saved["head"] or now["tail"] != saved["tail"]:
        touched = "" if now["mtime_ns"] == saved["mtime_ns"] else " (modified since)"
        raise InputChangedError(path, f"its bytes before the cursor (offset {upto}) differ: edited or "
                                      f"replaced{touched}")


class FileSource(Task):
    """Base of the file sources: the option ``path``, the cursor and its checks (not added to flows itself)."""

    kind: ClassVar[str] = "source"

    path: str

    def __init__(self) -> None:
        #: Where the generator stands, updated per item: [file index, offset, line, count].
        self._live: Live | None = None
        #: The position before the line that failed last, with its item number.
        self._bad: tuple[int, Live] | None = None
        #: Where the next opening starts: a position, items to skip from it, and the CSV header there.
        self._start: tuple[Live, int, list[str] | None] = ([0, 0, 0, 0], 0, None)
        #: The position a restored checkpoint gave (before the generator opened).
        self._restored: dict[str, Any] | None = None
        self._files: list[str] = []
        #: The CSV header of the file being read (None before its first row).
        self._header: list[str] | None = None
        self._saved: tuple[tuple[int, ...], dict[str, Any]] | None = None

    # -- the source-position hook --------------------------------------------------------------------

    def position(self, count: int) -> dict[str, Any] | None:
        """Plain data naming where item *count* starts (called while a checkpoint is taken)."""
        live = self._live
        if live is None:
            return self._restored
        if live[3] == count:
            at = live[:4]
        elif self._bad is not None and self._bad[0] == count:  # the failed line is not sent yet: before it
            at = self._bad[1]
        else:
            raise RuntimeError(
                f"{type(self).__name__}: the source gave {live[3]} items but the run counts {count}; "
                "its position cannot be saved"
            )
        key = (*at, len(self._files))
        if self._saved is not None and self._saved[0] == key:
            return self._saved[1]
        index = at[0]
        path = self._files[index]
        upto = os.path.getsize(path) if is_gzip(path) else at[1]
        pos = {"count": count, "index": index, "file": path, "offset": at[1], "line": at[2],
               "before": _names_digest(self._files[:index]), "header": self._header, **fingerprint(path, upto)}
        self._saved = (key, pos)
        return pos

    def resume_from(self, count: int, restored: dict[str, Any] | None) -> None:
        """Plan where the generator opened at item *count* starts (checking a restored position first)."""
        live = self._live
        if live is not None and live[3] == count:
            self._start = (live[:4], 0, self._header)
        elif self._bad is not None and self._bad[0] == count:
            self._start = (list(self._bad[1]), 0, self._header)
        elif restored is not None and int(restored["count"]) <= count:
            self._restored = restored
            self._files = self._check_files(restored)
            at = [int(restored["index"]), int(restored["offset"]), int(restored["line"]), int(restored["count"])]
            self._start = (at, count - at[3], restored.get("header"))
        else:
            self._start = ([0, 0, 0, 0], count, None)

    def _check_files(self, saved: dict[str, Any]) -> list[str]:
        """The files now, checked against a restored position: same files before it, its file unchanged."""
        files = files_of(self.path)
        index, path = int(saved["index"]), str(saved["file"])
        if index >= len(files) or files[index] != path or _names_digest(files[:index]) != saved["before"]:
            raise InputChangedError(path, f"the files matching {self.path!r} before or at the cursor are not the "
                                          "ones the checkpoint saw (a file added, removed or renamed)")
        check_unchanged(path, saved)
        return files

    # -- reading -------------------------------------------------------------------------------------

    def _opened(self, cursor: int) -> Iterator[tuple[int, IO[bytes], Live]]:
        """Each file from the planned start: (index, open file positioned there, live position).

        The live position is [file index, offset, line, count, items still to skip]; a reader keeps
        it current after every item (and the skip count while it skips).
        """
        at, skip, header = self._start
        if at[3] + skip != cursor:  # opened without the hook (a plain call): count from the start
            at, skip, header = [0, 0, 0, 0], cursor, None
        fresh = at == [0, 0, 0, 0]
        self._start = ([0, 0, 0, 0], 0, None)
        if not self._files or fresh:
            self._files = files_of(self.path)
        self._header = header
        live = self._live = [*at[:4], skip]
        index = at[0]
        while index < len(self._files):
            path = self._files[index]
            with open_binary(path) as f:
                if live[0] != index:  # a new file: its position starts at its beginning
                    live[:3] = [index, 0, 0]
                    self._header = None
                if is_gzip(path):
                    for _ in range(live[2]):  # a .gz file's cursor is its line count: read up to it
                        f.readline()
                elif live[1]:
                    f.seek(live[1])
                yield index, f, live
            if index + 1 == len(self._files):
                self._files = files_of(self.path)  # files added meanwhile, sorted after this one, are read too
            index += 1

    def _failed(self, live: Live, before: Live, path: str, why: str, raw: bytes) -> MalformedLineError:
        """The error of the line just read (*live* already past it), remembering where it began."""
        self._bad = (before[3], before)
        self._live = live
        live[3] += 1  # the failed line is an item: a dead letter goes on after it
        return MalformedLineError(os.path.basename(path), live[2], why, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def run(self, cursor: Cursor = FIRST) -> Iterator[Any]:
        """The items, from item *cursor* on."""
        raise NotImplementedError  # pragma: no cover  # each source defines its own


def _strip(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


class LinesSource(FileSource):
    """Text lines of the file (or glob) named by the option ``path``, each once, resumed at its byte offset.

    Items are the lines as ``str`` without their newline (``\\n`` or ``\\r\\n``), decoded as UTF-8;
    a line that is not UTF-8 is a failed item naming the file and line. Add with
    ``flow.add(af.LinesSource, name="lines")`` and set ``--set lines.path='logs/*.log'``.
    """

    def run(self, cursor: Cursor = FIRST) -> Iterator[str]:
        """The lines from line item *cursor* on."""
        for index, f, live in self._opened(cursor):
            off, line, count, skip = live[1], live[2], live[3], live[4]
            for raw in f:
                line += 1
                if skip:
                    skip -= 1
                    count += 1
                    off += len(raw)
                    live[1], live[2], live[3], live[4] = off, line, count, skip
                    continue
                off += len(raw)
                try:
                    text = raw.decode()
                except UnicodeDecodeError as exc:
                    before = [index, off - len(raw), line - 1, count]
                    live[1], live[2], live[3] = off, line, count
                    raise self._failed(live, before, self._files[index], f"not UTF-8 ({exc.reason})", raw) from exc
                count += 1
                live[1], live[2], live[3] = off, line, count
                yield _strip(text)


class JsonLinesSource(FileSource):
    """JSON values, one per line, of the file (or glob) named by the option ``path``, resumed at the byte offset.

    Items are the parsed values (``json.loads``); blank lines are skipped. A line that is not JSON
    is a failed item naming the file and line: with ``on_error = af.DeadLetter()`` it is set aside
    and reading goes on.
    """

    def run(self, cursor: Cursor = FIRST) -> Iterator[Any]:
        """The values from item *cursor* on."""
        loads = json.loads
        for index, f, live in self._opened(cursor):
            off, line, count, skip = live[1], live[2], live[3], live[4]
            for raw in f:
                line += 1
                if skip:
                    if raw.strip():
                        skip -= 1
                        count += 1
                    off += len(raw)
                    live[1], live[2], live[3], live[4] = off, line, count, skip
                    continue
                try:
                    value = loads(raw)
                except ValueError as exc:
                    before = [index, off, line - 1, count]
                    off += len(raw)
                    live[1], live[2], live[3] = off, line, count
                    if not raw.strip():  # a blank line: no item
                        continue
                    raise self._failed(live, before, self._files[index], f"not JSON ({exc})", raw) from exc
                off += len(raw)
                count += 1
                live[1], live[2], live[3] = off, line, count
                yield value
