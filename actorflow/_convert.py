"""Values from outside (option values, text, decoded msgpack) turned into declared types.

One cattrs converter serves the whole package: options are structured with it when a flow is
bound, stored values are unstructured with it before msgpack, and items from the gateway are
structured with it. Nothing here knows about tasks or runs.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any

import cattrs

from ._file import File
from ._typing import NamedType, runtime_classes, type_name

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
    if isinstance(value, classes) and not (isinstance(value, bool) and bool not in classes and int in classes):
        if isinstance(value, list | dict | tuple | set) and getattr(annotation, "__args__", None):
            return _structure(value, annotation)
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
    return _structure(value, annotation)


def _structure(value: Any, annotation: Any) -> Any:
    try:
        return converter.structure(value, annotation)
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
                note = next((n for n in getattr(sub, "__notes__", ()) if "@" in str(n) or "index" in str(n)), "")
                idx = getattr(note, "index", None)
                here = f"{where}[{idx!r}]" if idx is not None else where
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
