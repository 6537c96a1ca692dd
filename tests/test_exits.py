"""KeyboardInterrupt and SystemExit from a task's code: the run stops, the caller gets the exception
itself (not an exception group), a store gets a checkpoint, and a resume gives the products of an
uninterrupted run, whatever kind of actor raised and wherever in its batch. The CLI exits with the
task's code without a traceback; a pipeline file that exits or fails while imported is named.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af

N = 300
#: The exit to raise once, and on which value (each flow calls `trip` where it is told to).
ARMED: dict[str, Any] = {"exc": None, "at": -1}


def trip(x: int) -> None:
    exc = ARMED["exc"]
    if exc is not None and x == ARMED["at"]:
        ARMED["exc"] = None  # once: the resumed run goes on
        raise exc


def make_flow(where: str) -> tuple[af.Flow, list[int]]:
    """source -> double (or a generator) -> total, seen (collectors) and record (a sink); `where` raises."""
    flow = af.Flow(f"exits_{where}")
    sunk: list[int] = []
    _source(flow, where)
    _middle(flow, where)
    _collectors(flow, where)
    _sink(flow, where, sunk)
    return flow, sunk


def _source(flow: af.Flow, where: str) -> None:
    if where == "source_async":

        @flow.source
        async def nums(n: int = N) -> af.Stream[int]:
            for i in range(n):
                trip(i)
                yield i
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()
        return

    @flow.source
    def nums(n: int = N) -> Iterator[int]:
        for i in range(n):
            if where == "source":
                trip(i)
            yield i


def _middle(flow: af.Flow, where: str) -> None:
    if where == "generator":

        @flow.task(batch_size=16)
        def double(nums: int) -> Iterator[int]:
            for j in range(40):  # 40 children per item: some are sent before the item ends
                if j == 25:
                    trip(nums)
                yield nums * 100 + j
    elif where == "task_async":

        @flow.task
        async def double(nums: int) -> int:
            trip(nums)
            await trio.lowlevel.checkpoint()
            return nums * 2
    elif where == "workers":

        @flow.task(concurrency=3)
        async def double(nums: int) -> int:
            await trio.sleep(0.0005 * (nums % 3))  # workers finish out of order
            trip(nums)
            return nums * 2
    elif where == "thread":

        @flow.task(executor="thread")
        def double(nums: int) -> int:
            trip(nums)
            return nums * 2
    else:

        @flow.task
        def double(nums: int) -> int:
            if where == "task":
                trip(nums)
            return nums * 2


def _collectors(flow: af.Flow, where: str) -> None:
    if where == "collector_async":

        @flow.collector(init=0)
        async def total(acc: int, double: int) -> int:
            trip(double // 2)
            return acc + double
    else:

        @flow.collector(init=0)
        def total(acc: int, double: int) -> int:
            if where == "collector":
                trip(double // 2)
            return acc + double

    @flow.collector(init=[])
    def seen(acc: list[int], double: int) -> list[int]:
        acc.append(double)  # in place: an item folded twice would show
        return acc


def _sink(flow: af.Flow, where: str, sunk: list[int]) -> None:
    if where == "sink_async":

        @flow.sink
        async def record(double: int) -> None:
            trip(double // 2)
            sunk.append(double)
        return

    @flow.sink
    def record(double: int) -> None:
        if where == "sink":
            trip(double // 2)
        sunk.append(double)


KINDS = ["source", "source_async", "task", "task_async", "generator", "workers", "thread", "collector",
         "collector_async", "sink", "sink_async"]


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    ARMED.update(exc=None, at=-1)


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("where", KINDS)
def test_exit_reaches_caller_and_resume_gives_uninterrupted_products(
    tmp_path: Path, where: str, exc_type: type[BaseException]
) -> None:
    flow, sunk = make_flow(where)
    expected = af.run(flow)
    expected_sunk = list(sunk)
    sunk.clear()

    ARMED.update(exc=exc_type(3) if exc_type is SystemExit else exc_type(), at=137)
    with pytest.raises(exc_type) as info:
        af.run(flow, store=tmp_path / "st", checkpoint_every=None)
    assert type(info.value) is exc_type  # itself: not wrapped in an exception group
    if exc_type is SystemExit:
        assert info.value.code == 3
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised by task" in notes and "checkpoint written" in notes
    assert ARMED["exc"] is None  # it was raised where the flow was told to

    resumed = af.run(flow, store=tmp_path / "st", resume=True)
    assert resumed["total"] == expected["total"]
    assert resumed["seen"] == expected["seen"]  # each item folded once, in order
    # a plain sink is at least once (docs/durability.md): nothing is lost, and an item it took after the
    # checkpoint comes again; the one it raised on was put back, so it too came (once more) after the resume
    assert set(sunk) == set(expected_sunk)
    if where.startswith("sink"):
        assert sunk.count(274) == 1  # item 137 raised before it was recorded: recorded once, after the resume


@pytest.mark.parametrize("where", ["task", "collector", "sink"])
def test_exit_without_store_and_from_run_async(where: str) -> None:
    flow, _ = make_flow(where)
    ARMED.update(exc=SystemExit(4), at=10)
    with pytest.raises(SystemExit) as info:
        trio.run(af.run_async, flow)
    assert type(info.value) is SystemExit and info.value.code == 4
    assert "checkpoint" not in "\n".join(getattr(info.value, "__notes__", []))


async def test_open_run_reports_interrupted_status() -> None:
    flow, _ = make_flow("task")
    ARMED.update(exc=KeyboardInterrupt(), at=5)
    with pytest.raises(KeyboardInterrupt):
        async with af.open_run(flow) as run:
            await run.wait_done()
    assert run.status == "interrupted"
    assert run.summary.tasks["double"].status == "interrupted"


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_a_per_collector_resumes_to_uninterrupted_groups(tmp_path: Path, exc_type: type[BaseException]) -> None:
    flow = af.Flow("exits_per")

    @flow.source
    def groups(n: int = 40) -> Iterator[int]:
        yield from range(n)

    @flow.task
    def members(groups: int) -> Iterator[int]:
        yield from range(groups * 10, groups * 10 + groups % 7)

    @flow.collector(init=[], per="groups")
    def listed(acc: list[int], members: int) -> list[int]:
        trip(members)
        acc.append(members)  # in place: an item folded twice would show
        return acc

    expected = af.run(flow)["listed"]
    ARMED.update(exc=exc_type(), at=134)
    with pytest.raises(exc_type):
        af.run(flow, store=tmp_path / "st", checkpoint_every=None)
    assert ARMED["exc"] is None
    assert af.run(flow, store=tmp_path / "st", resume=True)["listed"] == expected


def exiting_double(nums: int, marker: str = "") -> int:
    """Runs in a worker process (so at module level): exits on item 37, once."""
    if nums == 37 and marker and not os.path.exists(marker):  # once: the marker says it was raised
        open(marker, "w").close()
        sys.exit(5)
    return nums * 2


def test_an_exit_in_a_process_worker_stops_the_run_with_its_code(tmp_path: Path) -> None:
    flow = af.Flow("exits_process")

    @flow.source
    def nums(n: int = 60) -> Iterator[int]:
        yield from range(n)

    flow.task(executor="process", name="double")(exiting_double)

    @flow.collector(init=0)
    def total(acc: int, double: int) -> int:
        return acc + double

    options = {"double": {"marker": str(tmp_path / "raised")}}
    with pytest.raises(SystemExit) as info:
        af.run(flow, options, store=tmp_path / "st", checkpoint_every=None)
    assert type(info.value) is SystemExit and info.value.code == 5
    assert "at item seq 37" in "\n".join(info.value.__notes__)
    assert af.run(flow, options, store=tmp_path / "st", resume=True)["total"] == 2 * sum(range(60))


class TrippingLines(af.JsonLinesSink):
    """A JSON-lines sink whose own code raises the armed exit on one item."""

    def run(self, item: Any) -> None:
        trip(item // 2)
        super().run(item)


@pytest.mark.parametrize("where", ["task", "sink"])
@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt])
def test_a_transactional_sink_stays_exactly_once_across_an_exit(
    tmp_path: Path, where: str, exc_type: type[BaseException]
) -> None:
    flow = af.Flow(f"exits_txn_{where}")

    @flow.source
    def nums(n: int = N) -> Iterator[int]:
        yield from range(n)

    @flow.task
    def double(nums: int) -> int:
        if where == "task":
            trip(nums)
        return nums * 2

    flow.add(TrippingLines, name="out", inputs={"item": "double"})
    lines = tmp_path / "out.jsonl"
    ARMED.update(exc=exc_type(), at=137)
    with pytest.raises(exc_type):
        af.run(flow, {"out": {"path": str(lines)}}, store=tmp_path / "st", checkpoint_every=None)
    af.run(flow, {"out": {"path": str(lines)}}, store=tmp_path / "st", resume=True)
    assert [int(x) for x in lines.read_text().split()] == [2 * i for i in range(N)]


PREPARES = {"count": 0, "exit_on": 0}


class ExitingPrepare(af.JsonLinesSink):
    """A JSON-lines sink whose ``prepare`` raises SystemExit(7) on its `exit_on`-th call."""

    def prepare(self) -> str:
        PREPARES["count"] += 1
        if PREPARES["count"] == PREPARES["exit_on"]:
            raise SystemExit(7)
        return super().prepare()


def test_an_exit_from_a_transactional_sinks_prepare_resumes_from_the_last_durable_checkpoint(tmp_path: Path) -> None:
    flow = af.Flow("exits_prepare")

    @flow.source
    def nums(n: int = 100_000) -> Iterator[int]:  # long enough for several 1 ms checkpoints
        yield from range(n)

    @flow.task
    def double(nums: int) -> int:
        return nums * 2

    flow.add(ExitingPrepare, name="out", inputs={"item": "double"})
    lines = tmp_path / "out.jsonl"
    options = {"out": {"path": str(lines)}}
    PREPARES.update(count=0, exit_on=2)  # the first checkpoint is durable; the second's prepare exits
    try:
        with pytest.raises(SystemExit) as info:
            af.run(flow, options, store=tmp_path / "st", checkpoint_every=0.001)
        assert type(info.value) is SystemExit and info.value.code == 7
        assert "raised by task 'out'" in "\n".join(info.value.__notes__)
        PREPARES["exit_on"] = 0
        af.run(flow, options, store=tmp_path / "st", resume=True)
    finally:
        PREPARES.update(count=0, exit_on=0)
    assert [int(x) for x in lines.read_text().split()] == [2 * i for i in range(100_000)]


# -- the command line ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

PIPELINE = """
import os, sys
import actorflow as af

