"""What the monitor puts on the wire: protocol constants, plain-data values and the server's snapshots.

Everything here is pure: it turns a run (or any value) into JSON/msgpack-friendly data and knows
nothing of sockets or sessions. See ``docs/monitor-protocol.md`` for the messages.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._base import type_name
from .._run import external_sources
from .._storage import converter

if TYPE_CHECKING:
    from .._run import Run

#: Version of the message protocol; sent in the ``hello`` message.
PROTOCOL_VERSION = 1
#: The websocket subprotocol a client proposes to get msgpack binary frames instead of JSON text.
MSGPACK_SUBPROTOCOL = "actorflow.msgpack"
#: The subprotocol name of the default JSON text frames (proposing it is optional).
JSON_SUBPROTOCOL = "actorflow.json"


def wire_fallback(value: Any) -> Any:
    """The ``default=`` hook of the JSON and msgpack encoders: *value* as something they can encode.

    Sets become lists, non-finite floats their ``repr``, attrs instances (and whatever else the
    converter unstructures) plain data; anything else its ``repr``.
    """
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    try:
        out = converter.unstructure(value)
    except Exception:
        return repr(value)
    return out if out is not value else repr(value)


def to_wire(value: Any) -> Any:
    """*value* made of JSON/msgpack-friendly parts (attrs instances become dicts; others repr)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return to_wire(wire_fallback(value))


def graph_description(run: Run) -> dict[str, Any]:
    """The run's graph as sent in ``hello``: tasks (with layer for drawing), edges and options."""
    return describe_graph(run.graph, set(external_sources(run.runtime)), run.flow_name)


def describe_graph(graph: Any, externals: set[str], flow: str) -> dict[str, Any]:
    """A run graph as ``hello`` sends it (see :func:`graph_description`); *externals* names the
    external sources (fed from outside)."""
    layer: dict[str, int] = {}
    tasks = []
    for name, spec in graph.tasks.items():
        ups = [i.upstream for i in spec.inputs] + ([spec.per] if spec.per else [])
        layer[name] = 1 + max((layer[u] for u in ups if u in layer), default=-1)
        tasks.append(
            {
                "name": name,
                "kind": spec.kind,
                "inputs": [i.upstream for i in spec.inputs],
                "streaming": spec.streaming,
                "layer": layer[name],
                "out_type": type_name(spec.out_type),
                "options": to_wire(dict(graph.options.get(name, {}))),
                "concurrency": spec.concurrency,
                "external": name in externals,
                "description": spec.description.split("\n", 1)[0],
            }
        )
    edges = [[i.upstream, t.name] for t in graph.tasks.values() for i in t.inputs]
    return {"flow": flow, "fingerprint": getattr(graph, "fingerprint", None), "tasks": tasks, "edges": edges}


def edge_traffic(run: Run) -> list[dict[str, Any]]:
    """Every edge of the graph (in ``hello``'s order) with the items ``sent`` along it and ``queued`` for its reader.

    A streaming edge reads its mailbox's counters (plus the items a zipping reader took but has
    not matched yet); an edge that hands over a whole product has no mailbox: its items count as
    sent at once when the product is ready, and nothing queues on it.
    """
    return [{"from": e.source, "to": e.target, "sent": e.sent, "queued": e.queued} for e in run.runtime.edge_stats()]


def task_stats(t: Any) -> dict[str, Any]:
    """One task's figures as ``stats`` sends them (*t* a :class:`~actorflow.TaskStats`); ``rate`` is
    :attr:`TaskStats.rate` (items/s in this run, 0 when there is none), the figure every view shows."""
    return {"status": t.status, "items_in": t.items_in, "items_out": t.items_out, "elapsed": t.elapsed,
            "cache": t.cache, "throttled": t.throttled, "rate": t.rate or 0.0, "failures": t.failures,
            "retries": t.retries, "dead_letters": t.dead_letters, "restored": t.restored, "unmatched": t.unmatched,
            "late": t.late, "keys": t.keys, "open_windows": t.open_windows, "watermark": t.watermark}


def stats_message(run: Run) -> dict[str, Any]:
    """A ``stats`` message: the run's status, every task's counters and every edge's traffic right now."""
    summary = run.summary
    return {
        "type": "stats",
        "status": summary.status,
        "paused": run.paused,
        "elapsed": summary.elapsed,
        "tasks": {n: task_stats(t) for n, t in summary.tasks.items()},
        "edges": edge_traffic(run),
    }
