"""Executors: tasks that run whole batches in worker processes (trio-parallel) or on Dask.

Everything here runs for real: a trio-parallel process pool and a ``distributed.LocalCluster``
of worker processes (one module-scoped cluster, so its start-up is paid once).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import distributed
import psutil
import pytest
import trio

import actorflow as af
from actorflow import events as ev

# -- task functions: module level, so workers can import them ------------------------------------


def square(numbers: int) -> int:
    return numbers * numbers


def scaled(numbers: int, factor: int = 2) -> int:
    return numbers * factor


def jittery(numbers: int) -> int:
    if numbers % 5 == 0:  # some batches finish later than the ones after them
        time.sleep(0.01)
    return numbers + 1


def pid_of(numbers: int) -> int:
    return os.getpid()


def fail_on_7(numbers: int) -> int:
    if numbers == 7:
        raise ValueError("seven is not allowed")
    return numbers


def text_on_3(numbers: int) -> int:
    return "three" if numbers == 3 else numbers  # type: ignore[return-value]


def skip_odd(numbers: int) -> int:
    return af.SKIP if numbers % 2 else numbers  # type: ignore[return-value]


def repeat(numbers: int) -> af.Stream[int]:
    for _ in range(numbers % 3):
        yield numbers


def added(numbers: int, others: int) -> int:
    return numbers + others


def slow(numbers: int) -> int:
    time.sleep(0.2)
    return numbers


def die(numbers: int) -> int:
    os._exit(3)


def flaky(numbers: int, marks: str = "") -> int:
    """Fails the first time it sees 7 or 12 (the worker leaves a mark file), then works."""
    if numbers in (7, 12):
        mark = os.path.join(marks, f"{numbers}.seen")
        if not os.path.exists(mark):
            open(mark, "w").close()
            raise OSError(f"flaky on {numbers}")
    return numbers


# -- helpers -------------------------------------------------------------------------------------


def flow_with(executor: Any, fn: Any, n_batch: int = 4, **task_kw: Any) -> af.Flow:
    """numbers (source) -> fn (with the executor); fn's stream is the product."""
    flow = af.Flow("exec")

    @flow.source(batch_size=n_batch)
    def numbers(n: int = 20) -> af.Stream[int]:
        yield from range(n)

    flow.task(executor=executor, batch_size=n_batch, **task_kw)(fn)
    return flow


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as c:
        yield c


@pytest.fixture(params=["process", "dask"])
def executor(request: pytest.FixtureRequest) -> af.Executor:
    if request.param == "process":
        return af.ProcessExecutor(workers=2)
    return af.DaskExecutor(request.getfixturevalue("cluster"))


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


# -- results, order, options, ports --------------------------------------------------------------


async def test_results_match_inline_and_keep_input_order(executor: af.Executor) -> None:
    result = await af.run_async(flow_with(executor, jittery, n_batch=3), {"numbers": {"n": 40}})
    assert result["jittery"] == [i + 1 for i in range(40)]


async def test_items_run_in_other_processes(executor: af.Executor) -> None:
    result = await af.run_async(flow_with(executor, pid_of), {"numbers": {"n": 12}})
    assert os.getpid() not in set(result["pid_of"])


async def test_options_reach_the_worker(executor: af.Executor) -> None:
    result = await af.run_async(flow_with(executor, scaled), {"numbers": {"n": 10}, "scaled": {"factor": 3}})
    assert result["scaled"] == [3 * i for i in range(10)]


async def test_generator_task_yields_child_items(executor: af.Executor) -> None:
    flow = flow_with(executor, repeat)

    @flow.collector(init=[])
    def seen(acc: list[int], repeat: int) -> list[int]:
        return [*acc, repeat]

    result = await af.run_async(flow, {"numbers": {"n": 10}})
    assert result["seen"] == [x for x in range(10) for _ in range(x % 3)]


async def test_skip_from_a_worker_drops_the_item() -> None:
    result = await af.run_async(flow_with("process", skip_odd), {"numbers": {"n": 10}})
    assert result["skip_odd"] == [0, 2, 4, 6, 8]


