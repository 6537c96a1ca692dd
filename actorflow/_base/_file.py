"""``af.File``: an option type for files a task reads, fingerprinted by content.

A :class:`File` option makes the file part of the task's cache key. Hashing every file on every
run would be slow, so the cache remembers each file's size and modification time next to its
content hash: while those are unchanged the stored hash is used; when they change the file is
hashed again. A file that was touched but not changed therefore keeps its fingerprint (the task
is not dirty), and a changed one gets a new fingerprint (the task and what depends on it re-run).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Any, final

import attrs

_CHUNK = 1 << 20


@final
@attrs.frozen(repr=False)
class File(os.PathLike[str]):
    """A file read by a task, as an option value: ``def parse(src: af.File) -> ...``.

    Give it as a path (``--set parse.src=data.csv``, a ``str`` or a ``Path``); binding checks
    that the file exists. It works wherever a path does (``open(src)``) and has ``path``,
    ``read_bytes()``, ``read_text()`` and ``open()``.
    """

    path: Path = attrs.field(converter=Path)

    @classmethod
    def of(cls, value: Any) -> File:
        """A :class:`File` from a path; raises ValueError when it is not an existing file."""
        if isinstance(value, File):
            return value
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise ValueError(f"expected a file path, got {type(value).__name__} {value!r:.60}")
        path = Path(value)
        if not path.exists():
            raise ValueError(f"file {str(path)!r} does not exist")
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is not a regular file")
        return cls(path.absolute())  # absolute: a store records it, and a resume may run in another directory

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"File({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The file's name (last path component)."""
        return self.path.name

    def read_bytes(self) -> bytes:
        """The file's content."""
        return self.path.read_bytes()

    def read_text(self, encoding: str = "utf-8") -> str:
        """The file's content as text."""
        return self.path.read_text(encoding=encoding)

    def open(self, mode: str = "rb") -> IO[Any]:
        """Open the file (binary by default)."""
        return self.path.open(mode)


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_in(value: Any) -> list[File]:
    """Every :class:`File` inside an option value (lists, tuples, dicts, attrs classes)."""
    if isinstance(value, File):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        return [f for v in value for f in files_in(v)]
    if isinstance(value, dict):
        return [f for v in value.values() for f in files_in(v)]
    if attrs.has(type(value)):
        return [f for a in attrs.fields(type(value)) for f in files_in(getattr(value, a.name))]
    return []
