"""Type helpers: the `Stream` marker, the `SKIP` sentinel and cheap runtime type checks.

Port types are turned once, at definition time, into a tuple of classes for ``isinstance`` so the
check on the hot path is a single C call. Generic arguments are checked statically when tasks are
wired, and at run time by a *deep check* compiled once per type (:func:`deep_checker`): the
elements of ``list[int]``, keys and values of ``dict[str, int]``, the positions of ``tuple[int, str]``,
the fields of attrs classes and dataclasses, nested. Containers longer than :data:`SAMPLE_LIMIT`
are checked by sample (:func:`sample_indices`). One rule everywhere: ``bool`` is not an ``int``
(nor a ``float`` or ``complex``).
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable
from itertools import chain, islice
from operator import itemgetter
from typing import Any, Final, NewType, TypeAlias, TypeVar, Union, final


@final
class NamedType:
    """A declared type: a *parent* (a class, an annotation or another named type) and a *check*.

    Calling it validates a value and returns it: ``PositiveInt(3) == 3``; ``PositiveInt(0)`` raises
    ``ValueError``. Get one from :func:`define`.
    """

    __slots__ = ("__name__", "__qualname__", "_plan", "check", "doc", "name", "parent")

    def __init__(self, name: str, parent: Any, check: Callable[[Any], bool] | None, doc: str) -> None:
        self.name = name
        self.__name__ = self.__qualname__ = name
        self.parent = parent
        self.check = check
        self.doc = doc
        #: What :meth:`problem` needs, worked out on its first call: the root, its classes, its compiled
        #: check, and the named types with a check, farthest ancestor first.
        self._plan: tuple[Any, tuple[type, ...] | None, Check | None, list[NamedType]] | None = None

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
        plan = self._plan
        if plan is None:
            root = self.root
            checked = [named for named in reversed(self.lineage()) if named.check is not None]
            plan = self._plan = (root, runtime_classes(root), _compiled(root), checked)
        root, classes, compiled, checked = plan
        if classes is not None and not admits(classes, type(value)):
            return f"expected {self.name} (a {type_name(root)}), got {type(value).__name__} {value!r:.60}"
        if compiled is not None and not compiled(value):
            return f"expected {self.name} (a {type_name(root)}): {type_problem(root, value)}"
        for named in checked:
            assert named.check is not None
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


# -- deep checks ------------------------------------------------------------------------------------

#: Containers of up to this many elements are checked whole; longer ones by sample: their first
#: ``SAMPLE_HEAD`` elements and about ``SAMPLE_LIMIT - SAMPLE_HEAD`` more, evenly spread over the rest.
SAMPLE_LIMIT = 64
SAMPLE_HEAD = 32

_NUMBERS = (int, float, complex)
_SEQUENCES = (list, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Set, cabc.MutableSet)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)

Check = Callable[[Any], bool]


def admits(classes: tuple[type, ...], t: type) -> bool:
    """Whether values of class *t* pass an ``isinstance`` check against *classes*, with the one
    rule that ``bool`` is not an ``int``, ``float`` or ``complex``."""
    if not issubclass(t, classes):
        return False
    return not issubclass(t, bool) or any(issubclass(bool, c) and c not in _NUMBERS for c in classes)


def sample_indices(n: int) -> Iterable[int]:
    """The indices a deep check looks at in a container of *n* elements: all up to :data:`SAMPLE_LIMIT`;
    beyond, the first :data:`SAMPLE_HEAD`, every ``(n - SAMPLE_HEAD) // (SAMPLE_LIMIT - SAMPLE_HEAD)``-th
    after them, and the last."""
    if n <= SAMPLE_LIMIT:
        return range(n)
    step = _step(n)
    return [*range(SAMPLE_HEAD), *range(SAMPLE_HEAD, n, step), n - 1]


def _step(n: int) -> int:
    """The stride of the sampled part of a container of *n* > :data:`SAMPLE_LIMIT` elements."""
    return (n - SAMPLE_HEAD) // (SAMPLE_LIMIT - SAMPLE_HEAD)


def _sample(value: Any) -> Any:
    """The elements of a sized container that a deep check looks at (see :func:`sample_indices`)."""
    n = len(value)
    if n <= SAMPLE_LIMIT:
        return value
    step = _step(n)
    if type(value) is list or type(value) is tuple:
        return value[:SAMPLE_HEAD] + value[SAMPLE_HEAD::step] + value[-1:]  # type: ignore[operator]
    return [*islice(value, SAMPLE_HEAD), *islice(value, SAMPLE_HEAD, None, step), *islice(value, n - 1, None)]


def _leaf(classes: tuple[type, ...]) -> Check:
    """A check that a value's class is admitted by *classes* (remembering admitted classes)."""
    ok: set[type] = {c for c in classes if c is not bool or bool in classes}

    def check(value: Any) -> bool:
        t = type(value)
        if t in ok:
            return True
        if admits(classes, t):
            ok.add(t)
            return True
        return False

    check.admitted = ok  # type: ignore[attr-defined]  # lets a container check its elements' classes in one C pass
    return check