async def test_zipped_inputs_reach_the_worker_as_pairs(cluster: distributed.LocalCluster) -> None:
    flow = af.Flow("zip")

    @flow.source
    def numbers(n: int = 5) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def others(numbers: int) -> int:
        return 100 * numbers

    flow.task(executor=af.DaskExecutor(cluster))(added)
    result = await af.run_async(flow, {"numbers": {"n": 6}})
    assert result["added"] == [101 * i for i in range(6)]


async def test_worker_failure_names_the_task_and_item(executor: af.Executor) -> None:
    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(flow_with(executor, fail_on_7), {"numbers": {"n": 20}})
    assert info.value.task == "fail_on_7"
    assert info.value.seq == 7
    assert isinstance(info.value.__cause__, ValueError)
    assert "seven is not allowed" in str(info.value)
    assert any("traceback in the worker" in note for note in info.value.__cause__.__notes__)


async def test_retry_policy_retries_the_failing_item_in_the_worker(executor: af.Executor, tmp_path: Any) -> None:
    flow = flow_with(executor, flaky, n_batch=5, on_error=af.Retry(attempts=2, backoff=0))
    async with af.open_run(flow, {"numbers": {"n": 20}, "flaky": {"marks": str(tmp_path)}}) as run:
        events = run.events()
        result = await run.result()
    assert result["flaky"] == list(range(20))
    retried = [e.seq async for e in events if type(e) is ev.ItemRetried]
    assert sorted(retried) == [7, 12]  # two batches are in flight at once: either may retry first


async def test_restart_policy_restarts_the_actor_and_goes_on(executor: af.Executor, tmp_path: Any) -> None:
    flow = flow_with(executor, flaky, n_batch=5, on_error=af.Restart(intensity=5, period=60.0))
    async with af.open_run(flow, {"numbers": {"n": 20}, "flaky": {"marks": str(tmp_path)}}) as run:
        events = run.events()
        result = await run.result()
    assert result["flaky"] == list(range(20))  # nothing lost, order kept
    restarts = [e async for e in events if type(e) is ev.ActorRestarted]
    assert sorted(e.seq for e in restarts) == [7, 12] and all(e.task == "flaky" for e in restarts)


async def test_dead_letter_policy_drops_only_the_failing_item() -> None:
    flow = flow_with(af.ProcessExecutor(workers=2), fail_on_7, n_batch=5, on_error=af.DeadLetter())
    result = await af.run_async(flow, {"numbers": {"n": 12}})
    assert result["fail_on_7"] == [i for i in range(12) if i != 7]
    assert [(d["task"], d["seq"]) for d in result.dead_letters] == [("fail_on_7", 7)]


async def test_wrong_type_from_a_worker_fails_at_the_port(executor: af.Executor) -> None:
    with pytest.raises(af.MailboxTypeError) as info:
        await af.run_async(flow_with(executor, text_on_3), {"numbers": {"n": 8}})
    assert info.value.task == "text_on_3"
    assert info.value.seq == 3
    assert info.value.actual == "str"


async def test_a_dying_worker_fails_the_run_clearly() -> None:
    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(flow_with(af.ProcessExecutor(workers=1), die), {"numbers": {"n": 3}})
    assert info.value.task == "die"
    assert "died" in str(info.value).lower() or "broken" in type(info.value.__cause__).__name__.lower()


async def test_events_count_every_item(executor: af.Executor) -> None:
    async with af.open_run(flow_with(executor, square), {"numbers": {"n": 30}}) as run:
        stream = run.events()
        events = [e async for e in stream]
        result = await run.result()
    assert result["square"] == [i * i for i in range(30)]
    mine = [e for e in events if getattr(e, "task", None) == "square"]
    assert type(mine[0]) is ev.TaskStarted
    assert sum(e.items_in for e in mine if type(e) is ev.BatchProcessed) == 30
    finished = [e for e in mine if type(e) is ev.TaskFinished]
    assert len(finished) == 1
    assert finished[0].items_in == finished[0].items_out == 30


def sleepy_square(numbers: int) -> int:
    time.sleep(0.002)
    return numbers * numbers


