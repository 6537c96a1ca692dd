"""SIGINT and SIGTERM on a real ``actorflow run`` process, behind a blocking handler, on every executor.

The test waits for a ready line (``working N`` on stdout: the task is inside its first slow item
and the spill area exists) before it signals; it asserts exit codes, the one line on stderr and that the
temporary directory is gone — never how long the exit took (``benchmarks/signals.py`` measures that).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "blocking.py"
#: Seconds a test waits for the process to end: far less than the item the second SIGINT cuts short.
ENDS_WITHIN = 45


def start(
    tmp_path: Path, executor: str | None, store: bool, n: int = 50, delay: float = 1.0, slow_from: int = 10
) -> subprocess.Popen[str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    cmd = [
        sys.executable, "-m", "actorflow", "run", str(PIPELINE), "--json", "--quiet",
        "--set", f"numbers.n={n}", "--set", f"work.delay={delay}", "--set", f"work.slow_from={slow_from}",
    ]
    if store:
        cmd += ["--store", str(tmp_path / "store"), "--checkpoint-every", "0.2s"]
    if executor:
        cmd += ["--executor", f"work={executor}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    return subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen[str], tmp_path: Path, spilled: bool = True) -> None:
    """Read stdout until the task started its first slow item; the spill area must exist by then.

    Threads print concurrently, so ready lines may share a line: look for the words, not the line."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "working " in line:
            break
    else:
        pytest.fail(f"the run ended before its second item: {proc.communicate()}")
    if spilled:  # with 50 items, ``scaled`` spilled before ``work`` reached its slow items
        listed = os.listdir(tmp_path / "tmp")
        assert [name for name in listed if name.startswith("actorflow-spill-")], listed  # else nothing to remove


EXECUTORS = pytest.mark.parametrize("executor", [None, "thread", "process"], ids=["inline", "thread", "process"])


@EXECUTORS
@pytest.mark.parametrize("store", [False, True], ids=["no_store", "store"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_behind_a_blocking_handler_exits_with_its_code_and_cleans_up(
    tmp_path: Path, executor: str | None, store: bool, signum: int, code: int
) -> None:
    proc = start(tmp_path, executor, store)
    wait_ready(proc, tmp_path)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=ENDS_WITHIN)
    assert proc.returncode == code, err[-3000:]  # 143 for SIGTERM, not -15 (killed)
    assert "Traceback" not in err
    assert f"actorflow: {signal.Signals(signum).name}: stopping after the item in progress" in err
    if store:
        assert f"actorflow resume --store {tmp_path / 'store'}" in err
    else:
        assert "no --store: nothing to resume" in err
    assert os.listdir(tmp_path / "tmp") == []  # the spill directory is removed


def test_resume_after_sigterm_gives_the_uninterrupted_products(tmp_path: Path) -> None:
    n = 6
    proc = start(tmp_path, None, True, n=n, delay=0.3, slow_from=2)
    wait_ready(proc, tmp_path, spilled=False)  # six items may not spill
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=ENDS_WITHIN)
    assert proc.returncode == 143, err[-3000:]
    resumed = subprocess.run(
        [sys.executable, "-m", "actorflow", "resume", "--store", str(tmp_path / "store"), "--json", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "tmp")}, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    products = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert products["total"] == sum(range(n)) and products["scaled_total"] == n * sum(range(n))
    assert os.listdir(tmp_path / "tmp") == []


@EXECUTORS
def test_a_second_sigint_exits_at_once_and_cleans_up(tmp_path: Path, executor: str | None) -> None:
    """The item takes a minute; the second SIGINT ends the process long before it (and its workers)."""
    proc = start(tmp_path, executor, True, delay=60.0)
    wait_ready(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    assert "stopping after the item in progress; press Ctrl-C again" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=ENDS_WITHIN)  # stdout closes only once every worker process ended too
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert os.listdir(tmp_path / "tmp") == []


async def test_the_signal_does_not_queue_behind_a_checkpoint_waiting_for_a_long_item(tmp_path: Path) -> None:
    """A checkpoint already waits for an async item that takes a minute when SIGTERM comes: the run
    stops after at most the signal's patience (its last checkpoint resumes), not after the item."""
    flow = af.Flow("long_item")
    started = trio.Event()

    @flow.source
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    async def wait_long(numbers: int) -> int:
        started.set()
        await trio.sleep(60)
        return numbers

    with trio.fail_after(ENDS_WITHIN):  # the item would take 60 s: the stop must not wait for it
        async with af.open_run(flow, store=tmp_path / "s", checkpoint_every=None, handle_signals=True) as run:
            await started.wait()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run.checkpoint_now)  # waits for the item in hand
                await trio.testing.wait_all_tasks_blocked()
                assert run.supervisor.pending
                os.kill(os.getpid(), signal.SIGTERM)
                with pytest.raises(af.RunInterrupted) as info:
                    await run.result()
                nursery.cancel_scope.cancel()
    assert info.value.signal == signal.SIGTERM
    assert info.value.store == str(tmp_path / "s")
