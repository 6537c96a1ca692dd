"""The product cache: unchanged work is not done again, changed work and what depends on it is."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow._cli._cli import main as cli

sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
import durable

calls: Counter[str] = Counter()


def make_flow() -> af.Flow:
    """numbers → square → total, numbers → evens (a second branch), square → record (a sink)."""
    flow = af.Flow("cached")

    @flow.source
    def numbers(n: int = 50) -> af.Stream[int]:
        calls["numbers"] += 1
        yield from range(n)

    @flow.task
    def square(numbers: int, k: int = 1) -> int:
        calls["square"] += 1
        return numbers * numbers * k

    @flow.collector(init=0)
    def total(acc: int, square: int, offset: int = 0) -> int:
        calls["total"] += 1
        return acc + square + offset

    @flow.task
    async def evens(numbers: int) -> int:
        calls["evens"] += 1
        return numbers if numbers % 2 == 0 else af.SKIP

    @flow.sink
    def record(square: int, seq: af.Seq) -> None:
        calls["record"] += 1

    return flow


async def run_with_events(
    flow: af.Flow | af.graph.RunGraph, options: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[af.RunResult, list[Any]]:
    events: list[Any] = []
    async with af.open_run(flow, options, **kwargs) as run:
        async for event in run.events():
            events.append(event)
        result = await run.result()
    return result, events


def cache_events(events: list[Any]) -> dict[str, str]:
    return {
        e.task: ("hit" if isinstance(e, af.events.CacheHit) else "miss")
        for e in events
        if isinstance(e, af.events.CacheHit | af.events.CacheMiss)
    }


async def test_an_unchanged_flow_runs_no_task_code_the_second_time(tmp_path: Path) -> None:
    flow = make_flow()
    calls.clear()
    first, ev1 = await run_with_events(flow, store=tmp_path / "s")
    assert calls["numbers"] == 1 and calls["square"] == 50 and calls["record"] == 50
    assert cache_events(ev1) == dict.fromkeys(["numbers", "square", "total", "evens", "record"], "miss")
    calls.clear()
    second, ev2 = await run_with_events(flow, store=tmp_path / "s")
    assert sum(calls.values()) == 0  # no task code ran
    assert cache_events(ev2) == dict.fromkeys(["numbers", "square", "total", "evens", "record"], "hit")
    assert second["total"] == first["total"] == sum(i * i for i in range(50))
    assert second["evens"] == first["evens"] == list(range(0, 50, 2))
    assert {t.name: t.cache for t in second.summary.tasks.values()} == dict.fromkeys(second.summary.tasks, "hit")
    # each cache event comes as its task starts: right after TaskStarted, before it finishes
    kinds = [(type(e).__name__, getattr(e, "task", None)) for e in ev2]
    for task in ("numbers", "total"):
        i = kinds.index(("CacheHit", task))
        assert kinds[i - 1] == ("TaskStarted", task) or ("TaskStarted", task) in kinds[:i]
        assert kinds.index(("TaskFinished", task)) > i
    hit = next(e for e in ev2 if isinstance(e, af.events.CacheHit) and e.task == "numbers")
    assert hit.items == 50 and len(hit.key) == 32


async def test_changing_one_option_reruns_that_task_and_its_dependents_only(tmp_path: Path) -> None:
    flow = make_flow()
    await run_with_events(flow, store=tmp_path / "s")
    calls.clear()
    result, events = await run_with_events(flow, {"square": {"k": 2}}, store=tmp_path / "s")
    assert cache_events(events) == {
        "numbers": "hit", "evens": "hit", "square": "miss", "total": "miss", "record": "miss"
    }
    assert calls == Counter({"square": 50, "total": 50, "record": 50})  # numbers, evens: not run
    assert result["total"] == 2 * sum(i * i for i in range(50))
    # a downstream-only change: only the collector runs; square's stream is not even replayed
    calls.clear()
    result, events = await run_with_events(flow, {"square": {"k": 2}, "total": {"offset": 1}}, store=tmp_path / "s")
    assert calls == Counter({"total": 50})
    assert result["total"] == 2 * sum(i * i for i in range(50)) + 50


async def test_a_changed_definition_is_dirty_unless_its_version_is_pinned(tmp_path: Path) -> None:
    flow = make_flow()
    await run_with_events(flow, store=tmp_path / "s")

    def cube(numbers: int, k: int = 1) -> int:
        calls["cube"] += 1
        return numbers**3 * k

    changed = flow.copy()
    changed.replace("square", cube)
    calls.clear()
    result, events = await run_with_events(changed, store=tmp_path / "s")
    assert cache_events(events)["square"] == "miss" and cache_events(events)["numbers"] == "hit"
    assert calls["cube"] == 50 and result["total"] == sum(i**3 for i in range(50))

    def original(n: int = 5) -> af.Stream[int]:
        calls["original"] += 1
        yield from range(n)

    def rewritten(n: int = 5) -> af.Stream[int]:  # different code
        calls["rewritten"] += 1
        yield from range(n)

    def pinned(fn: Any, version: str) -> af.Flow:
        flow = af.Flow("pinned")
        flow.source(version=version, name="numbers")(fn)
        return flow

    calls.clear()
    assert (await af.run_async(pinned(original, "1"), store=tmp_path / "p"))["numbers"] == [0, 1, 2, 3, 4]
    assert (await af.run_async(pinned(rewritten, "1"), store=tmp_path / "p"))["numbers"] == [0, 1, 2, 3, 4]
    assert calls == Counter({"original": 1})  # same declared version: the cached stream is used
    assert (await af.run_async(pinned(rewritten, "2"), store=tmp_path / "p"))["numbers"] == [0, 1, 2, 3, 4]
    assert calls == Counter({"original": 1, "rewritten": 1})  # a new version is dirty


def test_cache_false_opts_a_task_and_its_dependents_out(tmp_path: Path) -> None:
    flow = af.Flow("noisy")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        calls["numbers"] += 1
        yield from range(n)

    @flow.task(cache=False)
    def stamp(numbers: int) -> int:
        calls["stamp"] += 1
        return numbers + 1

    @flow.collector(init=0)
    def total(acc: int, stamp: int) -> int:
        calls["total"] += 1
        return acc + stamp

    af.run(flow, store=tmp_path / "s")
    calls.clear()
    result = af.run(flow, store=tmp_path / "s")
    assert result["total"] == 55
    assert calls == Counter({"stamp": 10, "total": 10})  # numbers hit; stamp and total always run
    assert {t.name: t.cache for t in result.summary.tasks.values()} == {
        "numbers": "hit", "stamp": None, "total": None
    }


async def test_streams_replay_in_order_with_their_sequence_numbers(tmp_path: Path) -> None:
    """The durable pipeline (generators, zip fan-in, per-collectors, concurrency, a sink) gives the
    uncached products whatever part of it comes from the cache."""
    expected = durable.expected(400)

    def opts(sink: Path, spin: float = 0.0) -> dict[str, Any]:
        return {"numbers": {"n": 400}, "weigh": {"spin": spin}, "record": {"path": str(sink)}}

    store = tmp_path / "s"
    cold = await af.run_async(durable.flow, opts(tmp_path / "a.txt"), store=store)
    # only the sink's option changed: the label stream is replayed to it, in order, whole
    sink_only, events = await run_with_events(durable.flow, opts(tmp_path / "b.txt"), store=store)
    assert cache_events(events)["record"] == "miss" and cache_events(events)["label"] == "hit"
    # weigh changed: numbers and expand replay into weigh, label (zip) and per_number (per feed)
    mid, events = await run_with_events(durable.flow, opts(tmp_path / "c.txt", spin=1e-6), store=store)
    assert cache_events(events)["expand"] == "hit" and cache_events(events)["weigh"] == "miss"
    for result in (cold, sink_only, mid):
        assert result["total"] == expected["total"]
        assert result["per_number"] == expected["per_number"]
        assert result["labels"] == expected["labels"]
    for name in ("a.txt", "b.txt", "c.txt"):
        lines = (tmp_path / name).read_text().splitlines()
        assert set(lines) == expected["sink_seqs"] and len(lines) == len(expected["sink_seqs"])


async def test_a_cut_run_replaying_from_the_cache_resumes_exactly(tmp_path: Path) -> None:
    store = tmp_path / "s"
    n = 1500
    expected = durable.expected(n)

    def opts(sink: Path, spin: float) -> dict[str, Any]:
        return {"numbers": {"n": n}, "weigh": {"spin": spin}, "record": {"path": str(sink)}}

    await af.run_async(durable.flow, opts(tmp_path / "cold.txt", 0.0), store=store)
    sink = tmp_path / "sink.txt"
    await af.testing.kill_at_checkpoint(durable.flow, opts(sink, 0.0002), k=2, store=store, checkpoint_every=0.02)
    result = await af.run_async(durable.flow, opts(sink, 0.0002), store=store, resume=True)
    assert result["total"] == expected["total"]  # no item lost, none counted twice
    assert result["per_number"] == expected["per_number"]
    assert result["labels"] == expected["labels"]
    assert set(sink.read_text().splitlines()) == expected["sink_seqs"]
    assert result.summary.tasks["numbers"].cache == "hit" and result.summary.tasks["weigh"].cache == "miss"


def test_least_recently_used_entries_are_evicted_past_the_limit(tmp_path: Path) -> None:
    flow = af.Flow("big")

    @flow.source
    def blobs(seed: int = 0, n: int = 20) -> af.Stream[bytes]:
        calls[f"blobs{seed}"] += 1
        for i in range(n):
            yield bytes([seed % 256]) * 1000 + i.to_bytes(2, "big")

    store = tmp_path / "s"
    for seed in range(5):  # each entry holds about 20 kB
        af.run(flow, {"blobs": {"seed": seed}}, store=store, cache_limit=50_000)
    with af.store.open_store(store) as st:
        cache = af.cache.Cache(st)
        entries = cache.entries()
        assert cache.total_bytes() <= 50_000
        assert cache.total_bytes() == sum(e["bytes"] for e in entries)  # the running total is exact
    assert len(entries) == 2  # the two most recently used survive
    calls.clear()
    af.run(flow, {"blobs": {"seed": 4}}, store=store, cache_limit=50_000)
    af.run(flow, {"blobs": {"seed": 0}}, store=store, cache_limit=50_000)
    assert calls == Counter({"blobs0": 1})  # seed 4 was cached, seed 0 evicted
    # an entry larger than the whole limit is not stored, and the run still succeeds
    result = af.run(flow, {"blobs": {"seed": 9, "n": 100}}, store=store, cache_limit=50_000)
    assert len(result["blobs"]) == 100
    with af.store.open_store(store) as st:
        assert all(e["items"] != 100 for e in af.cache.Cache(st).entries())


def test_file_options_are_dirty_only_when_their_content_changes(tmp_path: Path) -> None:
    flow = af.Flow("files")

    @flow.source
    def lines(src: af.File) -> af.Stream[str]:
        calls["lines"] += 1
        yield from src.read_text().splitlines()

    @flow.collector(init=0)
    def count(acc: int, lines: str) -> int:
        calls["count"] += 1
        return acc + 1

    data = tmp_path / "data.txt"
    data.write_text("a\nb\n")
    store = tmp_path / "s"
    assert af.run(flow, {"lines": {"src": str(data)}}, store=store)["count"] == 2
    calls.clear()
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched, not changed
    assert af.run(flow, {"lines": {"src": data}}, store=store)["count"] == 2
    assert sum(calls.values()) == 0
    data.write_text("a\nb\nc\n")
    assert af.run(flow, {"lines": {"src": str(data)}}, store=store)["count"] == 3
    assert calls["lines"] == 1 and calls["count"] == 3


def test_bad_file_and_cache_arguments_get_clear_errors(tmp_path: Path) -> None:
    flow = af.Flow("files")

    @flow.task
    def size(src: af.File) -> int:
        return len(src.read_bytes())

    with pytest.raises(af.InvocationError, match=r"task 'size', option 'src'.*does not exist"):
        flow.bind({"size": {"src": str(tmp_path / "missing.txt")}})
    with pytest.raises(af.InvocationError, match=r"is not a regular file"):
        flow.bind({"size": {"src": str(tmp_path)}})
    with pytest.raises(af.ActorflowError, match="cache=True needs a store"):
        af.run(flow, {"size": {"src": __file__}}, cache=True)
    with pytest.raises(af.ActorflowError, match="cache limit must be a positive"):
        af.run(flow, {"size": {"src": __file__}}, store=tmp_path / "s", cache_limit=0)
    with pytest.raises(af.ActorflowError, match="cache must be"):
        af.run(flow, {"size": {"src": __file__}}, cache=42)  # type: ignore[arg-type]
    with pytest.raises(af.DefinitionError, match="version must be a non-empty string"):
        flow.task(version="", name="other")(lambda: 1)
    with pytest.raises(af.DefinitionError, match="cache must be True or False"):
        flow.task(cache="yes", name="other")(lambda: 1)  # type: ignore[arg-type]


def test_a_cache_directory_without_checkpoints(tmp_path: Path) -> None:
    flow = make_flow()
    calls.clear()
    af.run(flow, cache=tmp_path / "c")
    af.run(flow, cache=str(tmp_path / "c"))
    assert calls["square"] == 50  # the second run came from the cache
    with af.store.open_store(tmp_path / "c") as st:
        assert st.run_info() is None and st.read_checkpoint() is None  # no run was recorded


def test_failed_runs_keep_what_finished_and_dead_letters_are_not_cached(tmp_path: Path) -> None:
    flow = af.Flow("fails")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        calls["numbers"] += 1
        yield from range(n)

    @flow.collector(init=[])
    def gathered(acc: list[int], numbers: int) -> list[int]:
        return [*acc, numbers]

    @flow.task
    def inverse(gathered: list[int], bad: int = 3) -> float:
        calls["inverse"] += 1
        if bad in gathered:
            raise ValueError("bad input")
        return 1.0

    with pytest.raises(af.TaskFailed):
        af.run(flow, store=tmp_path / "s")
    calls.clear()
    assert af.run(flow, {"inverse": {"bad": -1}}, store=tmp_path / "s")["inverse"] == 1.0
    assert calls == Counter({"inverse": 1})  # numbers and gathered came from the cache

    dl = af.Flow("dl")

    @dl.source
    def items(n: int = 5) -> af.Stream[int]:
        yield from range(n)

    @dl.task(on_error=af.DeadLetter())
    def odd_fails(items: int) -> int:
        calls["odd_fails"] += 1
        if items % 2:
            raise ValueError("odd")
        return items

    af.run(dl, store=tmp_path / "d")
    calls.clear()
    result = af.run(dl, store=tmp_path / "d")
    assert calls["odd_fails"] == 5  # it set items aside last time, so it was not cached
    assert result["odd_fails"] == [0, 2, 4] and len(result.dead_letters) == 2


def test_cache_ls_and_clear_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = make_flow()
    store = tmp_path / "s"
    af.run(flow, store=store)
    capsys.readouterr()
    assert cli(["cache", "ls", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "numbers" in out and "total" in out and "5 entries" in out
    assert cli(["cache", "ls", "--store", str(store), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split('"task": "')[1].split('"')[0] for line in lines} == {
        "numbers", "square", "total", "evens", "record"
    }
    assert cli(["cache", "clear", "--store", str(store), "--task", "total"]) == 0
    assert "removed 1 cache entry" in capsys.readouterr().out
    assert cli(["cache", "clear", "--store", str(store)]) == 0
    assert "removed 4 cache entries" in capsys.readouterr().out
    assert cli(["cache", "ls", "--store", str(store)]) == 0
    assert "the cache is empty" in capsys.readouterr().out
    assert cli(["cache", "ls", "--store", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    calls.clear()
    af.run(flow, store=store)
    assert calls["numbers"] == 1  # cleared: everything ran again


def test_a_damaged_cache_entry_fails_clearly_instead_of_losing_items(tmp_path: Path) -> None:
    flow = make_flow()
    store = tmp_path / "s"
    af.run(flow, store=store)
    with af.store.open_store(store) as st:
        entry = next(e for e in af.cache.Cache(st).entries() if e["task"] == "square")
        with st.env.begin(write=True, db=st._cache) as txn:
            assert txn.delete(b"c%s:%08d" % (entry["key"].encode(), 0))
    with pytest.raises(af.TaskFailed, match=r"cache entry .* is damaged \(batch 0 of \d+ is missing\)"):
        af.run(flow, {"total": {"offset": 1}}, store=store)  # square is a hit that must replay
    assert cli(["cache", "clear", "--store", str(store), "--task", "square"]) == 0
    assert af.run(flow, {"total": {"offset": 1}}, store=store)["total"] == sum(i * i + 1 for i in range(50))


def test_watch_needs_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = Path(__file__).parent / "pipelines" / "durable.py"
    assert cli(["run", str(pipeline), "--watch", "--no-cache"]) == 2
    assert "--watch re-runs only what changed, which needs the cache" in capsys.readouterr().err
