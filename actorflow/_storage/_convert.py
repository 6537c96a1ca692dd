"""Values from outside (option values, text, decoded msgpack) turned into declared types.

One cattrs converter serves the whole package: options are structured with it when a flow is
bound, stored values are unstructured with it before msgpack, and items from the gateway are
structured with it. Nothing here knows about tasks or runs.
"""

from __future__ import annotations

import enum
import os
import typing
from collections.abc import Mapping
from typing import Any

import cattrs

from .._base import File, NamedType, admits, runtime_classes, type_name, type_problem

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a bool, got {value!r}")


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(File, lambda value, _: File.of(value))
    conv.register_unstructure_hook(File, str)
    return conv


converter = _make_converter()


def _exactly(*classes: type) -> Any:
    """A structure hook that accepts only instances of *classes* (never a bool for a number)."""

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, classes) and not (isinstance(value, bool) and bool not in classes):
            return float(typing.cast(float, value)) if classes[0] is float and type(value) is not float else value
        raise TypeError(f"expected {classes[0].__name__}, got {describe(value)}")

    return hook


def _make_strict() -> cattrs.Converter:
    conv = converter.copy()
    for cls, accepted in ((int, (int,)), (float, (float, int)), (str, (str,)), (bool, (bool,)), (bytes, (bytes,))):
        conv.register_structure_hook(cls, _exactly(*accepted))
    return conv


#: The converter for values inside containers and records (from Python, JSON or TOML): element
#: types are never converted (``"0"`` is not an ``int``, ``True`` is not an ``int``), as on ports.
strict = _make_strict()


def describe(value: Any) -> str:
    """A value for an error message: its type and a repr cut to 60 characters."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def coerce(value: Any, annotation: Any) -> Any:
    """Return *value* as *annotation*, or raise ValueError/TypeError saying why not.

    Values that already have the right type are kept as they are. Text (from ``--set`` or a TOML
    file), mappings (for attrs classes) and lists are structured with cattrs.
    """
    if isinstance(annotation, NamedType):
        return annotation(coerce(value, annotation.root))
    classes = runtime_classes(annotation)
    if classes is None:
        return value
    if isinstance(value, os.PathLike) and not isinstance(value, classes):
        value = os.fspath(value)  # a Path given for an af.File (or a str) option
    if admits(classes, type(value)):
        if isinstance(value, list | dict | tuple | set) and getattr(annotation, "__args__", None):
            return structure_strictly(value, annotation)
        if (why := type_problem(annotation, value)) is not None:  # an attrs class's or dataclass's fields
            raise TypeError(f"expected {type_name(annotation)}, got {describe(value)} ({why})")
        return value
    if isinstance(value, bool) or not isinstance(value, str | Mapping | list | tuple | int):
        raise TypeError(f"expected {type_name(annotation)}, got {describe(value)}")
    if isinstance(value, int) and not any(issubclass(c, float | enum.Enum) for c in classes):
        raise TypeError(f"expected {type_name(annotation)}, got {describe(value)}")
    if isinstance(value, str) and str not in classes and any(
        issubclass(c, list | tuple | set | frozenset) for c in classes
    ):
        raise TypeError(
            f"expected {type_name(annotation)}, got {describe(value)} (give a list, e.g. [1, 2]; "
            "on the command line --set task.option='[1, 2]')"
        )
    if not isinstance(value, str):  # a list for a tuple or set, a mapping for a record: elements as they are
        return structure_strictly(value, annotation)
    return _structure(value, annotation)


def structure_strictly(value: Any, annotation: Any) -> Any:
    """*value* (a container or a mapping of fields) structured as *annotation* with the strict converter.

    Raises:
        ValueError: an element does not have its declared type; the message names its path.
    """
    return _structure(value, annotation, strict)


def _structure(value: Any, annotation: Any, conv: cattrs.Converter = converter) -> Any:
    try:
        return conv.structure(value, annotation)
    except Exception as exc:  # cattrs raises many kinds; all mean "does not fit"
        choices = ""
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            choices = f"; one of {', '.join(repr(m.value) for m in annotation)}"
        raise ValueError(f"expected {type_name(annotation)}, got {describe(value)}{_why(exc)}{choices}") from exc


def _why(exc: Exception) -> str:
    """The useful part of a structuring error: what was wrong, and where inside the value."""
    if type(exc) is ValueError and str(exc):
        return f" ({exc})"
    if isinstance(exc, cattrs.BaseValidationError):
        leaves: list[str] = []

        def walk(group: BaseException, where: str) -> None:
            for sub in getattr(group, "exceptions", ()):
                notes = getattr(sub, "__notes__", ())
                here = where
                for n in notes:
                    if isinstance(n, cattrs.AttributeValidationNote):
                        here = f"{where}.{n.name}"
                    elif isinstance(n, cattrs.IterableValidationNote):
                        here = f"{where}[{n.index!r}]"
                if isinstance(sub, cattrs.BaseValidationError):
                    walk(sub, here)
                else:
                    leaves.append(f"{here or 'value'}: {sub}")

        walk(exc, "")
        if leaves:
            return " (" + "; ".join(leaves[:3]) + ")"
    return ""


def plain(value: Any) -> Any:
    """*value* as plain data for fingerprints (its repr when it has no plain form)."""
    try:
        return converter.unstructure(value)
    except Exception:  # an exotic value still fingerprints by its repr
        return repr(value)
