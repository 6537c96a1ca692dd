"""``actorflow run --watch``: a real subprocess, real file changes, real Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

PIPELINE = '''
import os
import actorflow as af

flow = af.Flow("lines")


def _log(name):
    with open(os.environ["CALLS_LOG"], "a") as fh:
        fh.write(name + "\\n")


@flow.source
def lines(src: af.File) -> af.Stream[str]:
    _log("lines")
    yield from src.read_text().splitlines()


@flow.task
def upper(lines: str) -> str:
    _log("upper")
    return lines.upper()


@flow.collector(init=0)
def count(acc: int, upper: str) -> int:
    _log("count")
    return acc + WEIGHT


WEIGHT = 1
'''

TIMEOUT = 60.0


class Watcher:
    """A running ``actorflow run --watch`` whose stderr lines are read by a thread."""

    def __init__(self, tmp: Path) -> None:
        self.calls = tmp / "calls.log"
        env = {**os.environ, "CALLS_LOG": str(self.calls), "PYTHONPATH": str(Path(__file__).parent.parent)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorflow", "run", str(tmp / "pipe.py"), "--watch", "--quiet", "--json",
             "--set", f"lines.src={tmp / 'data.txt'}", "--store", str(tmp / "store"), "--debounce", "50ms",
             "--events", str(tmp / "events.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.err: queue.Queue[str] = queue.Queue()
        self.out: queue.Queue[str] = queue.Queue()
        self.stderr_seen: list[str] = []
        for stream, q in ((self.proc.stderr, self.err), (self.proc.stdout, self.out)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream: object, q: queue.Queue[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            q.put(line.rstrip("\n"))
        q.put("<eof>")

    def next_err(self, prefix: str) -> str:
        """The next stderr line starting with *prefix* (lines before it are kept in stderr_seen)."""
        while True:
            line = self.err.get(timeout=TIMEOUT)
            self.stderr_seen.append(line)
            assert line != "<eof>", f"watch ended early: {self.stderr_seen}"
            if line.startswith(prefix):
                return line

    def run_counts(self) -> Counter[str]:
        counts = Counter(self.calls.read_text().split()) if self.calls.exists() else Counter()
        self.calls.write_text("")
        return counts


def test_watch_reruns_only_dirty_tasks_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    data = tmp_path / "data.txt"
    data.write_text("a\nb\n")
    w = Watcher(tmp_path)
    try:
        assert "3 ran" in w.next_err("actorflow: cache:")
        assert w.out.get(timeout=TIMEOUT) == '{"count": 2}'
        w.next_err("actorflow: watching")
        assert w.run_counts() == Counter({"lines": 1, "upper": 2, "count": 2})

        # the collector's code changes: only it runs again
        (tmp_path / "pipe.py").write_text(PIPELINE.replace("WEIGHT = 1", "WEIGHT = 10"))
        assert "pipe.py changed" in w.next_err("actorflow: ")
        line = w.next_err("actorflow: cache:")
        assert "2 from the cache (lines, upper)" in line and "1 ran (count)" in line
        assert w.out.get(timeout=TIMEOUT) == '{"count": 20}'
        w.next_err("actorflow: watching")
        assert w.run_counts() == Counter({"count": 2})

        # the input file's content changes: everything downstream of it runs
        data.write_text("a\nb\nc\n")
        assert "data.txt changed" in w.next_err("actorflow: ")
        assert "3 ran" in w.next_err("actorflow: cache:")
        assert w.out.get(timeout=TIMEOUT) == '{"count": 30}'
        w.next_err("actorflow: watching")
        assert w.run_counts() == Counter({"lines": 1, "upper": 3, "count": 3})

        # touched but not changed: a re-run, all from the cache
        st = data.stat()
        os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert "data.txt changed" in w.next_err("actorflow: ")
        assert "3 from the cache" in w.next_err("actorflow: cache:")
        assert w.out.get(timeout=TIMEOUT) == '{"count": 30}'
        w.next_err("actorflow: watching")
        assert w.run_counts() == Counter()

        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(timeout=TIMEOUT) == 0
        rest = []
        while (line := w.err.get(timeout=TIMEOUT)) != "<eof>":
            rest.append(line)
        assert rest[-1] == "actorflow: watch stopped"
        assert not any("Traceback" in line for line in w.stderr_seen + rest)
        events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
        assert sum(e["kind"] == "run_started" for e in events) == 4  # one log for the whole session
        outcomes = [(e["task"], e["outcome"]) for e in events if e["kind"] in ("cache_hit", "cache_miss")]
        assert sorted(outcomes[3:6]) == [("count", "miss"), ("lines", "hit"), ("upper", "hit")]
        assert sorted(outcomes[9:12]) == [("count", "hit"), ("lines", "hit"), ("upper", "hit")]
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def test_watch_keeps_going_after_a_broken_edit(tmp_path: Path) -> None:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "data.txt").write_text("a\n")
    w = Watcher(tmp_path)
    try:
        w.next_err("actorflow: watching")
        (tmp_path / "pipe.py").write_text(PIPELINE + "\nthis is not python\n")
        error = w.next_err("actorflow: error:")
        assert "pipe.py" in error and "failed to load" in error
        w.next_err("actorflow: watching")
        (tmp_path / "pipe.py").write_text(PIPELINE)
        assert "from the cache" in w.next_err("actorflow: cache:")
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=TIMEOUT) == 0
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


# -- af.watch, from code -------------------------------------------------------------------------

import pytest  # noqa: E402
import trio  # noqa: E402

import actorflow as af  # noqa: E402

API_TIMEOUT = 30.0


def counted_flow(calls: Counter[str]) -> af.Flow:
    flow = af.Flow("watched")

    @flow.source
    def lines(src: af.File) -> af.Stream[str]:
        calls["lines"] += 1
        yield from src.read_text().splitlines()

    @flow.task
    def upper(lines: str) -> str:
        calls["upper"] += 1
        return lines.upper()

    @flow.collector(init=0)
    def count(acc: int, upper: str) -> int:
        calls["count"] += 1
        return acc + 1

    @flow.source
    def other(n: int = 2) -> af.Stream[int]:  # no input file: never dirty
        calls["other"] += 1
        yield from range(n)

    @flow.collector(init=0)
    def total(acc: int, other: int) -> int:
        calls["total"] += 1
        return acc + other

    return flow


def task_count() -> int:
    """Tasks alive in this trio run (to see that a watch leaves none behind)."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