flow = af.Flow("cli_exits")

@flow.source
def nums(n: int = 50) -> af.Stream[int]:
    yield from range(n)

@flow.task
def double(nums: int) -> int:
    how = os.environ.get("EXIT_HOW")
    if nums == 20 and how:
        if how == "interrupt":
            raise KeyboardInterrupt
        sys.exit({"int": 3, "none": None, "text": "bye"}[how])
    return nums * 2

@flow.collector(init=0)
def total(acc: int, double: int) -> int:
    return acc + double
"""


def cli(*args: str, cwd: Path, how: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**ENV, **({"EXIT_HOW": how} if how else {})}
    env.pop("EXIT_HOW", None) if how is None else None
    return subprocess.run([sys.executable, "-m", "actorflow", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("how", "code", "shown"), [
    ("int", 3, "SystemExit(3)"), ("none", 0, "SystemExit(None)"), ("text", 1, "SystemExit('bye')"),
    ("interrupt", 130, "interrupted by KeyboardInterrupt"),
])
def test_cli_exits_with_the_tasks_code(tmp_path: Path, how: str, code: int, shown: str) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    done = cli("run", "pipe.py", "--store", "st", "--json", "--quiet", cwd=tmp_path, how=how)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("actorflow:")]
    assert len(lines) == 1 and shown in lines[0] and "task 'double' at item seq 20" in lines[0], done.stderr
    resumed = cli("resume", "--store", "st", "--json", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert '"total": 2450' in resumed.stdout


@pytest.mark.parametrize(("body", "message"), [
    ("import sys\nsys.exit(5)\n", "exited with code 5 while being imported (sys.exit at {path}:2); no flow was run"),
    ("import sys\n\nsys.exit(0)\n", "exited with code 0 while being imported (sys.exit at {path}:3); no flow was run"),
    ("x = 1\nraise ValueError('boom')\n", "failed to load: ValueError: boom (raised while importing it, at {path}:2)"),
    ("def f(:\n", "failed to load: SyntaxError"),
])
def test_cli_names_a_pipeline_file_that_exits_or_fails_at_import(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(body))
    done = cli("run", "bad.py", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"pipeline file 'bad.py' {message.format(path=path)}" in done.stderr
