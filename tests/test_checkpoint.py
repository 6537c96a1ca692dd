"""Checkpoints and resume inside one process: a run stopped after a checkpoint resumes exactly."""

from __future__ import annotations

import enum
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import msgpack
import trio
import trio.testing

import actorflow as af
from actorflow._storage._store import open_store

sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
import durable

N = 1500


def options(sink: Path, spin: float = 0.0002) -> dict[str, Any]:
    return {"numbers": {"n": N}, "weigh": {"spin": spin}, "record": {"path": str(sink)}}


async def run_until_checkpoint(flow: af.Flow, opts: dict[str, Any], store: Path, number: int) -> list[Any]:
    """Start a run and cut it off (as a crash would) right after checkpoint *number*."""
    events = await af.testing.kill_at_checkpoint(flow, opts, k=number, store=store, checkpoint_every=0.02)
    return [e for e in events if isinstance(e, af.events.CheckpointWritten)]


def sink_seqs(path: Path) -> set[str]:
    return set(path.read_text().split("\n")) - {""}


async def test_resume_after_a_cut_gives_the_uninterrupted_products(tmp_path: Path) -> None:
    sink = tmp_path / "sink.txt"
    expected = durable.expected(N)
    events = await run_until_checkpoint(durable.flow, options(sink), tmp_path / "s", number=3)
    assert events[-1].queued_items >= 0 and events[-1].size_bytes > 0 and not events[-1].final
    lines_before = len(sink.read_text().splitlines())
    resumed: list[Any] = []
    async with af.open_run(durable.flow, options(sink), store=tmp_path / "s", resume=True) as run:
        async for event in run.events():
            if isinstance(event, af.events.RunResumed):
                resumed.append(event)
        result = await run.result()
    assert [e.number for e in resumed] == [3]
    assert result["total"] == expected["total"]  # no item lost, none counted twice
    assert result["per_number"] == expected["per_number"]
    assert result["labels"] == expected["labels"]
    assert sink_seqs(sink) == expected["sink_seqs"]  # at least once, exact after de-duplication
    assert 0 < lines_before < len(expected["sink_seqs"])


async def test_resume_after_several_cuts(tmp_path: Path) -> None:
    sink = tmp_path / "sink.txt"
    store = tmp_path / "s"
    await run_until_checkpoint(durable.flow, options(sink), store, number=2)
    for cut in (4, 6):  # two more checkpoints in each resumed run, then cut again
        events = await af.testing.kill_at_checkpoint(
            durable.flow, options(sink), k=2, store=store, resume=True, checkpoint_every=0.02
        )
        assert [e.number for e in events if isinstance(e, af.events.CheckpointWritten)][-1] == cut
    result = await af.run_async(durable.flow, options(sink), store=store, resume=True)
    expected = durable.expected(N)
    assert (result["total"], result["per_number"], result["labels"]) == (
        expected["total"], expected["per_number"], expected["labels"],
    )
    assert sink_seqs(sink) == expected["sink_seqs"]


def test_resuming_a_finished_run_runs_no_task_code(tmp_path: Path) -> None:
    flow = af.Flow("done")
    calls = {"n": 0}

    @flow.source
    def numbers(n: int = 100) -> af.Stream[int]:
        calls["n"] += 1
        yield from range(n)

    @flow.collector(init=[])
    def squares(acc: list[int], numbers: int) -> list[int]:
        calls["n"] += 1
        acc.append(numbers * numbers)
        return acc

    first = af.run(flow, store=tmp_path / "s")
    before = calls["n"]
    again = af.run(flow, store=tmp_path / "s", resume=True)
    assert calls["n"] == before
    assert again["squares"] == first["squares"] == [i * i for i in range(100)]


async def test_source_with_a_cursor_resumes_from_it(tmp_path: Path) -> None:
    flow = af.Flow("cursor")
    cursors: list[int] = []

    @flow.source(batch_size=10)
    async def ticks(cursor: af.Cursor, n: int = 400) -> AsyncIterator[int]:
        cursors.append(cursor)
        for i in range(cursor, n):
            if i % 10 == 0:
                await trio.sleep(0.001)
            yield i

    @flow.collector(init=0, capacity=16)
    def total(acc: int, ticks: int) -> int:
        return acc + ticks

    await run_until_checkpoint(flow, {}, tmp_path / "s", number=2)
    result = await af.run_async(flow, store=tmp_path / "s", resume=True)
    assert result["total"] == sum(range(400))
    assert cursors[0] == 0 and len(cursors) == 2 and 0 < cursors[1] < 400


