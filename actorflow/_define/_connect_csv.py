"""``af.CsvSource``: CSV rows as dicts (as ``csv.DictReader`` gives them) or as a record class, resumed at the offset.

The reader is fed the file's lines one by one by :class:`_Lines`, which counts bytes and lines, so
after each row the position is exactly the end of the row's last line (a quoted field may hold
newlines: a row then spans several lines). The first row of every file is its header; it is saved
with the position, so a resumed run does not read it again.
"""

from __future__ import annotations

import csv
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

import attrs

from .._base import Cursor, DefinitionError, record_fields
from .._storage import converter
from ._connect_files import FIRST, FileSource, Live


class _Lines:
    """An iterator of a binary file's lines as text for :mod:`csv`, keeping the byte offset and line count."""

    def __init__(self, f: IO[bytes], live: Live) -> None:
        self.f = f
        self.off = live[1]
        self.line = live[2]
        self.raw = b""

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.raw = raw
        self.off += len(raw)
        self.line += 1
        return raw.decode()


def _optional(tp: Any) -> bool:
    """True when *tp* admits None (``X | None``, ``Optional[X]``)."""
    origin = typing.get_origin(tp)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(tp)


def record_maker(record: type) -> Callable[[dict[Any, Any]], Any]:
    """A function making a *record* (attrs class or dataclass) from a CSV row of strings.

    Each field is converted from its text by cattrs (``"3"`` → ``3``; a bool from true/false, yes/no,
    1/0); an empty field of an optional type is None. Columns the record does not have are ignored.
    """
    if not (isinstance(record, type) and (attrs.has(record) or dataclasses.is_dataclass(record))):
        raise DefinitionError(f"CsvSource: record must be an attrs class or a dataclass, got {record!r}")
    fields = record_fields(record)
    optional = {name for name, tp in fields if _optional(tp)}
    names = [name for name, _ in fields]

    def make(row: dict[Any, Any]) -> Any:
        values = {n: (None if n in optional and row.get(n) == "" else row[n]) for n in names if n in row}
        return converter.structure(values, record)

    return make


class CsvSource(FileSource):
    """CSV rows of the file (or glob) named by the option ``path``, each once, resumed at the byte offset.

    The first row of each file is its header. Items are dicts of column → string as
    :class:`csv.DictReader` gives them (missing fields None, extra fields in a list under the key
    None, empty rows skipped, quoted newlines kept), or instances of a record class given as a
    class attribute of a subclass::

        class Orders(af.CsvSource):
            record = Order          # an attrs class or a dataclass: fields converted from text

    A row that cannot be read (bad UTF-8, a field that does not convert, a missing field) is a failed
    item naming the file and the line where its row ends. ``delimiter`` is an option (default ``,``).
    """

    #: The record class rows become (None: dicts).
    record: ClassVar[type | None] = None

    delimiter: str = ","

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        record = cls.__dict__.get("record")
        if record is None:
            return
        record_maker(record)  # checked when the class is defined

        def run(self: CsvSource, cursor: Cursor = FIRST) -> Iterator[Any]:
            yield from self._rows(cursor)

        run.__annotations__ = {"cursor": Cursor, "return": Iterator[record]}  # type: ignore[valid-type]
        run.__doc__ = f"{record.__name__} records, from item *cursor* on."
        cls.run = run  # type: ignore[method-assign]

    def run(self, cursor: Cursor = FIRST) -> Iterator[dict[Any, Any]]:
        """The rows from item *cursor* on."""
        yield from self._rows(cursor)

    def _rows(self, cursor: int) -> Iterator[Any]:
        make = record_maker(self.record) if self.record is not None else None
        for index, f, live in self._opened(cursor):
            lines = _Lines(f, live)
            reader = csv.reader(lines, delimiter=self.delimiter)
            path = self._files[index]
            while True:
                before = [index, lines.off, lines.line, live[3]]
                try:
                    row = next(reader, None)
                except (csv.Error, UnicodeDecodeError) as exc:
                    live[1], live[2] = lines.off, lines.line
                    raise self._failed(live, before, path, f"not CSV ({exc})", lines.raw) from exc
                if row is None:
                    break
                live[1], live[2] = lines.off, lines.line
                if self._header is None:
                    self._header = row
                    continue
                if not row:
                    continue
                if live[4]:
                    live[4] -= 1
                    live[3] += 1
                    continue
                item: Any = _as_dict(self._header, row)
                if make is not None:
                    try:
                        item = make(item)
                    except Exception as exc:
                        raise self._failed(live, before, path, f"not a {make_name(self.record)} ({exc})",
                                           lines.raw) from exc
                live[3] += 1
                yield item


def make_name(record: type | None) -> str:
    return getattr(record, "__name__", "record")


def _as_dict(header: list[str], row: list[str]) -> dict[Any, Any]:
    """A row as :class:`csv.DictReader` gives it: missing fields None, extra ones in a list under None."""
    out: dict[Any, Any] = dict(zip(header, row, strict=False))
    n, m = len(header), len(row)
    if m > n:
        out[None] = row[n:]
    elif m < n:
        for key in header[m:]:
            out[key] = None
    return out

