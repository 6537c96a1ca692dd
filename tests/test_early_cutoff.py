"""Early cutoff: a task that runs again but sends the same content leaves its readers cache hits."""

from __future__ import annotations

import io
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af
from actorflow._kernel._cache import Fingerprint, encode_chunk
from actorflow._storage._codec import pack

calls: Counter[str] = Counter()
recorded: list[int] = []


def make_flow(
    version: str, values: Callable[[int], Iterable[int]], total_version: str = "1", offset: int = 0
) -> af.Flow:
    """numbers (version given) → double → total (collector) → report (reads the product);
    double → record (a sink); numbers → everything (reads the whole stream); numbers → pace."""
    flow = af.Flow("cutoff")

    @flow.source(version=version)
    def numbers(n: int = 60) -> af.Stream[int]:
        calls["numbers"] += 1
        yield from values(n)

    @flow.task
    def double(numbers: int) -> int:
        calls["double"] += 1
        return 2 * numbers

    @flow.collector(init=0, version=total_version)
    def total(acc: int, double: int) -> int:
        calls["total"] += 1
        return acc + double + offset

    @flow.task
    def report(total: int) -> str:
        calls["report"] += 1
        return f"total {total}"

    @flow.sink
    def record(double: int) -> None:
        calls["record"] += 1
        recorded.append(double)

    @flow.task
    def everything(numbers: list[int]) -> int:
        calls["everything"] += 1
        return len(numbers)

    @flow.task
    async def pace(numbers: int, delay: float = 0.0) -> int:
        calls["pace"] += 1
        await trio.sleep(delay)
        return numbers

    return flow


def cache_of(result: af.RunResult) -> dict[str, str | None]:
    return {name: t.cache for name, t in result.summary.tasks.items()}


async def run(flow: af.Flow, store: Path, **kwargs: Any) -> tuple[af.RunResult, list[Any]]:
    events: list[Any] = []
    async with af.open_run(flow, store=store, **kwargs) as handle:
        async for event in handle.events():
            events.append(event)
        result = await handle.result()
    return result, events


