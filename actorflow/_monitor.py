"""The monitor server: a run's graph and live events over websockets, plus the dashboard.

One TCP port serves both: a websocket upgrade request becomes a monitor session (see
``docs/monitor-protocol.md``); a plain ``GET`` is answered with the dashboard's static files.
Nothing a client sends reaches the run except through the few commands below, each checked, and
no client can make the run wait: events and watched items are dropped for a client that falls
behind, never held for it.
"""

from __future__ import annotations

import hmac
import importlib.resources
import inspect
import ipaddress
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import msgpack
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from . import _events as ev
from ._bind import converter
from ._errors import ActorflowError
from ._gateway import external_sources, feed, structure_item, tap
from ._typing import type_name

if TYPE_CHECKING:
    from ._run import Run

log = logging.getLogger("actorflow.monitor")

#: Version of the message protocol; sent in the ``hello`` message.
PROTOCOL_VERSION = 1
#: The websocket subprotocol a client proposes to get msgpack binary frames instead of JSON text.
MSGPACK_SUBPROTOCOL = "actorflow.msgpack"
#: The subprotocol name of the default JSON text frames (proposing it is optional).
JSON_SUBPROTOCOL = "actorflow.json"
DEFAULT_PORT = 8765
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
_MAX_HEAD = 16 * 1024
_HEAD_TIMEOUT = 10.0
_COMMANDS = ("pause", "resume", "cancel", "checkpoint-now", "push", "end", "subscribe", "unsubscribe", "ping")
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class _BadMessage(Exception):
    """A client's message cannot be served; the text goes back to that client only."""


def _fallback(value: Any) -> Any:
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
    return to_wire(_fallback(value))


def graph_description(run: Run) -> dict[str, Any]:
    """The run's graph as sent in ``hello``: tasks (with layer for drawing), edges and options."""
    graph = run.graph
    externals = external_sources(run)
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
    return {"flow": run.flow_name, "fingerprint": getattr(graph, "fingerprint", None), "tasks": tasks, "edges": edges}


def stats_message(run: Run) -> dict[str, Any]:
    """A ``stats`` message: the run's status and every task's counters right now."""
    summary = run.summary
    return {
        "type": "stats",
        "status": summary.status,
        "paused": run.paused,
        "elapsed": summary.elapsed,
        "tasks": {
            n: {"status": t.status, "items_in": t.items_in, "items_out": t.items_out, "elapsed": t.elapsed,
                "cache": t.cache}
            for n, t in summary.tasks.items()
        },
    }


def _is_disconnect(exc: BaseException) -> bool:
    """True when *exc* (or every exception of a group) only says that the peer went away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect(e) for e in exc.exceptions)
    return isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | ConnectionClosed)


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _PrefixedStream(trio.abc.Stream):
    """A stream that first replays bytes already read (the request head), then reads on."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


