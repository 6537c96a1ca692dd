"""Console progress, the summary table and the JSON-lines event log."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import trio
from rich.console import Console

import actorflow as af


def make_flow(fail_at: int | None = None) -> af.Flow:
    flow = af.Flow("progress_demo")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def square(numbers: int) -> int:
        if numbers == fail_at:
            raise ValueError(f"bad number {numbers}")
        return numbers * numbers

    @flow.collector(init=0)
    def total(acc: int, square: int) -> int:
        return acc + square

    return flow


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=140, force_terminal=True, color_system=None), out


async def test_progress_shows_every_task_and_a_summary_table() -> None:
    con, out = console()
    async with af.open_run(make_flow(), {"numbers": {"n": 500}}) as run:
        progress = af.console.ConsoleProgress(run, con)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.watch)
            result = await run.result()
    text = out.getvalue()
    assert result["total"] == sum(i * i for i in range(500))
    for name in ("numbers", "square", "total"):
        assert name in text
    assert "500/500" in text  # the square bar learnt its total once the source had finished
    assert "flow 'progress_demo'" in text and "ok" in text
    table_lines = [line for line in text.splitlines() if line.startswith("│ square")]
    assert table_lines and "500" in table_lines[-1] and "finished" in table_lines[-1]
    tasks = {t.description: t for t in progress.progress.tasks}
    assert tasks["numbers"].completed == 500 and tasks["numbers"].total == 500  # finished: a full bar, not a pulse
    assert tasks["square"].completed == 500 and tasks["square"].total == 500
    assert tasks["total"].completed == 500


async def test_progress_reports_a_failure() -> None:
    con, out = console()
    with pytest.raises(af.TaskFailed):
        async with af.open_run(make_flow(fail_at=3)) as run:
            progress = af.console.ConsoleProgress(run, con)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.watch)
    text = out.getvalue()
    assert "failed" in text
    assert progress.failures and "task 'square' failed at item 3" in progress.failures[0]
    assert "ValueError: bad number 3" in text


async def test_progress_shows_a_slow_item() -> None:
    con, out = console()
    flow = af.Flow("slow_console")

    @flow.source
    def numbers(n: int = 4) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    async def wait(numbers: int) -> int:
        if numbers == 2:
            await trio.sleep(0.1)
        return numbers

    async with af.open_run(flow, slow_item=0.03) as run:
        progress = af.console.ConsoleProgress(run, con)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.watch)
            await run.result()
    assert "task 'wait': item 2 has been running" in out.getvalue()


async def test_show_progress_without_summary() -> None:
    con, out = console()
    async with af.open_run(make_flow(), {"numbers": {"n": 3}}) as run, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: af.console.show_progress(run, con, show_summary=False))
    assert "numbers" in out.getvalue()
    assert "flow 'progress_demo'" not in out.getvalue()


def test_summary_table_lists_tasks() -> None:
    result = af.run(make_flow(), {"numbers": {"n": 4}})
    con, out = console()
    con.print(af.console.summary_table(result.summary))
    text = out.getvalue()
    assert "flow 'progress_demo'" in text and "ok" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│ ")}
    assert set(rows) == {"numbers", "square", "total"}
    assert "┃ task" in text
    assert "collector" in rows["total"]


async def test_event_log_writes_every_event_as_a_json_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    async with af.open_run(make_flow(), {"numbers": {"n": 300}}) as run:
        log = af.console.EventLog(run, path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.write)
            await run.result()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == log.lines
    assert lines[0]["kind"] == "run_started" and lines[0]["tasks"] == ["numbers", "square", "total"]
    assert lines[-1]["kind"] == "run_finished" and lines[-1]["status"] == "ok"
    batches = [e for e in lines if e["kind"] == "batch_processed" and e["task"] == "square"]
    assert sum(e["items_in"] for e in batches) == 300
    finished = {e["task"]: e for e in lines if e["kind"] == "task_finished"}
    assert finished["numbers"]["items_out"] == 300
    assert all(e["run_id"] == run.run_id for e in lines)


async def test_event_log_to_an_open_file() -> None:
    buf = io.StringIO()
    async with af.open_run(make_flow(), {"numbers": {"n": 2}}) as run:
        log = af.console.EventLog(run, buf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.write)
    kinds = [json.loads(line)["kind"] for line in buf.getvalue().splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert not buf.closed


async def test_observe_combines_progress_event_log_and_monitor(tmp_path: Path) -> None:
    from trio_websocket import open_websocket_url

    con, out = console()
    path = tmp_path / "ev.jsonl"
    async with af.open_run(make_flow(), {"numbers": {"n": 50}}) as run:
        async with af.console.observe(run, events=path, monitor="127.0.0.1:0", console=con, linger=0.1) as server:
            assert server is not None and server.port > 0
            async with open_websocket_url(server.url) as ws:
                hello = json.loads(await ws.get_message())
            result = await run.result()
    assert hello["graph"]["flow"] == "progress_demo"
    assert result["total"] == sum(i * i for i in range(50))
    text = out.getvalue()
    assert f"dashboard at http://127.0.0.1:{server.port}/" in text
    assert "flow 'progress_demo'" in text
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"


async def test_observe_quiet_prints_nothing() -> None:
    con, out = console()
    async with af.open_run(make_flow(), {"numbers": {"n": 5}}) as run, af.console.observe(run, quiet=True, console=con):
        await run.result()
    assert out.getvalue() == ""


async def test_observe_passes_body_errors_through_unwrapped() -> None:
    con, _ = console()
    with pytest.raises(KeyError, match="boom"):
        async with af.open_run(make_flow(), {"numbers": {"n": 5}}) as run, af.console.observe(run, console=con):
            raise KeyError("boom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8765", ("127.0.0.1", 8765)), (":9000", ("127.0.0.1", 9000)), ("9001", ("127.0.0.1", 9001)),
     ("[::1]:8000", ("::1", 8000)), ("0.0.0.0:1", ("0.0.0.0", 1))],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    from actorflow._observe._console import parse_host_port

    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["localhost:http", "host:70000", "[::1]8000", "", "a:b:c"])
def test_parse_host_port_refuses_nonsense(text: str) -> None:
    from actorflow._observe._console import parse_host_port

    with pytest.raises(af.ActorflowError, match="--monitor: expected"):
        parse_host_port(text)


async def test_a_source_can_declare_its_total() -> None:
    flow = make_flow()
    flow.tasks["numbers"].fn.progress_total = lambda n: n  # type: ignore[attr-defined]
    con, _ = console()
    async with af.open_run(flow, {"numbers": {"n": 40}}) as run:
        progress = af.console.ConsoleProgress(run, con)
        assert progress._total("numbers", run.summary.tasks) == 40
        assert progress._total("square", run.summary.tasks) == 40  # before the source even started
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.watch)
    done = {t.description: (t.completed, t.total) for t in progress.progress.tasks}
    assert done["numbers"] == (40, 40) and done["square"] == (40, 40)
    for bad in ("lots", True, -1, lambda n: 1 / 0):
        flow.tasks["numbers"].fn.progress_total = bad  # type: ignore[attr-defined]
        async with af.open_run(flow, {"numbers": {"n": 2}}) as run:
            assert af.console.ConsoleProgress(run, con)._totals == {}


async def test_cli_arguments_feed_observe(tmp_path: Path) -> None:
    import argparse

    from actorflow._observe._console import add_observe_arguments, observe_options

    parser = argparse.ArgumentParser()
    add_observe_arguments(parser)
    path = tmp_path / "e.jsonl"
    args = parser.parse_args(["--quiet", "--events", str(path), "--monitor", "127.0.0.1:0"])
    opts = observe_options(args)
    assert opts["quiet"] is True and opts["monitor"] == "127.0.0.1:0"
    con, out = console()
    async with af.open_run(make_flow(), {"numbers": {"n": 3}}) as run, \
            af.console.observe(run, console=con, **opts) as srv:
        assert srv is not None
        await run.result()
    assert "run_finished" in path.read_text().splitlines()[-1]
    assert "flow 'progress_demo'" not in out.getvalue()  # quiet: no summary table
    defaults = observe_options(parser.parse_args([]))
    assert defaults["quiet"] is False and defaults["events"] is None and defaults["monitor"] is None


def long_flow() -> af.Flow:
    flow = af.Flow("ci_log")

    @flow.source
    def read_customers_from_the_big_database(n: int = 5000) -> af.Stream[int]:
        yield from range(n)

    read_customers_from_the_big_database.progress_total = lambda n: n  # type: ignore[attr-defined]

    @flow.task(on_error=af.DeadLetter())
    def validate_every_customer_record(read_customers_from_the_big_database: int) -> int:
        if read_customers_from_the_big_database % 1000 == 1:
            raise ValueError("bad record")
        return read_customers_from_the_big_database

    return flow


async def test_plain_lines_off_a_terminal_are_never_cut() -> None:
    out = io.StringIO()
    con = Console(file=out, width=40, force_terminal=False, color_system=None)  # a narrow CI log
    async with af.open_run(long_flow()) as run:
        progress = af.console.ConsoleProgress(run, con, log_interval=0.001)
        assert progress.plain
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.watch)
            result = await run.result()
    text = out.getvalue()
    assert len(result["validate_every_customer_record"]) == 4995
    lines = text.splitlines()
    final = [line for line in lines if "read_customers_from_the_big_database  finished" in line]
    assert final and "5,000/5,000  100%" in final[-1] and "items/s" in final[-1]
    task = [line for line in lines if "validate_every_customer_record  finished [5 dead]" in line]
    assert task and "5,000/5,000" in task[-1]
    assert any(re.match(r"  validate_every_customer_record +task +finished +5,000 +4,995 ", line) for line in lines)
    assert "5 items dead-lettered in `validate_every_customer_record`" in text
    assert not any(c in text for c in "┃│━")  # no box drawing, no bars


async def test_terminal_bars_show_percent_eta_and_a_stopped_clock() -> None:
    reached, release = trio.Event(), trio.Event()
    flow = af.Flow("eta")

    @flow.source
    def numbers(n: int = 100) -> af.Stream[int]:
        yield from range(n)

    numbers.progress_total = lambda n: n  # type: ignore[attr-defined]

    @flow.task
    async def slow(numbers: int) -> int:
        if numbers == 50:
            reached.set()
            await release.wait()
        return numbers

    con, _ = console()
    async with af.open_run(flow) as run:
        progress = af.console.ConsoleProgress(run, con)
        await reached.wait()
        await trio.sleep(0.05)  # let some time pass so that a rate exists
        during = progress.figures()
        release.set()
        await run.result()
        after = progress.figures()
        await trio.sleep(0.05)
        later = progress.figures()
        progress.events.close()
    assert during["slow"]["total"] == 100  # the source's declared total, carried to its reader
    assert 50 <= int(during["slow"]["percent"].rstrip("%")) < 100  # items received so far, of 100
    assert during["slow"]["eta"].startswith("ETA ")
    assert during["slow"]["rate"].endswith("items/s")
    assert after["slow"]["eta"] == "" and after["slow"]["percent"] == "100%"
    assert after["numbers"]["stats"].elapsed == later["numbers"]["stats"].elapsed  # finished: the clock stopped
