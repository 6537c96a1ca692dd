"""The monitor never endangers the run: a connection limit and idle timeouts, every HTTP path answered
with a status code, and user text (flow names) never read as console markup."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import trio
from rich.console import Console

import actorflow as af


def counted_flow(name: str = "safe") -> af.Flow:
    flow = af.Flow(name)
    flow.source(af.external_source(int, name="numbers"))

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


async def _request(port: int, raw: bytes) -> bytes:
    """Send *raw* and read the whole answer (the monitor closes every connection after answering)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        out = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                out += chunk
    return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_connections_over_the_limit_are_refused_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actorflow.monitor")
    async with af.open_run(counted_flow(), store=tmp_path / "s", checkpoint_every=0.01) as run, \
            af.monitor.open_monitor(run, port=0, max_connections=20, idle_timeout=0.5) as mon:
        feed = af.feed(run, "numbers")
        idle = [await trio.open_tcp_stream("127.0.0.1", mon.port) for _ in range(60)]  # held open, silent
        refused = 0
        for stream in idle:
            with trio.move_on_after(5):
                answer = await stream.receive_some(1024)
                if answer.startswith(b"HTTP/1.1 503"):
                    refused += 1
        for i in range(1000):
            await feed.send(i)
        # the idle ones inside the limit are dropped after idle_timeout: their reads end
        with trio.fail_after(10):
            for stream in idle:
                while await stream.receive_some(1024):
                    pass
        for stream in idle:
            await stream.aclose()
        feed.close()
        result = await run.result()
        ok = await _request(mon.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # served again
    assert result["total"] == sum(range(1000))
    assert refused == 40 and mon.refused >= 40
    assert status_of(ok) == 200
    assert mon.connections == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert any("refusing connections over the limit of 20" in w and "the run goes on" in w for w in warnings)
    assert len(warnings) < 5  # one line, not one per connection
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize(("path", "status"), [
    ("/" + "a" * 300 + ".js", 404),        # longer than a file name may be
    ("/" + "b" * 5000, 404),
    ("/%00.js", 404),
    ("/..%2f..%2fetc/passwd", 404),
    ("/static/../app.js", 404),
    ("/app.js", 200),
    ("/", 200),
])
async def test_every_path_gets_a_status_code(path: str, status: int, caplog: pytest.LogCaptureFixture) -> None:
    async with af.open_run(counted_flow()) as run, af.monitor.open_monitor(run, port=0) as mon:
        answer = await _request(mon.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        af.feed(run, "numbers").close()
        await run.result()
    assert status_of(answer) == status
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per request


async def test_a_huge_or_broken_request_head_gets_a_status_code() -> None:
    async with af.open_run(counted_flow()) as run, af.monitor.open_monitor(run, port=0) as mon:
        huge = await _request(mon.port, b"GET /" + b"c" * 40_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        broken = await _request(mon.port, b"NOT HTTP AT ALL\r\n\r\n")
        af.feed(run, "numbers").close()
        await run.result()
    assert status_of(huge) == 431
    assert status_of(broken) == 400


@pytest.mark.parametrize("terminal", [True, False])
async def test_user_text_is_never_read_as_markup(terminal: bool) -> None:
    out = io.StringIO()
    con = Console(file=out, width=100, force_terminal=terminal, color_system=None)
    async with af.open_run(counted_flow("data[/data] [bold]x[/bold]")) as run, \
            af.console.observe(run, console=con):
        feed = af.feed(run, "numbers")
        await feed.send(1)
        feed.close()
        await run.result()
    text = out.getvalue()
    assert "flow 'data[/data] [bold]x[/bold]'" in text