async def test_checkpoint_holds_mailboxes_outboxes_and_state(tmp_path: Path) -> None:
    flow = af.Flow("inspect")
    release = trio.Event()
    stuck = trio.Event()

    @flow.source(batch_size=8)
    def numbers(n: int = 200) -> af.Stream[int]:
        yield from range(n)

    @flow.task(capacity=16, batch_size=8)
    async def slow(numbers: int) -> int:
        if numbers == 50:
            stuck.set()
            await release.wait()
        return numbers

    @flow.collector(init=0, capacity=16)
    def total(acc: int, slow: int) -> int:
        return acc + slow

    async with af.open_run(flow, store=tmp_path / "s", checkpoint_every=None) as run:
        await stuck.wait()
        # `slow` is busy on item 50: the checkpoint must wait for it to finish its batch
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.checkpoint_now)
            await trio.testing.wait_all_tasks_blocked()
            assert run.supervisor.pending and run.supervisor.number == 0
            release.set()
        assert run.supervisor.number == 1
        store = run.supervisor.store
        assert store is not None
        mid = msgpack.unpackb(store.read_checkpoint(), raw=False, strict_map_key=False)
        await run.result()
    assert mid["final"] is False
    # every item is somewhere exactly once: folded into `total`, queued, or in an outbox
    where = mid["actors"]["total"]["acc"]
    queued = [x for batches in mid["mailboxes"].values() for _, items in batches for x in items]
    outboxed = [x for a in mid["actors"].values() for _, items, _ in a["outboxes"] for x in items]
    cursor = mid["actors"]["numbers"]["cursor"]
    assert 0 < cursor <= 200
    assert where + sum(queued) + sum(outboxed) == sum(range(cursor))
    with af.store.open_store(tmp_path / "s") as st:
        blob = st.read_checkpoint()
    assert blob is not None
    doc = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    assert doc["final"] is True and doc["actors"]["total"]["product"] == sum(range(200))
    assert set(doc["mailboxes"]) == {"slow.numbers", "total.slow"}
    assert doc["actors"]["numbers"]["cursor"] == 200


async def test_checkpoint_now_without_a_store_does_nothing() -> None:
    flow = af.Flow("nostore")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    async with af.open_run(flow) as run:
        assert await run.checkpoint_now() is False


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Reading:
    sensor: str
    value: float
    colour: Colour
    where: Path


async def test_custom_classes_survive_a_checkpoint_through_cattrs(tmp_path: Path) -> None:
    flow = af.Flow("custom")

    @flow.source(batch_size=16)
    async def readings(n: int = 600) -> AsyncIterator[Reading]:
        for i in range(n):
            if i % 16 == 0:
                await trio.sleep(0.001)
            yield Reading(f"s{i % 3}", i / 2, Colour.RED if i % 2 else Colour.BLUE, Path(f"/data/{i}"))

    @flow.task(capacity=32)
    def check(readings: Reading) -> Reading:
        assert isinstance(readings.colour, Colour) and isinstance(readings.where, Path)
        return readings

    @flow.collector(init={}, capacity=32)
    def by_colour(acc: dict[str, float], check: Reading) -> dict[str, float]:
        acc[check.colour.value] = acc.get(check.colour.value, 0.0) + check.value
        return acc

    await run_until_checkpoint(flow, {}, tmp_path / "s", number=2)
    result = await af.run_async(flow, store=tmp_path / "s", resume=True)
    assert result["by_colour"] == {
        "red": sum(i / 2 for i in range(600) if i % 2),
        "blue": sum(i / 2 for i in range(600) if not i % 2),
    }


def test_no_checkpoint_follows_the_final_one(tmp_path: Path) -> None:
    """Shrunk by tests/test_model.py: with a checkpoint every millisecond, a periodic checkpoint that
    waited for the final one's lock wrote after it, so the store said "unfinished run" and the next
    run on it was refused. Every run now ends with its final checkpoint last."""
    flow = af.Flow("model")

    @flow.source(capacity=1, batch_size=2)
    def src0(n: int = 1500) -> af.Stream[int]:
        for i in range(n):
            yield i % 2

    @flow.source(capacity=1, batch_size=1)
    def src1(n: int = 0) -> af.Stream[int]:
        yield from range(n)

    store = tmp_path / "store"
    for _ in range(4):
        result = af.run(flow, {"src1": {"n": 0}}, store=store, checkpoint_every=0.001)
        assert result["src0"] == [i % 2 for i in range(1500)]
        with open_store(store, create=False) as st:
            blob = st.read_checkpoint()
        assert blob is not None and msgpack.unpackb(blob)["final"] is True
