"""Swapping a task's implementation (``Flow.replace``): the new function read against the tasks
defined before it, with the old task's kind and settings, and checked to fit every reader."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .._base import DefinitionError, fits, list_item_type, type_name
from ._analyse import analyse
from ._spec import TaskDef
from ._spec import where as _where

if TYPE_CHECKING:
    from ._flow import Flow


def params_of(fn: Callable[..., Any]) -> Any:
    """*fn*'s parameter names (empty when its signature cannot be read: analysis then says why)."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def replacement(flow: Flow, old: TaskDef, fn: Callable[..., Any]) -> TaskDef:
    """The definition that replaces *old* in *flow* with *fn* (not yet registered).

    Raises:
        DefinitionError: the new function's inputs, options or types do not fit.
    """
    name = old.name
    order = list(flow._tasks)
    before = flow.copy()
    before._tasks = {n: flow._tasks[n] for n in order[: order.index(name)]}
    prefix, _, short = name.rpartition("/")
    wiring: dict[str, str] = {}
    if prefix:  # a task of a nested flow: its parameters name its siblings and the flow's inputs
        for n in order:
            if n.startswith(prefix + "/"):
                wiring.update({i.name: i.upstream for i in flow._tasks[n].inputs})
        for n in before._tasks.copy():
            if n.startswith(prefix + "/"):
                wiring[n[len(prefix) + 1:]] = n
        before._tasks.update({s: flow._tasks[f] for s, f in wiring.items() if f in before._tasks})
    params = params_of(fn)
    kept = None if prefix else {
        i.name: i.upstream for i in old.inputs if i.source and i.source != i.name and i.name in params
    }
    new = analyse(before, fn, old.kind, short, old.settings, kept)  # every setting is kept as it was
    if prefix:
        new = attrs.evolve(
            new, name=name, inputs=tuple(attrs.evolve(i, source=wiring.get(i.name, i.name)) for i in new.inputs)
        )
    if new.streaming != old.streaming or new.depth != old.depth:
        what = "a stream" if old.streaming else "a single product"
        raise DefinitionError(
            f"{_where(flow.name, name)}: the replacement must produce {what} at the same generator level "
            "as the task it replaces"
        )
    for down in flow.downstream(name):
        for inp in flow._tasks[down].inputs:
            if inp.upstream != name:
                continue
            accepted = list_item_type(inp.annotation)[1] if inp.gather else inp.annotation
            if not fits(new.out_type, accepted):
                raise DefinitionError(
                    f"{_where(flow.name, down, name)}: the replacement for {name!r} produces "
                    f"{type_name(new.out_type)}, which does not fit the annotation {type_name(inp.annotation)}"
                )
    return new