def _elements(cls: type, elem: Check | None) -> Check:
    """A check of a sized container of class *cls* whose (sampled) elements pass *elem*."""
    if elem is None:
        return lambda value: isinstance(value, cls)
    return lambda value: isinstance(value, cls) and _all(elem, _sample(value))


def _all(check: Check | None, values: Iterable[Any]) -> bool:
    """Whether every value passes *check* (None: no check); scalar checks in one C pass over the
    classes. *values* is read twice at most: a container, a view or a list, never an iterator."""
    if check is None:
        return True
    ok: set[type] | None = getattr(check, "admitted", None)
    if ok is not None and set(map(type, values)) <= ok:
        return True
    return all(map(check, values))


def _mapping(cls: type, key: Check | None, val: Check | None) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, cls):
            return False
        value = typing.cast(cabc.Mapping[Any, Any], value)
        if len(value) <= SAMPLE_LIMIT:
            return _all(key, value.keys()) and _all(val, value.values())
        keys = _sample(value.keys())
        return _all(key, keys) and _all(val, [value[k] for k in keys])

    return check


def _fixed_tuple(checks: list[Check | None]) -> Check:
    n = len(checks)
    pairs = [(i, c) for i, c in enumerate(checks) if c is not None]
    return lambda value: isinstance(value, tuple) and len(value) == n and all(c(value[i]) for i, c in pairs)


def record_fields(cls: type) -> list[tuple[str, Any]]:
    """An attrs class's or dataclass's fields and their annotations ([] when they cannot be resolved)."""
    import attrs

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an unresolvable forward reference: the fields are not checked
        return []
    names = [f.name for f in attrs.fields(cls)] if attrs.has(cls) else [f.name for f in dataclasses.fields(cls)]
    return [(name, hints[name]) for name in names if name in hints]


def _is_record(tp: Any) -> bool:
    import attrs

    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def _record(cls: type, memo: dict[Any, Check | None]) -> Check:
    fields: list[tuple[str, Check]] = []
    memo[cls] = lambda value: isinstance(value, cls) and all(c(getattr(value, n)) for n, c in fields)
    for name, annotation in record_fields(cls):
        check = _full(annotation, memo)
        if check is not None:
            fields.append((name, check))
    return memo[cls]  # type: ignore[return-value]


def _full(tp: Any, memo: dict[Any, Check | None]) -> Check | None:
    """A check of everything *tp* says about a value (its class included); None: any value passes."""
    if isinstance(tp, NamedType):
        named = tp
        return lambda value: named.problem(value) is None
    tp = _strip(tp)
    if _is_record(tp):
        return memo[tp] if tp in memo else _record(tp, memo)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        members = [_full(m, memo) for m in args]
        if any(m is None for m in members):
            return None
        checks = typing.cast(list[Check], members)
        return lambda value: any(c(value) for c in checks)
    if origin is typing.Literal:
        return lambda value: any(type(value) is type(a) and value == a for a in args)
    classes = runtime_classes(tp)
    if classes is None:
        return None
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return _elements(tuple, _full(args[0], memo))
        if args == ((),):
            return lambda value: value == ()
        return _fixed_tuple([_full(a, memo) for a in args])
    if origin in _SEQUENCES and args and isinstance(origin, type):
        return _elements(origin, _full(args[0], memo))
    if origin in _MAPPINGS and len(args) == 2 and isinstance(origin, type):
        return _mapping(origin, _full(args[0], memo), _full(args[1], memo))
    return _leaf(classes)


_COMPILED: dict[Any, Check | None] = {}


def _compiled(tp: Any) -> Check | None:
    try:
        return _COMPILED[tp]
    except KeyError:
        check = _COMPILED[tp] = _full(tp, {})
        return check
    except TypeError:  # an unhashable annotation (Annotated metadata): compiled each time
        return _full(tp, {})


def deep_checker(tp: Any) -> Check | None:
    """A check of what an ``isinstance`` check of :func:`runtime_classes` does not cover, or None.

    Compiled once per type. None for plain classes (``int``, ``str``, a user class; bool is refused
    for int by :func:`admits`) and for types nothing is known about (``Any``, a type variable).
    """
    if isinstance(tp, NamedType) or not _needs_deep(tp):
        return None
    return _compiled(tp)


def _needs_deep(tp: Any) -> bool:
    tp = _strip(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_needs_deep(m) for m in args)
    if origin is typing.Literal or _is_record(tp):
        return True
    return bool(args) and origin in (tuple, *_SEQUENCES, *_MAPPINGS)


BatchCheck = Callable[[list[Any]], bool]
_BATCH: dict[Any, BatchCheck | None] = {}

