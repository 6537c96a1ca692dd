"""One owner per store: a run locks its store before any task runs; readers need no lock."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

import actorflow as af
from actorflow._storage._store import LOCK_FILE

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def small_flow(ran: list[int] | None = None) -> af.Flow:
    flow = af.Flow("small")

    @flow.source
    def numbers(n: int = 100) -> af.Stream[int]:
        if ran is not None:
            ran.append(1)
        yield from range(n)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


async def test_a_second_run_on_a_store_in_use_fails_at_once_naming_the_pid(tmp_path: Path) -> None:
    store = tmp_path / "s"
    gate = trio.Event()
    flow = af.Flow("slow")

    @flow.source
    async def numbers() -> af.Stream[int]:
        for i in range(3):
            await gate.wait()
            yield i

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    ran: list[int] = []
    async with af.open_run(flow, store=store) as first:
        assert (store / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(af.StoreError) as err:
            await af.run_async(small_flow(ran), store=store)
        assert str(store) in str(err.value) and f"process {os.getpid()}" in str(err.value)
        with pytest.raises(af.StoreError, match="in use by process"):
            await af.run_async(small_flow(ran), store=store, resume=True)
        assert ran == []  # no task of the refused runs started
        gate.set()
        assert (await first.result())["total"] == 3
    # once the first run ended, the store can be used again
    assert (await af.run_async(small_flow(), store=store))["total"] == sum(range(100))


def test_a_store_locked_by_another_process_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from actorflow._storage._store import open_store
            st = open_store({str(store)!r})
            st.acquire()
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(af.StoreError) as err:
            af.run(small_flow(), store=store)
        assert f"process {holder.pid}" in str(err.value) and str(store) in str(err.value)
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
    assert af.run(small_flow(), store=store)["total"] == sum(range(100))  # released when it ended


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (store / LOCK_FILE).write_text(f"{dead.pid}\n")
    with caplog.at_level(logging.WARNING, logger="actorflow.store"):
        assert af.run(small_flow(), store=store)["total"] == sum(range(100))
    assert any(str(dead.pid) in r.getMessage() and "no longer running" in r.getMessage() for r in caplog.records)


def test_read_only_commands_work_beside_a_live_run_and_write_nothing(tmp_path: Path) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    (store / "lock.mdb").unlink()
    (store / LOCK_FILE).unlink()
    before = sorted(p.name for p in store.iterdir())
    with af.store.open_store(store, create=False) as owner:
        owner.acquire()
        for args in (("dead-letters", "--store", str(store)), ("cache", "ls", "--store", str(store))):
            done = subprocess.run([sys.executable, "-m", "actorflow", *args], capture_output=True, text=True,
                                  env=ENV, timeout=120)
            assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in store.iterdir() if p.name not in (LOCK_FILE, "lock.mdb")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_read_only_commands_work_on_a_read_only_store(tmp_path: Path) -> None:
    store = tmp_path / "s"
    af.run(small_flow(), store=store)
    (store / "lock.mdb").unlink()
    (store / LOCK_FILE).unlink()
    for p in store.iterdir():
        p.chmod(stat.S_IRUSR)
    store.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for args in (("dead-letters", "--store", str(store)), ("cache", "ls", "--store", str(store))):
            done = subprocess.run([sys.executable, "-m", "actorflow", *args], capture_output=True, text=True,
                                  env=ENV, timeout=120)
            assert done.returncode == 0, done.stderr
    finally:
        store.chmod(stat.S_IRWXU)
        for p in store.iterdir():
            p.chmod(stat.S_IRUSR | stat.S_IWUSR)
