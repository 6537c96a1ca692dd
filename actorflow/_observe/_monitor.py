"""The monitor server: a run's graph and live events over websockets, plus the dashboard.

One TCP port serves all of it: a websocket upgrade request becomes a monitor session (see
``docs/monitor-protocol.md``); ``GET /metrics`` is answered with the run's Prometheus metrics
(``_monitor_metrics``); any other plain ``GET`` with the dashboard's static files.
Nothing a client sends reaches the run except through the few commands of the session's
command table, each checked, and no client can make the run wait: events and watched items are
dropped for a client that falls behind, never held for it.

This module is the server and its entry points. Its parts: ``_monitor_http`` (request heads,
host and token checks, the dashboard's files), ``_monitor_session`` (one websocket client and the
command table), ``_monitor_wire`` (protocol constants and the data sent) and ``_monitor_metrics``
(the Prometheus exposition). Imports run one way: ``_monitor`` -> ``_monitor_metrics`` ->
``_monitor_http``, and ``_monitor`` -> ``_monitor_session`` -> ``_monitor_wire``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import ConnectionClosed, wrap_server_stream

from .._base import ActorflowError
from ._monitor_http import (
    HEAD_TIMEOUT,
    PrefixedStream,
    host_name,
    is_loopback,
    raw_response,
    read_request,
    request_fields,
    respond,
    serve_static,
    token_ok,
)
from ._monitor_metrics import METRICS_PATH, MetricsCollector, answer
from ._monitor_session import Session
from ._monitor_wire import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL
from ._monitor_wire import PROTOCOL_VERSION as PROTOCOL_VERSION

if TYPE_CHECKING:
    from .._run import Run

log = logging.getLogger("actorflow.monitor")

DEFAULT_PORT = 8765
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: TCP connections a monitor serves at once: well under a process's usual 1024 file descriptors, so
#: that clients can never take the descriptors the run needs (its store, spill files, workers).
DEFAULT_MAX_CONNECTIONS = 128


def _is_disconnect(exc: BaseException) -> bool:
    """True when *exc* (or every exception of a group) only says that the peer went away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect(e) for e in exc.exceptions)
    return isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError | ConnectionClosed)


@final
@attrs.define
class MonitorServer:
    """A running monitor server (from :func:`open_monitor` or ``nursery.start(serve_monitor, ...)``).

    Attributes:
        host: the address it is bound to.
        port: the TCP port it listens on (useful when 0 was asked for).
        clients: how many websocket clients are connected now.
        metrics: the run's Prometheus metrics, served at ``GET /metrics``.
    """

    run: Run
    host: str
    port: int
    token: str | None
    max_message_size: int
    max_clients: int
    stats_interval: float
    metrics: MetricsCollector
    clients: int = 0
    #: TCP connections served at once (websocket clients, page loads, scrapes); more are refused.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Seconds a connection may stay silent before sending its request (then it is dropped).
    idle_timeout: float = HEAD_TIMEOUT
    #: TCP connections open now.
    connections: int = 0
    #: Connections refused or dropped so far (over the limit, idle, or a request that failed).
    refused: int = 0
    _last_warning: float = -1e9

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

    @property
    def metrics_url(self) -> str:
        """The URL of the Prometheus metrics (``GET /metrics``; with a token, send it as a bearer token)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{METRICS_PATH}"

    # -- connection ----------------------------------------------------------------------------

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection; never raises (the run never depends on a client)."""
        if self.connections >= self.max_connections:
            await self._refuse(stream)
            return
        self.connections += 1
        try:
            async with stream:
                await self._handle(stream)
        except Exception as exc:  # a bug here must not take the server (or the run) down
            if not _is_disconnect(exc):
                self.refused += 1
                self._warn(f"monitor: a request failed and its connection was closed: {type(exc).__name__}: {exc}")
        finally:
            self.connections -= 1

    async def _refuse(self, stream: trio.SocketStream) -> None:
        """Answer 503 (without waiting on the client for long) and close: too many connections."""
        self.refused += 1
        self._warn(f"monitor: refusing connections over the limit of {self.max_connections} "
                   f"(max_connections; {self.refused} refused so far); the run goes on")
        with trio.move_on_after(1.0):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_all(raw_response(503, b"too many connections to this monitor\n"))
        await trio.aclose_forcefully(stream)

    def _warn(self, text: str) -> None:
        """Log *text*, at most once a second (a flood of clients must not flood the log either)."""
        now = trio.current_time()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning(text)

    async def _handle(self, stream: trio.SocketStream) -> None:
        head = await read_request(stream, self.idle_timeout)
        if head is None:
            return
        try:
            await self._answer(stream, head)
        except Exception as exc:
            if _is_disconnect(exc):
                raise
            self.refused += 1
            self._warn(f"monitor: answering {head[1].target[:200]!r} failed: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await respond(stream, head[0], 500, b"internal error in the monitor\n", fallback=True)

    async def _answer(self, stream: trio.SocketStream, head: tuple[Any, Any, bytes]) -> None:
        conn, request, raw = head
        headers, target = request_fields(request)
        if is_loopback(self.host) and not is_loopback(host_name(headers.get("host", ""))):
            # A loopback server is only reached as localhost: this stops DNS-rebinding pages.
            await respond(stream, conn, 403, b"this monitor only answers requests for localhost\n")
            return
        upgrade = "websocket" in headers.get("upgrade", "").lower()
        if upgrade:
            await self._websocket(PrefixedStream(stream, raw), target, headers)
        elif urlsplit(target).path == METRICS_PATH:
            await answer(self.metrics, stream, conn, request.method, target, headers, self.token)
        else:
            await serve_static(stream, conn, request.method, target, headers, self.token)

    async def _websocket(self, stream: trio.abc.Stream, target: str, headers: dict[str, str]) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream, max_message_size=self.max_message_size)
            origin = headers.get("origin")
            if not token_ok(self.token, target, headers):
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
                    await Session(self, ws, binary=sub == MSGPACK_SUBPROTOCOL).serve()
                finally:
                    self.clients -= 1
            nursery.cancel_scope.cancel()


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
    return await _open_listeners(host, port)


