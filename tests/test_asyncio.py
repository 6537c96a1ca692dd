"""actorflow.asyncio: runs hosted in a running asyncio loop (trio guest mode), and the example service.

These tests are sync functions that run their own asyncio loop (a trio loop cannot host asyncio
the other way round in the same thread).
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

import actorflow as af
import actorflow.asyncio as afa
from actorflow import events as ev

ROOT = Path(__file__).resolve().parent.parent


def square(numbers: int) -> int:
    return numbers * numbers


def make_flow() -> af.Flow:
    flow = af.Flow("aio")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def squared(numbers: int) -> int:
        if numbers < 0:
            raise ValueError("negative")
        return numbers * numbers

    @flow.collector(init=0)
    def total(acc: int, squared: int) -> int:
        return acc + squared

    return flow


def fed_flow() -> af.Flow:
    flow = af.Flow("fed")

    @flow.source
    async def numbers(feed: afa.AsyncioFeed) -> af.Stream[int]:
        async for item in feed:
            yield item

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


def children() -> set[int]:
    """Our child processes, without multiprocessing's resource tracker (a per-process singleton)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(p.cmdline()):
                continue
        except psutil.ZombieProcess:
            pass  # exited but never reaped: that counts as a leak
        except psutil.NoSuchProcess:
            continue  # gone already
        out.add(p.pid)
    return out


