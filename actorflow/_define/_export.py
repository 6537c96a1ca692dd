"""Exports of a flow's graph: JSON, Mermaid and Graphviz DOT.

Exports describe definitions only (names, kinds, types, option defaults, edges); they never hold
option values given at run time nor secrets.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._base import type_name
from .._storage import converter
from ._spec import REQUIRED

if TYPE_CHECKING:
    from ._flow import Flow


def _default(value: Any) -> Any:
    if value is REQUIRED:
        return None
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    try:
        plain = converter.unstructure(value)  # Path -> "data", enum -> its value, attrs -> dict
        json.dumps(plain)
        return plain
    except (TypeError, ValueError):
        return repr(value)


def describe(flow: Flow) -> dict[str, Any]:
    """The flow as a JSON-ready dict: tasks (kind, types, inputs, options) and edges."""
    tasks = []
    for spec in flow.tasks.values():
        tasks.append({
            "name": spec.name,
            "kind": spec.kind,
            "streaming": spec.streaming,
            "type": type_name(spec.out_type),
            "inputs": [
                {"name": i.name, "type": type_name(i.annotation), "mode": "stream" if i.streaming else "final"}
                for i in spec.inputs
            ],
            "options": [
                {
                    "name": o.name, "type": type_name(o.annotation), "required": o.required,
                    "default": _default(o.default),
                }
                for o in spec.options
            ],
            "concurrency": spec.concurrency,
            "per": spec.per,
            "cache": spec.cache,
            "version": spec.version,
            "doc": spec.description.splitlines()[0] if spec.description else "",
        })
    edges = [
        {"from": up, "to": down, "mode": "stream" if _streaming(flow, up, down) else "final"}
        for up, down in flow.edges
    ]
    return {"flow": flow.name, "tasks": tasks, "edges": edges}


def _streaming(flow: Flow, up: str, down: str) -> bool:
    return any(i.upstream == up and i.streaming for i in flow.tasks[down].inputs)


def to_json(flow: Flow, indent: int | None = 2) -> str:
    """The graph as JSON text."""
    return json.dumps(describe(flow), indent=indent)


_MERMAID_SHAPES = {
    "source": ("([", "])"), "task": ("[", "]"), "collector": ("[(", ")]"), "sink": ("[/", "/]"), "input": ("((", "))"),
}


def to_mermaid(flow: Flow) -> str:
    """The graph as a Mermaid flowchart (solid arrows: streams; dotted: final products)."""
    lines = ["flowchart LR"]
    for spec in flow.tasks.values():
        left, right = _MERMAID_SHAPES[spec.kind]
        node = _mermaid_id(spec.name)
        lines.append(f'    {node}{left}"{spec.name}<br/><i>{spec.kind}: {type_name(spec.out_type)}</i>"{right}')
    for up, down in flow.edges:
        arrow = "-->" if _streaming(flow, up, down) else "-.->"
        lines.append(f"    {_mermaid_id(up)} {arrow} {_mermaid_id(down)}")
    return "\n".join(lines) + "\n"


def _mermaid_id(name: str) -> str:
    return name.replace("/", "__")


_DOT_SHAPES = {"source": "invhouse", "task": "box", "collector": "cylinder", "sink": "house", "input": "circle"}


def to_dot(flow: Flow) -> str:
    """The graph in Graphviz DOT (dashed edges: final products)."""
    name = flow.name.replace('"', '\\"')
    lines = [f'digraph "{name}" {{', "    rankdir=LR;"]
    for spec in flow.tasks.values():
        label = f"{spec.name}\\n{spec.kind}: {type_name(spec.out_type)}".replace('"', '\\"')
        lines.append(f'    "{spec.name}" [shape={_DOT_SHAPES[spec.kind]}, label="{label}"];')
    for up, down in flow.edges:
        style = "" if _streaming(flow, up, down) else " [style=dashed]"
        lines.append(f'    "{up}" -> "{down}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"
