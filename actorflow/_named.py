"""Named types: explicitly declared types with a parent and a check, kept in a registry.

``PositiveInt = af.types.define("PositiveInt", int, lambda v: v > 0)`` declares a type usable as an
option, port or product annotation. A value is a ``PositiveInt`` when it passes the parent's check
(``isinstance(v, int)``, or the parent named type's own checks) and then ``v > 0``. Named types are
declared once, at module level, never inline, so the registry says exactly which exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, final

from ._errors import DefinitionError

_REGISTRY: dict[str, NamedType] = {}


@final
class NamedType:
    """A declared type: a *parent* (a class, an annotation or another named type) and a *check*.

    Calling it validates a value and returns it: ``PositiveInt(3) == 3``; ``PositiveInt(0)`` raises
    ``ValueError``. Get one from :func:`define`.
    """

    __slots__ = ("__name__", "__qualname__", "check", "doc", "name", "parent")

    def __init__(self, name: str, parent: Any, check: Callable[[Any], bool] | None, doc: str) -> None:
        self.name = name
        self.__name__ = self.__qualname__ = name
        self.parent = parent
        self.check = check
        self.doc = doc

    def __repr__(self) -> str:
        return self.name

    @property
    def root(self) -> Any:
        """The plain annotation at the bottom of the parent chain (``int`` for ``PositiveInt``)."""
        parent = self.parent
        while isinstance(parent, NamedType):
            parent = parent.parent
        return parent

    def lineage(self) -> list[NamedType]:
        """This type and its named ancestors, nearest first."""
        out: list[NamedType] = [self]
        while isinstance(out[-1].parent, NamedType):
            out.append(out[-1].parent)
        return out

    def problem(self, value: Any) -> str | None:
        """Why *value* is not of this type (parents' checks first), or None when it is."""
        from ._typing import runtime_classes, type_name

        classes = runtime_classes(self.root)
        if classes is not None and (not isinstance(value, classes) or (isinstance(value, bool) and bool not in classes
                                                                        and int in classes)):
            return f"expected {self.name} (a {type_name(self.root)}), got {type(value).__name__} {value!r:.60}"
        for named in reversed(self.lineage()):
            if named.check is None:
                continue
            try:
                ok = named.check(value)
            except Exception as exc:  # a check that raises is a failed check
                return f"{value!r:.60} is not a valid {named.name}: its check raised {type(exc).__name__}: {exc}"
            if not ok:
                return f"{value!r:.60} is not a valid {named.name}" + (f" ({named.doc})" if named.doc else "")
        return None

    def __call__(self, value: Any) -> Any:
        why = self.problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    def is_subtype_of(self, other: NamedType) -> bool:
        """True when *other* is this type or one of its named ancestors."""
        return other in self.lineage()


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