async def test_checkpoint_and_resume_with_batches_in_flight(executor: af.Executor, tmp_path: Any) -> None:
    flow = flow_with(executor, sleepy_square, n_batch=8)

    @flow.collector(init=0)
    def total(acc: int, sleepy_square: int) -> int:
        return acc + sleepy_square

    opts = {"numbers": {"n": 400}}
    store = tmp_path / "store"
    with trio.CancelScope() as scope:  # cut the run off right after its second checkpoint, as a crash would
        async with af.open_run(flow, opts, store=store, checkpoint_every=0.05) as run:
            async for event in run.events():
                if isinstance(event, ev.CheckpointWritten) and event.number == 2:
                    scope.cancel()
    assert scope.cancelled_caught, "the run ended before its second checkpoint"
    result = await af.run_async(flow, opts, store=store, resume=True)
    assert result["total"] == sum(i * i for i in range(400))  # nothing lost, nothing counted twice


# -- definitions ---------------------------------------------------------------------------------


def test_concurrency_defaults_to_in_flight_and_can_be_set() -> None:
    flow = flow_with(af.ProcessExecutor(workers=2, in_flight=3), square)
    assert flow.tasks["square"].concurrency == 3
    flow = flow_with(af.ProcessExecutor(workers=2), square, concurrency=1)
    assert flow.tasks["square"].concurrency == 1
    assert flow_with("process", square).tasks["square"].executor.workers == (os.cpu_count() or 1)


def test_capacity_grows_to_hold_every_batch_in_flight() -> None:
    flow = flow_with(af.ProcessExecutor(workers=2, in_flight=4), square, n_batch=2000)
    assert flow.tasks["square"].capacity == 8000
    flow = flow_with(af.ProcessExecutor(workers=2, in_flight=4), square, n_batch=500, capacity=100)
    assert flow.tasks["square"].capacity == 100


def _flow_for(fn: Any, executor: Any = "process", **kw: Any) -> None:
    flow = af.Flow("bad")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    flow.task(executor=executor, **kw)(fn)


def test_lambda_is_refused_at_definition() -> None:
    with pytest.raises(af.DefinitionError, match=r"task '<lambda>'|lambda") as info:
        _flow_for(lambda numbers: numbers, name="double")
    assert "'double'" in str(info.value)
    assert "lambda" in str(info.value)


def test_nested_function_and_closure_are_refused() -> None:
    k = 3

    def nested(numbers: int) -> int:
        return numbers

    def closure(numbers: int) -> int:
        return numbers * k

    for fn in (nested, closure):
        with pytest.raises(af.DefinitionError) as info:
            _flow_for(fn)
        assert f"task {fn.__name__!r}" in str(info.value)
        assert "inside another function" in str(info.value)


def test_callable_object_and_partial_are_refused() -> None:
    with pytest.raises(af.DefinitionError, match="partial"):
        _flow_for(functools.partial(scaled, factor=2), name="p")


def test_async_function_is_refused() -> None:
    async def fetch(numbers: int) -> int:
        return numbers

    with pytest.raises(af.DefinitionError, match=r"task 'fetch'.*sync functions"):
        _flow_for(fetch)


def test_executor_needs_a_streaming_input() -> None:
    flow = af.Flow("final")
    with pytest.raises(af.DefinitionError, match=r"task 'square'.*streaming input"):
        flow.task(executor="process")(square)


