"""Zips at their edges: the local stall rule, a resume whose zip had finished, generator watermarks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

import actorflow as af
from actorflow._kernel._inbox import ZipInbox, watermark_of
from actorflow._kernel._mailbox import Mailbox

#: Seconds after which a run counts as hung (each run here takes well under one second).
HANG = 10.0


async def test_a_stuck_zip_spills_without_waiting_for_the_whole_run() -> None:
    """The zip waits on an empty input while its other input is full and its sender blocked: it
    spills at once (no supervisor, nothing else watching), so the sender gets all its items through."""
    full, empty = Mailbox("z.full", capacity=2), Mailbox("z.empty", capacity=2)
    zipped = ZipInbox([full, empty], ordered=True, batch_size=4)
    sent = trio.Event()

    async def sender() -> None:
        for i in range(0, 20, 2):
            await full.put([i, i + 1], [i, i + 1])
        full.close()
        sent.set()

    async def reader() -> None:
        assert await zipped.get() is None  # the empty side ends below: nothing ever matches

    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(sender)
            await sent.wait()  # only possible if the zip took more than the full box holds
            empty.close()
    assert zipped.done


async def test_a_zip_with_room_left_does_not_spill() -> None:
    """A zip whose queued input has no blocked sender is stalled but not stuck: it takes no more than its
    limit (four times the largest capacity) and leaves the rest queued."""
    box, other = Mailbox("z.a", capacity=8), Mailbox("z.b", capacity=8)
    zipped = ZipInbox([box, other], ordered=True, batch_size=4)
    for i in range(0, 40, 8):
        box.put_nowait(list(range(i, i + 8)), list(range(i, i + 8)))
    assert zipped.get_nowait() is None
    assert zipped.stalled() and not zipped.stuck()
    assert len(box) == 8 and len(zipped) == 32


def test_generator_watermarks_cover_every_child() -> None:
    mark = watermark_of(5, generator=True)
    assert (5, 0) <= mark and (5, 10**9) <= mark and not (6, 0) <= mark
    nested = watermark_of((5, 2), generator=True)
    assert (5, 2, 7) <= nested and not (5, 3, 0) <= nested
    assert watermark_of(5, generator=False) == 5


def _empty_side_flow() -> af.Flow:
    """Issue 21's resume hang: a zip with an empty side, small mailboxes, an async source and tasks."""
    flow = af.Flow("resume_empty_side")

    @flow.source(capacity=3, batch_size=2)
    def s1(n: int = 0) -> Iterator[int]:
        yield from range(n)

    @flow.source(capacity=2, batch_size=33)
    async def s2(n: int = 47) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @flow.task(capacity=5, batch_size=3)
    async def t4(s2: int) -> int:
        return s2 * 2

    @flow.task(capacity=4, batch_size=2)
    def z5(t4: int, s1: int) -> int:
        return t4 + s1

    @flow.task(capacity=2, batch_size=5, concurrency=2)
    def t6(s2: int) -> af.Stream[int]:
        yield s2
        yield s2 + 1

    return flow


async def _cut_after_checkpoint(flow: af.Flow, store: Path, number: int) -> bool:
    """Cancel a run right after its *number*-th checkpoint; False when it finished before that one
    (a loaded machine may finish the run in fewer checkpoints)."""
    written = 0
    async with af.open_run(flow, store=store, checkpoint_every=0.001) as run:
        async for event in run.events():
            if isinstance(event, af.events.CheckpointWritten) and not event.final:
                written += 1
                if written == number:
                    run.cancel()
                    break
        try:
            await run.result()
        except af.RunCancelled:
            return True
    return False


@pytest.mark.parametrize("cut_at", [1, 2, 3, 4])
async def test_resume_after_the_zip_with_an_empty_side_finished(tmp_path: Path, cut_at: int) -> None:
    """The zip ``z5`` finished (its empty side ended) before the cut; resumed, it reads no more, so its
    mailbox must not block ``t4`` (it did: the resume hung with ``t4`` waiting on a full ``z5.t4``)."""
    flow = _empty_side_flow()
    store = tmp_path / "s"
    cut = await _cut_after_checkpoint(flow, store, cut_at)
    with trio.fail_after(HANG):
        if cut:
            result = await af.run_async(flow, store=store, resume=True, checkpoint_every=0.001)
        else:  # the run ended before that checkpoint: its products must be the same
            result = await af.run_async(flow)
    assert result["z5"] == []
    assert sorted(result["t6"]) == sorted([i for i in range(47)] + [i + 1 for i in range(47)])


