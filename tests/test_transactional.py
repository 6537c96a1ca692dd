"""Transactional sinks: two-phase commit tied to checkpoints, exactly once across resumes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

import actorflow as af

#: What the recording sink saw, in order: ("begin",), ("run", x), ("prepare", t), ("commit", t), ("abort", t).
LOG: list[tuple[Any, ...]] = []
#: Items of each prepared transaction, by token.
TXNS: dict[str, list[int]] = {}
#: Tokens committed (a commit of a token already here changes nothing), in order.
COMMITTED: list[str] = []
#: Test switches: the source waits on HOLD before item HOLD_AT; the sink sets REACHED[x] when it gets x.
CTL: dict[str, Any] = {}


class Recording(af.TransactionalSink):
    """Records every call; an idempotent commit keeps each token's items once."""

    def begin(self) -> None:
        LOG.append(("begin",))
        self.items: list[int] = []

    def run(self, square: int) -> None:
        LOG.append(("run", square))
        self.items.append(square)
        reached = CTL.get("reached", {}).get(square)
        if reached is not None:
            reached.set()

    def prepare(self) -> str:
        token = uuid.uuid4().hex
        TXNS[token] = list(self.items)
        LOG.append(("prepare", token))
        return token

    def commit(self, token: Any) -> None:
        LOG.append(("commit", token))
        if CTL.get("fail_commit"):
            raise OSError("commit failed")
        if token not in COMMITTED:
            COMMITTED.append(token)

    def abort(self, token: Any) -> None:
        LOG.append(("abort", token))


def build(n: int = 200) -> af.Flow:
    flow = af.Flow("txn")

    @flow.source(batch_size=8)
    async def numbers(n: int = n) -> af.Stream[int]:
        for i in range(n):
            hold = CTL.get("hold")
            if i == CTL.get("hold_at") and hold is not None:
                await hold.wait()
            yield i

    @flow.task(capacity=16, batch_size=8)
    def square(numbers: int) -> int:
        if numbers == CTL.get("fail_at"):
            raise ValueError("boom")
        return numbers * numbers

    flow.add(Recording, name="rec")
    flow.add(af.JsonLinesSink, name="out", inputs={"item": square})
    return flow


@pytest.fixture(autouse=True)
def _clean() -> None:
    LOG.clear()
    TXNS.clear()
    COMMITTED.clear()
    CTL.clear()


def committed_items() -> list[int]:
    return [x for token in COMMITTED for x in TXNS[token]]


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def calls(kind: str) -> list[tuple[Any, ...]]:
    return [c for c in LOG if c[0] == kind]


async def test_without_a_store_prepare_and_commit_run_once_at_the_end(tmp_path: Path) -> None:
    await af.run_async(build(20), {"out": {"path": str(tmp_path / "o.jsonl")}})
    assert LOG[0] == ("begin",)
    assert [c[0] for c in LOG[1:21]] == ["run"] * 20
    (token,) = TXNS
    assert LOG[21:] == [("prepare", token), ("commit", token)]
    assert committed_items() == [i * i for i in range(20)]
    assert lines(tmp_path / "o.jsonl") == [i * i for i in range(20)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "o.jsonl.commits"]  # no side file left


async def test_each_checkpoint_prepares_then_commits_once_durable(tmp_path: Path) -> None:
    CTL.update(hold=trio.Event(), hold_at=100, reached={99 * 99: trio.Event()})
    out = tmp_path / "o.jsonl"
    async with af.open_run(build(), {"out": {"path": str(out)}}, store=tmp_path / "s") as run:
        events = run.events()
        await CTL["reached"][99 * 99].wait()
        assert await run.checkpoint_now()
        first = calls("prepare")[0][1]
        assert TXNS[first] == [i * i for i in range(100)]  # every item before the checkpoint's cut
        assert COMMITTED == [first]  # committed once the checkpoint was written
        assert LOG[-3:] == [("prepare", first), ("begin",), ("commit", first)]  # the next one opens at once
        assert lines(out) == [i * i for i in range(100)]
        CTL["hold"].set()
        await run.result()
    written = [e async for e in events if isinstance(e, af.events.CheckpointWritten)]
    assert written[-1].final
    assert len(COMMITTED) == len(calls("prepare")) == len(written)
    assert committed_items() == [i * i for i in range(200)]
    assert LOG[-1][0] == "commit" and not calls("abort")
    assert lines(out) == [i * i for i in range(200)]


async def test_a_failed_run_aborts_the_open_transaction_and_commits_nothing(tmp_path: Path) -> None:
    CTL["fail_at"] = 50
    with pytest.raises(af.TaskFailed):
        await af.run_async(build(), {"out": {"path": str(tmp_path / "o.jsonl")}})
    assert calls("abort") == [("abort", None)]
    assert not calls("prepare") and not calls("commit")
    assert not (tmp_path / "o.jsonl").exists() or lines(tmp_path / "o.jsonl") == []
    assert [p.name for p in tmp_path.iterdir() if ".txn-" in p.name] == []


