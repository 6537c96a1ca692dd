"""Named types: explicitly declared types with a parent and a check, kept in a registry.

``PositiveInt = af.types.define("PositiveInt", int, lambda v: v > 0)`` declares a type usable as an
option, port or product annotation. A value is a ``PositiveInt`` when it passes the parent's check
(``isinstance(v, int)``, or the parent named type's own checks) and then ``v > 0``. Named types are
declared once, at module level, never inline, so the registry says exactly which exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._errors import DefinitionError
from ._typing import NamedType

_REGISTRY: dict[str, NamedType] = {}


def define(name: str, parent: Any, check: Callable[[Any], bool] | None = None, *, doc: str = "") -> NamedType:
    """Declare and register a named type.

    Args:
        name: the type's name (an identifier, unique in the registry).
        parent: what it refines: a class (``int``), an annotation, or another named type.
        check: a predicate run after the parent's checks; None adds no check.
        doc: a short phrase shown in error messages ("must be more than zero").

    Raises:
        DefinitionError: the name is taken or not an identifier, or *check* is not callable.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise DefinitionError(f"a named type needs an identifier for a name, got {name!r}")
    if name in _REGISTRY:
        raise DefinitionError(f"named type {name!r} is already defined; pick another name")
    if check is not None and not callable(check):
        raise DefinitionError(f"named type {name!r}: check must be callable, got {check!r}")
    named = NamedType(name, parent, check, doc)
    _REGISTRY[name] = named
    return named


def get(name: str) -> NamedType:
    """The registered named type *name*."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no named type {name!r}; defined: {sorted(_REGISTRY)}") from None


def registry() -> Mapping[str, NamedType]:
    """Every registered named type by name (a read-only view)."""
    return dict(_REGISTRY)


def undefine(name: str) -> None:
    """Remove a named type from the registry (for tests that define throwaway types)."""
    _REGISTRY.pop(name, None)
