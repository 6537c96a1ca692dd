"""Keyed folds and windows in real runs: products, order, late items, processing time on trio's
clock (MockClock), failure policies, definition errors and checkpoints (see docs/windows.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af

Event = tuple[str, float]


def clicks_flow(events: list[Event], window: Any = None, lateness: float = 0.0, **extra: Any) -> af.Flow:
    flow = af.Flow("clicks")

    @flow.source(batch_size=7)
    def clicks() -> af.Stream[Event]:
        yield from events

    @flow.window(window or af.Tumbling(10), key=lambda e: e[0], time=lambda e: e[1], lateness=lateness, init=0,
                 **extra)
    def per_user(acc: int, clicks: Event) -> int:
        return acc + 1

    @flow.collector(init=0, key=lambda e: e[0])
    def totals(acc: int, clicks: Event) -> int:
        return acc + 1

    return flow


def rows(results: list[af.WindowResult]) -> list[tuple[Any, float, float, Any]]:
    return [(r.key, r.start, r.end, r.value) for r in results]


def test_keyed_fold_product_is_a_dict_in_first_seen_key_order() -> None:
    result = af.run(clicks_flow([("u2", 1.0), ("u1", 2.0), ("u2", 3.0)]))
    assert list(result["totals"].items()) == [("u2", 2), ("u1", 1)]


def test_keyed_fold_with_finish_and_tuple_keys() -> None:
    flow = af.Flow("k")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(10)

    @flow.collector(init=[], key=lambda n: (n % 2, "odd" if n % 2 else "even"), finish=sum)
    def by_parity(acc: list[int], nums: int) -> list[int]:
        acc.append(nums)
        return acc

    assert af.run(flow)["by_parity"] == {(0, "even"): 20, (1, "odd"): 25}


def test_tumbling_windows_go_downstream_in_order_of_end_then_first_key() -> None:
    events = [("b", 1.0), ("a", 2.0), ("a", 11.0), ("b", 25.0), ("a", 9.0), ("c", 12.0)]
    flow = clicks_flow(events, lateness=20)
    got: list[af.WindowResult] = []

    @flow.sink
    def show(per_user: af.WindowResult) -> None:
        got.append(per_user)

    af.run(flow)
    assert rows(got) == [("b", 0.0, 10.0, 1), ("a", 0.0, 10.0, 2), ("a", 10.0, 20.0, 1), ("c", 10.0, 20.0, 1),
                         ("b", 20.0, 30.0, 1)]


def test_late_items_go_to_dead_letters_with_late_in_the_error_and_are_counted() -> None:
    events = [("a", 1.0), ("a", 15.0), ("a", 4.0), ("b", 13.0), ("a", 30.0)]
    result = af.run(clicks_flow(events, lateness=2, on_error=af.Fail()))  # late items ignore on_error
    assert rows(result["per_user"]) == [("a", 0.0, 10.0, 1), ("a", 10.0, 20.0, 1), ("b", 10.0, 20.0, 1),
                                        ("a", 30.0, 40.0, 1)]
    assert result.summary.tasks["per_user"].late == 1
    assert result.summary.tasks["totals"].late == 0
    (dead,) = result.dead_letters
    assert dead["task"] == "per_user" and dead["seq"] == 2 and dead["item"] == ("a", 4.0)
    assert "late" in dead["error"]


def test_datetimes_are_event_times_and_naive_ones_are_utc() -> None:
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
    flow = af.Flow("dt")

    @flow.source
    def stamps() -> af.Stream[dt.datetime]:
        yield t0
        yield t0.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=30)
        yield t0 + dt.timedelta(seconds=70)

    @flow.window(af.Tumbling(60), time=lambda t: t, init=0)
    def minutes(acc: int, stamps: dt.datetime) -> int:
        return acc + 1

    epoch = t0.replace(tzinfo=dt.UTC).timestamp()
    assert rows(af.run(flow)["minutes"]) == [(None, epoch, epoch + 60, 2), (None, epoch + 60, epoch + 120, 1)]


def test_sliding_and_session_windows_in_a_run() -> None:
    events = [("a", 1.0), ("a", 3.0), ("b", 4.0), ("a", 20.0)]
    sliding = af.run(clicks_flow(events, af.Sliding(4, 2)))["per_user"]
    assert rows(sliding) == [("a", -2.0, 2.0, 1), ("a", 0.0, 4.0, 2), ("a", 2.0, 6.0, 1), ("b", 2.0, 6.0, 1),
                             ("b", 4.0, 8.0, 1), ("a", 18.0, 22.0, 1), ("a", 20.0, 24.0, 1)]
    sessions = af.run(clicks_flow(events, af.Session(5), merge=lambda x, y: x + y))["per_user"]
    assert rows(sessions) == [("a", 1.0, 8.0, 2), ("b", 4.0, 9.0, 1), ("a", 20.0, 25.0, 1)]


async def test_processing_time_windows_close_on_trios_clock_also_without_items(
    autojump_clock: trio.testing.MockClock,
) -> None:
    flow = af.Flow("proc")

    @flow.source
    async def words() -> af.Stream[str]:
        yield "a"
        yield "b"
        yield "a"
        await trio.sleep(5.5)  # nothing arrives meanwhile: the window [0, 1) still closes at 1 s
        yield "c"

    @flow.window(af.Tumbling(1), key=lambda w: w, init=0)
    def counts(acc: int, words: str) -> int:
        return acc + 1

    seen: list[tuple[float, af.WindowResult]] = []

    @flow.sink
    def show(counts: af.WindowResult) -> None:
        seen.append((trio.current_time(), counts))

    await af.run_async(flow)
    assert [(r.key, r.start, r.value) for _, r in seen] == [("a", 0.0, 2), ("b", 0.0, 1), ("c", 5.0, 1)]
    assert 1.0 <= seen[0][0] < 1.1  # emitted as the clock passed the end, long before "c"


def test_a_failing_step_gets_the_tasks_policy_and_the_other_items_are_folded() -> None:
    flow = af.Flow("policy")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(10)

    @flow.window(af.Tumbling(5), time=float, init=0, on_error=af.DeadLetter())
    def sums(acc: int, nums: int) -> int:
        if nums == 3:
            raise ValueError("three")
        return acc + nums

    result = af.run(flow)
    assert rows(result["sums"]) == [(None, 0.0, 5.0, 7), (None, 5.0, 10.0, 35)]
    assert [(d["seq"], d["item"]) for d in result.dead_letters] == [(3, 3)]


def test_a_failing_step_without_a_policy_fails_the_run_naming_the_item() -> None:
    flow = af.Flow("fails")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(10)

    @flow.collector(init=0, key=lambda n: n % 2)
    def sums(acc: int, nums: int) -> int:
        if nums == 7:
            raise ValueError("seven")
        return acc + nums

    with pytest.raises(af.TaskFailed, match="seven") as info:
        af.run(flow)
    assert info.value.seq == 7


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: f.window(af.Tumbling(1), init=0, lateness=3), "lateness= needs time="),
        (lambda f: f.window(af.Tumbling(1), init=0, merge=max), "merge= applies to af.Session"),
        (lambda f: f.window("1s", init=0), "af.Tumbling"),  # type: ignore[arg-type]
        (lambda f: f.window(af.Tumbling(1), init=0, time=lambda x: x, lateness=-1), "lateness must be"),
        (lambda f: f.collector(init=0, key=5), "key= must be a function"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_refused_at_definition(make: Any, message: str) -> None:
    flow = af.Flow("bad")

    @flow.source
    def nums() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=message):
        @make(flow)
        def w(acc: int, nums: int) -> int:
            return acc


def test_windowers_refuse_bad_sizes_and_async_steps_are_refused() -> None:
    with pytest.raises(af.DefinitionError, match="positive"):
        af.Tumbling(0)
    with pytest.raises(af.DefinitionError, match="step is larger than size"):
        af.Sliding(1, 2)
    with pytest.raises(af.DefinitionError, match="gap"):
        af.Session(-1)
    flow = af.Flow("async")

    @flow.source
    def nums() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=r"plain \(sync\) functions"):
        @flow.collector(init=0, key=lambda n: n)
        async def w(acc: int, nums: int) -> int:
            return acc


def test_windows_and_keyed_accumulators_resume_from_a_checkpoint(tmp_path: Path) -> None:
    events = [(f"u{i % 3}", i * 0.7) for i in range(300)]
    expected = af.run(clicks_flow(events))
    store = str(tmp_path / "store")

    async def cut() -> None:
        async with af.open_run(clicks_flow(events), store=store) as run:
            async for event in run.events():
                if isinstance(event, af.events.BatchProcessed) and event.task == "per_user":
                    await run.checkpoint_now()
                    run.cancel()
                    break
            with pytest.raises(af.RunCancelled):
                await run.result()

    trio.run(cut)
    resumed = af.run(clicks_flow(events), store=store, resume=True)
    assert resumed["per_user"] == expected["per_user"]
    assert resumed["totals"] == expected["totals"]


async def test_keys_open_windows_watermark_and_late_reach_summary_console_monitor_and_metrics() -> None:
    from rich.console import Console

    from actorflow._observe._monitor_wire import stats_message

    flow = af.Flow("visible")
    flow.source(af.external_source(Event, name="clicks"))

    @flow.window(af.Tumbling(10), key=lambda e: e[0], time=lambda e: e[1], lateness=2, init=0)
    def per_user(acc: int, clicks: Event) -> int:
        return acc + 1

    async with af.open_run(flow) as run:
        events = run.events()
        feed = run.feed("clicks")
        metrics = af.metrics.collector(run)
        for e in [("a", 1.0), ("b", 2.0), ("a", 15.0), ("a", 3.0)]:  # the last one is late
            await feed.send(e)
        taken = 0
        async for event in events:  # until the window task has taken all four
            if isinstance(event, af.events.BatchProcessed) and event.task == "per_user":
                taken += event.items_in
                if taken == 4:
                    break
        live = run.summary.tasks["per_user"]
        assert (live.keys, live.open_windows, live.watermark, live.late) == (2, 1, 13.0, 1)
        wire = stats_message(run)["tasks"]["per_user"]
        assert (wire["keys"], wire["open_windows"], wire["watermark"], wire["late"]) == (2, 1, 13.0, 1)
        text = metrics.render()
        assert 'actorflow_task_late_total{flow="visible",task="per_user"} 1' in text
        assert 'actorflow_task_open_windows{flow="visible",task="per_user"} 1' in text
        assert 'actorflow_task_watermark_seconds{flow="visible",task="per_user"} 13' in text
        feed.close()
        result = await run.result()
    done = result.summary.tasks["per_user"]
    assert (done.keys, done.open_windows, done.late) == (2, 0, 1)
    console = Console(record=True, width=200)
    console.print(af.console.summary_table(result.summary))
    shown = console.export_text()
    assert "keys / windows" in shown and "2 keys, 0 open, wm 13.000, 1 late" in shown


def test_a_second_run_on_the_same_store_is_served_from_the_cache(tmp_path: Path) -> None:
    events = [(("u", i % 3), i * 0.7) for i in range(100)]  # tuple keys survive the cache
    flow = af.Flow("cached")

    @flow.source
    def clicks() -> af.Stream[tuple[tuple[str, int], float]]:
        yield from events

    @flow.window(af.Tumbling(10), key=lambda e: e[0], time=lambda e: e[1], init=0)
    def per_user(acc: int, clicks: tuple[tuple[str, int], float]) -> int:
        return acc + 1

    @flow.collector(init=0, key=lambda e: e[0])
    def totals(acc: int, clicks: tuple[tuple[str, int], float]) -> int:
        return acc + 1

    store = str(tmp_path / "store")
    first = af.run(flow, store=store)
    again = af.run(flow, store=store)
    assert {t.cache for t in again.summary.tasks.values()} == {"hit"}
    assert again["per_user"] == first["per_user"] and again["totals"] == first["totals"]
    assert again["per_user"][0].key == ("u", 0)
    assert list(again["totals"]) == [("u", 0), ("u", 1), ("u", 2)]


def test_restart_policy_rebinds_a_task_class_step() -> None:
    flow = af.Flow("restart")

    @flow.source
    def nums() -> af.Stream[int]:
        yield from range(6)

    failed: list[int] = []

    @flow.collector(init=0, key=lambda n: n % 2, on_error=af.Restart(intensity=3, period=60))
    def sums(acc: int, nums: int) -> int:
        if nums == 4 and not failed:
            failed.append(nums)
            raise RuntimeError("once")
        return acc + nums

    assert af.run(flow)["sums"] == {0: 6, 1: 9}


def test_processing_time_windows_resume_with_the_clock_their_checkpoint_recorded(tmp_path: Path) -> None:
    def make() -> af.Flow:
        flow = af.Flow("proc_resume")

        @flow.source
        async def words() -> af.Stream[str]:
            for w in ["a", "a", "b"]:
                yield w
                await trio.sleep(0.1)

        @flow.window(af.Tumbling(1), key=lambda w: w, init=0)
        def counts(acc: int, words: str) -> int:
            return acc + 1

        return flow

    store = str(tmp_path / "store")

    async def cut() -> None:
        async with af.open_run(make(), store=store) as run:
            async for event in run.events():
                if isinstance(event, af.events.BatchProcessed) and event.task == "counts":
                    await run.checkpoint_now()  # the window [0, 1) is open with one "a"
                    run.cancel()
                    break
            with pytest.raises(af.RunCancelled):
                await run.result()

    async def resume() -> af.RunResult:
        trio.lowlevel.current_clock().jump(50.0)  # type: ignore[attr-defined]  # the new run's clock is far ahead
        return await af.run_async(make(), store=store, resume=True)

    trio.run(cut, clock=trio.testing.MockClock(autojump_threshold=0))
    result = trio.run(resume, clock=trio.testing.MockClock(autojump_threshold=0))
    assert rows(result["counts"]) == [("a", 0.0, 1.0, 2), ("b", 0.0, 1.0, 1)]
