"""``af.Context`` and ``af.Seq`` on executors: threads, a real process pool and a real Dask LocalCluster.

The worker gets a detached copy of the task's context (run id, task, its declared secrets); what it
reports (progress, log records) comes back with each batch and reaches the run's events and the
task's logger, with secret values masked, exactly as inline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import distributed
import pytest

import actorflow as af
from actorflow import events as ev

SECRET = "w0rker-s3cret-value"
N = 24

# -- task functions: module level, so worker processes can import them ----------------------------


def report(numbers: int, ctx: af.Context) -> str:
    ctx.progress(numbers + 1, N)
    ctx.logger.info("item %s with key %s", numbers, ctx.secret("API_KEY"))
    return f"{ctx.task}|{ctx.run_id}|{len(ctx.secret('API_KEY'))}|{os.getpid()}"


def snoop(numbers: int, ctx: af.Context) -> str:
    return ctx.secret("OTHER")


def fails_loudly(numbers: int, ctx: af.Context) -> int:
    if numbers == 5:
        try:
            raise ValueError(f"bad item, key {ctx.secret('API_KEY')}")
        except ValueError:
            ctx.logger.exception("item %s failed", numbers)
    return numbers


def numbered(numbers: int, seq: af.Seq) -> int:
    return int(seq) * 10 + numbers  # type: ignore[call-overload]


def numbered_children(numbers: int, seq: af.Seq) -> af.Stream[str]:
    yield f"{seq}:{numbers}"


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as c:
        yield c


@pytest.fixture(params=["thread", "process", "dask"])
def executor(request: pytest.FixtureRequest) -> af.Executor:
    if request.param == "thread":
        return af.ThreadExecutor(threads=2)
    if request.param == "process":
        return af.ProcessExecutor(workers=2)
    return af.DaskExecutor(request.getfixturevalue("cluster"))


def flow_with(executor: Any, fn: Any, **task_kw: Any) -> af.Flow:
    flow = af.Flow("ctx-exec")

    @flow.source(batch_size=4)
    def numbers(n: int = N) -> af.Stream[int]:
        yield from range(n)

    flow.task(executor=executor, batch_size=4, **task_kw)(fn)
    return flow


# -- tests ---------------------------------------------------------------------------------------


async def test_context_reaches_workers_and_progress_and_logs_come_back(
    executor: af.Executor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actorflow.task.report")
    flow = flow_with(executor, report, secrets=["API_KEY"])
    async with af.open_run(flow, secrets={"API_KEY": SECRET}) as run:
        events = run.events()
        result = await run.result()
    pids = {int(r.rsplit("|", 1)[1]) for r in result["report"]}
    assert [r.rsplit("|", 1)[0] for r in result["report"]] == [f"report|{run.run_id}|{len(SECRET)}"] * N
    if not isinstance(executor, af.ThreadExecutor):
        assert os.getpid() not in pids  # it ran in worker processes
    progress = [(e.done, e.total) async for e in events if isinstance(e, ev.TaskProgress)]
    assert sorted(progress) == [(i + 1, N) for i in range(N)]  # every report, batch by batch
    records = [r for r in caplog.records if r.name == "actorflow.task.report"]
    assert sorted(r.getMessage() for r in records) == sorted(f"item {i} with key ***" for i in range(N))
    assert all(r.task == "report" and r.run_id == run.run_id for r in records)  # type: ignore[attr-defined]
    assert SECRET not in caplog.text


async def test_a_worker_logs_a_traceback_without_the_secret(
    executor: af.Executor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actorflow.task.fails_loudly")
    flow = flow_with(executor, fails_loudly, secrets=["API_KEY"])
    result = await af.run_async(flow, secrets={"API_KEY": SECRET})
    assert result["fails_loudly"] == list(range(N))
    (record,) = [r for r in caplog.records if r.name == "actorflow.task.fails_loudly"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("item 5 failed\nTraceback")
    assert "ValueError: bad item, key ***" in record.getMessage() and SECRET not in caplog.text


async def test_an_undeclared_secret_fails_in_the_worker_naming_it(executor: af.Executor) -> None:
    flow = flow_with(executor, snoop, secrets=["API_KEY"])
    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(flow, secrets={"API_KEY": SECRET, "OTHER": "other-value"})
    assert info.value.task == "snoop"
    assert "task 'snoop' reads secret 'OTHER' but declares only ['API_KEY']" in str(info.value.__cause__)
    assert "other-value" not in str(info.value)


async def test_seq_reaches_the_worker(executor: af.Executor) -> None:
    result = await af.run_async(flow_with(executor, numbered))
    assert result["numbered"] == [i * 11 for i in range(N)]
    children = await af.run_async(flow_with(executor, numbered_children))
    assert children["numbered_children"] == [f"{i}:{i}" for i in range(N)]
