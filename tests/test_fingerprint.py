"""Fingerprints that see the code a task runs (issue 22, point 1): helpers, closures, constants,
classes, with a real store; an edit re-runs exactly the tasks it touches, unrelated edits keep hits."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af
from actorflow._cli._cli import import_pipeline
from actorflow._kernel._cache_keys import definition_token, unfingerprintable

PIPELINE = '''
import actorflow as af

OFFSET = {"a": 1}
SCALE = [1]
BIG = 10 ** 20000


def helper(x):
    return x + 1


class Model:
    def predict(self, x):
        return x * 2


def unrelated():
    return "nobody calls me"


flow = af.Flow("fp")


@flow.source
def numbers(n: int = 10) -> af.Stream[int]:
    yield from range(n)


@flow.task
def plus(numbers: int) -> int:
    return helper(numbers)


@flow.task
def offset(plus: int) -> int:
    return plus + OFFSET["a"]


@flow.task
def scaled(numbers: int) -> int:
    return Model().predict(numbers) * SCALE[0] + BIG % 7


@flow.collector(init=0)
def tot(acc: int, offset: int) -> int:
    return acc + offset


@flow.collector(init=0)
def tot2(acc: int, scaled: int) -> int:
    return acc + scaled
'''


def _run(tmp_path: Path, text: str) -> tuple[af.RunResult, dict[str, Any]]:
    path = tmp_path / "fp_pipe.py"
    path.write_text(text)
    module = import_pipeline(path)
    result = af.run(module.flow, store=str(tmp_path / "store"))
    return result, {n: t.cache for n, t in result.summary.tasks.items()}


@pytest.fixture(autouse=True)
def _forget_module() -> Any:
    yield
    sys.modules.pop("fp_pipe", None)


def test_cold_then_warm(tmp_path: Path) -> None:
    first, cache = _run(tmp_path, PIPELINE)
    assert set(cache.values()) == {"miss"}
    assert first["tot"] == sum(range(10)) + 20  # a 20,000-digit int constant fingerprints too
    _, cache = _run(tmp_path, PIPELINE)
    assert set(cache.values()) == {"hit"}


@pytest.mark.parametrize(
    ("old", "new", "reruns"),
    [
        ("return x + 1\n", "return x + 1000\n", {"plus", "offset", "tot"}),  # a helper in the same file
        ('OFFSET = {"a": 1}', 'OFFSET = {"a": 5}', {"offset", "tot"}),  # a module-level dict
        ("SCALE = [1]", "SCALE = [3]", {"scaled", "tot2"}),  # a module-level list
        ("return x * 2", "return x * 4", {"scaled", "tot2"}),  # a method of a class it instantiates
        ("BIG = 10 ** 20000", "BIG = 10 ** 20000 + 1", {"scaled", "tot2"}),  # an int beyond repr()'s 4,300 digits
    ],
)
def test_an_edit_reruns_exactly_the_tasks_it_touches(tmp_path: Path, old: str, new: str, reruns: set[str]) -> None:
    _run(tmp_path, PIPELINE)
    assert old in PIPELINE
    result, cache = _run(tmp_path, PIPELINE.replace(old, new))
    # the edited task runs, and what reads what it changed; every other task is a hit
    assert {n for n, c in cache.items() if c == "miss"} == reruns, cache
    assert all(cache[n] == "hit" for n in cache if n not in reruns)
    fresh = af.run(import_pipeline(tmp_path / "fp_pipe.py").flow)
    assert result["tot"] == fresh["tot"] and result["tot2"] == fresh["tot2"]  # no stale product


def test_an_unrelated_edit_keeps_every_hit(tmp_path: Path) -> None:
    _run(tmp_path, PIPELINE)
    _, cache = _run(tmp_path, PIPELINE.replace('"nobody calls me"', '"still nobody"') + "\nEXTRA = 1\n")
    assert set(cache.values()) == {"hit"}


def _factory(k: int) -> af.Flow:
    flow = af.Flow("factory")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(10)

    @flow.collector(init=0)
    def tot(acc: int, numbers: int) -> int:
        return acc + numbers * k

    return flow


def test_a_factory_closure_value_is_part_of_the_key(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    assert af.run(_factory(1), store=store)["tot"] == 45
    second = af.run(_factory(100), store=store)
    assert second["tot"] == 4500
    assert second.summary.tasks["numbers"].cache == "hit" and second.summary.tasks["tot"].cache == "miss"
    assert af.run(_factory(100), store=store).summary.tasks["tot"].cache == "hit"


async def test_a_value_that_cannot_be_fingerprinted_is_not_cached_and_says_why(tmp_path: Path) -> None:
    lock = threading.Lock()
    flow = af.Flow("locked")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(5)

    @flow.collector(init=0)
    def tot(acc: int, numbers: int) -> int:
        with lock:
            return acc + numbers

    @flow.collector(init=0, version="1")
    def pinned(acc: int, numbers: int) -> int:
        with lock:
            return acc + numbers

    assert "closure value 'lock'" in str(unfingerprintable(flow.tasks["tot"]))
    assert unfingerprintable(flow.tasks["pinned"]) is None
    events: list[Any] = []
    for _ in range(2):
        async with af.open_run(flow, store=tmp_path / "store") as run:
            async for event in run.events():
                events.append(event)
            result = await run.result()
        assert result["tot"] == 10 and result.summary.tasks["tot"].cache is None
    misses = [e for e in events if isinstance(e, af.events.CacheMiss) and e.task == "tot"]
    assert len(misses) == 2 and "_thread.lock" in misses[0].reason and "version=" in misses[0].reason
    assert result.summary.tasks["pinned"].cache == "hit"


def test_a_value_the_task_writes_to_is_its_output_not_its_input() -> None:
    seen: list[int] = []
    counts: dict[str, int] = {}
    flow = af.Flow("side")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(3)

    @flow.task
    def note(numbers: int) -> int:
        seen.append(numbers)
        counts["n"] = counts.get("n", 0) + 1
        return numbers

    before = definition_token(flow.tasks["note"])
    af.run(flow)
    assert seen == [0, 1, 2] and definition_token(flow.tasks["note"]) == before


HELPER = "def bump(x):\n    return x + 1\n"
USES_HELPER = '''
import actorflow as af
import fp_helper

flow = af.Flow("watched")


@flow.source
def numbers() -> af.Stream[int]:
    yield from range(4)


@flow.collector(init=0)
def tot(acc: int, numbers: int) -> int:
    return acc + fp_helper.bump(numbers)


@flow.collector(init=0)
def plain(acc: int, numbers: int) -> int:
    return acc + numbers
'''


async def test_watch_reruns_a_task_when_a_helper_module_it_calls_is_edited(tmp_path: Path) -> None:
    (tmp_path / "fp_helper.py").write_text(HELPER)
    pipe = tmp_path / "fp_pipe.py"
    pipe.write_text(USES_HELPER)
    try:
        with trio.fail_after(60):
            async with af.watch(lambda: import_pipeline(pipe).flow, paths=[pipe], debounce=0.05) as runs:
                first = await runs.__anext__()
                assert first["tot"] == 10 and (tmp_path / "fp_helper.py").resolve() in runs.paths
                (tmp_path / "fp_helper.py").write_text(HELPER.replace("x + 1", "x + 100"))
                second = await runs.__anext__()
                assert second["tot"] == 406
                assert {n: t.cache for n, t in second.summary.tasks.items()} == {
                    "numbers": "hit", "tot": "miss", "plain": "hit",
                }
    finally:
        sys.modules.pop("fp_helper", None)


RATES = {"a": 1}
OUT: dict[str, int] = {}


def test_a_value_read_beside_a_subscript_store_is_still_seen() -> None:
    flow = af.Flow("rates")

    @flow.source
    def keys() -> af.Stream[str]:
        yield "a"

    @flow.task
    def rate(keys: str) -> int:
        OUT[keys] = RATES[keys]  # OUT is written to; RATES is read
        return OUT[keys]

    before = definition_token(flow.tasks["rate"])
    OUT["a"] = 5
    assert definition_token(flow.tasks["rate"]) == before
    RATES["a"] = 2
    try:
        assert definition_token(flow.tasks["rate"]) != before
    finally:
        RATES["a"] = 1
