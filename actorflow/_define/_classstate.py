"""Task classes that keep state in their instance, found from their source (for executors).

On an executor every batch runs on a new instance of a task class, in a worker; state kept in
``self`` between calls would silently start over with each batch. :func:`stateful` tells such a
class from its source so that the definition (or the run choosing the executor) refuses it;
``_executors.run_batch`` catches, at run time, what the source does not show.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from .._base import target_of

#: Methods that change a container in place: ``self.seen.append(x)`` keeps state as surely as ``self.n += 1``.
_MUTATORS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "add", "discard", "update", "setdefault",
    "appendleft", "extendleft", "popleft", "sort", "reverse", "__setitem__", "__delitem__", "__iadd__",
})


def stateful(fn: Callable[..., Any]) -> str | None:
    """Why the task class behind *fn* cannot run on an executor (it keeps state in its instance), or None.

    On an executor every batch runs on a new instance (in a worker thread, process or Dask
    worker), so attributes that ``run`` (or another method but ``__init__``) changes would reset
    between batches without a word: such a class is refused. Read from the class's source: an
    assignment, augmented assignment or ``del`` of ``self.<attr>`` (or of a part of it,
    ``self.counts[k] += 1``), or an in-place method call on one (``self.seen.append(x)``). A
    class whose source cannot be read is checked at run time instead (:func:`run_batch`).
    """
    cls = target_of(fn)
    if not isinstance(cls, type):
        return None
    changed = _changed_attributes(cls)
    if not changed:
        return None
    where_, attr = changed[0]
    return (
        f"task class {cls.__qualname__} keeps state in its instance between calls ({where_}() changes self.{attr}); "
        "on an executor each batch runs on a new instance in a worker, so that state would reset between "
        "batches: run it inline (no executor), keep the state downstream in a collector, or set up what it "
        "reuses (a client, a model) in __init__"
    )


def _changed_attributes(cls: type) -> list[tuple[str, str]]:
    """``(method, attribute)`` for each instance attribute a method of *cls* (or a base) changes, ``__init__`` aside."""
    found: list[tuple[str, str]] = []
    for klass in cls.__mro__:
        if klass.__module__.startswith("actorflow.") or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (built in a REPL or by exec): see run_batch
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node in body:
            if isinstance(node, ast.FunctionDef) and node.name != "__init__" and node.args.args:
                self_name = node.args.args[0].arg
                found += [(node.name, attr) for attr in _self_changes(node, self_name)]
    return found


def _self_changes(fn: ast.FunctionDef, self_name: str) -> list[str]:
    """The attributes of *self_name* that *fn* assigns, deletes or changes in place."""

    def root_attr(target: ast.expr) -> str | None:
        """``x`` when *target* is ``self.x`` or a part of it (``self.x[k]``, ``self.x.y``)."""
        attr = None
        while isinstance(target, ast.Attribute | ast.Subscript):
            if isinstance(target, ast.Attribute):
                attr = target.attr
            target = target.value
        return attr if isinstance(target, ast.Name) and target.id == self_name else None

    out: list[str] = []
    for node in ast.walk(fn):  # nested functions too: a helper defined in run() that changes self
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = [t for target in node.targets for t in _unpacked(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            targets = [node.func.value]
        out += [a for a in map(root_attr, targets) if a is not None]
    return out


def _unpacked(target: ast.expr) -> list[ast.expr]:
    """The targets of ``a, (b, *c) = ...``: every name or attribute assigned."""
    if isinstance(target, ast.Tuple | ast.List):
        return [t for elt in target.elts for t in _unpacked(elt)]
    if isinstance(target, ast.Starred):
        return _unpacked(target.value)
    return [target]
