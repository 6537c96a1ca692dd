"""asyncio on a par with trio: every run setting and handle method of ``open_run`` from an asyncio
service, under the same names, and a clear error for what cannot work there."""

from __future__ import annotations

import asyncio
import json
import runpy
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
import actorflow.asyncio as afa

ROOT = Path(__file__).resolve().parent.parent


def run_asyncio(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def external_flow() -> af.Flow:
    flow = af.Flow("pushed")
    flow.source(af.external_source(int, name="numbers"))

    @flow.task(secrets=("salt",))
    def square(numbers: int, ctx: af.Context) -> int:
        assert ctx.secret("salt") == "pepper"
        return numbers * numbers

    @flow.collector(init=0)
    def total(acc: int, square: int) -> int:
        return acc + square

    return flow


def test_settings_and_handle_methods_work_from_asyncio(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with afa.open_host() as host:
            run = await host.start(
                external_flow(), store=tmp_path / "s", checkpoint_every=None, secrets={"salt": "pepper"},
                batch_time=0.005, executors={"square": "thread"}, monitor="127.0.0.1:0",
            )
            tap = run.tap("square")
            feed = run.feed("numbers")
            for i in range(5):
                await feed.send(i)
            got: list[int] = []
            async for _seqs, items in tap:
                got += items
                if len(got) >= 5:
                    break
            seen["tapped"] = got
            run.pause()
            await asyncio.sleep(0)
            seen["paused"] = run.paused
            run.resume()
            seen["checkpoint"] = await run.checkpoint_now()
            url = run.monitor.metrics_url
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
            seen["metrics"] = "actorflow_task_items_in_total" in text
            for i in range(5, 10):
                await feed.send(i)
            feed.close()
            result = await run.result()
            seen["total"] = result["total"]
            seen["status"] = run.status
            with pytest.raises(TypeError):
                await run.feed("numbers").send("not a number")  # checked against the source's type
        return seen

    seen = run_asyncio(main())
    assert sorted(seen["tapped"]) == [0, 1, 4, 9, 16]
    assert seen["paused"] is True
    assert seen["checkpoint"] is True
    assert seen["metrics"] is True
    assert seen["total"] == sum(i * i for i in range(10))
    assert seen["status"] == "ok"


def test_resume_and_strict_from_asyncio(tmp_path: Path) -> None:
    flow = af.Flow("aio_dead")

    @flow.source
    def numbers(n: int = 20) -> af.Stream[int]:
        yield from range(n)

    @flow.task(on_error=af.DeadLetter())
    def check(numbers: int) -> int:
        if numbers == 7:
            raise ValueError("seven")
        return numbers

    async def main() -> tuple[Any, Any]:
        with pytest.raises(af.DeadLettered) as info:
            await afa.run(flow, strict=True)
        async with afa.open_host() as host:
            run = await host.start(flow, store=tmp_path / "s", resume="auto")
            result = await run.result()
        return info.value, result

    error, result = run_asyncio(main())
    assert error.counts == {"check": 1}
    assert len(result["check"]) == 19 and result.summary.dead_letters == 1


def test_what_cannot_work_under_asyncio_says_so() -> None:
    async def main() -> None:
        async with afa.open_host() as host:
            with pytest.raises(af.ActorflowError, match="handle_signals=True cannot work under asyncio"):
                await host.start(external_flow(), handle_signals=True)
            with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
                await host.start(external_flow(), nonsense=1)  # type: ignore[call-arg]
            with pytest.raises(af.ActorflowError, match="needs store=PATH"):
                await host.start(external_flow(), resume=True)
            run = await host.start(external_flow(), secrets={"salt": "pepper"})
            with pytest.raises(af.ActorflowError, match=r"from asyncio use run.feed\(source\) and run.tap\(task\)"):
                af.tap(run, "square")  # type: ignore[arg-type]
            run.feed("numbers").close()
            await run.result()

    run_asyncio(main())


def test_the_example_service_feeds_a_run_and_reads_results_out(tmp_path: Path) -> None:
    serve = runpy.run_path(str(ROOT / "examples" / "asyncio_service.py"), run_name="example")["serve"]

    def call(port: int, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    async def main() -> dict[str, Any]:
        async with serve(0, store_dir=str(tmp_path)) as port:
            started = await asyncio.to_thread(call, port, "POST", "/pushed")
            rid = started["run_id"]
            await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/items", [1, 2, 3])
            first = await asyncio.to_thread(call, port, "GET", f"/pushed/{rid}/results?n=3")
            paused = await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/pause")
            resumed = await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/resume")
            checkpoint = await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/checkpoint")
            await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/items", [4])
            closed = await asyncio.to_thread(call, port, "POST", f"/pushed/{rid}/close")
        return {"first": first, "paused": paused, "resumed": resumed, "checkpoint": checkpoint, "closed": closed}

    out = run_asyncio(main())
    assert out["first"]["results"] == [1, 4, 9]
    assert out["paused"]["paused"] is True and out["resumed"]["paused"] is False
    assert out["checkpoint"]["written"] is True
    assert out["closed"]["products"] == {"total": 30}
