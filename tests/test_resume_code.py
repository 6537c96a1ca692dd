"""Resume checks the code: a run resumed with changed tasks is refused unless allowed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import actorflow as af
from actorflow._storage._store import open_store

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
N = 3000


def make_flow(factor: int, batch_size: int = 64) -> af.Flow:
    """The same names and wiring each time; ``factor`` changes the code of ``weigh``."""
    flow = af.Flow("weighing")

    @flow.source(batch_size=batch_size)
    def numbers(n: int = N) -> af.Stream[int]:
        for i in range(n):
            if i % 100 == 0:
                time.sleep(0.002)  # the run lasts long enough for a checkpoint, even on a busy machine
            yield i

    if factor == 1:
        @flow.task
        def weigh(numbers: int) -> int:
            return numbers * 1
    else:
        @flow.task
        def weigh(numbers: int) -> int:
            return numbers * 2

    @flow.collector(init=0)
    def total(acc: int, weigh: int) -> int:
        return acc + weigh

    return flow


async def cut(store: Path) -> None:
    await af.testing.kill_at_checkpoint(make_flow(1), k=1, store=store, checkpoint_every=0.001)


async def test_resume_with_changed_code_is_refused_naming_the_task(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await cut(store)
    with pytest.raises(af.ResumeError) as err:
        await af.run_async(make_flow(2), store=store, resume=True)
    text = str(err.value)
    assert "'weigh'" in text and "'numbers'" not in text and "'total'" not in text
    assert str(store) in text and "allow_changed" in text and "--allow-changed" in text
    # the unchanged code still resumes
    assert (await af.run_async(make_flow(1), store=store, resume=True))["total"] == sum(range(N))


async def test_changed_settings_count_as_changed(tmp_path: Path) -> None:
    store = tmp_path / "s"
    await cut(store)
    with pytest.raises(af.ResumeError, match="task 'numbers'"):
        await af.run_async(make_flow(1, batch_size=32), store=store, resume=True)


async def test_allow_changed_resumes_and_says_which_tasks_run_new_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "s"
    await cut(store)
    with caplog.at_level(logging.WARNING, logger="actorflow.store"):
        result = await af.run_async(make_flow(2), store=store, resume=True, allow_changed=True)
    assert sum(range(N)) <= result["total"] <= 2 * sum(range(N))  # old code before the cut, new code after
    warnings = [r.getMessage() for r in caplog.records if r.name == "actorflow.store"]
    assert len(warnings) == 1 and "'weigh'" in warnings[0] and "'numbers'" not in warnings[0]
    with open_store(store, readonly=True) as st:  # the new code is recorded
        info = st.run_info()
    assert info is not None and info["code"]["weigh"] != (await _recorded_of(make_flow(1), tmp_path))["weigh"]


async def _recorded_of(flow: af.Flow, tmp_path: Path) -> dict[str, str]:
    other = tmp_path / "other"
    await af.run_async(flow, store=other)
    with open_store(other, readonly=True) as st:
        info = st.run_info()
    assert info is not None
    return dict(info["code"])


PIPELINE = '''
import actorflow as af

flow = af.Flow("counting")


@flow.source
def numbers(n: int = 200_000) -> af.Stream[int]:
    for i in range(n):
        if i == 100_000:
            raise KeyboardInterrupt
        yield i


@flow.collector(init=0)
def total(acc: int, numbers: int) -> int:
    return acc + numbers * FACTOR
'''


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=120)


def test_cli_resume_refuses_changed_code_unless_allow_changed(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.py"
    pipe.write_text("FACTOR = 1\n" + PIPELINE)
    started = cli("run", "pipe.py", "--store", "store", "--quiet", cwd=tmp_path)
    assert started.returncode == 130, started.stderr
    pipe.write_text("FACTOR = 2\n" + PIPELINE.replace("if i == 100_000:\n            raise KeyboardInterrupt\n", ""))
    refused = cli("resume", "--store", "store", "--quiet", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "'numbers'" in refused.stderr and "'total'" in refused.stderr and "--allow-changed" in refused.stderr
    resumed = cli("resume", "--store", "store", "--allow-changed", "--json", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "changed" in resumed.stderr and "'total'" in resumed.stderr