@final
@attrs.define
class MonitorServer:
    """A running monitor server (from :func:`open_monitor` or ``nursery.start(serve_monitor, ...)``).

    Attributes:
        host: the address it is bound to.
        port: the TCP port it listens on (useful when 0 was asked for).
        clients: how many websocket clients are connected now.
    """

    run: Run
    host: str
    port: int
    token: str | None
    max_message_size: int
    max_clients: int
    stats_interval: float
    clients: int = 0

    @property
    def url(self) -> str:
        """The websocket URL to connect to (with the token, if any)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"ws://{host}:{self.port}/{query}"

    @property
    def http_url(self) -> str:
        """The dashboard's URL (with the token, if any)."""
        return "http" + self.url[2:]

    # -- connection ----------------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection; never raises."""
        try:
            async with stream:
                await self._handle(stream)
        except Exception as exc:  # a bug here must not take the server (or the run) down
            if not _is_disconnect(exc):
                log.exception("monitor: error while serving a connection")

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        raw = bytearray()
        request: Any = None
        with trio.move_on_after(_HEAD_TIMEOUT):
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    await self._respond(stream, conn, 400, b"bad request\n")
                    return
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    raw += data
                    conn.receive_data(data)
                    continue
                request = event
                break
        if not isinstance(request, h11.Request):
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        target = request.target.decode("latin-1")
        if _is_loopback(self.host) and not _is_loopback(_host_name(headers.get("host", ""))):
            # A loopback server is only reached as localhost: this stops DNS-rebinding pages.
            await self._respond(stream, conn, 403, b"this monitor only answers requests for localhost\n")
            return
        upgrade = "websocket" in headers.get("upgrade", "").lower()
        if upgrade:
            await self._websocket(_PrefixedStream(stream, bytes(raw)), target, headers)
        else:
            await self._http(stream, conn, request.method, target, headers)

    def _token_ok(self, target: str, headers: dict[str, str]) -> bool:
        if self.token is None:
            return True
        offered: list[str] = parse_qs(urlsplit(target).query).get("token", [])
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered.append(auth[7:].strip())
        if "x-actorflow-token" in headers:
            offered.append(headers["x-actorflow-token"])
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "actorflow_token":
                offered.append(value)
        want = self.token.encode()
        return any(hmac.compare_digest(o.encode(), want) for o in offered)

    async def _respond(
        self,
        stream: trio.abc.Stream,
        conn: h11.Connection,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: list[tuple[str, str]] | None = None,
        head_only: bool = False,
    ) -> None:
        headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("connection", "close"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            *(extra or []),
        ]
        try:
            out = conn.send(h11.Response(status_code=status, headers=headers))
            if not head_only:
                out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
            out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # e.g. the request itself was unusable: answer by hand
            out = f"HTTP/1.1 {status} error\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            out += body
        await stream.send_all(out)

    async def _http(
        self, stream: trio.abc.Stream, conn: h11.Connection, method: bytes, target: str, headers: dict[str, str]
    ) -> None:
        head_only = method == b"HEAD"
        if method not in (b"GET", b"HEAD"):
            await self._respond(stream, conn, 405, b"only GET is served here\n", extra=[("allow", "GET, HEAD")])
            return
        if not self._token_ok(target, headers):
            await self._respond(stream, conn, 401, b"this monitor needs a token: add ?token=... to the URL\n")
            return
        path = urlsplit(target).path
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        static = importlib.resources.files("actorflow").joinpath("static")
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES or not static.joinpath(name).is_file():
            await self._respond(stream, conn, 404, f"not found: {path}\n".encode(), head_only=head_only)
            return
        body = static.joinpath(name).read_bytes()
        extra = [("content-security-policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:")]
        if self.token is not None:
            extra.append(("set-cookie", f"actorflow_token={self.token}; HttpOnly; SameSite=Strict; Path=/"))
        await self._respond(stream, conn, 200, body, _STATIC_TYPES[suffix], extra, head_only)

    async def _websocket(self, stream: trio.abc.Stream, target: str, headers: dict[str, str]) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream, max_message_size=self.max_message_size)
            origin = headers.get("origin")
            if not self._token_ok(target, headers):
                await request.reject(401, body=b"this monitor needs a token (?token=... or Authorization: Bearer)\n")
            elif origin is not None and urlsplit(origin).netloc != headers.get("host"):
                await request.reject(403, body=b"cross-origin websocket connections are refused\n")
            elif self.clients >= self.max_clients:
                await request.reject(503, body=b"too many monitor clients\n")
            else:
                proposed = request.proposed_subprotocols
                sub = MSGPACK_SUBPROTOCOL if MSGPACK_SUBPROTOCOL in proposed else None
                if sub is None and JSON_SUBPROTOCOL in proposed:
                    sub = JSON_SUBPROTOCOL
                ws = await request.accept(subprotocol=sub)
                self.clients += 1
                try:
                    await _Session(self, ws, binary=sub == MSGPACK_SUBPROTOCOL).serve()
                finally:
                    self.clients -= 1
            nursery.cancel_scope.cancel()