# -- issue 22: zips lose nothing silently -------------------------------------------------------------


def _uneven_flow(zip_mode: str = "drop") -> af.Flow:
    flow = af.Flow("uneven")

    @flow.source
    def short(n: int = 3) -> Iterator[int]:
        yield from range(n)

    @flow.source
    def long(n: int = 5) -> Iterator[int]:
        yield from range(n)

    @flow.task(zip=zip_mode)
    def pair(short: int, long: int) -> int:
        return short * 10 + long

    return flow


async def test_unmatched_items_are_counted_and_reported_once() -> None:
    events: list[af.events.ZipUnmatched] = []
    async with af.open_run(_uneven_flow()) as run:
        async for event in run.events():
            if isinstance(event, af.events.ZipUnmatched):
                events.append(event)
        result = await run.result()
    assert result["pair"] == [0, 11, 22]
    assert [(e.task, e.port, e.count, e.first_seqs) for e in events] == [("pair", "long", 2, (3, 4))]
    assert result.summary.tasks["pair"].unmatched == 2
    assert result.summary.tasks["long"].unmatched == 0
    assert "unmatched" in str(result.summary)
    assert events[0].to_dict()["first_seqs"] == [3, 4]


def test_a_matched_zip_reports_nothing() -> None:
    result = af.run(_uneven_flow(), options={"long": {"n": 3}})
    assert result["pair"] == [0, 11, 22]
    assert result.summary.tasks["pair"].unmatched == 0
    assert "unmatched" not in str(result.summary)


def test_unmatched_items_on_both_sides_and_many_are_counted() -> None:
    """A sparse side: every item of ``numbers`` whose partner ``rare`` skipped is unmatched, and a
    generator that yields nothing leaves every item of the other side unmatched."""
    flow = af.Flow("sparse_count")

    @flow.source(capacity=4, batch_size=4)
    def numbers(n: int = 1000) -> Iterator[int]:
        yield from range(n)

    @flow.task(capacity=4, batch_size=4)
    def rare(numbers: int) -> int:
        return numbers if numbers % 100 == 7 else af.SKIP  # type: ignore[return-value]

    @flow.task(capacity=4, batch_size=4)
    def pair(numbers: int, rare: int) -> int:
        return numbers + rare

    @flow.task(capacity=4)
    def none(numbers: int) -> Iterator[int]:
        yield from ()

    @flow.task(capacity=4)
    def some(numbers: int) -> Iterator[int]:
        yield from range(numbers % 3)

    @flow.task(capacity=4)
    def empty_pair(none: int, some: int) -> int:
        return none + some

    result = af.run(flow)
    assert result["pair"] == [2 * i for i in range(1000) if i % 100 == 7]
    assert result.summary.tasks["pair"].unmatched == 990
    assert result["empty_pair"] == []
    assert result.summary.tasks["empty_pair"].unmatched == sum(i % 3 for i in range(1000))


def test_strict_zip_fails_naming_the_port_and_seq() -> None:
    with pytest.raises(af.TaskFailed) as info:
        af.run(_uneven_flow("strict"))
    error = info.value
    assert error.task == "pair" and error.seq == 3
    assert "zip='strict': item seq 3 on port 'long' has no partner on 'short'" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_strict_zip_that_matches_everything_runs() -> None:
    result = af.run(_uneven_flow("strict"), options={"long": {"n": 3}})
    assert result["pair"] == [0, 11, 22]


def test_a_bad_zip_setting_is_refused_at_definition() -> None:
    flow = af.Flow("bad_zip")
    with pytest.raises(af.DefinitionError, match=r"task 'pair'.*zip must be one of 'drop', 'strict', got 'shortest'"):

        @flow.task(zip="shortest")
        def pair(a: int, b: int) -> int:
            return a + b
