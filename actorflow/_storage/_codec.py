"""msgpack encoding of items, states and records, with cattrs for custom classes. Never pickle.

Encoding is two-layer: values are unstructured to plain data and packed; decoding unpacks and,
when the receiver knows the declared type, structures the plain data back into it (attrs classes,
dataclasses, enums). What msgpack has no type for but Python code relies on is packed as a msgpack
extension type and comes back as itself whatever the declared type: tuples (so tuple dict keys
stay keys), sets, frozensets, ints beyond 64 bits (of any size), paths, datetimes, dates, times, and
values of types with a codec (``af.register_codec``: ``Decimal``, ``UUID``, numpy arrays).
"""

from __future__ import annotations

import collections
import collections.abc as abc
import dataclasses
import datetime as dt
import enum
import os
import pathlib
import types
import typing
from typing import Any, TypeVar, Union

import attrs
import msgpack

from .._base import File, _strip, inspect_empty, record_fields, runtime_classes, type_name
from ._codecs import codec_for, codec_named
from ._convert import converter


class EncodeError(TypeError):
    """A value cannot be encoded to msgpack."""


# msgpack extension types: values msgpack has no type of its own for come back as what they were.
_TUPLE, _SET, _FROZENSET, _BIGINT, _DATETIME, _DATE, _TIME, _PATH, _PUREPATH, _HEXINT, _CODEC = range(1, 12)
#: Ints past this many bits are stored as hex text (decimal text of more than 4,300 digits is refused
#: by ``str()``/``int()`` since Python 3.11): any int Python holds is stored.
_DECIMAL_BITS = 4096
_PURE = {"posix": pathlib.PurePosixPath, "windows": pathlib.PureWindowsPath}


def _ext(code: int, value: Any) -> msgpack.ExtType:
    return msgpack.ExtType(code, pack(value))


