"""Regular tests for the bugs the kernel issue lists.

Each run is bounded by a trio timeout, so that a hang fails the test (in one line) instead of
freezing the suite. These tests are targets for the kernel rework: they are not marked xfail.
Besides the issue's list, they hold what ``test_model.py`` found since: a zip of two generator
streams, a sparse zip under periodic checkpoints, a zip with a generator side that yields nothing,
and a sparse zip that also waits for a product of its own stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import actorflow as af

#: Seconds a run of 100,000 items may take before it counts as a hang (it takes well under 5 s).
BIG_RUN_TIMEOUT = 30.0
SMALL_RUN_TIMEOUT = 20.0


def hangs(seconds: float, what: str) -> None:
    """Fail in one line (the block was cancelled after *seconds*; trio's tracebacks say nothing more)."""
    pytest.fail(f"{what} did not finish within {seconds:g} s: it hangs", pytrace=False)


async def run_bounded(
    flow: af.Flow, options: dict[str, Any] | None = None, timeout: float = SMALL_RUN_TIMEOUT, **kwargs: Any
) -> af.RunResult:
    with trio.move_on_after(timeout):
        return await af.run_async(flow, options, **kwargs)
    hangs(timeout, f"the run of flow {flow.name!r}")
    raise AssertionError("unreachable")  # pragma: no cover - hangs() raised


# -- 1. a zip whose one side is sparse or lags far behind ----------------------------------------------


N_ZIP = 100_000
RARE = 50_000

#: Mailbox settings the zip tests run with: the defaults, and small mailboxes (which fill sooner).
MAILBOXES = pytest.mark.parametrize(
    "mailbox", [{}, {"capacity": 16, "batch_size": 16}], ids=["default_mailboxes", "small_mailboxes"]
)


def numbers_flow(name: str, n: int = N_ZIP, mailbox: dict[str, Any] | None = None) -> af.Flow:
    flow = af.Flow(name)

    @flow.source(**(mailbox or {}))
    def numbers(n: int = n) -> Iterator[int]:
        yield from range(n)

    return flow


def capacity_of(mailbox: dict[str, Any]) -> dict[str, Any]:
    """The part of *mailbox* a collector takes (collectors have no batch size)."""
    return {k: v for k, v in mailbox.items() if k == "capacity"}


@MAILBOXES
async def test_zip_with_a_sparse_branch_finishes(mailbox: dict[str, Any]) -> None:
    flow = numbers_flow("sparse", mailbox=mailbox)

    @flow.task(**mailbox)
    def rare(numbers: int) -> int:
        return numbers * 10 if numbers % RARE == 7 else af.SKIP  # type: ignore[return-value]

    @flow.task(**mailbox)
    def pair(numbers: int, rare: int) -> int:
        return numbers + rare

    result = await run_bounded(flow, timeout=BIG_RUN_TIMEOUT)
    assert result["pair"] == [i * 11 for i in range(N_ZIP) if i % RARE == 7]


async def test_zip_with_a_sparse_concurrent_branch_finishes_under_checkpoints(tmp_path: Path) -> None:
    """The same shape with small mailboxes, ``concurrency=2`` on the sparse branch and a checkpoint
    every 5 ms (found by test_model.py with ACTORFLOW_MODEL_HANG_SHAPES=1): without the store, or
    with one worker, it finishes."""
    flow = af.Flow("sparse_checkpointed")

    @flow.source(capacity=4, batch_size=8)
    def numbers(n: int = 3000) -> Iterator[int]:
        yield from range(n)

    @flow.task(capacity=4, batch_size=8, concurrency=2)
    def rare(numbers: int) -> int:
        return numbers * 10 if numbers % 50 == 7 else af.SKIP  # type: ignore[return-value]

    @flow.task(capacity=4, batch_size=8)
    def pair(numbers: int, rare: int) -> int:
        return numbers + rare

    result = await run_bounded(flow, store=tmp_path / "s", checkpoint_every=0.005)
    assert result["pair"] == [i * 11 for i in range(3000) if i % 50 == 7]


@pytest.mark.parametrize(
    ("capacities", "checkpoint_every"),
    [((4, 4, 4, 4), None), ((4, 4, 4, 4), 0.005), ((3, 6, 2, 3), None)],
    ids=["small_mailboxes", "small_mailboxes_checkpoint_every_5ms", "uneven_mailboxes"],
)
async def test_zip_with_a_generator_side_that_yields_nothing_finishes(
    tmp_path: Path, capacities: tuple[int, int, int, int], checkpoint_every: float | None
) -> None:
    """``none`` yields nothing for every number, so ``pair`` never has a match while ``some`` keeps
    sending (found by test_model.py with ACTORFLOW_MODEL_HANG_SHAPES=1). With small mailboxes it
    crawls: each stall is relieved only after the whole run stood still for 10 ms, about 4 ms per
    number (8,000 took 29 s, against 0.15 s with default mailboxes); under periodic checkpoints
    every 5 ms the run never stands still and it hangs. 20,000 numbers must take well under 20 s."""
    flow = af.Flow("empty_side")
    cap_numbers, cap_none, cap_some, cap_pair = capacities

    @flow.source(capacity=cap_numbers, batch_size=12)
    def numbers(n: int = 20_000) -> Iterator[int]:
        yield from range(n)

    @flow.task(capacity=cap_none, batch_size=8)
    def none(numbers: int) -> Iterator[int]:
        yield from ()

    @flow.task(capacity=cap_some, batch_size=2)
    def some(numbers: int) -> Iterator[int]:
        for j in range(numbers % 4):
            yield numbers * 10 + j

    @flow.task(capacity=cap_pair, batch_size=13)
    def pair(none: int, some: int) -> int:
        return none + some

    store = tmp_path / "s" if checkpoint_every is not None else None
    result = await run_bounded(flow, store=store, checkpoint_every=checkpoint_every)
    assert result["pair"] == []


@MAILBOXES
async def test_zip_with_a_lagging_per_collector_finishes(mailbox: dict[str, Any]) -> None:
    """``size`` emits a group only once its input moved past it: with one child in 50,000 numbers
    it lags ~50,000 items behind ``numbers``, the other side of the zip."""
    flow = numbers_flow("per_lag", mailbox=mailbox)

    @flow.task(**mailbox)
    def members(numbers: int) -> Iterator[int]:
        if numbers % RARE == 7:
            yield numbers

    @flow.collector(init=0, per="numbers", **capacity_of(mailbox))
    def size(acc: int, members: int) -> int:
        return acc + 1

    @flow.task(**mailbox)
    def check(numbers: int, size: int) -> int:
        return size

    @flow.collector(init=(0, 0), **capacity_of(mailbox))
    def tally(acc: tuple[int, int], check: int) -> tuple[int, int]:
        return acc[0] + 1, acc[1] + check

    result = await run_bounded(flow, timeout=BIG_RUN_TIMEOUT)
    assert tuple(result["tally"]) == (N_ZIP, N_ZIP // RARE)
    assert len(result["size"]) == N_ZIP and sum(result["size"]) == N_ZIP // RARE


@MAILBOXES
async def test_zip_with_a_generator_fed_the_whole_other_side_finishes(mailbox: dict[str, Any]) -> None:
    """``again`` waits for all of ``numbers`` (a list[int] input) and then yields one item per
    number: its items are numbered 0.. like ``numbers``', so ``pair`` is a valid 1:1 zip. ``pair``
    must not stop ``numbers`` until ``again`` produces, or neither ever moves."""
    flow = numbers_flow("list_fed", mailbox=mailbox)

    @flow.task(**mailbox)
    def again(numbers: list[int]) -> Iterator[int]:
        yield from (x * 2 for x in numbers)

    @flow.task(**mailbox)
    def pair(numbers: int, again: int) -> int:
        return numbers + again

    @flow.collector(init=0, **capacity_of(mailbox))
    def total(acc: int, pair: int) -> int:
        return acc + pair

    result = await run_bounded(flow, timeout=BIG_RUN_TIMEOUT)
    assert result["total"] == 3 * sum(range(N_ZIP))


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_zip_of_two_generator_streams(concurrency: int) -> None:
    """Items numbered (number, j) by two generators, zipped (a regression found by test_model.py: the
    zip compared a generator's int watermark with tuple sequence numbers)."""
    flow = numbers_flow(f"zip_generators_{concurrency}", n=10)

    @flow.task(concurrency=concurrency)
    def a(numbers: int) -> Iterator[int]:
        for j in range(numbers % 3):
            yield numbers * 10 + j

    @flow.task(concurrency=concurrency)
    def b(numbers: int) -> Iterator[int]:
        for j in range(numbers % 2):
            yield numbers * 100 + j

    @flow.task
    def pair(a: int, b: int) -> int:
        return a + b

    result = await run_bounded(flow)
    assert result["pair"] == [110, 550, 770]  # (1, 0), (5, 0), (7, 0): the numbers both yield for


@pytest.mark.parametrize("n", [100, 2000])
async def test_sparse_zip_that_waits_for_a_product_of_its_own_stream_finishes(n: int) -> None:
    """``pair`` zips ``numbers`` with ``half`` (which skips runs of 24) and also waits for the whole of
    ``tagged``, itself fed ``numbers`` and a product of ``half`` (found by test_model.py with
    ACTORFLOW_MODEL_HANG_SHAPES=1; with mailboxes of 4 it finishes, and so do the sparse zip and
    the waits on their own)."""
    flow = af.Flow("sparse_self_join")

    @flow.source(capacity=1, batch_size=3)
    def numbers(n: int = n) -> Iterator[int]:
        yield from range(n)

    @flow.task(capacity=1, batch_size=14)
    def half(numbers: int) -> int:
        return numbers if numbers % 48 < 24 else af.SKIP  # type: ignore[return-value]

    @flow.task
    def total(half: list[int]) -> int:
        return sum(half)

    @flow.task(capacity=1, batch_size=8)
    def tagged(numbers: int, total: int) -> Iterator[int]:
        if numbers % 3 == 0:
            yield numbers + total

    @flow.task(capacity=1, batch_size=4)
    def pair(numbers: int, half: int, tagged: list[int]) -> int:
        return numbers + half + len(tagged)

    result = await run_bounded(flow)
    thirds = len(range(0, n, 3))
    assert result["pair"] == [2 * i + thirds for i in range(n) if i % 48 < 24]


# -- 2. tasks waiting on each other's whole stream -----------------------------------------------------


@MAILBOXES
async def test_cross_waiting_tasks_run_or_are_refused(mailbox: dict[str, Any]) -> None:
    flow = af.Flow("cross")

    @flow.source(**mailbox)
    def a(n: int = N_ZIP) -> Iterator[int]:
        yield from range(n)

    @flow.source(**mailbox)
    def b(n: int = N_ZIP) -> Iterator[int]:
        yield from range(n)

    @flow.task(**mailbox)
    def left(a: int, b: list[int]) -> int:
        return a + len(b)

    try:

        @flow.task(**mailbox)
        def right(b: int, a: list[int]) -> int:
            return b * 2 + len(a)

    except af.DefinitionError as exc:  # refused at definition: the message must say what to change
        message = str(exc)
        assert "'left'" in message and "'right'" in message, message
        return

    @flow.collector(init=0, **capacity_of(mailbox))
    def left_total(acc: int, left: int) -> int:
        return acc + left

    @flow.collector(init=0, **capacity_of(mailbox))
    def right_total(acc: int, right: int) -> int:
        return acc + right

    result = await run_bounded(flow, timeout=BIG_RUN_TIMEOUT)
    assert result["left_total"] == sum(range(N_ZIP)) + N_ZIP * N_ZIP
    assert result["right_total"] == 2 * sum(range(N_ZIP)) + N_ZIP * N_ZIP


# -- 3. keyword-only inputs ------------------------------------------------------------------------------


async def test_keyword_only_inputs() -> None:
    flow = numbers_flow("kwonly", n=20)

    @flow.task
    def double(*, numbers: int) -> int:
        return numbers * 2

    @flow.task
    async def pair(numbers: int, *, double: int, offset: int = 1) -> int:
        return numbers + double + offset

    @flow.task
    def spread(*, pair: int) -> Iterator[int]:
        yield from range(pair % 3)

    @flow.collector(init=0)
    def total(acc: int, *, double: int) -> int:
        return acc + double

    @flow.collector(init=0)
    def count(acc: int, *, spread: int) -> int:
        return acc + 1

    result = await run_bounded(flow, {"pair": {"offset": 5}})
    assert result["total"] == sum(2 * i for i in range(20))
    assert result["count"] == sum((3 * i + 5) % 3 for i in range(20))


# -- 4. list[list[int]] over a stream of list[int] ----------------------------------------------------


async def test_list_of_lists_input_gathers_a_stream_of_lists() -> None:
    flow = af.Flow("lists")

    @flow.source
    def rows(n: int = 5) -> Iterator[list[int]]:
        for i in range(n):
            yield [i, i + 1]

    @flow.task
    def table(rows: list[list[int]]) -> list[list[int]]:
        return rows

    @flow.task
    def width(rows: list[int]) -> int:  # a streaming input: one row at a time
        return len(rows)

    result = await run_bounded(flow)
    assert result["table"] == [[i, i + 1] for i in range(5)]
    assert result["width"] == [2] * 5


# -- 5. per= must name a stream the collector's input descends from, no deeper -------------------------


def test_per_naming_a_stream_downstream_of_the_input_is_refused() -> None:
    flow = numbers_flow("per_down", n=10)

    @flow.task
    def words(numbers: int) -> Iterator[int]:
        yield from range(numbers % 3)

    with pytest.raises(af.DefinitionError, match="per"):

        @flow.collector(init=0, per="words")
        def count(acc: int, numbers: int) -> int:
            return acc + 1


def test_per_deeper_than_the_collectors_input_is_refused() -> None:
    """``per_number`` turns the level-2 stream ``words`` back into a level-1 stream; a collector over
    it with ``per=words`` (level 2) has no group for its items and must be refused."""
    flow = numbers_flow("per_deep", n=10)

    @flow.task
    def words(numbers: int) -> Iterator[int]:
        yield from range(numbers % 3)

    @flow.collector(init=0, per="numbers")
    def per_number(acc: int, words: int) -> int:
        return acc + 1

    with pytest.raises(af.DefinitionError, match="per"):

        @flow.collector(init=0, per="words")
        def per_word(acc: int, per_number: int) -> int:
            return acc + per_number


# -- 6. cut -> resume -> cut -> resume with concurrency=4 loses no item -------------------------------


N_CUT = 3000


def concurrent_flow() -> af.Flow:
    """A source, a task with four workers and a slow sum: ``work`` holds several output batches
    (sending, or finished and waiting for their turn) whenever a checkpoint is taken."""
    flow = af.Flow("cut_concurrency")

    @flow.source(batch_size=16)
    def numbers(n: int = N_CUT) -> Iterator[int]:
        yield from range(n)

    @flow.task(concurrency=4, capacity=32, batch_size=8)
    async def work(numbers: int) -> int:
        await trio.sleep(0)  # let the four workers interleave
        return numbers * 3 + 1

    @flow.collector(init=0, capacity=8)
    async def total(acc: int, work: int) -> int:
        await trio.sleep(0)
        return acc + work

    return flow


async def run_and_cut(flow: af.Flow, store: Path, resume: bool, after: int) -> bool:
    """Run (or resume) with frequent checkpoints; once ``work`` processed *after* batches (0: at the
    first event), write one more checkpoint and cancel. False when the run ended first."""
    done = 0
    async with af.open_run(flow, store=store, resume=resume, checkpoint_every=0.002) as run:
        async for event in run.events():
            if isinstance(event, af.events.BatchProcessed) and event.task == "work":
                done += 1
            if done >= after:
                await run.checkpoint_now()
                run.cancel()
                break
        try:
            await run.result()
        except af.RunCancelled:
            return True
    return False


async def test_cut_resume_cut_resume_with_concurrency_loses_nothing(tmp_path: Path) -> None:
    """The second cut comes right after the resume, while ``work`` still has the outboxes the first
    checkpoint restored to send: they must be in the second checkpoint (it was intermittent: 11 of 20)."""
    flow = concurrent_flow()
    expected = sum(i * 3 + 1 for i in range(N_CUT))
    assert (await run_bounded(flow))["total"] == expected
    cuts = 0
    for loop in range(5):
        store = tmp_path / f"store{loop}"
        with trio.move_on_after(SMALL_RUN_TIMEOUT) as scope:
            cuts += await run_and_cut(flow, store, resume=False, after=20 + 9 * loop)
            cuts += await run_and_cut(flow, store, resume=True, after=0)
            cuts += await run_and_cut(flow, store, resume=True, after=10)
            result = await af.run_async(flow, store=store, resume=True)
        if scope.cancelled_caught:
            hangs(SMALL_RUN_TIMEOUT, f"loop {loop}")
        assert result["total"] == expected, (
            f"loop {loop}: {expected - result['total']} lost (negative: counted twice) after {cuts} cuts"
        )
    assert cuts >= 10, "the runs kept finishing before they could be cut"


# -- 7. a task named after an earlier task's option -----------------------------------------------------


def test_defining_a_task_named_after_an_earlier_option_is_refused() -> None:
    flow = af.Flow("order")

    @flow.task
    def b(a: int) -> int:  # no task `a` yet: `a` is an option of `b`
        return a

    assert [o.name for o in flow.tasks["b"].options] == ["a"]
    with pytest.raises(af.DefinitionError) as info:

        @flow.source
        def a() -> Iterator[int]:
            yield 1

    message = str(info.value)
    assert "'a'" in message and "'b'" in message, message
    assert re.search(r"rename|define .*(first|before)", message, re.IGNORECASE), message


# -- 8. a collector's product type is finish's return type ------------------------------------------------


async def test_collector_product_type_follows_finish() -> None:
    flow = numbers_flow("finish_type", n=5)

    def label(acc: int) -> str:
        return f"total={acc}"

    @flow.collector(init=0, finish=label)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    @flow.task
    def shout(total: str) -> str:
        return total.upper()

    result = await run_bounded(flow)
    assert result["total"] == "total=10"
    assert result["shout"] == "TOTAL=10"


# -- 9. one instance of a class-based task per actor --------------------------------------------------------


@pytest.mark.parametrize("special", ["seq", "ctx"])
async def test_class_based_task_is_instantiated_once_per_actor(special: str) -> None:
    made: list[int] = []
    flow = numbers_flow(f"one_instance_{special}", n=50)

    if special == "seq":

        class Tag(af.Task):
            def __init__(self) -> None:
                made.append(1)

            def run(self, numbers: int, seq: af.Seq) -> int:
                return numbers * 100 + (seq if isinstance(seq, int) else -1)

        flow.add(Tag)
        expected = [i * 101 for i in range(50)]
    else:

        class Tag(af.Task):  # type: ignore[no-redef]
            def __init__(self) -> None:
                made.append(1)

            def run(self, numbers: int, ctx: af.Context) -> int:
                return numbers * 2 if ctx.run_id else -1

        flow.add(Tag)
        expected = [i * 2 for i in range(50)]
    result = await run_bounded(flow)
    assert result["tag"] == expected
    assert len(made) == 1, f"{len(made)} instances for 50 items"


# -- 10. every setting survives replace, class-based add and nesting ---------------------------------------


#: Settings of a task kind, as defined. ``af.Flow`` decorators take these keywords (collectors also
#: ``init``, ``finish``, ``per``).
SOURCE_SETTINGS: dict[str, Any] = {
    "capacity": 11, "batch_size": 13, "on_error": af.Retry(attempts=3), "cache": False, "version": "4",
    "secrets": ("SRC_KEY",),
}
TASK_SETTINGS: dict[str, Any] = {
    "capacity": 7, "batch_size": 5, "concurrency": 3, "ordered": False, "on_error": af.Retry(attempts=2),
    "executor": af.ProcessExecutor(workers=2), "cache": False, "version": "2", "secrets": ("API_KEY",),
}
GEN_SETTINGS: dict[str, Any] = {
    "capacity": 17, "batch_size": 19, "concurrency": 2, "ordered": False, "on_error": af.DeadLetter(),
    "cache": False, "version": "6", "secrets": ("GEN_KEY",),
}
COLLECTOR_SETTINGS: dict[str, Any] = {
    "capacity": 9, "on_error": af.DeadLetter(), "cache": False, "version": "3", "secrets": ("COL_KEY",),
}
SINK_SETTINGS: dict[str, Any] = {
    "capacity": 6, "concurrency": 2, "on_error": af.DeadLetter(), "cache": False, "version": "5",
    "secrets": ("SINK_KEY",),
}
#: Every setting a task definition carries.
ALL_SETTINGS = (
    "capacity", "batch_size", "concurrency", "ordered", "on_error", "executor", "cache", "version", "secrets",
    "init", "finish", "per",
)


def settings_of(spec: Any) -> dict[str, Any]:
    """A task definition's settings: every field of ``spec.settings`` when the definition has one (so
    a setting added later is compared too), else the attributes in ALL_SETTINGS."""
    holder = getattr(spec, "settings", None)
    if holder is not None and attrs.has(type(holder)):
        names = [f.name for f in attrs.fields(type(holder))]
    else:
        holder, names = spec, list(ALL_SETTINGS)
    return {key: tuple(v) if key == "secrets" else v for key in names for v in [getattr(holder, key)]}


def label(acc: dict[str, int]) -> dict[str, int]:
    return {k: v * 2 for k, v in acc.items()}


def numbers_source(n: int = 10) -> Iterator[int]:
    yield from range(n)


def numbers_source_v2(n: int = 10) -> Iterator[int]:
    yield from range(n, 0, -1)


def double(numbers: int) -> int:
    return numbers * 2


def double_v2(numbers: int) -> int:
    return numbers + numbers


def split(double: int) -> Iterator[int]:
    yield from range(double % 3)


def split_v2(double: int) -> Iterator[int]:
    yield from range(double % 4)


def count(acc: dict[str, int], split: int) -> dict[str, int]:
    acc["n"] += 1
    return acc


def count_v2(acc: dict[str, int], split: int) -> dict[str, int]:
    acc["n"] += split
    return acc


def record(split: int) -> None:
    pass


def record_v2(split: int) -> None:
    pass


def full_flow(numbers_input: bool = False) -> tuple[af.Flow, dict[str, dict[str, Any]]]:
    """A flow of every kind of task, each with all its settings set; and those settings by task.

    With *numbers_input*, ``numbers`` is the flow's declared input instead of a source (to be nested)."""
    collector = {**COLLECTOR_SETTINGS, "init": {"n": 0}, "finish": label, "per": "numbers"}
    flow = af.Flow("settings")
    if numbers_input:
        flow.input("numbers", int)
    else:
        flow.source(name="numbers", **SOURCE_SETTINGS)(numbers_source)
    flow.task(name="double", **TASK_SETTINGS)(double)
    flow.task(name="split", **GEN_SETTINGS)(split)
    flow.collector(name="count", **collector)(count)
    flow.sink(name="record", **SINK_SETTINGS)(record)
    defined = {"double": TASK_SETTINGS, "split": GEN_SETTINGS, "count": collector, "record": SINK_SETTINGS}
    return flow, defined if numbers_input else {"numbers": SOURCE_SETTINGS, **defined}


def check_settings(flow: af.Flow, defined: dict[str, dict[str, Any]], prefix: str = "") -> None:
    for name, given in defined.items():
        actual = settings_of(flow.tasks[prefix + name])
        for key, value in given.items():
            if key == "per" and value is not None:
                value = prefix + value
            assert actual[key] == value, f"{prefix}{name}: {key} is {actual[key]!r}, defined as {value!r}"


class NumbersTask(af.Task):
    kind = "source"
    name = "numbers"
    capacity = SOURCE_SETTINGS["capacity"]
    batch_size = SOURCE_SETTINGS["batch_size"]
    on_error = SOURCE_SETTINGS["on_error"]
    cache = SOURCE_SETTINGS["cache"]
    version = SOURCE_SETTINGS["version"]
    secrets = SOURCE_SETTINGS["secrets"]

    def run(self, n: int = 10) -> Iterator[int]:
        yield from range(n)


class DoubleTask(af.Task):
    name = "double"
    capacity = TASK_SETTINGS["capacity"]
    batch_size = TASK_SETTINGS["batch_size"]
    concurrency = TASK_SETTINGS["concurrency"]
    ordered = TASK_SETTINGS["ordered"]
    on_error = TASK_SETTINGS["on_error"]
    executor = TASK_SETTINGS["executor"]
    cache = TASK_SETTINGS["cache"]
    version = TASK_SETTINGS["version"]
    secrets = TASK_SETTINGS["secrets"]

    def run(self, numbers: int) -> int:
        return numbers * 2


class SplitTask(af.Task):
    name = "split"
    capacity = GEN_SETTINGS["capacity"]
    batch_size = GEN_SETTINGS["batch_size"]
    concurrency = GEN_SETTINGS["concurrency"]
    ordered = GEN_SETTINGS["ordered"]
    on_error = GEN_SETTINGS["on_error"]
    cache = GEN_SETTINGS["cache"]
    version = GEN_SETTINGS["version"]
    secrets = GEN_SETTINGS["secrets"]

    def run(self, double: int) -> Iterator[int]:
        yield from range(double % 3)


class CountTask(af.Task):
    kind = "collector"
    name = "count"
    capacity = COLLECTOR_SETTINGS["capacity"]
    on_error = COLLECTOR_SETTINGS["on_error"]
    cache = COLLECTOR_SETTINGS["cache"]
    version = COLLECTOR_SETTINGS["version"]
    secrets = COLLECTOR_SETTINGS["secrets"]
    init = {"n": 0}  # noqa: RUF012  # a setting, not shared state
    finish = label
    per = "numbers"

    def run(self, acc: dict[str, int], split: int) -> dict[str, int]:
        acc["n"] += 1
        return acc


class RecordTask(af.Task):
    kind = "sink"
    name = "record"
    capacity = SINK_SETTINGS["capacity"]
    concurrency = SINK_SETTINGS["concurrency"]
    on_error = SINK_SETTINGS["on_error"]
    cache = SINK_SETTINGS["cache"]
    version = SINK_SETTINGS["version"]
    secrets = SINK_SETTINGS["secrets"]

    def run(self, split: int) -> None:
        pass


def test_every_setting_survives_replace() -> None:
    flow, defined = full_flow()
    check_settings(flow, defined)  # as defined
    before = {name: settings_of(spec) for name, spec in flow.tasks.items()}
    for name, fn in (("numbers", numbers_source_v2), ("double", double_v2), ("split", split_v2),
                     ("count", count_v2), ("record", record_v2)):
        flow.replace(name, fn)
    check_settings(flow, defined)
    assert {name: settings_of(spec) for name, spec in flow.tasks.items()} == before
    assert flow.tasks["double"].version == "2"


def test_every_setting_survives_adding_class_based_tasks() -> None:
    flow = af.Flow("added")
    for cls in (NumbersTask, DoubleTask, SplitTask, CountTask, RecordTask):
        flow.add(cls)
    check_settings(flow, full_flow()[1])


def test_every_setting_survives_nesting() -> None:
    """The inner flow's tasks keep their settings under the nested path (per= renamed), both for a
    flow with its own source and for one fed through a declared input; and after a replace there."""
    outer = af.Flow("outer")

    @outer.source
    def feed(n: int = 3) -> Iterator[int]:
        yield from range(n)

    own, own_defined = full_flow()
    outer.add(own, name="own")
    check_settings(outer, own_defined, prefix="own/")
    fed, fed_defined = full_flow(numbers_input=True)
    outer.add(fed, name="fed", inputs={"numbers": "feed"})
    fed_count = {k: v for k, v in fed_defined["count"].items() if k != "per"}
    check_settings(outer, {**fed_defined, "count": fed_count}, prefix="fed/")
    assert settings_of(outer.tasks["fed/count"])["per"] in ("feed", "fed/numbers")
    for name, spec in own.tasks.items():  # every field, not only those set above
        nested = settings_of(outer.tasks[f"own/{name}"])
        assert {**nested, "per": None} == {**settings_of(spec), "per": None}, name
    outer.replace("own/double", double_v2)
    outer.replace("fed/double", double_v2)
    check_settings(outer, {"double": TASK_SETTINGS}, prefix="own/")
    check_settings(outer, {"double": TASK_SETTINGS}, prefix="fed/")