async def test_watch_reruns_only_dirty_tasks_after_a_file_option_changes(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\nb\n")
    calls: Counter[str] = Counter()
    before = task_count()
    with trio.fail_after(API_TIMEOUT):
        async with af.watch(counted_flow(calls), {"lines": {"src": data}}, debounce=0.05) as runs:
            first = await runs.__anext__()
            assert first["count"] == 2 and runs.changed == frozenset()
            assert data.resolve() in runs.paths
            assert calls == Counter({"lines": 1, "upper": 2, "count": 2, "other": 1, "total": 2})
            calls.clear()

            data.write_text("a\nb\nc\n")  # the watcher is in place once a result is handed out
            second = await runs.__anext__()
            assert second["count"] == 3 and runs.changed == {data.resolve()}
            assert {n: t.cache for n, t in second.summary.tasks.items()} == {
                "lines": "miss", "upper": "miss", "count": "miss", "other": "hit", "total": "hit",
            }
            assert calls == Counter({"lines": 1, "upper": 3, "count": 3})  # other and total: from the cache
            assert runs.runs == 2
    assert task_count() == before  # leaving the block stopped the watcher


async def test_async_for_gives_one_result_per_run_and_break_stops_watching(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\n")
    counts = []
    before = task_count()
    with trio.fail_after(API_TIMEOUT):
        async with af.watch(counted_flow(Counter()), {"lines": {"src": data}}, debounce=0.05) as runs:
            async for result in runs:
                counts.append(result["count"])
                if len(counts) == 3:
                    break
                data.write_text(data.read_text() + "x\n")
    assert counts == [1, 2, 3]
    assert task_count() == before


async def test_a_failing_run_raises_and_the_watch_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\n")
    flow = af.Flow("picky")

    @flow.source
    def lines(src: af.File) -> af.Stream[str]:
        yield from src.read_text().splitlines()

    @flow.collector(init=0)
    def count(acc: int, lines: str) -> int:
        if lines == "bad":
            raise ValueError("bad line")
        return acc + 1

    with trio.fail_after(API_TIMEOUT):
        async with af.watch(flow, {"lines": {"src": data}}, debounce=0.05) as runs:
            assert (await runs.__anext__())["count"] == 1
            data.write_text("bad\n")
            with pytest.raises(af.TaskFailed, match="bad line"):
                await runs.__anext__()
            data.write_text("a\nb\n")
            assert (await runs.__anext__())["count"] == 2


async def test_a_store_keeps_the_cache_between_watch_sessions(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("a\n")
    calls: Counter[str] = Counter()
    options = {"lines": {"src": data}}
    with trio.fail_after(API_TIMEOUT):
        async with af.watch(counted_flow(calls), options, store=tmp_path / "store") as runs:
            await runs.__anext__()
        calls.clear()
        async with af.watch(counted_flow(calls), options, store=tmp_path / "store") as runs:
            result = await runs.__anext__()
    assert {t.cache for t in result.summary.tasks.values()} == {"hit"}
    assert calls == Counter()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"resume": True}, "resume=True does not apply"),
        ({"cache": False}, "needs the cache"),
        ({"debounce": 0}, "debounce must be a positive number of seconds"),
    ],
)
async def test_watch_refuses_settings_that_do_not_apply(settings: dict[str, object], message: str) -> None:
    with pytest.raises(af.ActorflowError, match=message):
        async with af.watch(counted_flow(Counter()), **settings):  # type: ignore[arg-type]
            pass
