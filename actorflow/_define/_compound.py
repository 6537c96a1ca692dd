"""Compound flows: a flow used as a task inside another flow.

The inner flow declares what it needs from outside with ``inner.input(name, item_type)``; its
tasks read that input like any other task. ``outer.add(inner, name="clean", inputs={"raw":
"numbers"})`` copies the inner tasks into the outer flow under the path ``clean/<task>`` (so their
options are set as ``{"clean/<task>": {...}}`` and their events carry that path), wires each input
to the named outer task, and lets outer tasks read the inner flow's output (its last task, or
``output=``) under the name ``clean``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._base import DefinitionError, fits, type_name

if TYPE_CHECKING:
    from ._flow import Flow
    from ._spec import TaskDef


def inline(
    outer: Flow,
    inner: Flow,
    name: str,
    inputs: Mapping[str, str | Callable[..., Any]] | None,
    output: str | None,
) -> TaskDef:
    """Copy *inner*'s tasks into *outer* under ``name/``; returns the output task's definition."""
    where = f"flow {outer.name!r}, nested flow {name!r}"
    if not isinstance(name, str) or not name.isidentifier():
        raise DefinitionError(f"flow {outer.name!r}: a nested flow needs an identifier name, got {name!r}")
    if name in outer._tasks or name in outer._aliases:
        raise DefinitionError(f"{where}: a task with this name is already defined")
    inputs = dict(inputs or {})
    holes = {t.name: t for t in inner._tasks.values() if t.kind == "input"}
    missing, extra = sorted(set(holes) - set(inputs)), sorted(set(inputs) - set(holes))
    if missing or extra:
        raise DefinitionError(
            f"{where}: inputs must wire exactly the inner flow's inputs {sorted(holes)}"
            + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else "")
        )
    mapping: dict[str, str] = {}
    offsets: set[int] = set()
    for hole, ref in inputs.items():
        up = outer._get(outer.task_name(ref) if not isinstance(ref, str) else outer._aliases.get(ref, ref))
        want = holes[hole]
        if up.streaming != want.streaming:
            kind = "a stream" if want.streaming else "a single product"
            raise DefinitionError(f"{where}: input {hole!r} needs {kind}, but {up.name!r} is not one")
        if not fits(up.out_type, want.out_type):
            raise DefinitionError(
                f"{where}: input {hole!r} takes {type_name(want.out_type)}, but {up.name!r} produces "
                f"{type_name(up.out_type)}"
            )
        mapping[hole] = up.name
        if up.streaming:
            offsets.add(up.depth - want.depth)
    if len(offsets) > 1:
        raise DefinitionError(f"{where}: its stream inputs come from different generator levels")
    offset = offsets.pop() if offsets else 0
    body = [t for t in inner._tasks.values() if t.kind != "input"]
    if not body:
        raise DefinitionError(f"{where}: the inner flow has no tasks")
    for t in body:
        mapping[t.name] = f"{name}/{t.name}"
    out_name = output or body[-1].name
    if out_name not in mapping or out_name in holes:
        raise DefinitionError(f"{where}: output {out_name!r} is not a task of flow {inner.name!r}")
    for t in body:
        new = attrs.evolve(
            t,
            name=mapping[t.name],
            inputs=tuple(attrs.evolve(i, source=mapping[i.upstream]) for i in t.inputs),
            settings=attrs.evolve(t.settings, per=mapping[t.per]) if t.per is not None else t.settings,
            depth=t.depth + offset if t.streaming else t.depth,
        )
        outer._tasks[new.name] = new
    outer._aliases[name] = mapping[out_name]
    return outer._tasks[mapping[out_name]]