async def _open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """The sockets of :func:`bind_monitor`, once its host and token are checked."""
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise MonitorBindError(f"cannot serve the monitor on {where}: {exc.strerror or exc}") from exc


def _check_bind(host: str, token: str | None) -> None:
    if token is not None and (not isinstance(token, str) or not token):
        raise ActorflowError("monitor token must be a non-empty string")
    if not is_loopback(host) and token is None:
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
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = HEAD_TIMEOUT,
    task_status: trio.TaskStatus[MonitorServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *run*'s graph, events, controls and dashboard on ``host:port`` until cancelled.

    Start it with ``await nursery.start(af.monitor.serve_monitor, run, "127.0.0.1", 0)`` to get the
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
        max_connections: TCP connections served at once (websocket clients included); more are
            answered 503 and closed at once, with a log line, so clients can never take the file
            descriptors the run needs.
        idle_timeout: seconds a connection may stay silent before its request; then it is dropped.

    Raises:
        ActorflowError: a non-loopback *host* without a token, or an empty token.
        MonitorBindError: the address cannot be listened on (an :class:`OSError` too).
    """
    async with open_monitor(
        run, host, port, token=token, max_message_size=max_message_size, max_clients=max_clients,
        stats_interval=stats_interval, listeners=listeners, max_connections=max_connections,
        idle_timeout=idle_timeout,
    ) as server:
        task_status.started(server)
        await trio.sleep_forever()


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
    metrics = MetricsCollector(run)  # subscribed before the first await: no early event (a cache hit) is missed
    try:
        listeners = list(bound) if bound else await _open_listeners(host, port)  # host and token checked above
    except BaseException:
        metrics.close()
        raise
    port = listeners[0].socket.getsockname()[1]
    return MonitorServer(run, host, port, token, max_message_size, max_clients, stats_interval, metrics), listeners


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = HEAD_TIMEOUT,
) -> AsyncIterator[MonitorServer]:
    """Serve the monitor for the duration of an ``async with`` block; see :func:`serve_monitor`.

    Configuration and bind errors are raised on entering the block, as they are.

    Example:
        async with af.open_run(flow) as run, af.monitor.open_monitor(run, port=0) as monitor:
            print("dashboard at", monitor.http_url)
            await run.result()
    """
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
        raise ActorflowError(f"max_connections must be a positive int, got {max_connections!r}")
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, int | float) or not 0 < idle_timeout < 1e9:
        raise ActorflowError(f"idle_timeout must be a positive number of seconds, got {idle_timeout!r}")
    server, listeners = await _listen(
        run, host, port, token, max_message_size, max_clients, stats_interval, listeners
    )
    server.max_connections, server.idle_timeout = max_connections, float(idle_timeout)
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, server.handle, listeners)
            nursery.start_soon(server.metrics.watch)
            try:
                yield server
            except BaseException as exc:  # re-raised below as it is, not wrapped in an exception group
                body_error = exc
            finally:
                nursery.cancel_scope.cancel()
    finally:
        server.metrics.close()
    if body_error is not None:
        raise body_error
