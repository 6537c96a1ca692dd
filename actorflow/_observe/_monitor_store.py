"""The dashboard of a run that is over, read from its store (``actorflow dashboard --store DIR``).

A short run's live monitor is gone with its process; its store still holds the graph's last
checkpoint (each task's status and counts) and its dead letters. This serves the same dashboard
from that snapshot, read-only: the websocket sends one ``hello`` (with ``read_only: true`` and no
commands) and answers every client message with an error saying so. Nothing is written to the
store; it is read once, before serving starts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import trio
from trio_websocket import ConnectionClosed, wrap_server_stream

from ._monitor_http import (
    PrefixedStream,
    host_name,
    is_loopback,
    read_request,
    request_fields,
    respond,
    serve_static,
    token_ok,
)
from ._monitor_wire import JSON_SUBPROTOCOL, PROTOCOL_VERSION, describe_graph, to_wire, wire_fallback

log = logging.getLogger("actorflow.monitor")


def stored_hello(graph: Any, last: Mapping[str, Any], letters: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``hello`` of a stored run: its graph, each task's last recorded figures, its dead letters
    as ``dead_lettered`` events (the history) and the last of them as its last error.

    Args:
        graph: the run graph (from the pipeline the store records).
        last: what the store says about its last run (``_cli_durable.last_run``).
        letters: the store's dead letters.
    """
    tasks: dict[str, Any] = {}
    for name in graph.tasks:
        t = last["tasks"].get(name) or {}
        dead = int(t.get("failures", 0))
        tasks[name] = {
            "status": t.get("status", "pending"), "items_in": int(t.get("items_in", 0)),
            "items_out": int(t.get("items_out", 0)), "elapsed": 0.0, "cache": t.get("cache"), "throttled": 0.0,
            "rate": 0.0, "failures": dead, "retries": 0, "dead_letters": dead, "restored": 0,
        }
    edges = [{"from": i.upstream, "to": t.name, "sent": tasks[i.upstream]["items_out"], "queued": 0}
             for t in graph.tasks.values() for i in t.inputs]
    history = [
        {"kind": "dead_lettered", "run_id": "", "time": d.get("time", 0.0), "task": d.get("task"),
         "seq": d.get("seq"), "error": d.get("error", "")}
        for d in sorted(letters, key=lambda d: d.get("time", 0.0))
    ]
    run = last["run"]
    return {
        "type": "hello", "protocol": PROTOCOL_VERSION, "run_id": f"checkpoint {run.get('checkpoint')}",
        "encoding": "json", "graph": describe_graph(graph, set(), graph.name), "commands": [],
        "max_message_size": 1 << 16, "read_only": True, "status": run.get("status", "unknown"),
        "paused": False, "elapsed": 0.0, "tasks": tasks, "edges": edges, "history": to_wire(history[-1000:]),
        "last_error": to_wire(history[-1]) if history else None,
    }


async def serve_stored(
    hello: dict[str, Any], host: str, port: int, token: str | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard of a stored run (*hello*, from :func:`stored_hello`) on ``host:port``
    until cancelled; reports the port it listens on through *task_status*."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    text = json.dumps(hello, default=wire_fallback, separators=(",", ":"))

    async def handle(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await _answer(stream, text, host, token)
        except Exception as exc:  # a client must never take the server down
            if not isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | ConnectionClosed):
                log.warning("dashboard: a request failed: %s: %s", type(exc).__name__, exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.sleep_forever()


async def _answer(stream: trio.SocketStream, hello: str, host: str, token: str | None) -> None:
    head = await read_request(stream)
    if head is None:
        return
    conn, request, raw = head
    headers, target = request_fields(request)
    if is_loopback(host) and not is_loopback(host_name(headers.get("host", ""))):
        await respond(stream, conn, 403, b"this dashboard only answers requests for localhost\n")
        return
    if "websocket" not in headers.get("upgrade", "").lower():
        await serve_static(stream, conn, request.method, target, headers, token)
        return
    async with trio.open_nursery() as nursery:
        ws_request = await wrap_server_stream(nursery, PrefixedStream(stream, raw), max_message_size=1 << 16)
        if not token_ok(token, target, headers):
            await ws_request.reject(401, body=b"this dashboard needs a token (?token=...)\n")
        else:
            proposed = ws_request.proposed_subprotocols  # a browser fails a handshake that picks none
            ws = await ws_request.accept(subprotocol=JSON_SUBPROTOCOL if JSON_SUBPROTOCOL in proposed else None)
            try:
                await ws.send_message(hello)
                while True:
                    await ws.get_message()
                    await ws.send_message(json.dumps(
                        {"type": "error", "error": "read-only: this dashboard shows a run from its store"}
                    ))
            except ConnectionClosed:
                pass
        nursery.cancel_scope.cancel()
