"""The monitor's plain-HTTP side: request heads, host and token checks, responses, the dashboard's files.

The monitor server reads every connection's request head here; a websocket upgrade then goes on
to a session over :class:`PrefixedStream` (which replays the head), and anything else is answered
by :func:`serve_static` with the dashboard's static files (``actorflow/static/``).
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import importlib.resources
import ipaddress
from urllib.parse import parse_qs, urlsplit

import h11
import trio

_MAX_HEAD = 16 * 1024
#: Seconds a connection may take to send its request head before it is dropped (the idle timeout).
HEAD_TIMEOUT = 10.0
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_ok(token: str | None, target: str, headers: dict[str, str]) -> bool:
    """True when no *token* is needed, or the request offers it (query, bearer, header or cookie)."""
    if token is None:
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
    want = token.encode()
    return any(hmac.compare_digest(o.encode(), want) for o in offered)


class PrefixedStream(trio.abc.Stream):
    """A stream that first replays bytes already read (the request head), then reads on."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The replayed bytes first, then what the underlying stream receives."""
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send on the underlying stream."""
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait on the underlying stream."""
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()


async def read_request(
    stream: trio.abc.Stream, timeout: float = HEAD_TIMEOUT
) -> tuple[h11.Connection, h11.Request, bytes] | None:
    """Read a request head from *stream*: its h11 connection, the request and the raw bytes read.

    None when there is no request to serve: the client went away or took longer than *timeout*
    seconds, or the head was malformed or too large (then answered with 400 or 431 here).
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    raw = bytearray()
    request: object = None
    with trio.move_on_after(timeout):
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = 431 if len(raw) > _MAX_HEAD else 400
                await respond(stream, conn, status, f"bad request: {exc}\n".encode(), fallback=True)
                await _drain(stream)
                return None
            if event is h11.NEED_DATA:
                data = bytes(await stream.receive_some(4096))
                if not data:
                    return None
                raw += data
                conn.receive_data(data)
                continue
            request = event
            break
    if not isinstance(request, h11.Request):
        return None
    return conn, request, bytes(raw)


async def _drain(stream: trio.abc.Stream, limit: int = 1 << 20, seconds: float = 1.0) -> None:
    """After answering a request that was not read whole: read (and drop) what the client still sends
    for a moment, so that closing does not reset the connection before the client read the answer."""
    if isinstance(stream, trio.SocketStream):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await stream.send_eof()
    with trio.move_on_after(seconds), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while limit > 0 and (data := await stream.receive_some(65536)):
            limit -= len(data)


def request_fields(request: h11.Request) -> tuple[dict[str, str], str]:
    """A request's headers (names in lower case) and its target, as text."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
    return headers, request.target.decode("latin-1")


async def refused(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    method: bytes,
    target: str,
    headers: dict[str, str],
    token: str | None,
    unauthorized: bytes,
) -> bool:
    """Answer 405 to a method other than GET or HEAD, or 401 (*unauthorized*) without the token; True if it did."""
    if method not in (b"GET", b"HEAD"):
        await respond(stream, conn, 405, b"only GET is served here\n", extra=[("allow", "GET, HEAD")])
        return True
    if not token_ok(token, target, headers):
        await respond(stream, conn, 401, unauthorized)
        return True
    return False


async def respond(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: list[tuple[str, str]] | None = None,
    head_only: bool = False,
    fallback: bool = False,
) -> None:
    """Answer the request on *conn* with *status* and *body* (``connection: close``, not cached).

    With *fallback* (or when h11 cannot, the request being unusable) the answer is written by hand.
    """
    headers = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("connection", "close"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        *(extra or []),
    ]
    try:
        if fallback:
            raise h11.LocalProtocolError("answered by hand")
        out = conn.send(h11.Response(status_code=status, headers=headers))
        if not head_only:
            out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError:  # e.g. the request itself was unusable: answer by hand
        out = raw_response(status, body)
    await stream.send_all(out)


def raw_response(status: int, body: bytes) -> bytes:
    """A complete ``connection: close`` HTTP/1.1 response, without h11 (for requests it cannot answer)."""
    head = f"HTTP/1.1 {status} error\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
    return (head + "connection: close\r\n\r\n").encode() + body


@functools.cache
def static_files() -> frozenset[str]:
    """The names of the dashboard's files (read once: a request's path never reaches the file system)."""
    static = importlib.resources.files("actorflow").joinpath("static")
    return frozenset(p.name for p in static.iterdir() if p.is_file())


async def serve_static(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    method: bytes,
    target: str,
    headers: dict[str, str],
    token: str | None,
) -> None:
    """Answer a plain HTTP request with a dashboard file (or 405, 401, 404)."""
    head_only = method == b"HEAD"
    unauthorized = b"this monitor needs a token: add ?token=... to the URL\n"
    if await refused(stream, conn, method, target, headers, token, unauthorized):
        return
    path = urlsplit(target).path
    name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if name not in static_files() or suffix not in _STATIC_TYPES:
        shown = path if len(path) <= 200 else path[:200] + "…"
        await respond(stream, conn, 404, f"not found: {shown}\n".encode(), head_only=head_only)
        return
    body = importlib.resources.files("actorflow").joinpath("static").joinpath(name).read_bytes()
    extra = [("content-security-policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:")]
    if token is not None:
        extra.append(("set-cookie", f"actorflow_token={token}; HttpOnly; SameSite=Strict; Path=/"))
    await respond(stream, conn, 200, body, _STATIC_TYPES[suffix], extra, head_only)
