"""JSON text for products and sink lines: always valid JSON, one rule for floats JSON has no number for.

``json.dumps`` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default, which is not JSON: most
readers reject it. Here such a float is written as the **string** ``"NaN"``, ``"Infinity"`` or
``"-Infinity"`` (the rule of protobuf's JSON mapping): the value is not lost and a reader that
expects a number fails loudly instead of reading a null as "missing". ``actorflow run --json`` and
:class:`~actorflow.JsonLinesSink` both follow it.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._convert import converter

__all__ = ["NON_FINITE", "dumps", "json_ready"]

#: How non-finite floats are written.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

_KEYS = (str, int, float, type(None))


def _float(value: float) -> Any:
    return value if math.isfinite(value) else NON_FINITE[repr(value)]


#: Ints this long are written by :func:`dumps` through ``decimal`` (``str()`` refuses past 4,300 digits).
_LONG_BITS = 4096
_MARK = "\x00actorflow-int:"


def json_ready(value: Any) -> Any:
    """*value* with what JSON cannot hold made plain: non-finite floats as strings (see the module),
    dict keys that are no JSON key (tuples…) as their repr, sequences (a spilled stream) as lists."""
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _LONG_BITS:
        return _MARK + format(int(value), "x")  # written as its digits by dumps()
    if isinstance(value, Mapping):
        return {
            (_float(k) if isinstance(k, float) else k) if isinstance(k, _KEYS) else repr(k): json_ready(v)
            for k, v in value.items()
        }
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray | memoryview):
        return [json_ready(v) for v in value]
    return value


def _unstructured(value: Any) -> Any:
    try:
        plain = converter.unstructure(value)
    except Exception:  # an exotic value still prints
        return repr(value)
    return repr(value) if plain is value else plain  # bytes, sets…: JSON has no type for them


def dumps(value: Any, default: Callable[[Any], Any] = _unstructured, **kwargs: Any) -> str:
    """*value* as JSON text (never ``NaN``): values JSON has no type for go through *default*
    (cattrs' unstructuring; their repr when that gives nothing plain)."""
    text = json.dumps(json_ready(value), default=lambda v: json_ready(default(v)), allow_nan=False, **kwargs)
    if "\\u0000actorflow-int:" in text:  # ints of any size: JSON numbers have no bound
        text = re.sub(r'"\\u0000actorflow-int:(-?[0-9a-f]+)"', lambda m: str(decimal.Decimal(int(m[1], 16))), text)
    return text
