"""An asyncio web service that starts, feeds, watches and cancels actorflow runs.

actorflow runs on trio; :mod:`actorflow.asyncio` hosts a trio loop inside the service's asyncio
loop (trio guest mode), so request handlers simply ``await`` run handles. The HTTP layer is plain
``asyncio.start_server`` to keep the example dependency-free; with Starlette or FastAPI the
handlers look the same (open the host in the app's lifespan).

Endpoints (JSON in, JSON out):

- ``POST /runs`` ``{"n": 1000}``: start a run that sums the squares of 0..n-1; returns its id.
- ``GET /runs/<id>``: status and, once finished, the products.
- ``GET /runs/<id>/events``: the run's events as newline-delimited JSON, streamed until it ends.
- ``DELETE /runs/<id>``: cancel the run.
- ``POST /live``: start a run fed by requests; ``POST /live/<id>/items`` ``[1, 2, 3]`` feeds it and
  ``POST /live/<id>/close`` ends the stream and returns the products.
- ``POST /pushed``: start a checkpointed run whose source is an ``af.external_source``, fed with
  the run handle's own ``feed()``; ``POST /pushed/<id>/items`` ``[1, 2]`` sends items in,
  ``GET /pushed/<id>/results?n=3`` reads the first *n* squares out through ``tap()``,
  ``POST /pushed/<id>/pause`` / ``resume`` / ``checkpoint`` drive it and ``POST /pushed/<id>/close``
  ends it and returns the products. These are the methods a trio ``open_run`` handle has, under
  the same names (see ``docs/scale-out.md``).

Run it with ``python examples/asyncio_service.py [PORT]`` and try
``curl -X POST localhost:8000/runs -d '{"n": 100}'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import actorflow as af
import actorflow.asyncio as afa

# -- the flows ------------------------------------------------------------------------------------


def square(numbers: int) -> int:
    """One number squared."""
    return numbers * numbers


def total(acc: int, square: int) -> int:
    """The running sum."""
    return acc + square


batch = af.Flow("squares")


@batch.source
def numbers(n: int = 10) -> af.Stream[int]:
    """The integers 0 .. n-1."""
    yield from range(n)


batch.task(square)
batch.collector(init=0)(total)

live = af.Flow("live-squares")


@live.source(name="numbers")
async def incoming(feed: afa.AsyncioFeed) -> af.Stream[int]:
    """Whatever the service's clients send, as it arrives."""
    async for item in feed:
        yield item


live.task(square)
live.collector(init=0)(total)

pushed = af.Flow("pushed-squares")
pushed.source(af.external_source(int, name="numbers"))
pushed.task(square)
pushed.collector(init=0)(total)


# -- the service ----------------------------------------------------------------------------------