def test_unknown_executor_is_refused() -> None:
    with pytest.raises(af.DefinitionError, match=r"task 'square'.*executor must be.*'threads'"):
        _flow_for(square, executor="threads")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: af.ProcessExecutor(workers=0), "workers must be a positive int, got 0"),
        (lambda: af.ProcessExecutor(in_flight=-1), "in_flight must be a positive int, got -1"),
        (lambda: af.ProcessExecutor(idle_timeout=0), "idle_timeout must be a positive number"),
        (lambda: af.DaskExecutor("tcp://x:1", in_flight=0), "in_flight must be a positive int, got 0"),
    ],
)
def test_bad_executor_arguments(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_dask_executor_needs_an_address_or_client() -> None:
    with pytest.raises(TypeError, match=r"scheduler address.*got int 42"):
        af.DaskExecutor(42)


# A function that module lookup cannot find: the decorator below it replaces the module's name.
shadow_flow = af.Flow("shadow")


@shadow_flow.source
def shadow_numbers() -> af.Stream[int]:
    yield 1


@functools.cache
@shadow_flow.task(executor="process")
def shadowed(shadow_numbers: int) -> int:
    return shadow_numbers


def test_function_not_importable_by_name_fails_at_bind() -> None:
    with pytest.raises(af.InvocationError) as info:
        shadow_flow.bind()
    assert "task 'shadowed'" in str(info.value)
    assert "cannot be found by importing module" in str(info.value)


# -- lifecycle: nothing leaks --------------------------------------------------------------------


async def test_process_pool_is_shut_down_after_the_run() -> None:
    before = children()
    result = await af.run_async(flow_with(af.ProcessExecutor(workers=2), square), {"numbers": {"n": 20}})
    assert result["square"] == [i * i for i in range(20)]
    assert children() <= before


async def test_cancelling_a_run_kills_busy_workers() -> None:
    before = children()
    flow = flow_with(af.ProcessExecutor(workers=2), slow, n_batch=1)
    with trio.fail_after(20):
        async with af.open_run(flow, {"numbers": {"n": 1000}}) as run:
            async for event in run.events():
                if type(event) is ev.BatchProcessed and event.task == "slow":
                    break  # workers are up and busy
            assert children() - before  # the pool is running
            run.cancel()
            with pytest.raises(af.RunCancelled):
                await run.result()
    assert children() <= before


async def test_owned_dask_client_is_closed_after_run_and_after_cancel(cluster: distributed.LocalCluster) -> None:
    scheduler = cluster.scheduler
    clients_before = set(scheduler.clients)
    threads_before = {t.name for t in threading.enumerate()}
    result = await af.run_async(flow_with(af.DaskExecutor(cluster.scheduler_address), square), {"numbers": {"n": 10}})
    assert result["square"] == [i * i for i in range(10)]

    flow = flow_with(af.DaskExecutor(cluster), slow, n_batch=1)
    async with af.open_run(flow, {"numbers": {"n": 200}}) as run:
        async for event in run.events():
            if type(event) is ev.BatchProcessed and event.task == "slow":
                break
        run.cancel()
        with pytest.raises(af.RunCancelled):
            await run.result()
    # The scheduler hears about closed clients asynchronously.
    with trio.fail_after(10):
        while set(scheduler.clients) - clients_before:
            await trio.sleep(0.05)
    leaked = {t.name for t in threading.enumerate()} - threads_before
    assert not {n for n in leaked if "IO loop" in n or "Client" in n}
    # The cluster still works after a cancelled run.
    result = await af.run_async(flow_with(af.DaskExecutor(cluster), square), {"numbers": {"n": 5}})
    assert result["square"] == [0, 1, 4, 9, 16]


async def test_a_client_you_pass_stays_open(cluster: distributed.LocalCluster) -> None:
    client = await trio.to_thread.run_sync(functools.partial(distributed.Client, cluster, set_as_default=False))
    try:
        result = await af.run_async(flow_with(af.DaskExecutor(client), square), {"numbers": {"n": 6}})
        assert result["square"] == [i * i for i in range(6)]
        assert client.status == "running"
    finally:
        await trio.to_thread.run_sync(client.close)


# -- executors chosen at run time ----------------------------------------------------------------


def inline_flow(fn: Any = pid_of, **task_kw: Any) -> tuple[af.Flow, list[int]]:
    """numbers -> fn defined inline (no executor); the list records each time the source starts."""
    flow = af.Flow("picked")
    started: list[int] = []

    @flow.source(batch_size=4)
    def numbers(n: int = 12) -> af.Stream[int]:
        started.append(1)
        yield from range(n)

    flow.task(batch_size=4, **task_kw)(fn)
    return flow, started


async def test_a_run_puts_an_inline_task_in_worker_processes() -> None:
    flow, _ = inline_flow()
    result = await af.run_async(flow, executors={"pid_of": af.ProcessExecutor(workers=2)})
    assert os.getpid() not in set(result["pid_of"])
    assert flow.tasks["pid_of"].executor is None  # the definition is untouched
    again = await af.run_async(flow)
    assert set(again["pid_of"]) == {os.getpid()}


async def test_a_run_puts_a_task_on_dask_by_name_or_instance(cluster: distributed.LocalCluster) -> None:
    import dask

    flow, _ = inline_flow()
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        by_name = await af.run_async(flow, executors={"pid_of": "dask"})
    workers = children()  # the cluster's processes (no process pool is open here)
    assert os.getpid() not in workers
    assert set(by_name["pid_of"]) <= workers
    by_instance = await af.run_async(flow, executors={"pid_of": af.DaskExecutor(cluster)})
    assert set(by_instance["pid_of"]) <= workers


def test_dask_by_name_without_a_configured_scheduler_is_an_invocation_error(monkeypatch: Any) -> None:
    import dask

    flow, started = inline_flow()
    with dask.config.set({"scheduler-address": None}), pytest.raises(
        af.InvocationError, match=r"task 'pid_of', executor 'dask':.*DASK_SCHEDULER_ADDRESS"
    ):
        af.run(flow, executors={"pid_of": "dask"})
    assert started == []


def test_inline_and_thread_override_the_definition() -> None:
    flow = flow_with(af.ProcessExecutor(workers=2), pid_of)
    assert set(af.run(flow, executors={"pid_of": "inline"})["pid_of"]) == {os.getpid()}
    assert set(af.run(flow, executors={"pid_of": "thread"})["pid_of"]) == {os.getpid()}


async def test_concurrency_left_to_its_default_follows_the_run_executor() -> None:
    flow, _ = inline_flow(square)
    async with af.open_run(flow, executors={"square": af.ThreadExecutor(threads=3)}) as run:
        assert run.graph.tasks["square"].concurrency == 3
        assert (await run.result())["square"] == [i * i for i in range(12)]
    fixed, _ = inline_flow(square, concurrency=2)
    async with af.open_run(fixed, executors={"square": "thread"}) as run:
        assert run.graph.tasks["square"].concurrency == 2  # the definition's own choice stays
    on_process = flow_with("process", square)
    async with af.open_run(on_process, executors={"square": "inline"}) as run:
        assert run.graph.tasks["square"].concurrency == 1
        assert run.graph.tasks["square"].capacity == flow.tasks["square"].capacity


async def afunc(numbers: int) -> int:
    return numbers


@pytest.mark.parametrize(
    ("executors", "message"),
    [
        ({"pid_off": "process"}, r"executors: unknown task 'pid_off'; did you mean 'pid_of'\?"),
        ({"pid_of": "processes"}, r"task 'pid_of', executor 'processes': executor must be one of 'inline', 'thread'"),
        ({"pid_of": 3}, r"task 'pid_of', executor 3: executor must be one of"),
        ({"numbers": "thread"}, r"task 'numbers', executor 'thread': a source runs in its actor"),
        ({"total": "process"}, r"task 'total', executor 'process': a collector runs in its actor"),
        ({"afunc": "process"}, r"task 'afunc', executor 'process': an executor runs sync functions"),
        ({"local": "process"}, r"task 'local', executor 'process': .*defined inside another function"),
    ],
)
def test_bad_run_executors_are_invocation_errors_before_anything_runs(executors: Any, message: str) -> None:
    flow, started = inline_flow()
    flow.task(afunc)

    @flow.task
    def local(numbers: int) -> int:  # a closure: fine inline or in threads, not in processes
        return numbers

    @flow.collector(init=0)
    def total(acc: int, pid_of: int) -> int:
        return acc + 1

    with pytest.raises(af.InvocationError, match=message) as info:
        af.run(flow, executors=executors)
    assert str(info.value).startswith(f"invalid run settings for flow {flow.name!r}")
    assert started == []
    assert af.run(flow, executors={"local": "thread"})["total"] == 12  # threads take any function


async def test_resume_on_another_executor(tmp_path: Any) -> None:
    flow = flow_with(None, sleepy_square, n_batch=8)

    @flow.collector(init=0)
    def total(acc: int, sleepy_square: int) -> int:
        return acc + sleepy_square

    opts = {"numbers": {"n": 400}}
    store = tmp_path / "store"
    with trio.CancelScope() as scope:
        async with af.open_run(
            flow, opts, store=store, checkpoint_every=0.05, executors={"sleepy_square": af.ProcessExecutor(workers=2)}
        ) as run:
            async for event in run.events():
                if isinstance(event, ev.CheckpointWritten) and event.number == 2:
                    scope.cancel()
    assert scope.cancelled_caught, "the run ended before its second checkpoint"
    result = await af.run_async(flow, opts, store=store, resume=True, executors={"sleepy_square": "thread"})
    assert result["total"] == sum(i * i for i in range(400))
