"""`actorflow graph --format json --store DIR`: the graph with each task's last run, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

PIPELINE = '''
import time

import actorflow as af

flow = af.Flow("demo")


@flow.source
def numbers(n: int = 20) -> af.Stream[int]:
    yield from range(n)


@flow.task(on_error=af.DeadLetter())
def half(numbers: int) -> int:
    if numbers % 7 == 3:
        raise ValueError("bad item")
    return numbers // 2


@flow.task
def check(half: int, fail_at: int = -1, delay: float = 0.0) -> int:
    time.sleep(delay)
    if half == fail_at:
        raise RuntimeError("boom")
    return half


@flow.collector(init=0)
def total(acc: int, check: int) -> int:
    return acc + check
'''


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, timeout=120
    )


def graph(pipeline: Path, store: Path) -> dict[str, Any]:
    done = cli("graph", str(pipeline), "--format", "json", "--store", str(store))
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_graph_json_shows_the_last_run_of_a_store(tmp_path: Path) -> None:
    pipeline = tmp_path / "demo.py"
    pipeline.write_text(PIPELINE)
    store = tmp_path / "s"
    assert cli("run", str(pipeline), "--store", str(store), "--quiet").returncode == 0
    doc = graph(pipeline, store)
    assert [e["from"] + ">" + e["to"] for e in doc["edges"]] == ["numbers>half", "half>check", "check>total"]
    assert doc["last_run"]["status"] == "finished" and doc["last_run"]["final"] is True
    runs = {t["name"]: t["last_run"] for t in doc["tasks"]}
    assert runs["numbers"] == {
        "status": "finished", "cache": "miss", "cache_key": runs["numbers"]["cache_key"], "items_in": 20,
        "items_out": 20, "failures": 0,
    }
    assert runs["half"]["items_in"] == 20 and runs["half"]["items_out"] == 17 and runs["half"]["failures"] == 3
    assert runs["total"]["product"] == sum(i // 2 for i in range(20) if i % 7 != 3)
    assert "product" not in runs["half"]  # a stream read by another task has no product
    # the keys are those of the cache's entries
    entries = [json.loads(line) for line in cli("cache", "ls", "--store", str(store), "--json").stdout.splitlines()]
    listed = {e["key"] for e in entries}
    assert {runs[n]["cache_key"] for n in ("numbers", "total")} <= listed

    # a second run: half set items aside, so it was not cached and runs again; it sends the same
    # items, so what reads it is a cutoff hit; the keys are the same
    assert cli("run", str(pipeline), "--store", str(store), "--quiet").returncode == 0
    again = {t["name"]: t["last_run"] for t in graph(pipeline, store)["tasks"]}
    assert {n: r["cache"] for n, r in again.items()} == {
        "numbers": "hit", "half": "miss", "check": "cutoff", "total": "cutoff"
    }
    assert {n: r["cache_key"] for n, r in again.items()} == {n: r["cache_key"] for n, r in runs.items()}


def test_graph_json_shows_where_a_failed_run_stopped(tmp_path: Path) -> None:
    pipeline = tmp_path / "demo.py"
    pipeline.write_text(PIPELINE)
    store = tmp_path / "s"
    # a run that fails before its first checkpoint leaves none: the run is known, its tasks not
    done = cli("run", str(pipeline), "--store", str(store), "--set", "check.fail_at=0", "--quiet")
    assert done.returncode == 1
    doc = graph(pipeline, store)
    assert doc["last_run"]["status"] == "unknown" and all(t["last_run"] is None for t in doc["tasks"])
    # one that fails after periodic checkpoints shows the last of them
    done = cli(
        "run", str(pipeline), "--store", str(tmp_path / "t"), "--set", "check.fail_at=8", "--set", "check.delay=0.02",
        "--checkpoint-every", "10ms", "--quiet",
    )
    assert done.returncode == 1
    doc = graph(pipeline, tmp_path / "t")
    runs = {t["name"]: t["last_run"] for t in doc["tasks"]}
    assert doc["last_run"]["checkpoint"] >= 1 and doc["last_run"]["final"] is False
    # the last checkpoint came before the failure, or (written while the run was stopping) after it
    assert (runs["check"]["status"], doc["last_run"]["status"]) in (("running", "unfinished"), ("failed", "failed"))
    assert 0 < runs["check"]["items_in"] < 17
    assert "product" not in runs["total"]


def test_graph_store_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    pipeline = tmp_path / "demo.py"
    pipeline.write_text(PIPELINE)
    other = tmp_path / "other.py"
    other.write_text(PIPELINE.replace('af.Flow("demo")', 'af.Flow("other")'))
    store = tmp_path / "s"
    assert cli("run", str(pipeline), "--store", str(store), "--quiet").returncode == 0
    for args, message in [
        (["--format", "mermaid", "--store", str(store)], "--store works with --format json only"),
        (["--format", "json", "--store", str(tmp_path / "missing")], "does not exist"),
    ]:
        done = cli("graph", str(pipeline), *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    done = cli("graph", str(other), "--format", "json", "--store", str(store))
    assert done.returncode == 2 and "holds a run of flow 'demo', not of flow 'other'" in done.stderr
    (tmp_path / "empty").mkdir()
    done = cli("graph", str(pipeline), "--format", "json", "--store", str(tmp_path / "empty"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