class Service:
    """Routes HTTP requests to run handles on one actorflow host."""

    def __init__(self, host: afa.Host, store_dir: str | None = None) -> None:
        self.host = host
        self.store_dir = store_dir
        self.runs: dict[str, afa.AsyncioRun] = {}
        self.feeds: dict[str, afa.AsyncioFeed[int]] = {}
        self.pushed: dict[str, tuple[afa.AsyncioRun, afa.AsyncioSourceFeed, afa.AsyncioTap]] = {}

    async def route(self, method: str, path: str, body: Any, writer: asyncio.StreamWriter) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["runs"]:
            n = body.get("n", 10) if isinstance(body, dict) else 10
            try:
                run = await self.host.start(batch, options={"numbers": {"n": n}})
            except af.InvocationError as exc:
                return 400, {"error": str(exc)}
            self.runs[run.run_id] = run
            return 201, {"run_id": run.run_id}
        if method == "POST" and parts == ["live"]:
            feed: afa.AsyncioFeed[int] = self.host.feed(capacity=1000)
            run = await self.host.start(live, options={"numbers": {"feed": feed}})
            self.runs[run.run_id] = run
            self.feeds[run.run_id] = feed
            return 201, {"run_id": run.run_id}
        if method == "POST" and parts == ["pushed"]:
            return 201, await self.start_pushed()
        if len(parts) >= 2 and parts[0] == "pushed" and parts[1] in self.pushed:
            return await self.drive_pushed(method, parts[1], parts[2:], body)
        if len(parts) < 2 or parts[0] not in ("runs", "live") or parts[1] not in self.runs:
            return 404, {"error": f"no such resource: {path}"}
        run = self.runs[parts[1]]
        rest = parts[2:]
        if method == "GET" and rest == []:
            return 200, await self.describe(run)
        if method == "GET" and rest == ["events"]:
            await self.stream_events(run, writer)
            return 0, None
        if method == "DELETE" and rest == []:
            run.cancel()
            with contextlib.suppress(af.RunCancelled):
                await run.result()
            return 200, await self.describe(run)
        if method == "POST" and rest == ["items"] and parts[1] in self.feeds:
            for item in body:
                await self.feeds[parts[1]].put(int(item))
            return 202, {"queued": len(body)}
        if method == "POST" and rest == ["close"] and parts[1] in self.feeds:
            self.feeds.pop(parts[1]).close()
            with contextlib.suppress(af.ActorflowError):
                await run.result()
            return 200, await self.describe(run)
        return 405, {"error": f"{method} {path} is not supported"}

    async def start_pushed(self) -> dict[str, Any]:
        """A run of ``pushed`` (checkpointed when the service has a store folder), its feed and a tap."""
        settings: dict[str, Any] = {}
        if self.store_dir is not None:
            settings = {"store": f"{self.store_dir}/pushed-{len(self.pushed)}", "checkpoint_every": None}
        run = await self.host.start(pushed, **settings)
        self.pushed[run.run_id] = (run, run.feed("numbers"), run.tap("square"))
        return {"run_id": run.run_id}

    async def drive_pushed(self, method: str, rid: str, rest: list[str], body: Any) -> tuple[int, Any]:
        """The handle's methods, one endpoint each."""
        run, feed, tap = self.pushed[rid]
        action = rest[0].partition("?")[0] if rest else ""
        if method == "POST" and action == "items":
            for item in body:
                await feed.send(int(item))
            return 202, {"sent": len(body)}
        if method == "GET" and action == "results":
            want = int(rest[0].partition("n=")[2] or 1)
            out: list[int] = []
            async for _seqs, items in tap:
                out += items
                if len(out) >= want:
                    break
            return 200, {"results": out}
        if method == "POST" and action in ("pause", "resume"):
            run.pause() if action == "pause" else run.resume()
            return 200, {"paused": run.paused}
        if method == "POST" and action == "checkpoint":
            return 200, {"written": await run.checkpoint_now()}
        if method == "POST" and action == "close":
            feed.close()
            self.pushed.pop(rid)
            with contextlib.suppress(af.ActorflowError):
                await run.result()
            return 200, await self.describe(run)
        return 405, {"error": f"{method} /pushed/{rid}/{'/'.join(rest)} is not supported"}

    async def describe(self, run: afa.AsyncioRun) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": run.run_id, "status": run.status}
        if run.done():
            try:
                out["products"] = dict(await run.result())
            except af.ActorflowError as exc:
                out["error"] = str(exc)
        return out

    async def stream_events(self, run: afa.AsyncioRun, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n")
        async for event in run.events():
            writer.write(json.dumps(event.to_dict()).encode() + b"\n")
            await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            if len(request) < 2:
                status, payload = 400, {"error": "bad request line"}
            else:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    status, payload = 400, {"error": "the body is not JSON"}
                else:
                    status, payload = await self.route(request[0], request[1], body, writer)
            if status:
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
                    "connection: close\r\n\r\n".encode() + data
                )
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(port: int = 8000, address: str = "127.0.0.1", store_dir: str | None = None) -> Any:
    """Run the service until the block ends; yields the port it listens on (pass 0 for any).

    With *store_dir*, the ``/pushed`` runs checkpoint into stores in that folder.
    """
    async with afa.open_host() as host:
        service = Service(host, store_dir)
        server = await asyncio.start_server(service.handle, address, port)
        async with server:
            yield server.sockets[0].getsockname()[1]


async def main(port: int) -> None:
    async with serve(port) as bound:
        print(f"listening on http://127.0.0.1:{bound}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