@final
class _Session:
    """One websocket client: hello, then events, stats and watched items; commands in."""

    def __init__(self, server: MonitorServer, ws: WebSocketConnection, binary: bool) -> None:
        self.server = server
        self.run = server.run
        self.ws = ws
        self.binary = binary
        self.taps: dict[str, Any] = {}
        self.nursery: trio.Nursery | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.binary:
            await self.ws.send_message(msgpack.packb(message, default=_fallback))
        else:
            await self.ws.send_message(json.dumps(message, default=_fallback, separators=(",", ":")))

    async def serve(self) -> None:
        events = self.run.events()  # before hello: nothing between the snapshot and the stream is lost
        try:
            hello = {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "run_id": self.run.run_id,
                "encoding": "msgpack" if self.binary else "json",
                "graph": graph_description(self.run),
                "commands": list(_COMMANDS),
                "max_message_size": self.server.max_message_size,
                **{k: v for k, v in stats_message(self.run).items() if k != "type"},
            }
            await self.send(hello)
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._guard, self._events, events)
                nursery.start_soon(self._guard, self._stats)
                await self._receive()
                nursery.cancel_scope.cancel()
        except ConnectionClosed:
            pass
        finally:
            events.close()
            for t in self.taps.values():
                t.close()

    async def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except ConnectionClosed:  # the client went away: end the whole session quietly
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()

    async def _events(self, events: ev.EventStream) -> None:
        async for event in events:
            await self.send({"type": "event", "event": event.to_dict()})
        await self.send(stats_message(self.run))

    async def _stats(self) -> None:
        while not self.run._done.is_set():
            with trio.move_on_after(self.server.stats_interval):
                await self.run._done.wait()
            await self.send(stats_message(self.run))

    async def _receive(self) -> None:
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            msg_id: Any = None
            op: Any = None
            try:
                msg = self._decode(raw)
                msg_id = msg.get("id")
                op = msg.get("op")
                reply = await self._dispatch(op, msg)
            except _BadMessage as exc:
                reply = {"type": "error", "error": str(exc)}
            except Exception as exc:  # a command that went wrong is reported, never raised
                reply = {"type": "error", "error": f"{op!r} failed: {type(exc).__name__}: {exc}"}
            if op is not None and "op" not in reply:
                reply["op"] = op if isinstance(op, str) else repr(op)
            if msg_id is not None:
                reply["id"] = msg_id
            try:
                await self.send(reply)
            except ConnectionClosed:
                return

    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        try:
            msg = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as exc:
            kind = "JSON text" if isinstance(raw, str) else "msgpack binary"
            raise _BadMessage(f"malformed frame: not a valid {kind} message ({type(exc).__name__}: {exc})") from None
        if not isinstance(msg, dict):
            raise _BadMessage(f"malformed message: expected an object with an 'op' field, got {type(msg).__name__}")
        if not isinstance(msg.get("op"), str):
            raise _BadMessage(f"malformed message: 'op' must be a string naming a command; commands: {list(_COMMANDS)}")
        return msg

    async def _dispatch(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        run = self.run
        ack: dict[str, Any] = {"type": "ack"}
        if op == "ping":
            return {"type": "pong"}
        if op in ("pause", "resume", "cancel", "checkpoint-now", "push", "end") and run._done.is_set():
            raise _BadMessage(f"{op!r}: the run has already ended ({run.status})")
        if op == "pause":
            run.pause()
            return {**ack, "paused": True}
        if op == "resume":
            run.resume()
            return {**ack, "paused": False}
        if op == "cancel":
            run.cancel()
            return ack
        if op == "checkpoint-now":
            checkpoint = getattr(run, "checkpoint_now", None)
            if checkpoint is None:
                raise _BadMessage("'checkpoint-now': checkpoints need a store; start the run with one")
            result = checkpoint()
            if inspect.isawaitable(result):
                result = await result
            if result is False:
                raise _BadMessage("'checkpoint-now': checkpoints need a store; start the run with one (store=...)")
            return {**ack, "checkpoint": to_wire(result)}
        if op in ("push", "end"):
            source = self._field(msg, "source", str)
            try:
                f = feed(run, source)
            except KeyError as exc:
                raise _BadMessage(f"{op!r}: {exc.args[0]}") from None
            if op == "end":
                f.close()
                return ack
            return {**ack, "accepted": await self._push(f, msg)}
        if op in ("subscribe", "unsubscribe"):
            task = self._field(msg, "task", str)
            if op == "unsubscribe":
                t = self.taps.pop(task, None)
                if t is None:
                    raise _BadMessage(f"'unsubscribe': not subscribed to {task!r}")
                t.close()
                return ack
            if task in self.taps:
                return {**ack, "already": True}
            try:
                t = tap(run, task)
            except (KeyError, ActorflowError) as exc:
                raise _BadMessage(f"'subscribe': {exc.args[0]}") from None
            self.taps[task] = t
            assert self.nursery is not None
            self.nursery.start_soon(self._guard, self._forward, task, t)
            return ack
        raise _BadMessage(f"unknown command {op!r}; commands: {list(_COMMANDS)}")

    @staticmethod
    def _field(msg: dict[str, Any], name: str, kind: type) -> Any:
        value = msg.get(name)
        if not isinstance(value, kind):
            raise _BadMessage(f"{msg['op']!r} needs a {kind.__name__} field {name!r}, got {value!r}")
        return value

    async def _push(self, f: Any, msg: dict[str, Any]) -> int:
        if "items" in msg:
            items = msg["items"]
            if not isinstance(items, list):
                raise _BadMessage(f"'push': 'items' must be a list, got {type(items).__name__}")
        elif "item" in msg:
            items = [msg["item"]]
        else:
            raise _BadMessage("'push' needs 'item' (one item) or 'items' (a list)")
        values = []
        problems = []
        for i, item in enumerate(items):
            try:
                values.append(structure_item(item, f.item_type))
            except TypeError as exc:
                problems.append(f"item {i}: {exc}")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise _BadMessage(
                f"'push' to {f.source!r} (items of type {type_name(f.item_type)}): nothing was accepted; {shown}"
            )
        for value in values:
            try:
                await f._put(value)
            except ActorflowError as exc:
                raise _BadMessage(f"'push': {exc}") from None
        return len(values)

    async def _forward(self, task: str, t: Any) -> None:
        async for seqs, items in t:
            await self.send({"type": "items", "task": task, "seqs": to_wire(seqs), "items": to_wire(items)})
        if self.taps.get(task) is t:
            del self.taps[task]
            await self.send({"type": "end", "task": task, "dropped": getattr(t, "dropped", 0)})


class MonitorBindError(ActorflowError, OSError):
    """The monitor's address cannot be listened on: in use, not this machine's, or not resolvable.

    Also an :class:`OSError`, which this used to be.
    """


async def bind_monitor(host: str, port: int, token: str | None = None) -> list[trio.SocketListener]:
    """Listen on ``host:port`` for a monitor, ahead of its run; give the sockets to :func:`open_monitor`.

    Raises:
        ActorflowError: a non-loopback *host* without a token, or an empty token.
        MonitorBindError: the address cannot be listened on.
    """
    _check_bind(host, token)
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise MonitorBindError(f"cannot serve the monitor on {where}: {exc.strerror or exc}") from exc


def _check_bind(host: str, token: str | None) -> None:
    if token is not None and (not isinstance(token, str) or not token):
        raise ActorflowError("monitor token must be a non-empty string")
    if not _is_loopback(host) and token is None:
        raise ActorflowError(
            f"refusing to serve the monitor on {host!r} without a token: anyone who can reach it could "
            "control the run. Pass token=... (--monitor-token), or bind 127.0.0.1"
        )


async def serve_monitor(
    run: Run,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_clients: int = 64,
    stats_interval: float = 0.5,
    listeners: Sequence[trio.SocketListener] | None = None,
    task_status: trio.TaskStatus[MonitorServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *run*'s graph, events, controls and dashboard on ``host:port`` until cancelled.

    Start it with ``await nursery.start(af.serve_monitor, run, "127.0.0.1", 0)`` to get the
    :class:`MonitorServer` (and the port chosen), or use :func:`open_monitor`.

    Args:
        run: the run to show (from :func:`open_run`).
        host: the address to bind. Anything but a loopback address needs *token*.
        port: the TCP port; 0 picks a free one.
        token: a secret every connection must present (``?token=``, ``Authorization: Bearer``,
            or the cookie the dashboard page sets).
        max_message_size: the largest message a client may send, in bytes; a larger one closes
            that client's connection with code 1009.
        max_clients: websocket clients served at once; more are refused with HTTP 503.
        stats_interval: seconds between ``stats`` messages.
        listeners: sockets already listening on *host*:*port* (from :func:`bind_monitor`) to
            serve on, instead of binding here; they are closed when serving ends.

    Raises:
        ActorflowError: a non-loopback *host* without a token, or an empty token.
        MonitorBindError: the address cannot be listened on (an :class:`OSError` too).
    """
    server, listeners = await _listen(
        run, host, port, token, max_message_size, max_clients, stats_interval, listeners
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle, listeners)
        task_status.started(server)


async def _listen(
    run: Run,
    host: str,
    port: int,
    token: str | None,
    max_message_size: int,
    max_clients: int,
    stats_interval: float,
    bound: Sequence[trio.SocketListener] | None = None,
) -> tuple[MonitorServer, list[trio.SocketListener]]:
    _check_bind(host, token)
    if not isinstance(max_message_size, int) or max_message_size < 64:
        raise ActorflowError(f"max_message_size must be an int of at least 64 bytes, got {max_message_size!r}")
    listeners = list(bound) if bound else await bind_monitor(host, port, token)
    port = listeners[0].socket.getsockname()[1]
    return MonitorServer(run, host, port, token, max_message_size, max_clients, stats_interval), listeners


@asynccontextmanager
async def open_monitor(
    run: Run,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_clients: int = 64,
    stats_interval: float = 0.5,
    listeners: Sequence[trio.SocketListener] | None = None,
) -> AsyncIterator[MonitorServer]:
    """Serve the monitor for the duration of an ``async with`` block; see :func:`serve_monitor`.

    Configuration and bind errors are raised on entering the block, as they are.

    Example:
        async with af.open_run(flow) as run, af.open_monitor(run, port=0) as monitor:
            print("dashboard at", monitor.http_url)
            await run.result()
    """
    server, listeners = await _listen(
        run, host, port, token, max_message_size, max_clients, stats_interval, listeners
    )
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle, listeners)
        try:
            yield server
        except BaseException as exc:  # re-raised below as it is, not wrapped in an exception group
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
