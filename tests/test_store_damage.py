"""Damaged stores and checkpoints, and values a checkpoint cannot hold: clear errors, never a crash.

A truncated data file would kill the process with SIGBUS when LMDB reads a missing page, so those
cases run in subprocesses. Everything works on real LMDB stores; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from test_store import small_flow

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}

BIG = '''
import sys

import actorflow as af

flow = af.Flow("big")


@flow.source(batch_size=256)
def numbers(n: int = 200_000) -> af.Stream[int]:
    yield from range(n)


@flow.collector(init=0, capacity=4096)
def total(acc: int, numbers: int) -> int:
    return acc + numbers


if __name__ == "__main__":  # python big.py STORE [resume]
    try:
        print(af.run(flow, store=sys.argv[1], resume=sys.argv[2:] == ["resume"])["total"])
    except af.StoreError as exc:
        print(f"StoreError: {exc}")
        sys.exit(3)
'''

THINGS = '''
import actorflow as af

flow = af.Flow("things")


class Thing:
    pass


@flow.source
def things(n: int = 3) -> af.Stream[Thing]:  # nothing reads it: its items are gathered into the result
    for _ in range(n):
        yield Thing()
'''

STUCK = '''
import trio

import actorflow as af

flow = af.Flow("stuck")


class Thing:
    pass


@flow.source
def things() -> af.Stream[list]:  # a declared, storable type: what it holds is seen only by a checkpoint
    yield [Thing()]


@flow.source
async def never() -> af.Stream[int]:
    await trio.sleep_forever()
    yield 0


@flow.task
def pair(things: list, never: int) -> int:  # waits for `never` forever: the Thing stays queued
    return never


@flow.sink
def look(things: list) -> None:
    print("seen", flush=True)
'''


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, timeout=timeout
    )


# -- 1. a truncated data file ---------------------------------------------------------------------


def _truncate(data: Path) -> tuple[int, int]:
    size = data.stat().st_size
    assert size > 300_000, size  # big enough that pages LMDB reads lie in the cut half
    os.truncate(data, size // 2)
    return size // 2, size


def test_a_truncated_store_is_refused_instead_of_a_bus_error(tmp_path: Path) -> None:
    pipeline = tmp_path / "big.py"
    pipeline.write_text(BIG)
    store = tmp_path / "s"
    python = [sys.executable, str(pipeline), str(store)]
    made = subprocess.run(python, capture_output=True, text=True, env=ENV, timeout=120)
    assert made.returncode == 0, made.stderr
    now, expected = _truncate(store / "data.mdb")
    resumed = subprocess.run([*python, "resume"], capture_output=True, text=True, env=ENV, timeout=120)
    assert resumed.returncode == 3, (resumed.returncode, resumed.stderr)  # -7 would be SIGBUS
    assert "truncated or corrupt" in resumed.stdout
    assert f"({now} bytes in data.mdb, {expected} expected)" in resumed.stdout


def test_a_truncated_store_is_refused_by_the_cli(tmp_path: Path) -> None:
    pipeline = tmp_path / "big.py"
    pipeline.write_text(BIG)
    store = tmp_path / "s"
    made = cli("run", f"{pipeline}:flow", "--store", str(store), "--json", "--quiet")
    assert made.returncode == 0, made.stderr
    _truncate(store / "data.mdb")
    by_cli = cli("resume", "--store", str(store), "--json", "--quiet")
    assert by_cli.returncode == 2, (by_cli.returncode, by_cli.stderr)
    assert "truncated" in by_cli.stderr
    assert "Traceback" not in by_cli.stderr and "Bus error" not in by_cli.stderr


# -- 2. values msgpack cannot encode --------------------------------------------------------------


class Thing:
    pass


def test_an_unencodable_product_fails_the_run_with_a_store_error(tmp_path: Path) -> None:
    flow = af.Flow("things")

    @flow.source
    def things(n: int = 3) -> af.Stream[Thing]:  # nothing reads it: its items are gathered into the result
        for _ in range(n):
            yield Thing()

    with pytest.raises(
        af.StoreError, match=r"task 'things' produces items of type Thing: Thing is not plain data, an attrs class"
    ):
        af.run(flow, store=tmp_path / "s")
    assert not (tmp_path / "s").exists()  # refused before the work: no store was made


def test_an_unencodable_product_exits_2_with_one_line_from_the_cli(tmp_path: Path) -> None:
    pipeline = tmp_path / "things.py"
    pipeline.write_text(THINGS)
    done = cli("run", f"{pipeline}:flow", "--store", str(tmp_path / "s"), "--json", "--quiet")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("actorflow: error:")]
    assert len(errors) == 1 and "Thing is not plain data" in errors[0] and "task 'things'" in errors[0]
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr


async def test_an_unencodable_queued_item_fails_the_run_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    release = trio.Event()
    flow = af.Flow("stuck")

    @flow.source
    async def things() -> af.Stream[list[Any]]:  # storable as declared; the Thing inside is not
        await release.wait()
        yield [Thing()]
        await trio.sleep_forever()

    @flow.source
    async def never() -> af.Stream[int]:
        await trio.sleep_forever()
        yield 0

    @flow.task
    def pair(things: list[Any], never: int) -> int:
        return never

    written: list[int] = []
    with pytest.raises(af.StoreError) as caught:
        async with af.open_run(flow, store=tmp_path / "s", checkpoint_every=0.01) as run:
            async for event in run.events():
                if isinstance(event, af.events.CheckpointWritten):
                    written.append(event.number)
                    release.set()  # a good checkpoint is written: now let the Thing out
    message = str(caught.value)
    assert "mailbox 'pair.things'" in message and "cannot encode a Thing" in message
    assert "attrs class or a dataclass" in message
    assert written and run.status == "failed"
    with af.store.open_store(tmp_path / "s", create=False) as st:
        blob = st.read_checkpoint()
    assert blob is not None
    doc = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    assert doc["number"] == written[-1] and not doc["final"]


def test_an_unencodable_item_at_sigint_exits_2_with_the_store_error(tmp_path: Path) -> None:
    pipeline = tmp_path / "stuck.py"
    pipeline.write_text(STUCK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "run", f"{pipeline}:flow", "--store", str(tmp_path / "s"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "seen\n"  # the sink has the Thing: the run is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "cannot encode a Thing" in err and "Traceback" not in err


# -- 3. a checkpoint that decodes but is damaged --------------------------------------------------


def _damage(store: Path, change: Any) -> None:
    with af.store.open_store(store, create=False) as st:
        blob = st.read_checkpoint()
        assert blob is not None
        doc = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        change(doc)
        st.write_checkpoint(msgpack.packb(doc, use_bin_type=True), [])


def _drop_mailboxes(doc: dict[str, Any]) -> None:
    del doc["mailboxes"]


def _drop_items_in(doc: dict[str, Any]) -> None:
    del doc["actors"]["total"]["items_in"]


def _number_as_text(doc: dict[str, Any]) -> None:
    doc["number"] = "3"


def _unpaired_batch(doc: dict[str, Any]) -> None:
    (name,) = doc["mailboxes"]
    doc["mailboxes"][name] = [[[1, 2], [5]]]


def _actor_not_a_map(doc: dict[str, Any]) -> None:
    doc["actors"]["total"] = 7


def _drop_cursor(doc: dict[str, Any]) -> None:
    del doc["actors"]["numbers"]["cursor"]


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (_drop_mailboxes, '"mailboxes" is missing'),
        (_drop_items_in, "task 'total': \"items_in\" is missing"),
        (_number_as_text, "\"number\" is '3'"),
        (_unpaired_batch, "does not pair sequence numbers with items"),
        (_actor_not_a_map, "task 'total': its state is not a map"),
        (_drop_cursor, "task 'numbers': \"cursor\" is missing"),
    ],
)
def test_a_damaged_checkpoint_is_refused_on_resume(tmp_path: Path, change: Any, what: str) -> None:
    store = tmp_path / "s"
    assert af.run(small_flow(), store=store)["total"] == 4950
    _damage(store, change)
    with pytest.raises(af.StoreError, match="the checkpoint is damaged") as caught:
        af.run(small_flow(), store=store, resume=True)
    assert what in str(caught.value)


def test_a_damaged_checkpoint_is_refused_by_a_new_run_too(tmp_path: Path) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    _damage(store, _drop_mailboxes)
    with pytest.raises(af.StoreError, match=r"the checkpoint is damaged \(\"mailboxes\" is missing\)"):
        af.run(small_flow(), store=store)


# -- 4. recording a new run is one transaction ---------------------------------------------------


def test_set_run_info_is_one_transaction(tmp_path: Path) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    with af.store.open_store(store, create=False) as st:
        st.write_dead_letters([{"task": "total", "seq": 1, "item": 1, "error": "E", "time": 0.0}])
        assert st.read_checkpoint() is not None and list(st.dead_letters())
        before = st.env.info()["last_txnid"]
        st.set_run_info("f" * 16, {"flow": "small", "options": None})
        assert st.env.info()["last_txnid"] == before + 1
        assert st.read_checkpoint() is None and not list(st.dead_letters())
        info = st.run_info()
        assert info is not None and info["fingerprint"] == "f" * 16 and info["flow"] == "small"


# -- 5. checkpoint_every --------------------------------------------------------------------------


@pytest.mark.parametrize("every", [-1, 0, "2s", True, float("nan"), float("inf")])
def test_checkpoint_every_must_be_a_positive_number(tmp_path: Path, every: Any) -> None:
    with pytest.raises(af.ActorflowError, match=r"checkpoint_every must be None or a positive") as caught:
        af.run(small_flow(), store=tmp_path / "s", checkpoint_every=every)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert repr(every) in str(caught.value)


def test_checkpoint_every_none_or_a_number_is_accepted(tmp_path: Path) -> None:
    assert af.run(small_flow(), store=tmp_path / "a", checkpoint_every=None)["total"] == 4950
    assert af.run(small_flow(), store=tmp_path / "b", checkpoint_every=1)["total"] == 4950


# -- 6. wording for a directory that holds no store ----------------------------------------------


def test_dead_letters_of_a_directory_without_a_store_does_not_talk_of_resuming(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = cli("dead-letters", "--store", str(empty))
    assert done.returncode == 2, done.stderr
    assert "is not an actorflow store (no data.mdb)" in done.stderr
    assert "nothing to resume" not in done.stderr and "Traceback" not in done.stderr


def test_dead_letters_of_a_missing_store_does_not_talk_of_resuming(tmp_path: Path) -> None:
    done = cli("dead-letters", "--store", str(tmp_path / "missing"))
    assert done.returncode == 2, done.stderr
    assert "does not exist; it holds no dead letters" in done.stderr
    assert "nothing to resume" not in done.stderr and "Traceback" not in done.stderr
