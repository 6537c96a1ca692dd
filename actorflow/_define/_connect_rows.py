"""Items as table rows, for the database sinks: dicts, attrs instances and dataclass instances.

The first item fixes the columns: a dict's keys, or a record's fields. Every later item must have
the same columns (a dict with a missing key is a failed item naming it; extra keys are an error too,
so no value is dropped quietly).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import operator
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from .._base import record_fields
from ._taskclass import TransactionalSink


def is_record(value: Any) -> bool:
    """True for an attrs instance or a dataclass instance."""
    cls = type(value)
    return attrs.has(cls) or (dataclasses.is_dataclass(cls) and not isinstance(value, type))


def quote(name: str) -> str:
    """*name* as an SQL identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


class Rows:
    """The columns and how to read them from items, fixed by the first item."""

    def __init__(self, first: Any, where: str) -> None:
        self.where = where
        if isinstance(first, dict):
            self.record: type | None = None
            self.columns: list[str] = [str(k) for k in first]
            if not self.columns:
                raise ValueError(f"{where}: an item is an empty dict: no column to write")
            self._get: Callable[[Any], Any] = operator.itemgetter(*self.columns)
        elif is_record(first):
            self.record = type(first)
            self.columns = [n for n, _ in self.fields()] or [
                f.name for f in (attrs.fields(self.record) if attrs.has(self.record)
                                 else dataclasses.fields(self.record))
            ]
            self._get = operator.attrgetter(*self.columns)
        else:
            raise TypeError(f"{where}: items must be dicts, attrs instances or dataclass instances, got "
                            f"{type(first).__name__}")
        self._one = len(self.columns) == 1

    def fields(self) -> list[tuple[str, Any]]:
        """The record's fields and their annotations ([] for dict rows)."""
        return record_fields(self.record) if self.record is not None else []

    def row(self, item: Any) -> tuple[Any, ...]:
        """The values of *item* in column order.

        A dict and a record with the same fields are the same row (items restored from a checkpoint
        come back as dicts where the port does not declare their class).

        Raises:
            ValueError: the item does not have exactly the columns of the first one.
        """
        kind = type(item)
        if kind is self.record or (self.record is None and kind is dict):
            try:
                if self.record is None and len(item) != len(self.columns):
                    raise KeyError
                values = self._get(item)
            except KeyError:
                raise self._mismatch(item) from None
        elif isinstance(item, dict):
            if len(item) != len(self.columns) or not all(c in item for c in self.columns):
                raise self._mismatch(item)
            values = operator.itemgetter(*self.columns)(item)
        elif is_record(item):
            try:
                values = operator.attrgetter(*self.columns)(item)
            except AttributeError:
                raise self._mismatch(item) from None
        else:
            raise self._mismatch(item)
        return (values,) if self._one else values

    def _mismatch(self, item: Any) -> ValueError:
        keys = list(item) if isinstance(item, dict) else type(item).__name__
        return ValueError(f"{self.where}: an item has the columns {keys}, the table gets {self.columns}")


def _base(tp: Any) -> Any:
    """The type inside ``X | None``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


#: SQLite column types by Python type.
SQLITE_TYPES: dict[Any, str] = {int: "INTEGER", bool: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}

#: PostgreSQL column types by Python type.
PG_TYPES: dict[Any, str] = {
    int: "bigint", bool: "boolean", float: "double precision", str: "text", bytes: "bytea",
    decimal.Decimal: "numeric", datetime.datetime: "timestamptz", datetime.date: "date", datetime.time: "time",
    uuid.UUID: "uuid", dict: "jsonb", list: "jsonb",
}


def column_types(rows: Rows, types_by: dict[Any, str], fallback: str) -> list[tuple[str, str]]:
    """(column, SQL type) for a record's fields, mapped through *types_by* (*fallback* otherwise)."""
    hints = dict(rows.fields())
    out = []
    for name in rows.columns:
        tp = _base(hints.get(name))
        out.append((name, types_by.get(typing.get_origin(tp) or tp, fallback)))
    return out


class RowSink(TransactionalSink):
    """What the database sinks share: rows buffered per open transaction, whose token names it.

    ``prepare`` (inside the checkpoint's cut: a quick plain call) closes the open transaction and
    queues it; ``finish_prepare`` has the sink's ``_call`` write what is queued, in order, in its
    worker thread. A subclass sets ``_buffer``, ``_token`` and ``_pending`` in its ``__init__``.
    """

    _buffer: list[tuple[Any, ...]]
    _token: str
    _pending: list[tuple[str, list[tuple[Any, ...]]]]

    async def _call(self, fn: Any = None, *args: Any) -> None:
        """Finish the queued prepares in the sink's worker thread, then ``fn(*args)``."""
        raise NotImplementedError

    def prepare(self) -> str:
        """Close the open transaction (``finish_prepare`` writes it); its token names it."""
        self._pending.append((self._token, self._buffer))
        self._buffer = []
        return self._token

    async def finish_prepare(self, token: Any) -> None:
        """Write the closed transaction's last rows and record its token as prepared."""
        await self._call()