async def test_a_changed_task_with_the_same_output_leaves_its_readers_hits(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    calls.clear()
    recorded.clear()
    result, events = await run(make_flow("2", range), store)  # new version, same items
    assert calls == Counter({"numbers": 1})  # only the changed task ran; no reader's code did
    assert recorded == []  # the sink is a hit: it has already seen exactly these items
    assert cache_of(result) == {
        "numbers": "miss", "double": "cutoff", "total": "cutoff", "report": "cutoff", "record": "cutoff",
        "everything": "cutoff", "pace": "cutoff",
    }
    assert result["report"] == f"total {2 * sum(range(60))}" and result["everything"] == 60
    assert result["pace"] == list(range(60))  # a stream nobody reads: loaded from the cut-off entry
    hits = {e.task: e for e in events if isinstance(e, af.events.CacheHit)}
    assert set(hits) == {"double", "total", "report", "record", "everything", "pace"}
    assert all(e.cutoff and e.outcome == "hit" for e in hits.values())
    # the next run with the same version finds everything without waiting for anything
    calls.clear()
    result, _ = await run(make_flow("2", range), store)
    assert sum(calls.values()) == 0
    assert cache_of(result)["numbers"] == "hit" and cache_of(result)["double"] == "cutoff"
    assert result["report"] == f"total {2 * sum(range(60))}"


async def test_a_changed_output_reruns_its_readers(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    calls.clear()
    recorded.clear()
    result, events = await run(make_flow("2", lambda n: range(1, n + 1)), store)  # different items
    assert calls == Counter(
        {"numbers": 1, "double": 60, "total": 60, "report": 1, "record": 60, "everything": 1, "pace": 60}
    )
    assert sorted(recorded) == [2 * i for i in range(1, 61)]
    assert set(cache_of(result).values()) == {"miss"}
    assert result["report"] == f"total {2 * sum(range(1, 61))}" and result["everything"] == 60
    reasons = {e.task: e.reason for e in events if isinstance(e, af.events.CacheMiss)}
    assert reasons["double"] == "what it reads changed"


async def test_same_items_in_another_order_are_a_change(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    calls.clear()
    result, _ = await run(make_flow("2", lambda n: reversed(range(n))), store)
    assert calls["double"] == 60 and calls["total"] == 60
    assert result["report"] == f"total {2 * sum(range(60))}"


async def test_a_product_with_the_same_value_cuts_off_its_readers(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    calls.clear()
    result, _ = await run(make_flow("1", range, total_version="2"), store)  # a new collector, same total
    assert calls == Counter({"total": 60})  # report did not run: it reads the same product
    assert cache_of(result)["total"] == "miss" and cache_of(result)["report"] == "cutoff"
    assert result["report"] == f"total {2 * sum(range(60))}"
    calls.clear()
    result, _ = await run(make_flow("1", range, total_version="3", offset=1), store)  # another total
    assert calls == Counter({"total": 60, "report": 1})
    assert cache_of(result)["report"] == "miss"
    assert result["report"] == f"total {2 * sum(range(60)) + 60}"


async def test_cutoff_decisions_survive_a_resume(tmp_path: Path) -> None:
    """Cut while a slow task that really changed runs, after the cutoff hits were decided."""
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    opts = {"pace": {"delay": 0.01}}
    await af.testing.kill_at_checkpoint(make_flow("2", range), opts, k=3, store=store, checkpoint_every=0.02)
    calls.clear()
    result = await af.run_async(make_flow("2", range), opts, store=store, resume=True)
    assert calls["double"] == calls["total"] == calls["report"] == calls["record"] == 0
    assert 0 < calls["pace"] < 60  # it goes on from the checkpoint
    assert cache_of(result)["double"] == "cutoff" and cache_of(result)["pace"] == "miss"
    assert result["report"] == f"total {2 * sum(range(60))}" and result["pace"] == list(range(60))
    assert calls["numbers"] == 0  # it had finished before the cut


async def test_a_source_cut_while_sending_leaves_its_readers_right_after_a_resume(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await run(make_flow("1", range), store)
    await af.testing.kill_at_checkpoint(make_flow("2", _slowly), k=3, store=store, checkpoint_every=0.01)
    result = await af.run_async(make_flow("2", _slowly), store=store, resume=True)
    assert result["report"] == f"total {2 * sum(range(60))}" and result["everything"] == 60
    # the source's fingerprint of what it sent before the cut is lost: its readers ran (or, had
    # the cut come before it sent anything, were cutoff hits); the products are right either way
    sent_before_cut = cache_of(result)["double"] == "miss"
    assert sent_before_cut or cache_of(result)["double"] == "cutoff"
    # the resumed run could not cache the source's part-sent stream: the next run sends it again,
    # and every reader is a cutoff hit against the entries of the first run
    calls.clear()
    result = await af.run_async(make_flow("2", _slowly), store=store)
    assert calls == (Counter({"numbers": 1}) if sent_before_cut else Counter())
    assert cache_of(result)["double"] == "cutoff"  # found by what it reads, in either case
    assert result["report"] == f"total {2 * sum(range(60))}"


def _slowly(n: int) -> Iterable[int]:
    import time

    for i in range(n):
        time.sleep(0.004)  # a source slow enough for periodic checkpoints while it sends
        yield i


def test_the_fingerprint_does_not_depend_on_batches() -> None:
    items = [{"a": i, "b": [i, str(i)]} for i in range(100)]
    seqs = list(range(100))
    one, two = Fingerprint(), Fingerprint()
    one.add(seqs, pack(items))
    for k in range(0, 100, 7):
        two.add(seqs[k:k + 7], pack(items[k:k + 7]))
    assert one.digest() == two.digest()
    other = Fingerprint()
    other.add(seqs, pack([*items[:-1], {"a": 0}]))
    assert other.digest() != one.digest()
    shifted = Fingerprint()
    shifted.add([s + 1 for s in seqs], pack(items))
    assert shifted.digest() != one.digest()  # same values under other sequence numbers: a change
    # a recorded chunk built from the packed items is the chunk packed in one go
    assert encode_chunk(seqs, items, pack(items)) == pack([0, items])
    assert encode_chunk([(1, 2), (1, 3)], [1, 2]) == pack([[[1, 2], [1, 3]], [1, 2]])


@pytest.mark.parametrize(
    "seqs",
    [
        [0, 1, 2, 5, 6, 7, 8, 12, 13, 20],  # a filtered stream: runs with gaps
        [(0, 0), (0, 1), (1, 0), (3, 0), (3, 1), (3, 2)],  # a generator's children
        [3, 1, 2, 0, 4, 5, 9, 8],  # an unordered task's batches
    ],
)
def test_the_fingerprint_of_any_sequence_numbers_does_not_depend_on_batches(seqs: list[Any]) -> None:
    items = [f"item {i}" for i in range(len(seqs))]
    whole = Fingerprint()
    whole.add(seqs, pack(items))
    for size in (1, 2, 3):
        parts = Fingerprint()
        for k in range(0, len(seqs), size):
            parts.add(seqs[k:k + size], pack(items[k:k + size]))
        assert parts.digest() == whole.digest()
    other = Fingerprint()
    other.add([*seqs[:-1], (99,) if isinstance(seqs[-1], tuple) else 99], pack(items))
    assert other.digest() != whole.digest()


@pytest.mark.parametrize("n", [1, 15, 16, 70000])
def test_the_fingerprint_strips_every_array_header(n: int) -> None:
    whole, parts = Fingerprint(), Fingerprint()
    items = list(range(n))
    whole.add(items, pack(items))
    for k in range(0, n, 5000):
        parts.add(items[k:k + 5000], pack(items[k:k + 5000]))
    assert whole.digest() == parts.digest()


def _part_flow(version: str) -> af.Flow:
    flow = af.Flow("part")

    @flow.source(version=version)
    def fetch(i: int = 0) -> af.Stream[bytes]:
        calls["fetch"] += 1
        yield f"part {i}\n".encode()
        yield b"more\n"

    @flow.task
    def frame(fetch: bytes) -> bytes:
        calls["frame"] += 1
        return b"| " + fetch

    return flow


def test_concat_parts_whose_source_changed_but_not_its_output(tmp_path: Path) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    af.concat(first, [_part_flow("1").bind({"fetch": {"i": i}}) for i in range(3)], cache=tmp_path / "c")
    calls.clear()
    report = af.concat(second, [_part_flow("2").bind({"fetch": {"i": i}}) for i in range(3)], cache=tmp_path / "c")
    assert second.getvalue() == first.getvalue() == b"".join(b"| part %d\n| more\n" % i for i in range(3))
    assert calls == Counter({"fetch": 3})  # the framing task ran in no part
    assert [p.cache for p in report.parts] == ["hit"] * 3


@pytest.mark.parametrize("same", [True, False])
async def test_a_pending_reader_spills_a_long_stream_without_blocking_its_sender(tmp_path: Path, same: bool) -> None:
    n = 20_000  # several mailboxes' worth: the pending readers' inboxes spill while they wait
    store = tmp_path / "s"
    await af.run_async(make_flow("1", range), {"numbers": {"n": n}}, store=store)
    calls.clear()
    values = range if same else (lambda k: range(1, k + 1))
    async with af.open_run(make_flow("2", values), {"numbers": {"n": n}}, store=store) as handle:
        result = await handle.result()
    expected = range(n) if same else range(1, n + 1)
    assert result["report"] == f"total {2 * sum(expected)}" and result["everything"] == n
    assert result["pace"] == list(expected)
    assert calls["double"] == calls["record"] == (0 if same else n)
    assert cache_of(result)["double"] == ("cutoff" if same else "miss")


def test_cutoff_through_generators_zips_per_collectors_and_concurrency(tmp_path: Path) -> None:
    """durable: numbers → expand (a generator) → weigh (concurrency 2) → total, per_number (per=numbers),
    label (zips expand and weigh) → labels, record (a sink)."""
    sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
    import durable

    n, store = 400, tmp_path / "s"
    expected = durable.expected(n)
    opts = {"numbers": {"n": n}}
    af.run(durable.flow, opts, store=store)

    def expand(numbers: int) -> af.Stream[int]:  # rewritten, same children
        yield from (numbers * 10 + j for j in range(numbers % 4))

    async def weigh(expand: int, spin: float = 0.0) -> int:  # rewritten, same weights
        return 3 * expand

    async def heavier(expand: int, spin: float = 0.0) -> int:  # other weights
        return 4 * expand

    for task, fn, same in [("expand", expand, True), ("weigh", weigh, True), ("weigh", heavier, False)]:
        changed = durable.flow.copy()
        changed.replace(task, fn)
        result = af.run(changed, opts, store=store)
        cache = cache_of(result)
        assert cache[task] == "miss"
        readers = ["total", "per_number", "labels", "record", "label"] + (["weigh"] if task == "expand" else [])
        assert {r: cache[r] for r in readers} == dict.fromkeys(readers, "cutoff" if same else "miss"), task
        assert result["per_number"] == expected["per_number"]
        factor = 3 if same else 4
        assert result["total"] == expected["total"] // 3 * factor
        assert len(result["labels"]) == len(expected["labels"])