def batch_checker(tp: Any) -> BatchCheck | None:
    """:func:`deep_checker` for a whole batch of values already of *tp*'s outer class (None: none needed).

    Containers of scalars (``list[int]``, ``dict[str, int]``, ``tuple[float, ...]``) are checked
    with one C pass over the classes of all the batch's elements; anything else item by item.
    """
    try:
        return _BATCH[tp]
    except KeyError:
        pass
    except TypeError:
        return _make_batch(tp)
    check = _BATCH[tp] = _make_batch(tp)
    return check


def _make_batch(tp: Any) -> BatchCheck | None:
    single = deep_checker(tp)
    if single is None:
        return None
    stripped = _strip(tp)
    origin, args = typing.get_origin(stripped), typing.get_args(stripped)
    leaves: list[Any] = []
    if origin in (list, set, frozenset) and len(args) == 1:
        leaves = [args[0]]
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        leaves = [args[0]]
    elif origin is dict and len(args) == 2:
        leaves = list(args)
    elif origin is tuple and args and args[-1] is not Ellipsis and args != ((),):
        return _fixed_tuples(single, args)
    checks = [_compiled(a) for a in leaves]
    oks: list[set[type]] = [getattr(c, "admitted", None) or set() for c in checks]
    if not leaves or not all(oks) or any(isinstance(a, NamedType) for a in leaves):
        return lambda items: all(map(single, items))
    if len(oks) == 1:
        ok = oks[0]

        def elements(items: list[Any]) -> bool:
            small = max(map(len, items), default=0) <= SAMPLE_LIMIT
            return (small and set(map(type, chain.from_iterable(items))) <= ok) or all(map(single, items))

        return elements
    ok_keys, ok_values = oks

    def mappings(items: list[Any]) -> bool:
        if max(map(len, items), default=0) <= SAMPLE_LIMIT:
            keys = set(map(type, chain.from_iterable(items)))
            if keys <= ok_keys and set(map(type, chain.from_iterable(map(dict.values, items)))) <= ok_values:
                return True
        return all(map(single, items))

    return mappings


def _fixed_tuples(single: Check, args: tuple[Any, ...]) -> BatchCheck:
    """A batch check of fixed-length tuples (``tuple[str, float]``): with scalar fields, one C pass
    over the classes at each position; otherwise (or when one pass fails) item by item."""
    checks = [_compiled(a) for a in args]
    oks: list[set[type] | None] = [getattr(c, "admitted", None) for c in checks]
    if any(ok is None for ok in oks) or any(isinstance(a, NamedType) for a in args):
        return lambda items: all(map(single, items))
    n = len(args)

    def fixed(items: list[Any]) -> bool:
        if set(map(len, items)) <= {n} and all(
            set(map(type, map(itemgetter(i), items))) <= ok for i, ok in enumerate(oks)  # type: ignore[operator]
        ):
            return True
        return all(map(single, items))

    return fixed


def type_problem(tp: Any, value: Any, path: str = "") -> str | None:
    """Why *value* does not fit *tp*, naming the offending element's path (``[1]``, ``["n"]``, ``.x``), or None.

    Agrees with the deep check (it looks at the same sampled elements).
    """
    check = _compiled(tp)
    if check is None or check(value):
        return None
    where = path or "value"
    if isinstance(tp, NamedType):
        return f"{where}: {tp.problem(value)}"
    why = _part_problem(_strip(tp), value, path, where)
    if why is not None:
        return why
    return f"{where}: expected {type_name(tp)}, got {type(value).__qualname__} {value!r:.40}"


def _part_problem(tp: Any, value: Any, path: str, where: str) -> str | None:
    """The problem of the first element or field of *value* that does not fit *tp*'s parts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_record(tp) and isinstance(value, tp):
        for name, annotation in record_fields(tp):
            if (why := type_problem(annotation, getattr(value, name), f"{path}.{name}")) is not None:
                return why
    elif origin is tuple and args and isinstance(value, tuple) and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            return f"{where}: expected {type_name(tp)} ({len(args)} elements), got {len(value)} elements"
        for i, (a, x) in enumerate(zip(args, value, strict=True)):
            if (why := type_problem(a, x, f"{path}[{i}]")) is not None:
                return why
    elif origin in (*_SEQUENCES, tuple) and args and isinstance(origin, type) and isinstance(value, origin):
        elems = value if isinstance(value, cabc.Sequence) else list(typing.cast(Iterable[Any], value))
        for i in sample_indices(len(elems)):
            if (why := type_problem(args[0], elems[i], f"{path}[{i}]")) is not None:
                return why
    elif origin in _MAPPINGS and len(args) == 2 and isinstance(value, origin):
        keys = list(value) if len(value) <= SAMPLE_LIMIT else _sample(value.keys())
        for k in keys:
            if (why := type_problem(args[0], k, f"{path} key {k!r:.40}".lstrip())) is not None:
                return why
            if (why := type_problem(args[1], value[k], f"{path}[{k!r:.40}]")) is not None:
                return why
    return None
