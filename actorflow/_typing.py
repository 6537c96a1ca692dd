"""Type helpers: the `Stream` marker, the `SKIP` sentinel and cheap runtime type checks.

Port types are turned once, at definition time, into a tuple of classes for ``isinstance`` so the
check on the hot path is a single C call. Generic arguments are checked statically when tasks are
wired, and at run time only the outer class is checked (``list[int]`` checks ``list``).
"""

from __future__ import annotations

import collections.abc as cabc
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Final, NewType, TypeAlias, TypeVar, Union, final


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


T = TypeVar("T")

#: Return annotation of a source or generator task: ``def numbers() -> af.Stream[int]``.
#: It accepts both sync and async generator functions.
Stream: TypeAlias = Union[cabc.Iterable[T], cabc.AsyncIterable[T]]  # noqa: UP007


@final
class _Skip:
    """Type of :data:`SKIP`."""

    _instance: _Skip | None = None

    def __new__(cls) -> _Skip:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "af.SKIP"

    def __reduce__(self) -> str:
        return "SKIP"


#: Return this from a task to drop the current item: nothing is sent downstream for it.
SKIP: Final = _Skip()

#: Annotate a source's parameter with this to receive, on resume, how many items were consumed.
Cursor = NewType("Cursor", int)

#: Annotate a task's or sink's parameter with this to receive each item's sequence number
#: (an int, or a tuple of ints for items yielded by generator tasks).
Seq = NewType("Seq", object)

_STREAM_ORIGINS = (
    cabc.Iterable,
    cabc.Iterator,
    cabc.Generator,
    cabc.AsyncIterable,
    cabc.AsyncIterator,
    cabc.AsyncGenerator,
)
_NONE_TYPE = type(None)


def stream_item_type(annotation: Any) -> tuple[bool, Any]:
    """Tell whether a return annotation declares a stream, and of what item type.

    Returns:
        ``(True, T)`` for ``Stream[T]``, ``Iterator[T]``, ``AsyncIterator[T]``, generators and the
        like; ``(False, annotation)`` otherwise.
    """
    origin = typing.get_origin(annotation)
    if origin in _STREAM_ORIGINS:
        args = typing.get_args(annotation)
        return True, (args[0] if args else Any)
    if origin in (Union, types.UnionType):
        members = typing.get_args(annotation)
        if members and all(typing.get_origin(m) in _STREAM_ORIGINS for m in members):
            items = {(typing.get_args(m) or (Any,))[0] for m in members}
            return True, (items.pop() if len(items) == 1 else Union[tuple(items)])  # noqa: UP007
    if annotation in _STREAM_ORIGINS:
        return True, Any
    return False, annotation


def list_item_type(annotation: Any) -> tuple[bool, Any]:
    """Tell whether an annotation is ``list[T]`` (a *final* input), and of what item type."""
    if typing.get_origin(annotation) is list:
        args = typing.get_args(annotation)
        return True, (args[0] if args else Any)
    if annotation is list:
        return True, Any
    return False, annotation


def _strip(tp: Any) -> Any:
    while True:
        if isinstance(tp, NamedType):
            tp = tp.root
        elif typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif hasattr(tp, "__supertype__"):  # typing.NewType
            tp = tp.__supertype__
        else:
            return tp


def runtime_classes(tp: Any) -> tuple[type, ...] | None:
    """The classes an ``isinstance`` check of *tp* uses, or None when *tp* is not checked.

    ``float`` admits ``int`` and ``complex`` admits both, as PEP 484 says.
    """
    tp = _strip(tp)
    if tp is Any or tp is object or isinstance(tp, TypeVar) or tp is inspect_empty:
        return None
    if tp is None or tp is _NONE_TYPE:
        return (_NONE_TYPE,)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        out: list[type] = []
        for member in typing.get_args(tp):
            classes = runtime_classes(member)
            if classes is None:
                return None
            out.extend(c for c in classes if c not in out)
        return tuple(out)
    if origin is typing.Literal:
        return tuple({type(v) for v in typing.get_args(tp)})
    if origin is not None:
        return (origin,) if isinstance(origin, type) else None
    if tp is float:
        return (float, int)
    if tp is complex:
        return (complex, float, int)
    if isinstance(tp, type):
        if getattr(tp, "_is_protocol", False) and not getattr(tp, "_is_runtime_protocol", False):
            return None
        return (tp,)
    return None


def fits(produced: Any, accepted: Any) -> bool:
    """Whether every value of type *produced* is acceptable where *accepted* is declared.

    Lenient where it cannot tell (``Any``, type variables, protocols): a definition is refused only
    when the two types surely disagree. A named type is only accepted from itself or a named
    subtype (its checks are not implied by its parent), or from an unannotated producer.
    """
    if isinstance(accepted, NamedType):
        if isinstance(produced, NamedType):
            return produced.is_subtype_of(accepted)
        return produced is Any or produced is inspect_empty
    produced, accepted = _strip(produced), _strip(accepted)
    if accepted is Any or produced is Any or accepted is object or accepted is inspect_empty:
        return True
    if produced is inspect_empty or isinstance(produced, TypeVar) or isinstance(accepted, TypeVar):
        return True
    p_origin, a_origin = typing.get_origin(produced), typing.get_origin(accepted)
    if p_origin in (Union, types.UnionType):
        return all(fits(m, accepted) for m in typing.get_args(produced))
    if a_origin in (Union, types.UnionType):
        return any(fits(produced, m) for m in typing.get_args(accepted))
    acc_classes = runtime_classes(accepted)
    prod_classes = runtime_classes(produced)
    if acc_classes is None or prod_classes is None:
        return True
    if not all(issubclass(p, acc_classes) for p in prod_classes):
        return False
    p_args, a_args = typing.get_args(produced), typing.get_args(accepted)
    if p_origin is not None and a_origin is not None and p_args and a_args and len(p_args) == len(a_args):
        return all(fits(p, a) for p, a in zip(p_args, a_args, strict=True))
    return True


_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")


def type_name(tp: Any) -> str:
    """A short readable name for a type annotation (``int``, ``list[str]``, ``int | None``)."""
    if tp is inspect_empty:
        return "Any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return _QUALIFIED.sub(r"\1", repr(tp))  # list[pathlib.Path] -> list[Path]


class _Empty:
    def __repr__(self) -> str:
        return "<unannotated>"


#: Stand-in for a missing annotation (same role as ``inspect.Parameter.empty``).
inspect_empty: Final = _Empty()