def _default(value: Any) -> Any:
    """What msgpack cannot pack itself (packing is strict: subclasses of plain types come here too)."""
    kind = type(value)
    if kind is tuple:
        return _ext(_TUPLE, list(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        # the order is not part of a set; sorting by repr keeps equal sets' bytes equal (fingerprints)
        return _ext(_FROZENSET if isinstance(value, frozenset) else _SET, sorted(value, key=repr))
    if isinstance(value, int):  # beyond 64 bits (an int subclass is stored as its int)
        return _int(value)
    codec = codec_for(kind)
    if codec is not None:  # af.register_codec (Decimal, UUID, numpy arrays out of the box)
        try:
            plain = codec.encode(value)
        except Exception as exc:
            raise EncodeError(f"cannot encode a {kind.__qualname__} with its codec: {exc}") from exc
        return _ext(_CODEC, [codec.name, plain])
    for plain in (str, float, bytes, list, dict):  # subclasses: an OrderedDict, a str subclass, …
        if isinstance(value, plain):
            return plain(value)  # type: ignore[arg-type]  # value is a plain
    if isinstance(value, tuple):  # a named tuple: its fields (structured back into the class when declared)
        return _ext(_TUPLE, list(value))
    if isinstance(value, pathlib.PurePath | dt.date | dt.time):
        return _path_or_time(value)
    if attrs.has(kind) or hasattr(value, "__dataclass_fields__"):
        return converter.unstructure(value)
    raise EncodeError(f"cannot encode a {kind.__qualname__} with msgpack: {value!r:.80}")


def _path_or_time(value: pathlib.PurePath | dt.date | dt.time) -> msgpack.ExtType:
    if isinstance(value, pathlib.Path):
        return msgpack.ExtType(_PATH, os.fsencode(value))
    if isinstance(value, pathlib.PurePath):
        flavour = "windows" if isinstance(value, pathlib.PureWindowsPath) else "posix"
        return _ext(_PUREPATH, [flavour, str(value)])
    if isinstance(value, dt.datetime):
        return msgpack.ExtType(_DATETIME, value.isoformat().encode("ascii"))
    if isinstance(value, dt.date):
        return msgpack.ExtType(_DATE, value.isoformat().encode("ascii"))
    return msgpack.ExtType(_TIME, value.isoformat().encode("ascii"))


def _int(value: int) -> Any:
    if type(value) is not int and -(1 << 63) <= value < (1 << 64):
        return int(value)
    if value.bit_length() > _DECIMAL_BITS:
        return msgpack.ExtType(_HEXINT, format(int(value), "x").encode("ascii"))
    return msgpack.ExtType(_BIGINT, str(int(value)).encode("ascii"))


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(unpack(data))
    if code == _SET:
        return set(unpack(data))
    if code == _FROZENSET:
        return frozenset(unpack(data))
    if code == _BIGINT:
        return int(data)
    if code == _HEXINT:
        return int(data, 16)
    if code == _CODEC:
        name, plain = unpack(data)
        return codec_named(name).decode(plain)
    if code == _PATH:
        return pathlib.Path(os.fsdecode(data))
    if code == _PUREPATH:
        flavour, text = unpack(data)
        return _PURE[flavour](text)
    text = data.decode("ascii")
    if code == _DATETIME:
        return dt.datetime.fromisoformat(text)
    if code == _DATE:
        return dt.date.fromisoformat(text)
    if code == _TIME:
        return dt.time.fromisoformat(text)
    raise ValueError(f"unknown msgpack extension type {code}")


#: Classes whose values msgpack holds (through :func:`_default` for the last ones).
_PLAIN = (type(None), bool, int, float, str, bytes, bytearray, list, tuple, set, frozenset, dict,
          pathlib.PurePath, enum.Enum, dt.datetime, dt.date, dt.time, File)
_CONTAINERS = (list, tuple, set, frozenset, dict, abc.Sequence, abc.MutableSequence, abc.Mapping,
               abc.MutableMapping, abc.Set, abc.MutableSet, abc.Collection)


def storable_problem(tp: Any, _seen: set[type] | None = None) -> str | None:
    """Why values of the declared type *tp* cannot be stored (None: they can, or *tp* declares nothing).

    Plain data, containers of storable types, unions of them, enums, paths, dates, attrs classes and
    dataclasses whose fields are storable can; ``Any``, a missing annotation or a TypeVar declare
    nothing (their values are checked when they appear, see ``Actor.check``).
    """
    tp = _strip(tp)
    if tp is Any or tp is object or tp is None or tp is inspect_empty or isinstance(tp, TypeVar):
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return None
    if origin is not None:
        if origin in (Union, types.UnionType) or origin in _CONTAINERS:
            for arg in typing.get_args(tp):
                if arg is not Ellipsis and (why := storable_problem(arg, _seen)) is not None:
                    return why
            return None
        return f"{type_name(tp)} is not plain data"
    if not isinstance(tp, type):
        return None
    if issubclass(tp, _PLAIN) or codec_for(tp) is not None:
        return None
    if attrs.has(tp) or dataclasses.is_dataclass(tp):
        return _fields_problem(tp, _seen if _seen is not None else set())
    return f"{type_name(tp)} is not plain data, an attrs class or a dataclass"


def _fields_problem(cls: type, seen: set[type]) -> str | None:
    if cls in seen:
        return None
    seen.add(cls)
    for name, annotation in record_fields(cls):  # unresolvable annotations: values are checked as they come
        why = storable_problem(annotation, seen)
        if why is not None:
            return f"{type_name(cls)}.{name}: {why}"
    return None


def pack(value: Any) -> bytes:
    """Encode plain data and known custom classes to msgpack bytes (see :func:`unpack`).

    Raises:
        EncodeError: a value of a type msgpack cannot hold (not plain data, an attrs class or a dataclass).
    """
    try:
        data: bytes = msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)
    except UnicodeEncodeError:  # text with lone surrogates (e.g. undecodable bytes from argv): kept as they are
        data = msgpack.packb(
            value, default=_default, use_bin_type=True, strict_types=True, unicode_errors="surrogatepass"
        )
    return data


def unpack(data: bytes) -> Any:
    """Decode msgpack bytes: lists for arrays, str for text, and what :func:`pack` stored as an extension
    type (tuples, sets, big ints, paths, dates…) as it was."""
    return msgpack.unpackb(
        data, raw=False, use_list=True, strict_map_key=False, ext_hook=_ext_hook, unicode_errors="surrogatepass"
    )


def restore(value: Any, annotation: Any) -> Any:
    """Turn decoded plain data back into *annotation*'s type where that can be known."""
    classes = runtime_classes(annotation)
    if classes is None or (isinstance(value, classes) and not isinstance(value, (list, dict))):
        return value
    try:
        return converter.structure(value, annotation)
    except Exception:  # keep the plain value rather than lose it
        return value


def restore_like(value: Any, example: Any) -> Any:
    """Turn decoded plain data back into the type of *example* (a collector's ``init``)."""
    kind = type(example)
    if example is None or isinstance(value, kind):
        return value
    if isinstance(value, dict) and issubclass(kind, dict):
        if isinstance(example, collections.defaultdict):
            return collections.defaultdict(example.default_factory, value)
        return kind(value)
    if isinstance(value, list) and issubclass(kind, (list, set, frozenset, tuple)):
        return kind(value)
    return restore(value, kind)


def plain_seqs(seqs: list[Any]) -> list[Any]:
    """Sequence numbers as msgpack keeps them (the runtime's tuples become lists)."""
    return [list(s) if isinstance(s, tuple) else s for s in seqs]


def plain_batch(seqs: list[Any], items: list[Any]) -> list[Any]:
    """A batch as plain data: ``[seqs, items]``."""
    return [plain_seqs(seqs), list(items)]


def seq_from_plain(value: Any) -> Any:
    """Sequence numbers come back as ints or lists; the runtime uses ints and tuples."""
    return tuple(value) if isinstance(value, list) else value


def restore_items(values: list[Any], annotation: Any) -> list[Any]:
    """A batch of decoded items back into the port's declared type (as it is when already plain)."""
    classes = runtime_classes(annotation)
    if classes is None or set(map(type, values)) <= set(classes) - {list, dict}:
        return values  # plain data already of the declared type: nothing to structure
    return [restore(v, annotation) for v in values]
