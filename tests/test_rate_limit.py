"""Rate-limited tasks: calls at or under the rate across all workers, bursts of at most ``concurrency``,
the wait shown as *throttled*, and checkpoints, pauses and cancellation that never wait for the limiter.

Calls are counted on trio's clock; most tests run under ``MockClock(autojump_threshold=0)``, so
the limiter's waits pass at once and the figures are exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

import actorflow as af
from actorflow import events as ev
from actorflow.metrics import collector


def most_in_window(times: list[float], window: float) -> int:
    """The most calls that started within any *window* seconds (a half-open interval)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def limited_flow(
    n: int, rate: float, concurrency: int, calls: list[float], *, latency: float = 0.0, sync: bool = False
) -> af.Flow:
    flow = af.Flow("limited")

    @flow.source
    def numbers(n: int = n) -> af.Stream[int]:
        yield from range(n)

    if sync:

        @flow.task(rate_limit=rate, concurrency=concurrency)
        def call_api(numbers: int) -> int:
            calls.append(trio.current_time())
            return numbers

    else:

        @flow.task(rate_limit=rate, concurrency=concurrency)
        async def call_api(numbers: int) -> int:
            calls.append(trio.current_time())
            await trio.sleep(latency)  # the API answers after a while: the workers overlap
            return numbers

    @flow.collector(init=0)
    def total(acc: int, call_api: int) -> int:
        return acc + 1

    return flow


@pytest.mark.parametrize(("rate", "concurrency", "latency", "sync"), [
    (40.0, 4, 0.05, False), (40.0, 4, 0.3, False), (40.0, 4, 0.0, False), (10.0, 1, 0.0, True),
    (25.0, 3, 0.0, True), (5.0, 8, 1.0, False),
])
async def test_calls_stay_at_the_rate_across_workers_with_bursts_of_at_most_concurrency(
    autojump_clock: trio.testing.MockClock, rate: float, concurrency: int, latency: float, sync: bool
) -> None:
    calls: list[float] = []
    n = 120
    start = trio.current_time()
    result = await af.run_async(limited_flow(n, rate, concurrency, calls, latency=latency, sync=sync))
    assert result["total"] == n and len(calls) == n
    interval = 1 / rate
    assert most_in_window(calls, 1e-6) <= concurrency  # the burst: at most `concurrency` calls at once
    for window in (interval, 0.5, 1.0, 3.0):
        assert most_in_window(calls, window) <= concurrency + rate * window + 1e-6, window
    if latency * rate <= concurrency:  # the workers keep up: the limit is the only brake
        assert max(calls) - start == pytest.approx((n - concurrency) / rate, abs=latency + 1e-6)


async def test_a_sink_and_a_task_class_take_rate_limit(autojump_clock: trio.testing.MockClock) -> None:
    calls: dict[str, list[float]] = {"Shout": [], "store": []}
    flow = af.Flow("classes")

    @flow.source
    def numbers(n: int = 30) -> af.Stream[int]:
        yield from range(n)

    class Shout(af.Task):
        rate_limit = 20.0

        def run(self, numbers: int) -> int:
            calls["Shout"].append(trio.current_time())
            return numbers

    flow.add(Shout)

    @flow.sink(rate_limit=5.0, concurrency=2)
    def store(shout: int) -> None:
        calls["store"].append(trio.current_time())

    assert flow.tasks["shout"].settings.rate_limit == 20.0
    await af.run_async(flow)
    assert len(calls["Shout"]) == len(calls["store"]) == 30
    assert most_in_window(calls["Shout"], 1.0) <= 1 + 20
    assert most_in_window(calls["store"], 1.0) <= 2 + 5
    assert most_in_window(calls["store"], 1e-6) <= 2


async def test_the_wait_shows_as_throttled_not_busy(autojump_clock: trio.testing.MockClock) -> None:
    flow = limited_flow(20, 4.0, 2, [], sync=True)
    seen: set[str] = set()
    async with af.open_run(flow) as run:
        metrics = collector(run)
        while not run.done:
            seen.add(run.summary.tasks["call_api"].status)
            await trio.sleep(0.05)
        result = await run.result()
    assert "throttled" in seen  # sampled while it waited (its quick calls leave "running" hard to catch)
    task = result.summary.tasks["call_api"]
    assert task.status == "finished"
    assert task.throttled == pytest.approx((20 - 2) / 4.0, rel=0.05)  # the waiting, all of it
    assert run.actors["call_api"].busy_time < task.throttled / 10  # the calls were quick: not busy
    text = metrics.render()
    assert 'actorflow_task_throttled_seconds_total{flow="limited",task="call_api"}' in text
    assert result.summary.tasks["numbers"].throttled == 0.0


async def test_the_monitor_stats_show_a_throttled_task() -> None:
    flow = limited_flow(6, 2.0, 1, [], sync=True)  # a call every 0.5 s (real time)
    with trio.fail_after(30):
        async with af.open_run(flow) as run, af.monitor.open_monitor(run, port=0, stats_interval=0.05) as mon, \
                open_websocket_url(mon.url) as ws:
            while True:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "stats" and msg["tasks"]["call_api"]["throttled"] > 0:
                    break
            seen = {msg["tasks"]["call_api"]["status"]}
            while "throttled" not in seen:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "stats":
                    seen.add(msg["tasks"]["call_api"]["status"])
            assert msg["tasks"]["numbers"]["throttled"] == 0.0
            run.cancel()


async def test_a_checkpoint_is_written_while_the_task_is_throttled(tmp_path: Path) -> None:
    flow = limited_flow(6, 0.5, 1, [], sync=True)  # a call every 2 s (real time)
    async with af.open_run(flow, store=tmp_path / "store", checkpoint_every=None) as run:
        stream = run.events()
        with trio.fail_after(30):
            while run.summary.tasks["call_api"].status != "throttled":
                await trio.sleep(0.01)
            assert await run.checkpoint_now()
        # written while the limiter still holds the task back: the checkpoint did not wait for it
        assert run.summary.tasks["call_api"].status == "throttled"
        run.cancel()
    events = [e async for e in stream]
    assert any(isinstance(e, ev.CheckpointWritten) for e in events)


async def test_cancelling_and_pausing_a_throttled_run_do_not_wait_for_the_limiter() -> None:
    flow = limited_flow(5, 0.05, 1, [], sync=True)  # a call every 20 s (real time)
    with trio.fail_after(10):  # far less than the limiter's 20 s
        with pytest.raises(af.RunCancelled):
            async with af.open_run(flow) as run:
                while run.summary.tasks["call_api"].status != "throttled":
                    await trio.sleep(0.01)
                run.pause()
                run.resume()
                run.cancel()
                await run.result()


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "fast", True])
def test_rate_limit_must_be_a_positive_number(bad: Any) -> None:
    flow = af.Flow("bad")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=r"task 'echo': rate_limit must be a positive number of calls"):

        @flow.task(rate_limit=bad)
        def echo(numbers: int) -> int:
            return numbers


def test_rate_limit_is_for_tasks_and_sinks() -> None:
    flow = af.Flow("kinds")

    class Numbers(af.Task):
        kind = "source"
        rate_limit = 3.0

        def run(self) -> af.Stream[int]:
            yield 1

    with pytest.raises(af.DefinitionError, match=r"rate_limit applies to tasks and sinks .*not to a source"):
        flow.add(Numbers)
