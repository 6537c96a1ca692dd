"""Fault injection: each fault and bad input gives one clear error, and the last good checkpoint
still resumes to the products of an uninterrupted run (the table in docs/durability.md).

Every fault is real: bytes of ``data.mdb`` are overwritten, a store's LMDB map or a small tmpfs
fills up, processes are SIGKILLed while they create a store, two runs contend for one store, the
code changes between run and resume. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio

import actorflow as af
from actorflow._storage._codec import pack, unpack

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "tests" / "pipelines"
sys.path.insert(0, str(PIPELINES))
import faults  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
BLOB = {"kept": {"blob": 200}}  # each item adds 200 bytes to a collector's state: checkpoints grow to ~600 kB


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return faults.products(af.run(faults.make()))


@pytest.fixture(scope="module")
def expected_blob() -> dict[str, Any]:
    return faults.products(af.run(faults.make(), BLOB))


async def cut(store: Path | af.store.Store, k: int = 2, options: Any = None) -> None:
    """A run cut off, as a crash would, right after its *k*-th checkpoint."""
    await af.testing.kill_at_checkpoint(faults.make(), options, k=k, store=store, checkpoint_every=0.002)


async def resumed(store: Path | af.store.Store, options: Any = None, **settings: Any) -> dict[str, Any]:
    return faults.products(await af.run_async(faults.make(), options, store=store, resume=True, **settings))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, timeout=120
    )


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a CLI that failed cleanly (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("actorflow: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# -- damaged bytes --------------------------------------------------------------------------------


def damage_latest_checkpoint(store: Path) -> int:
    """Overwrite bytes inside the latest checkpoint's record in data.mdb; returns the previous one's number.

    The record is found by its ``time`` field (a msgpack float64 no other checkpoint shares); every
    copy of it is changed (LMDB may keep stale copies in free pages).
    """
    with af.store.open_store(store, create=False) as st:
        (latest, _), (previous, _) = st.checkpoints()
    assert latest is not None and previous is not None
    doc, before = unpack(latest), unpack(previous)
    stamp = b"\xa4time\xcb" + struct.pack(">d", doc["time"])
    data = store / "data.mdb"
    raw = data.read_bytes()
    assert stamp in raw
    data.write_bytes(raw.replace(stamp, stamp[:-1] + bytes([stamp[-1] ^ 0xFF])))
    number: int = before["number"]
    return number


async def test_a_damaged_checkpoint_offers_the_previous_one_which_resumes(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    store = tmp_path / "s"
    await cut(store, k=3)
    number = damage_latest_checkpoint(store)
    with pytest.raises(af.StoreError) as caught:
        await resumed(store)
    text = str(caught.value)
    assert str(store) in text and "the checkpoint is damaged (its checksum does not match" in text
    assert f"previous checkpoint (number {number}) is intact" in text
    assert "--from-previous" in text and "from_previous=True" in text
    await af.testing.kill_at_checkpoint(
        faults.make(), k=1, store=store, resume=True, from_previous=True, checkpoint_every=0.002
    )
    with af.store.open_store(store, create=False) as st:
        (latest, _), (previous, _) = st.checkpoints()  # the damaged one was replaced, not the one resumed from
    assert latest is not None and previous is not None and unpack(previous)["number"] == number
    assert await resumed(store) == expected


def test_the_cli_offers_and_resumes_from_the_previous_checkpoint(tmp_path: Path, expected: dict[str, Any]) -> None:
    store = tmp_path / "s"
    done = cli("run", f"{PIPELINES / 'faults.py'}:flow", "--store", str(store), "--checkpoint-every", "0.002s",
               "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    damage_latest_checkpoint(store)  # the final checkpoint; a periodic one is before it
    assert "--from-previous" in one_error(cli("resume", "--store", str(store), "--json", "--quiet"))
    again = cli("resume", "--store", str(store), "--from-previous", "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    products = json.loads(again.stdout.strip().splitlines()[-1])
    assert len(products["kept"]) == expected["kept"]
    assert products["pairs"] == {repr(k): v for k, v in expected["pairs"].items()}


async def test_a_sealed_checkpoint_that_does_not_fit_the_flow_offers_the_previous_one(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    """A checkpoint whose checksum holds but whose content does not (an actor's state lost a field):
    the error offers the intact previous checkpoint, which resumes."""
    store = tmp_path / "s"
    await cut(store, k=3)
    with af.store.open_store(store, create=False) as st:
        (latest, _), _ = st.checkpoints()
        assert latest is not None
        doc = unpack(latest)
        number = doc["number"]
        name = next(n for n, a in doc["actors"].items() if a)
        doc["actors"][name] = {}  # every field of the actor's state gone, written with a good checksum
        st.write_encoded(pack(doc), [])
    with pytest.raises(af.StoreError) as caught:
        await resumed(store)
    text = str(caught.value)
    assert str(store) in text and "the checkpoint is damaged" in text
    assert f"previous checkpoint (number {number}) is intact" in text and "--from-previous" in text
    assert await resumed(store, from_previous=True) == expected


@pytest.mark.parametrize(("how", "what"), [("truncate", "truncated or corrupt"),
                                           ("header", "cannot be opened as an LMDB store")])
async def test_a_truncated_or_overwritten_data_file_is_one_store_error(tmp_path: Path, how: str, what: str) -> None:
    store = tmp_path / "s"
    await cut(store, k=2)
    af.testing.corrupt_store(store, how)
    with pytest.raises(af.StoreError, match=what) as caught:
        await resumed(store)
    assert str(store) in str(caught.value) and "new store" in str(caught.value)


DAMAGE_PAGES = '''
import contextlib, io, json, os, shutil, sys
from actorflow._cli._cli import main
src, work, pages = sys.argv[1], sys.argv[2], int(sys.argv[3])
for page in range(pages):
    for command in (["resume", "--store", work, "--quiet", "--json"], ["dead-letters", "--store", work],
                    ["cache", "ls", "--store", work]):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(src, work)
        with open(os.path.join(work, "data.mdb"), "r+b") as f:
            f.seek(page * 4096 + 64)
            f.write(bytes(range(256)) * 8)
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(command)
            except SystemExit as exc:
                code = exc.code
            except BaseException as exc:
                code = "raised " + type(exc).__name__ + ": " + str(exc)
        print(json.dumps({"page": page, "command": command[0], "code": code, "stderr": err.getvalue()}), flush=True)
'''


def test_every_damaged_page_gives_a_clear_error_or_a_good_result(tmp_path: Path) -> None:
    """Each page of data.mdb overwritten in turn; resume, dead-letters and cache ls either work or fail
    with one line (never a traceback, an lmdb exception or a crash)."""
    store = tmp_path / "s"
    done = cli("run", f"{PIPELINES / 'faults.py'}:flow", "--store", str(store), "--checkpoint-every", "0.005s",
               "--set", "numbers.n=300", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    env = lmdb.open(str(store), readonly=True, lock=False, max_dbs=8)
    pages = env.info()["last_pgno"] + 1
    env.close()
    script = tmp_path / "damage.py"
    script.write_text(DAMAGE_PAGES)
    proc = subprocess.run([sys.executable, str(script), str(store), str(tmp_path / "w"), str(pages)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # a negative code: a crash
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 3 * pages
    for r in results:
        assert r["code"] in (0, 2), r
        assert "Traceback" not in r["stderr"] and "lmdb." not in r["stderr"], r
        if r["code"] == 2:
            assert len(r["stderr"].strip().splitlines()) == 1 and str(tmp_path / "w") in r["stderr"], r
    assert any(r["code"] == 2 for r in results)  # the damage was seen somewhere


async def test_a_damaged_dead_letter_is_one_store_error(tmp_path: Path) -> None:
    flow = af.Flow("letters")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task(on_error=af.DeadLetter())
    def picky(numbers: int) -> int:
        if numbers == 3:
            raise ValueError("the unmistakable three")
        return numbers

    store = tmp_path / "s"
    await af.run_async(flow, store=store)
    data = store / "data.mdb"
    raw = data.read_bytes()
    assert raw.count(b"the unmistakable three") >= 1
    data.write_bytes(raw.replace(b"the unmistakable three", b"the unmistakable thr33"))
    letters = one_error(cli("dead-letters", "--store", str(store)))
    assert "a dead letter is damaged (its checksum does not match" in letters and str(store) in letters


# -- an empty, unmade or foreign store ------------------------------------------------------------


async def test_an_empty_data_file_is_left_alone_and_a_new_run_restarts_cleanly(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    store = tmp_path / "s"
    store.mkdir()
    (store / "data.mdb").write_bytes(b"")  # a kill right after LMDB created the file
    with pytest.raises(af.StoreError, match="cut off while it was being created") as caught:
        await resumed(store)
    assert "Start the run again with the same store" in str(caught.value)
    assert (store / "data.mdb").stat().st_size == 0  # the resume attempt wrote nothing
    assert "Start the run again" in one_error(cli("resume", "--store", str(store)))
    assert faults.products(await af.run_async(faults.make(), store=store)) == expected


async def test_a_store_cut_off_before_its_run_was_recorded_says_how_to_go_on(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    store = tmp_path / "s"
    af.store.open_store(store).close()  # made, as a run does first; the kill came before the run was recorded
    with pytest.raises(af.ResumeError, match=r"cut off while it was being created.*Start the run again"):
        await resumed(store)
    assert "Start the run again" in one_error(cli("resume", "--store", str(store)))
    assert faults.products(await af.run_async(faults.make(), store=store)) == expected


def test_a_foreign_lmdb_environment_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "foreign"), max_dbs=2)
    customers = env.open_db(b"customers")  # before the write transaction: open_db takes one of its own
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=customers)
    env.close()
    before = (tmp_path / "foreign" / "data.mdb").read_bytes()
    for resume in (False, True):
        with pytest.raises(af.StoreError, match="an LMDB environment but not an actorflow store"):
            af.run(faults.make(), store=tmp_path / "foreign", resume=resume)
    assert (tmp_path / "foreign" / "data.mdb").read_bytes() == before


CREATE = "import sys; sys.path.insert(0, sys.argv[2]); import faults, actorflow as af; " \
         "af.run(faults.make(), store=sys.argv[1], checkpoint_every=0.002)"


def _kill_while_creating(store: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CREATE, str(store), str(PIPELINES)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (store / "data.mdb").exists():  # another process: no event to wait for, so poll
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.0002)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


def test_a_store_killed_while_it_is_created_resumes_or_restarts_cleanly(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    rng = random.Random(15)
    outcomes = set()
    for i, delay in enumerate([0.0, 0.0005, *(rng.uniform(0, 0.004) for _ in range(4))]):
        store = tmp_path / f"s{i}"
        _kill_while_creating(store, delay)
        try:
            got = faults.products(af.run(faults.make(), store=store, resume=True))
            outcomes.add("resumed")
        except (af.StoreError, af.ResumeError) as exc:
            assert "Start the run again with the same store" in str(exc), exc
            got = faults.products(af.run(faults.make(), store=store))
            outcomes.add("restarted")
        assert got == expected, (delay, got)
    assert outcomes  # which of the two happened depends on timing; both are fine


# -- exhaustion -----------------------------------------------------------------------------------


async def test_a_full_map_says_so_and_the_last_checkpoint_resumes(
    tmp_path: Path, expected_blob: dict[str, Any]
) -> None:
    path = tmp_path / "s"
    written: list[int] = []
    with af.store.open_store(path, map_size=1 << 20) as small:
        with pytest.raises(af.StoreError) as caught:
            async with af.open_run(faults.make(), BLOB, store=small, checkpoint_every=0.002) as run:
                async for event in run.events():
                    if isinstance(event, af.events.CheckpointWritten):
                        written.append(event.number)
    text = str(caught.value)
    assert str(path) in text and "is full: its map size is 1,048,576 bytes" in text and "needs about" in text
    assert "the last good checkpoint is intact" in text and written
    with af.store.open_store(path, create=False, map_size=64 << 20) as big:
        (latest, _), *_ = big.checkpoints()
        assert latest is not None and unpack(latest)["number"] == written[-1]
        assert await resumed(big, BLOB) == expected_blob


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_a_full_file_system_says_so_and_the_last_checkpoint_resumes(
    tmp_path: Path, tiny_fs: Path, expected_blob: dict[str, Any]
) -> None:
    store = tiny_fs / "s"
    with pytest.raises(af.StoreError) as caught:
        await af.run_async(faults.make(), BLOB, store=store, checkpoint_every=0.002)
    text = str(caught.value)
    assert str(store) in text and "the file system is full" in text and "bytes free" in text
    assert "needs about" in text and "the last good checkpoint is intact" in text
    moved = tmp_path / "moved"  # room found elsewhere: the store moved there resumes
    shutil.copytree(store, moved)
    assert await resumed(moved, BLOB) == expected_blob


# -- contention, code change and bad input --------------------------------------------------------


async def test_a_second_run_on_a_store_in_use_fails_and_the_first_goes_on(
    tmp_path: Path, expected: dict[str, Any]
) -> None:
    store = tmp_path / "s"
    refused: list[str] = []
    async with af.open_run(faults.make(), store=store, checkpoint_every=0.002) as run:
        async for event in run.events():
            if isinstance(event, af.events.CheckpointWritten) and not refused:
                with pytest.raises(af.StoreError) as caught:
                    await af.run_async(faults.make(), store=store, resume=True)
                refused.append(str(caught.value))
        result = await run.result()
    assert f"is in use by process {os.getpid()}" in refused[0] and str(store) in refused[0]
    assert faults.products(result) == expected


async def test_a_deleted_lock_file_does_not_let_a_second_run_in(tmp_path: Path, expected: dict[str, Any]) -> None:
    """The owner lock is on the store directory: ``rm owner.lock`` while a run is live changes nothing."""
    store = tmp_path / "s"
    refused: list[str] = []
    async with af.open_run(faults.make(), store=store, checkpoint_every=0.002) as run:
        async for event in run.events():
            if isinstance(event, af.events.CheckpointWritten) and not refused:
                (store / "owner.lock").unlink()
                with pytest.raises(af.StoreError) as caught:
                    await af.run_async(faults.make(), store=store, resume=True)
                refused.append(str(caught.value))
        result = await run.result()
    assert "is in use by" in refused[0] and str(store) in refused[0]
    assert faults.products(result) == expected


async def test_a_dangling_symlink_store_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    link = tmp_path / "s"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(af.StoreError, match=r"is a symbolic link to .*gone.*, which does not exist"):
        await af.run_async(faults.make(), store=link)
    assert not (tmp_path / "gone").exists()


def _file_flow() -> af.Flow:
    flow = af.Flow("from_file")

    @flow.source
    async def numbers(src: af.File) -> af.Stream[int]:
        for line in src.read_text().split():
            await trio.sleep(0)
            yield int(line)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


async def test_an_input_file_changed_before_the_resume_is_refused_naming_it(tmp_path: Path) -> None:
    data, store = tmp_path / "data.txt", tmp_path / "s"
    data.write_text(" ".join(str(i) for i in range(5000)))
    options = {"numbers": {"src": str(data)}}
    await af.testing.kill_at_checkpoint(_file_flow(), options, k=2, store=store, checkpoint_every=0.002)
    original = data.read_text()
    data.write_text(" ".join(str(i * 1000) for i in range(5000)))
    with pytest.raises(af.ResumeError, match=r"data\.txt' \(numbers\.src, its content differs\)"):
        await af.run_async(_file_flow(), options, store=store, resume=True)
    data.write_text(original)  # put back: the checkpoint resumes to the uninterrupted total
    result = await af.run_async(_file_flow(), options, store=store, resume=True)
    assert result["total"] == sum(range(5000))


async def test_changed_code_is_refused_and_the_original_code_resumes(tmp_path: Path, expected: dict[str, Any]) -> None:
    store = tmp_path / "s"
    await cut(store)
    with pytest.raises(af.ResumeError, match="task 'weigh' changed") as caught:
        await af.run_async(faults.make(factor=3), store=store, resume=True)
    assert "'pairs'" not in str(caught.value)
    assert await resumed(store) == expected


def _other_options(store: Path) -> None:
    af.run(faults.make(), {"numbers": {"n": 10}}, store=store, resume=True)


def _fresh_run_on_it(store: Path) -> None:
    af.run(faults.make(), store=store)


def _from_previous_without_resume(store: Path) -> None:
    af.run(faults.make(), store=store, from_previous=True)


def _zero_interval(store: Path) -> None:
    af.run(faults.make(), store=store, resume=True, checkpoint_every=0)


def _unstorable_type(store: Path) -> None:
    flow = faults.make()

    @flow.task
    def opaque(numbers: int) -> Path:  # storable: a Path
        return Path(str(numbers))

    @flow.task
    def worse(numbers: int) -> lmdb.Environment:
        raise AssertionError("never runs")

    af.run(flow, store=store, resume=True)


@pytest.mark.parametrize(
    ("attempt", "error", "what"),
    [
        (_other_options, af.ResumeError, "other tasks or options than the ones given"),
        (_fresh_run_on_it, af.StoreError, "holds an unfinished run"),
        (_from_previous_without_resume, af.ResumeError, "needs resume=True"),
        (_zero_interval, af.ActorflowError, "checkpoint_every must be None or a positive"),
        (_unstorable_type, af.StoreError, "task 'worse' produces items of type Environment"),
    ],
)
async def test_a_bad_input_is_refused_and_the_store_still_resumes(
    tmp_path: Path, expected: dict[str, Any], attempt: Any, error: type[Exception], what: str
) -> None:
    store = tmp_path / "s"
    await cut(store)
    with pytest.raises(error, match=what):
        await trio.to_thread.run_sync(attempt, store)
    assert await resumed(store) == expected


async def test_from_previous_needs_a_previous_checkpoint(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await cut(store, k=1)
    with pytest.raises(af.ResumeError, match="holds no checkpoint before its latest one"):
        await resumed(store, from_previous=True)


async def test_undecodable_text_in_an_option_is_recorded_and_resumes(tmp_path: Path) -> None:
    """A str with lone surrogates (bytes that were not UTF-8, from argv) used to leave a half-made store."""
    flow = af.Flow("text")

    @flow.source
    async def words(word: str = "x", n: int = 200) -> af.Stream[str]:
        for i in range(n):
            await trio.sleep(0.0005)
            yield f"{word}{i}"

    @flow.collector(init=[])
    def joined(acc: list[str], words: str) -> list[str]:
        return [*acc, words]

    options = {"words": {"word": "caf\udce9"}}
    store = tmp_path / "s"
    await af.testing.kill_at_checkpoint(flow, options, k=2, store=store, checkpoint_every=0.002)
    with af.store.open_store(store, create=False) as st:
        info = st.run_info()
    assert info is not None and info["options"]["words"]["word"] == "caf\udce9"
    result = await af.run_async(flow, options, store=store, resume=True)
    assert result["joined"] == [f"caf\udce9{i}" for i in range(200)]
