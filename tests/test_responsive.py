"""Slow handlers never freeze a run: time-sized batches keep checkpoints, signals, progress events
and the first item on time (issue "responsive actors"). Bounds are generous; tests assert counts
and order, never speed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af
from actorflow._kernel._loop import BatchSizer

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "slow.py"
sys.path.insert(0, str(PIPELINE.parent))
import slow  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


# -- the sizer -------------------------------------------------------------------------------------


def test_batch_sizer_starts_at_one_grows_when_fast_and_shrinks_when_slow() -> None:
    sizer = BatchSizer(target=0.01, limit=1024)
    assert sizer.size == 1
    for _ in range(20):
        sizer.adjust(sizer.size, 0.0001)  # fast: doubles up to the limit
    assert sizer.size == 1024
    sizer.adjust(1024, 1.024)  # 1 ms per item: 10 items fit in the target
    assert sizer.size == 10
    sizer.adjust(10, 0.05)  # 5 ms per item
    assert sizer.size == 2
    sizer.adjust(2, 0.2)  # slower than the target for one item: never below one
    assert sizer.size == 1
    sizer.adjust(1, 0.0001)
    assert sizer.size == 2
    sizer.adjust(1, 0.0001)  # a short batch (the inbox had less) does not grow it
    assert sizer.size == 2
    remote = BatchSizer(target=0.01, limit=500, fixed=True)  # process/Dask batches: a round trip is costly
    remote.adjust(500, 2.0)
    assert remote.size == 500


def test_batch_time_is_a_task_setting_and_a_run_setting() -> None:
    flow = af.Flow("bt")

    @flow.source(batch_time=0.05)
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    class Double(af.Task):
        batch_time = 0.02

        def run(self, numbers: int) -> int:
            return numbers * 2

    flow.add(Double)
    assert flow.tasks["numbers"].settings.batch_time == 0.05
    assert flow.tasks["double"].settings.batch_time == 0.02
    assert af.run(flow, batch_time=0.001)["double"] == [0, 2, 4]
    with pytest.raises(af.DefinitionError, match="batch_time must be a positive number"):
        flow.task(name="bad", batch_time=0)(lambda numbers: numbers)
    with pytest.raises(af.ActorflowError, match="batch_time must be a positive"):
        af.run(flow, batch_time=-1)


# -- promises with slow handlers --------------------------------------------------------------------


async def test_checkpoints_keep_their_cadence_behind_a_slow_handler(tmp_path: Path) -> None:
    """2 ms of CPU per item for ~1.2 s: a checkpoint every 0.1 s, never a gap of more than 3 intervals
    (allowing 0.3 s of slack for a loaded test machine)."""
    n = 600
    times: list[float] = []
    async with af.open_run(slow.flow, {"numbers": {"n": n}}, store=tmp_path / "s", checkpoint_every=0.1) as run:
        async for event in run.events():
            if isinstance(event, af.events.CheckpointWritten):
                times.append(trio.current_time())
        result = await run.result()
    assert result["total"] == slow.expected(n)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 4, times
    assert max(gaps) <= 3 * 0.1 + 0.3, gaps


async def test_progress_events_and_the_first_item_come_after_a_few_items() -> None:
    """Batches start at one item: the sink has its first item after a few of the slow task's items,
    not after a whole batch of them, and batch events keep coming instead of one per 1,024 items."""
    flow = af.Flow("first")
    seen: dict[str, int] = {"worked": 0}

    @flow.source
    def numbers(n: int = 300) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def work(numbers: int) -> int:
        slow.spin(0.002)
        seen["worked"] += 1
        return numbers

    @flow.sink
    def record(work: int) -> None:
        seen.setdefault("first_at", seen["worked"])

    batches = 0
    async with af.open_run(flow) as run:
        async for event in run.events():
            if isinstance(event, af.events.BatchProcessed) and event.task == "work":
                batches += 1
        await run.result()
    assert seen["first_at"] < 50, seen  # not after a whole batch of the source
    assert batches >= 300 * 0.002 / 0.01 / 2  # about one batch per batch_time, not a handful


def _wait_for_checkpoint(store: Path, proc: subprocess.Popen[str]) -> None:
    """Block until the store holds a checkpoint of the running process (or the process ended)."""
    import time

    while proc.poll() is None:
        if (store / "data.mdb").exists():
            try:
                with af.store.open_store(store, create=False) as st:
                    if st.read_checkpoint() is not None:
                        return
            except af.StoreError:
                pass
        time.sleep(0.02)  # polling another process's files: there is no event to await


@pytest.mark.parametrize("source_spin", [0.0, 0.001], ids=["slow-task", "slow-source"])
def test_sigint_behind_a_slow_handler_checkpoints_and_exits_130(tmp_path: Path, source_spin: float) -> None:
    """A 2 ms handler (or a source spinning 1 ms per item) never holds SIGINT: the run writes its final
    checkpoint and exits 130, and resuming gives the uninterrupted product."""
    n = 2000
    store = tmp_path / "store"
    cmd = [
        sys.executable, "-m", "actorflow", "run", f"{PIPELINE}:flow", "--store", str(store),
        "--checkpoint-every", "0.1s", "--set", f"numbers.n={n}", "--set", f"numbers.source_spin={source_spin}",
        "--json", "--quiet",
    ]
    proc = subprocess.Popen(cmd, env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(store, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    resumed = subprocess.run(
        [sys.executable, "-m", "actorflow", "resume", "--store", str(store), "--json", "--quiet"],
        env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["total"] == slow.expected(n)


# -- slow items ---------------------------------------------------------------------------------------


async def test_a_slow_item_is_reported_with_its_sequence_number() -> None:
    flow = af.Flow("slowitem")

    @flow.source
    def numbers(n: int = 6) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def sync_work(numbers: int) -> int:
        if numbers == 3:
            slow.spin(0.12)
        return numbers

    @flow.task
    async def async_work(sync_work: int) -> int:
        if sync_work == 4:
            await trio.sleep(0.12)
        return sync_work

    reports: list[Any] = []
    async with af.open_run(flow, slow_item=0.05) as run:
        async for event in run.events():
            if isinstance(event, af.events.ItemSlow):
                reports.append(event)
        assert (await run.result())["async_work"] == list(range(6))
    by_task = {(e.task, e.seq) for e in reports}
    assert ("sync_work", 3) in by_task
    assert ("async_work", 4) in by_task
    assert all(e.seconds >= 0.05 for e in reports)
    assert len([e for e in reports if e.task == "async_work"]) == 1  # seen while running, reported once


# -- the thread executor -------------------------------------------------------------------------------


async def test_thread_executor_runs_sync_handlers_in_worker_threads() -> None:
    flow = af.Flow("threads")
    main = threading.get_ident()
    threads: set[int] = set()

    @flow.source
    def numbers(n: int = 200) -> af.Stream[int]:
        yield from range(n)

    @flow.task(executor="thread")
    def blocking(numbers: int) -> int:  # a closure is fine: nothing leaves the process
        threads.add(threading.get_ident())
        return numbers + 1

    @flow.collector(init=0)
    def total(acc: int, blocking: int) -> int:
        return acc + blocking

    assert flow.tasks["blocking"].concurrency == af.ThreadExecutor().threads
    result = await af.run_async(flow)
    assert result["total"] == sum(range(1, 201))
    assert threads and main not in threads


async def test_thread_executor_as_a_class_attribute_with_retries(tmp_path: Path) -> None:
    flow = af.Flow("threads_cls")
    failed: set[int] = set()

    @flow.source
    def numbers(n: int = 50) -> af.Stream[int]:
        yield from range(n)

    class Flaky(af.Task):
        executor = "thread"
        retries = 1

        def run(self, numbers: int) -> int:
            if numbers % 10 == 0 and numbers not in failed:
                failed.add(numbers)
                raise ValueError(numbers)
            return numbers

    flow.add(Flaky)
    result = await af.run_async(flow, store=tmp_path / "s")
    assert result["flaky"] == list(range(50))
    assert failed == {0, 10, 20, 30, 40}


async def test_cancelling_a_thread_executor_task_waits_for_the_call_in_flight() -> None:
    flow = af.Flow("threads_cancel")
    started = threading.Event()
    release = threading.Event()
    finished: list[int] = []

    @flow.source
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    @flow.task(executor=af.ThreadExecutor(threads=1))
    def block(numbers: int) -> int:
        started.set()
        release.wait(10)
        finished.append(numbers)
        return numbers

    with pytest.raises(af.RunCancelled):
        async with af.open_run(flow) as run:
            await trio.to_thread.run_sync(started.wait)
            run.cancel()
            release.set()
            await run.result()
    assert finished  # the call in flight ran to its end; no thread is left behind
    assert threading.active_count() >= 1