async def test_resume_commits_the_restored_tokens_first_then_redelivers_into_a_new_transaction(
    tmp_path: Path,
) -> None:
    """A commit that never happened (as after a SIGKILL between the write and the commit) is made on resume."""
    CTL.update(hold=trio.Event(), hold_at=100, reached={99 * 99: trio.Event()}, fail_commit=True)
    out, store = tmp_path / "o.jsonl", tmp_path / "s"
    options = {"out": {"path": str(out)}}
    with pytest.raises(af.TaskFailed, match="commit failed"):
        async with af.open_run(build(), options, store=store) as run:
            await CTL["reached"][99 * 99].wait()
            await run.checkpoint_now()  # written; the commit fails: the run fails
            await run.result()
    (token,) = TXNS
    assert COMMITTED == [] and ("abort", token) not in LOG  # a durable token is never aborted
    CTL.update(fail_commit=False, hold=None)
    LOG.clear()
    await af.run_async(build(), options, store=store, resume=True)
    assert LOG[:2] == [("commit", token), ("begin",)]
    assert [c[1] for c in calls("run")] == [i * i for i in range(100, 200)]
    assert committed_items() == [i * i for i in range(200)]
    assert lines(out) == [i * i for i in range(200)]


async def test_items_after_the_last_checkpoint_are_aborted_then_delivered_again(tmp_path: Path) -> None:
    CTL.update(hold=trio.Event(), hold_at=100, reached={99 * 99: trio.Event(), 120 * 120: trio.Event()})
    out, store = tmp_path / "o.jsonl", tmp_path / "s"
    options = {"out": {"path": str(out)}}
    async with af.open_run(build(), options, store=store) as run:
        await CTL["reached"][99 * 99].wait()
        assert await run.checkpoint_now()
        released, CTL["hold"], CTL["hold_at"] = CTL["hold"], trio.Event(), 150  # stop again later: cut mid-stream
        released.set()
        await CTL["reached"][120 * 120].wait()
        run.cancel()
    assert LOG[-1] == ("abort", None)
    assert lines(out) == [i * i for i in range(100)]  # the open transaction's items never reached the file
    CTL.update(hold=None)
    LOG.clear()
    await af.run_async(build(), options, store=store, resume=True)
    assert [c[1] for c in calls("run")] == [i * i for i in range(100, 200)]  # delivered again, once
    assert committed_items() == [i * i for i in range(200)]
    assert lines(out) == [i * i for i in range(200)]
    assert [p.name for p in tmp_path.iterdir() if ".txn-" in p.name] == []


async def test_a_failing_prepare_fails_the_run_and_writes_no_checkpoint(tmp_path: Path) -> None:
    class Broken(Recording):
        def prepare(self) -> str:
            raise RuntimeError("cannot flush")

    flow = build(10)
    flow.add(Broken, name="broken", inputs={"square": "square"})
    with pytest.raises(af.TaskFailed, match="cannot flush") as info:
        await af.run_async(flow, {"out": {"path": str(tmp_path / "o.jsonl")}}, store=tmp_path / "s")
    assert "broken" in str(info.value)
    (prepared,) = calls("prepare")  # `rec` prepared before `broken` failed: no checkpoint holds it
    assert ("abort", prepared[1]) in LOG and ("abort", None) in LOG and not calls("commit")
    assert not (tmp_path / "o.jsonl").exists() or lines(tmp_path / "o.jsonl") == []


def test_definition_rules() -> None:
    class Restarting(af.TransactionalSink):
        on_error = af.Restart()

        def run(self, numbers: int) -> None: ...

    flow = af.Flow("rules")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=r"cannot use af\.Restart"):
        flow.add(Restarting)
    with pytest.raises(af.DefinitionError, match=r"inputs= names \['nope'\]"):
        flow.add(af.JsonLinesSink, name="out", inputs={"nope": "numbers"})
    with pytest.raises(af.DefinitionError, match="'missing', which is not a task"):
        flow.add(af.JsonLinesSink, name="out", inputs={"item": "missing"})
    spec = flow.add(af.JsonLinesSink, name="out", inputs={"item": "numbers"})
    assert spec.kind == "sink" and [(i.name, i.upstream, i.streaming) for i in spec.inputs] == [
        ("item", "numbers", True)
    ]
    assert [o.name for o in spec.options] == ["path", "mode"] and spec.options[0].required
    assert spec.options[1].default == "append"



def test_json_lines_commit_is_idempotent_at_every_step_a_crash_can_cut(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"

    def sink() -> af.JsonLinesSink:
        s = af.JsonLinesSink()
        s.path = str(path)
        return s

    first = sink()
    first.begin()
    first.run({"a": 1})
    t1 = first.prepare()
    first.commit(t1)
    first.begin()
    first.run([2, 3])
    first.run("four")
    t2 = first.prepare()
    good = path.read_bytes()
    # a crash halfway through appending t2: part of it is in the file, the record says nothing of it
    path.write_bytes(good + b'[2, 3]\n"fo')
    again = sink()  # a new process: commit(t2) again, as a resume does
    again.commit(t1)
    again.commit(t2)
    assert lines(path) == [{"a": 1}, [2, 3], "four"]
    # a crash after the record was written but before the side file was removed
    (tmp_path / f"o.jsonl.txn-{t2}").write_bytes(b"[2, 3]\n")
    sink().commit(t2)
    assert lines(path) == [{"a": 1}, [2, 3], "four"]
    assert not (tmp_path / f"o.jsonl.txn-{t2}").exists()
    # a transaction no checkpoint holds: its side file is swept at the first begin
    third = sink()
    third.begin()
    third.run(5)
    third.prepare()
    fourth = sink()
    fourth.begin()
    fourth.abort(None)
    assert [p.name for p in tmp_path.iterdir() if ".txn-" in p.name] == []
    assert lines(path) == [{"a": 1}, [2, 3], "four"]
