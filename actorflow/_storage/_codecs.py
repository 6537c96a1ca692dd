"""Codecs for types msgpack has none for: ``af.register_codec(type, encode, decode)``.

A codec turns a value into plain data (``encode``) and back (``decode``). Checkpoints, the product
cache and spill areas (all msgpack, through :mod:`actorflow._storage._codec`) store such a value as an
extension holding the type's name and its plain form, and give back the value itself; the cattrs
converter (option values, gateway items, ``--json`` output) uses the same pair. A value of a
subclass uses its nearest registered class's codec.

Out of the box: :class:`decimal.Decimal` (as its text: exact), :class:`uuid.UUID` (as its text)
and numpy arrays (dtype, shape and raw bytes: exact; arrays of Python objects are refused). numpy
is only looked at when the program has imported it: ``import actorflow`` never imports numpy.
"""

from __future__ import annotations

import decimal
import sys
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ._convert import converter, strict

__all__ = ["Codec", "codec_for", "codec_named", "register_codec"]


@attrs.frozen
class Codec:
    """A registered codec: the class it serves, its stored name, and its encode/decode pair."""

    cls: type
    name: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


_BY_CLASS: dict[type, Codec] = {}
_BY_NAME: dict[str, Codec] = {}

#: The name numpy arrays are stored under (the codec is made once numpy is imported).
NDARRAY = "numpy.ndarray"


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_codec(cls: type, encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> None:
    """Let values of *cls* be stored: *encode* turns one into plain data (None, bool, int, float, str,
    bytes, lists, dicts, tuples of them), *decode* turns that back into an equal value.

    Checkpoints, the cache, spill areas, option values and gateway items use them. Register at
    module level, in the pipeline file or a module it imports, so that a resumed run (and every
    worker process) has the codec before it reads a stored value. Registering a class again
    replaces its codec.

    Raises:
        TypeError: *cls* is not a class, or *encode* or *decode* is not callable.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_codec: expected a class, got {cls!r}")
    for label, fn in (("encode", encode), ("decode", decode)):
        if not callable(fn):
            raise TypeError(f"register_codec({cls.__qualname__}): {label} must be callable, got {fn!r}")
    codec = Codec(cls, _name(cls), encode, decode)
    _BY_CLASS[cls] = _BY_NAME[codec.name] = codec

    def structure(value: Any, _: Any) -> Any:
        return value if isinstance(value, cls) else decode(value)

    for conv in (converter, strict):
        conv.register_structure_hook(cls, structure)
        conv.register_unstructure_hook(cls, encode)


def codec_for(cls: type) -> Codec | None:
    """The codec that stores values of *cls* (its own, its nearest registered base's), or None."""
    found = _BY_CLASS.get(cls)
    if found is not None:
        return found
    if cls.__module__ == "numpy" and cls.__name__ == "ndarray" and "numpy" in sys.modules:
        return _numpy()
    for base in cls.__mro__[1:]:
        if base in _BY_CLASS:
            return _BY_CLASS[base]
    return None


def codec_named(name: str) -> Codec:
    """The codec a stored value names.

    Raises:
        ValueError: no codec of that name is registered in this process.
    """
    found = _BY_NAME.get(name)
    if found is None and name == NDARRAY:
        found = _numpy()
    if found is None:
        raise ValueError(
            f"a stored value of type {name} needs its codec: call af.register_codec({name.rpartition('.')[2]}, "
            "encode, decode) at module level before the run reads it"
        )
    return found


def _numpy() -> Codec:
    import numpy  # only reached when numpy is imported already, or a stored array must be read

    def encode(array: Any) -> Any:
        if array.dtype.hasobject:
            raise TypeError(f"a numpy array of dtype {array.dtype} holds Python objects, which cannot be stored")
        return [array.dtype.str, list(array.shape), numpy.ascontiguousarray(array).tobytes()]

    def decode(plain: Any) -> Any:
        dtype, shape, raw = plain
        return numpy.frombuffer(raw, dtype=numpy.dtype(dtype)).reshape(shape).copy()

    register_codec(numpy.ndarray, encode, decode)
    return _BY_CLASS[numpy.ndarray]


register_codec(decimal.Decimal, str, decimal.Decimal)
register_codec(uuid.UUID, str, uuid.UUID)