def run_asyncio(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_run_from_asyncio_returns_products() -> None:
    result = run_asyncio(afa.run(make_flow(), {"numbers": {"n": 100}}))
    assert result["total"] == sum(i * i for i in range(100))
    assert result.summary.status == "ok"


def test_start_watch_and_result() -> None:
    async def main() -> tuple[list[Any], Any, str]:
        async with afa.open_host() as host:
            run = await host.start(make_flow(), {"numbers": {"n": 50}})
            events = [e async for e in run.events()]
            result = await run.result()
            return events, result, run.status

    events, result, status = run_asyncio(main())
    assert result["total"] == sum(i * i for i in range(50))
    assert status == "ok"
    assert type(events[0]) is ev.RunStarted
    assert type(events[-1]) is ev.RunFinished and events[-1].status == "ok"
    assert sum(e.items_in for e in events if type(e) is ev.BatchProcessed and e.task == "squared") == 50


def test_several_runs_share_one_host() -> None:
    async def main() -> list[int]:
        async with afa.open_host() as host:
            runs = [await host.start(make_flow(), {"numbers": {"n": n}}) for n in (3, 4, 5)]
            return [(await r.result())["total"] for r in runs]

    assert run_asyncio(main()) == [5, 14, 30]


def test_feed_items_from_asyncio_with_backpressure() -> None:
    async def main() -> tuple[int, int]:
        async with afa.open_host() as host:
            feed: afa.AsyncioFeed[int] = host.feed(capacity=3)
            run = await host.start(fed_flow(), {"numbers": {"feed": feed}})
            most = 0
            for i in range(200):
                await feed.put(i)
                most = max(most, len(feed))
            feed.close()
            with pytest.raises(af.ActorflowError, match="closed feed"):
                await feed.put(1)
            return (await run.result())["total"], most

    total, most = run_asyncio(main())
    assert total == sum(range(200))
    assert most <= 3


def test_feed_capacity_must_be_positive() -> None:
    async def main() -> None:
        async with afa.open_host() as host:
            host.feed(capacity=0)

    with pytest.raises(ValueError, match="capacity must be a positive int, got 0"):
        run_asyncio(main())


def test_cancel_a_run_from_asyncio() -> None:
    async def main() -> tuple[str, str]:
        async with afa.open_host() as host:
            feed: afa.AsyncioFeed[int] = host.feed()
            run = await host.start(fed_flow(), {"numbers": {"feed": feed}})  # never closed: runs forever
            await feed.put(1)
            run.cancel()
            with pytest.raises(af.RunCancelled) as info:
                await run.result()
            return run.status, str(info.value)

    status, message = run_asyncio(main())
    assert status == "cancelled"
    assert "was cancelled" in message


def test_closing_the_host_cancels_its_runs() -> None:
    async def main() -> afa.AsyncioRun:
        async with afa.open_host() as host:
            run = await host.start(fed_flow(), {"numbers": {"feed": host.feed()}})
        return run

    async def check() -> None:
        run = await main()
        assert run.done()
        with pytest.raises(af.RunCancelled, match="host closed"):
            await run.result()

    run_asyncio(check())


def test_cancelling_the_asyncio_task_cancels_the_run_and_frees_the_thread() -> None:
    async def main() -> None:
        task = asyncio.create_task(afa.run(fed_flow(), {"numbers": {"feed": None}}))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The trio guest loop has stopped: a new host can start in this thread.
        result = await afa.run(make_flow(), {"numbers": {"n": 3}})
        assert result["total"] == 5

    run_asyncio(main())


def test_failures_and_bad_options_are_raised_in_asyncio() -> None:
    async def main() -> None:
        async with afa.open_host() as host:
            with pytest.raises(af.InvocationError, match="option 'n'"):
                await host.start(make_flow(), {"numbers": {"n": "many"}})
            flow = make_flow()
            run = await host.start(flow.bind({"numbers": {"n": 3}}))
            assert (await run.result())["total"] == 5
            bad = af.Flow("bad")

            @bad.source
            def numbers() -> af.Stream[int]:
                yield from (1, -1)

            @bad.task
            def squared(numbers: int) -> int:
                raise ValueError(f"cannot square {numbers}")

            run = await host.start(bad)
            with pytest.raises(af.TaskFailed, match=r"task 'squared'.*seq 0"):
                await run.result()
            with pytest.raises(TypeError, match="expected an actorflow Flow"):
                await host.start("not a flow")  # type: ignore[arg-type]

    run_asyncio(main())


def test_one_host_per_thread() -> None:
    async def main() -> None:
        async with afa.open_host():
            with pytest.raises(af.ActorflowError, match="only one trio loop can run in a thread"):
                async with afa.open_host():
                    pass

    run_asyncio(main())


def test_starting_on_a_closed_host_is_refused() -> None:
    async def main() -> None:
        async with afa.open_host() as host:
            pass
        assert host.closed
        with pytest.raises(af.ActorflowError, match="host is closed"):
            await host.start(make_flow())

    run_asyncio(main())


def test_process_executor_runs_under_asyncio() -> None:
    flow = af.Flow("aio-exec")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    flow.task(executor=af.ProcessExecutor(workers=2))(square)
    threads = {t.name for t in threading.enumerate()}
    kids = children()
    result = run_asyncio(afa.run(flow, {"numbers": {"n": 20}}))
    assert result["square"] == [i * i for i in range(20)]
    assert children() <= kids
    new = {t.name for t in threading.enumerate()} - threads
    assert all(n.startswith("Trio thread") for n in new), new  # only trio's idle thread cache


# -- the example service ---------------------------------------------------------------------------


async def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    writer.write(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def test_example_service_starts_watches_feeds_and_cancels() -> None:
    ns = runpy.run_path(str(ROOT / "examples" / "asyncio_service.py"), run_name="example")

    async def main() -> None:
        async with ns["serve"](0) as port:
            status, body = await http(port, "POST", "/runs", {"n": 100})
            assert status == 201
            run_id = json.loads(body)["run_id"]
            status, body = await http(port, "GET", f"/runs/{run_id}/events")
            events = [json.loads(line) for line in body.splitlines()]
            assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"
            status, body = await http(port, "GET", f"/runs/{run_id}")
            assert json.loads(body)["products"]["total"] == sum(i * i for i in range(100))

            status, body = await http(port, "POST", "/live")
            live_id = json.loads(body)["run_id"]
            for chunk in ([1, 2, 3], [4, 5]):
                status, _ = await http(port, "POST", f"/live/{live_id}/items", chunk)
                assert status == 202
            status, body = await http(port, "POST", f"/live/{live_id}/close")
            assert json.loads(body)["products"]["total"] == 1 + 4 + 9 + 16 + 25

            status, body = await http(port, "POST", "/live")
            doomed = json.loads(body)["run_id"]
            status, body = await http(port, "DELETE", f"/runs/{doomed}")
            assert json.loads(body)["status"] == "cancelled"

            status, body = await http(port, "POST", "/runs", {"n": "lots"})
            assert status == 400 and b"option 'n'" in body
            status, _ = await http(port, "GET", "/runs/nope")
            assert status == 404

    run_asyncio(main())
