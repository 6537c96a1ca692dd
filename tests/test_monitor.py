"""The monitor server, with real trio-websocket clients and real HTTP requests over TCP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

import actorflow as af

flow = af.Flow("monitored")
flow.source(af.external_source(int, name="numbers"))


@flow.task
def square(numbers: int, offset: int = 0) -> int:
    """Square a number."""
    return numbers * numbers + offset


@flow.collector(init=0)
def total(acc: int, square: int) -> int:
    return acc + square


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    raw = await ws.get_message()
    return json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw)


async def ask(ws: WebSocketConnection, message: Any) -> dict[str, Any]:
    """Send *message* (raw when str/bytes) and return the next reply, skipping events and stats."""
    await ws.send_message(message if isinstance(message, str | bytes) else json.dumps(message))
    while True:
        msg = await recv(ws)
        if msg["type"] not in ("event", "stats", "items"):
            return msg


async def until(ws: WebSocketConnection, predicate: Any) -> dict[str, Any]:
    while True:
        msg = await recv(ws)
        if predicate(msg):
            return msg


def finished(msg: dict[str, Any]) -> bool:
    return msg["type"] == "event" and msg["event"]["kind"] == "run_finished"


@asynccontextmanager
async def monitored(**kwargs: Any) -> AsyncIterator[tuple[af.Run, af.monitor.MonitorServer]]:
    async with af.open_run(flow, {"square": {"offset": 1}}) as run, \
            af.monitor.open_monitor(run, port=0, **kwargs) as mon:
        yield run, mon


async def push(run: af.Run, items: list[int], close: bool = True) -> None:
    f = af.feed(run, "numbers")
    for x in items:
        await f.send(x)
    if close:
        f.close()


async def test_graph_on_connect() -> None:
    async with monitored() as (run, mon), open_websocket_url(mon.url) as ws:
        hello = await recv(ws)
        await push(run, [1, 2])
        await until(ws, finished)
    assert ws.subprotocol is None
    assert hello["type"] == "hello"
    assert hello["protocol"] == af.monitor.PROTOCOL_VERSION
    assert hello["run_id"] == run.run_id
    assert hello["encoding"] == "json"
    graph = hello["graph"]
    assert graph["flow"] == "monitored"
    assert [t["name"] for t in graph["tasks"]] == ["numbers", "square", "total"]
    assert [t["layer"] for t in graph["tasks"]] == [0, 1, 2]
    assert graph["edges"] == [["numbers", "square"], ["square", "total"]]
    by_name = {t["name"]: t for t in graph["tasks"]}
    assert by_name["square"]["options"] == {"offset": 1}
    assert by_name["square"]["description"] == "Square a number."
    assert by_name["numbers"]["external"] is True
    assert by_name["total"]["kind"] == "collector"
    assert set(hello["tasks"]) == {"numbers", "square", "total"}
    assert "pause" in hello["commands"]


async def test_events_arrive_in_order_and_match_the_run_stream() -> None:
    async with monitored() as (run, mon):
        local = run.events()
        async with open_websocket_url(mon.url) as ws:
            await recv(ws)  # hello
            await push(run, list(range(10)))
            got: list[dict[str, Any]] = []
            async for msg in _messages(ws):
                if msg["type"] == "event":
                    got.append(msg["event"])
                    if msg["event"]["kind"] == "run_finished":
                        break
        want = [json.loads(json.dumps(e.to_dict())) async for e in local]
    assert got
    assert got[-1]["kind"] == "run_finished" and got[-1]["status"] == "ok"
    # The client saw exactly the run's own events from the moment it connected, in the same order.
    assert got == want[len(want) - len(got):]
    times = [e["time"] for e in got]
    assert times == sorted(times)
    assert sum(e["items_out"] for e in got if e["kind"] == "batch_processed" and e["task"] == "square") == 10


async def _messages(ws: WebSocketConnection) -> AsyncIterator[dict[str, Any]]:
    while True:
        yield await recv(ws)


async def test_msgpack_subprotocol() -> None:
    async with monitored() as (run, mon), open_websocket_url(mon.url, subprotocols=["actorflow.msgpack"]) as ws:
        raw = await ws.get_message()
        assert isinstance(raw, bytes)
        hello = msgpack.unpackb(raw)
        await ws.send_message(msgpack.packb({"op": "ping", "id": 7}))
        pong = await until(ws, lambda m: m["type"] == "pong")
        await ws.send_message(b"\xc1\xc1 not msgpack")
        bad = await until(ws, lambda m: m["type"] == "error")
        await push(run, [3])
        end = await until(ws, finished)
    assert ws.subprotocol == "actorflow.msgpack"
    assert hello["encoding"] == "msgpack"
    assert hello["graph"]["edges"] == [["numbers", "square"], ["square", "total"]]
    assert pong == {"type": "pong", "op": "ping", "id": 7}
    assert "malformed frame" in bad["error"] and "msgpack" in bad["error"]
    assert end["event"]["status"] == "ok"


async def test_pause_holds_the_run_and_resume_lets_it_go() -> None:
    async with monitored(stats_interval=0.2) as (run, mon), open_websocket_url(mon.url) as ws:
        await recv(ws)
        ack = await ask(ws, {"op": "pause", "id": 1})
        assert ack == {"type": "ack", "paused": True, "op": "pause", "id": 1}
        assert run.paused
        await push(run, [1, 2, 3], close=False)
        await trio.testing.wait_all_tasks_blocked()
        assert run.actors["square"].items_in == 0  # held at the source's gate
        stats = await until(ws, lambda m: m["type"] == "stats")
        assert stats["paused"] is True
        ack = await ask(ws, {"op": "resume"})
        assert ack == {"type": "ack", "paused": False, "op": "resume"}
        stats = await until(ws, lambda m: m["type"] == "stats" and m["tasks"]["square"]["items_in"] == 3)
        assert stats["paused"] is False
        af.feed(run, "numbers").close()
        await until(ws, finished)
        result = await run.result()
    assert result["total"] == 2 + 5 + 10


async def test_cancel_command_cancels_the_run() -> None:
    with pytest.raises(af.RunCancelled):
        async with monitored() as (run, mon), open_websocket_url(mon.url) as ws:
            await recv(ws)
            ack = await ask(ws, {"op": "cancel", "id": "c"})
            assert ack == {"type": "ack", "op": "cancel", "id": "c"}
            end = await until(ws, finished)
            assert end["event"]["status"] == "cancelled"
            late = await ask(ws, {"op": "pause"})
            assert late["type"] == "error" and "already ended" in late["error"]
            await run.result()


async def test_checkpoint_now_without_a_store_is_an_error_message() -> None:
    async with monitored() as (run, mon), open_websocket_url(mon.url) as ws:
        await recv(ws)
        reply = await ask(ws, {"op": "checkpoint-now", "id": 3})
        await push(run, [2])
        await until(ws, finished)
    assert reply["type"] == "error" and reply["id"] == 3
    assert "checkpoints need a store" in reply["error"]
    assert (await run.result())["total"] == 5


async def test_checkpoint_now_with_a_store(tmp_path: Any) -> None:
    store = tmp_path / "run.lmdb"
    async with af.open_run(flow, store=str(store), checkpoint_every=None) as run:
        async with af.monitor.open_monitor(run, port=0) as mon, open_websocket_url(mon.url) as ws:
            await recv(ws)
            await push(run, [1, 2], close=False)
            reply = await ask(ws, {"op": "checkpoint-now"})
            af.feed(run, "numbers").close()
            await until(ws, finished)
    assert reply == {"type": "ack", "op": "checkpoint-now", "checkpoint": True}


async def test_malformed_and_unknown_messages_get_errors_and_the_run_goes_on() -> None:
    async with monitored() as (run, mon), open_websocket_url(mon.url) as ws:
        await recv(ws)
        replies = [
            await ask(ws, "{not json"),
            await ask(ws, "[1, 2]"),
            await ask(ws, {"op": 5}),
            await ask(ws, {"no": "op"}),
            await ask(ws, {"op": "explode", "id": 9}),
            await ask(ws, {"op": "subscribe"}),
            await ask(ws, {"op": "subscribe", "task": "nope"}),
            await ask(ws, {"op": "unsubscribe", "task": "square"}),
            await ask(ws, {"op": "push", "source": "numbers", "items": ["a", 1]}),
            await ask(ws, {"op": "push", "source": "square", "item": 1}),
            await ask(ws, {"op": "push", "source": "numbers", "items": 3}),
            await ask(ws, {"op": "push", "source": "numbers"}),
            await ask(ws, b"\x00\xff"),
        ]
        ok = await ask(ws, {"op": "push", "source": "numbers", "items": [1, 2]})
        end = await ask(ws, {"op": "end", "source": "numbers"})
        await until(ws, finished)
    assert all(r["type"] == "error" for r in replies), replies
    errors = [r["error"] for r in replies]
    assert "not a valid JSON" in errors[0]
    assert "expected an object" in errors[1]
    assert "'op' must be a string" in errors[2] and "'op' must be a string" in errors[3]
    assert "unknown command 'explode'" in errors[4] and replies[4]["id"] == 9 and "pause" in errors[4]
    assert "needs a str field 'task'" in errors[5]
    assert "no task 'nope'" in errors[6]
    assert "not subscribed" in errors[7]
    assert "item 0: expected int, got str 'a'" in errors[8] and "nothing was accepted" in errors[8]
    assert "no external source 'square'" in errors[9] and "['numbers']" in errors[9]
    assert "'items' must be a list" in errors[10]
    assert "needs 'item'" in errors[11]
    assert "not a valid msgpack" in errors[12]
    assert ok == {"type": "ack", "accepted": 2, "start": 0, "op": "push"}
    assert end == {"type": "ack", "op": "end"}
    assert (await run.result())["total"] == 2 + 5  # the bad push of ["a", 1] accepted nothing


async def test_oversized_frame_closes_that_client_only() -> None:
    async with monitored(max_message_size=1024) as (run, mon):
        async with open_websocket_url(mon.url) as other:
            await recv(other)
            async with open_websocket_url(mon.url) as ws:
                await recv(ws)
                await ws.send_message(json.dumps({"op": "ping", "pad": "x" * 4096}))
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.get_message()
            assert info.value.reason.code == 1009
            assert (await ask(other, {"op": "ping"}))["type"] == "pong"
            await push(run, [4])
            await until(other, finished)
    assert (await run.result())["total"] == 17


async def test_a_client_that_vanishes_does_not_hurt_the_run() -> None:
    async with monitored() as (run, mon):
        async with open_websocket_url(mon.url) as ws:
            await recv(ws)
            await ask(ws, {"op": "subscribe", "task": "square"})
            await ws.aclose()
        stream = await trio.open_tcp_stream("127.0.0.1", mon.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # then hangs up mid-request
        await stream.aclose()
        await push(run, [1, 2, 3])
        result = await run.result()
    assert result["total"] == 2 + 5 + 10
    assert mon.clients == 0


async def test_token_is_required_when_set() -> None:
    async with monitored(token="t0ken") as (run, mon):
        base = f"ws://127.0.0.1:{mon.port}/"
        for url, headers in ((base, None), (base + "?token=wrong", None), (base, [(b"authorization", b"Bearer no")])):
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(url, extra_headers=headers):
                    pass
            assert info.value.status_code == 401
            assert b"needs a token" in (info.value.body or b"")
        async with open_websocket_url(mon.url) as ws:
            assert (await recv(ws))["type"] == "hello"
        async with open_websocket_url(base, extra_headers=[(b"authorization", b"Bearer t0ken")]) as ws:
            assert (await recv(ws))["type"] == "hello"
        await push(run, [])


async def test_non_loopback_bind_needs_a_token() -> None:
    async with af.open_run(flow) as run:
        with pytest.raises(af.ActorflowError, match="without a token"):
            async with af.monitor.open_monitor(run, host="0.0.0.0", port=0):
                pass
        with pytest.raises(af.ActorflowError, match="non-empty string"):
            async with af.monitor.open_monitor(run, port=0, token=""):
                pass
        await push(run, [])


async def test_cross_origin_and_too_many_clients_are_refused() -> None:
    async with monitored(max_clients=1) as (run, mon):
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(mon.url, extra_headers=[(b"origin", b"http://evil.example")]):
                pass
        assert info.value.status_code == 403
        async with open_websocket_url(mon.url) as first:
            await recv(first)
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(mon.url):
                    pass
            assert info.value.status_code == 503
        await push(run, [])


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_http_serves_the_dashboard_files() -> None:
    async with monitored() as (run, mon):
        status, headers, body = await http(mon.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'<svg id="graph"' in body
        status, headers, body = await http(mon.port, b"GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 200 and "javascript" in headers["content-type"] and b"WebSocket" in body
        status, _, _ = await http(mon.port, b"GET /../_run.py HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 404
        status, _, _ = await http(mon.port, b"GET /missing.css HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 404
        status, _, _ = await http(mon.port, b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        assert status == 405
        status, _, _ = await http(mon.port, b"NONSENSE\r\n\r\n")
        assert status == 400
        await push(run, [])


async def test_http_token_and_cookie() -> None:
    async with monitored(token="abc") as (run, mon):
        status, _, _ = await http(mon.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 401
        status, headers, _ = await http(mon.port, b"GET /?token=abc HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 200 and "actorflow_token=abc" in headers["set-cookie"]
        cookie = b"GET /style.css HTTP/1.1\r\nHost: localhost\r\nCookie: actorflow_token=abc\r\n\r\n"
        status, _, _ = await http(mon.port, cookie)
        assert status == 200
        await push(run, [])


async def test_a_loopback_monitor_only_answers_for_localhost() -> None:
    async with monitored() as (run, mon):
        status, _, body = await http(mon.port, b"GET / HTTP/1.1\r\nHost: evil.example:8765\r\n\r\n")
        assert status == 403 and b"only answers requests for localhost" in body
        upgrade = (b"GET / HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        status, _, _ = await http(mon.port, upgrade)
        assert status == 403
        for host in (b"localhost", b"127.0.0.1:1", b"[::1]:8765"):
            status, _, _ = await http(mon.port, b"HEAD / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            assert status == 200, host
        await push(run, [])


async def test_serve_monitor_in_a_nursery() -> None:
    async with af.open_run(flow) as run, trio.open_nursery() as nursery:
        server = await nursery.start(af.monitor.serve_monitor, run, "127.0.0.1", 0)
        assert server.url == f"ws://127.0.0.1:{server.port}/"
        async with open_websocket_url(server.url) as ws:
            assert (await recv(ws))["run_id"] == run.run_id
        await push(run, [1])
        await run.result()
        nursery.cancel_scope.cancel()


async def test_a_client_that_stops_reading_cannot_hold_the_run() -> None:
    big = af.Flow("big")
    big.source(af.external_source(str, name="lines"))

    @big.collector(init=0)
    def count(acc: int, lines: str) -> int:
        return acc + 1

    n = 20_000
    async with af.open_run(big) as run, af.monitor.open_monitor(run, port=0) as mon:
        async with open_websocket_url(mon.url) as ws:
            await recv(ws)
            assert (await ask(ws, {"op": "subscribe", "task": "lines"}))["type"] == "ack"
            feed = af.feed(run, "lines")
            for i in range(n):  # from here on the client reads nothing while ~8 MB of items are due to it
                await feed.send(f"{i:08d}" * 50)
            feed.close()
            result = await run.result()
    assert result["count"] == n


PIPELINE = '''
import actorflow as af

flow = af.Flow("cli_gateway")
flow.source(af.external_source(int, name="numbers"))


@flow.collector(init=0)
def total(acc: int, numbers: int) -> int:
    return acc + numbers
'''


async def test_cli_run_with_monitor_is_fed_over_the_gateway(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    pipeline = tmp_path / "pipe.py"
    pipeline.write_text(PIPELINE)
    events = tmp_path / "events.jsonl"
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "actorflow", "run", str(pipeline), "--quiet", "--json",
           "--monitor", "127.0.0.1:0", "--events", str(events)]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            lambda task_status: trio.run_process(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                 check=False, task_status=task_status)
        )
        assert proc.stderr is not None and proc.stdout is not None
        err = b""
        with trio.fail_after(30):
            while b"websocket ws://" not in err or not err.endswith(b"\n"):
                chunk = await proc.stderr.receive_some()
                assert chunk, f"actorflow exited early: {err.decode()}"
                err += chunk
        url = err.decode().split("websocket ", 1)[1].split(")")[0]
        async with open_websocket_url(url) as ws:
            hello = await recv(ws)
            assert hello["graph"]["flow"] == "cli_gateway"
            assert (await ask(ws, {"op": "push", "source": "numbers", "items": [1, 2, 3]}))["accepted"] == 3
            bad = await ask(ws, {"op": "push", "source": "numbers", "item": "four"})
            assert bad["type"] == "error"
            assert (await ask(ws, {"op": "end", "source": "numbers"}))["type"] == "ack"
            await until(ws, finished)
        out = b""
        while chunk := await proc.stdout.receive_some():
            out += chunk
    assert proc.returncode == 0
    assert json.loads(out) == {"total": 6}
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
