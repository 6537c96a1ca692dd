"""Crash test: real `actorflow run` processes are SIGKILLed at random moments and resumed.

After every kill the run is resumed with `actorflow resume`; the final products must equal those
of an uninterrupted run, collectors must not double count, and the sink's items, de-duplicated by
sequence number, must be exactly the expected set. SIGINT/SIGTERM exit with 130/143 after a final
checkpoint and a line saying how to resume.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import actorflow as af
from actorflow._storage._jsontext import dumps

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "durable.py"
sys.path.insert(0, str(PIPELINE.parent))
import durable  # noqa: E402

N = 3000
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def run_cmd(store: Path, sink: Path) -> list[str]:
    return [
        sys.executable, "-m", "actorflow", "run", f"{PIPELINE}:flow", "--store", str(store),
        "--checkpoint-every", "0.05s", "--set", f"numbers.n={N}", "--set", "weigh.spin=0.0002",
        "--set", f"record.path={sink}", "--json", "--quiet",
    ]


def resume_cmd(store: Path) -> list[str]:
    return [sys.executable, "-m", "actorflow", "resume", "--store", str(store), "--json", "--quiet"]


def has_run(store: Path) -> bool:
    """True once the store records its run (a kill before that leaves nothing to resume)."""
    if not (store / "data.mdb").exists():
        return False
    try:
        with af.store.open_store(store, create=False) as st:
            return st.run_info() is not None
    except af.StoreError:
        return False


def stored_products(store: Path, sink: Path) -> str:
    """The products a finished store holds, as ``--json`` prints them (``actorflow resume`` of a finished
    store says so and runs nothing; resuming it in-process gives its final products)."""
    options = {"numbers": {"n": N}, "weigh": {"spin": 0.0002}, "record": {"path": str(sink)}}
    result = af.run(durable.flow, options, store=store, resume=True)
    return dumps({k: result[k] for k in result})


def check_products(stdout: str, sink: Path) -> None:
    products = json.loads(stdout.strip().splitlines()[-1])
    expected = durable.expected(N)
    assert products["total"] == expected["total"]
    assert products["per_number"] == expected["per_number"]
    assert products["labels"] == expected["labels"]
    seen = set(sink.read_text().split("\n")) - {""}
    assert seen == expected["sink_seqs"]


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    kills = 0
    rounds = 0
    while kills < 10:
        rounds += 1
        assert rounds < 40, "the pipeline kept finishing before it could be killed"
        store, sink = tmp_path / f"store{rounds}", tmp_path / f"sink{rounds}.txt"
        cmd = run_cmd(store, sink)
        for attempt in range(12):
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
            # kill at a random moment; after a few kills per store, let it finish
            limit = rng.uniform(0.3, 1.2) if attempt < 4 and kills < 10 else 120
            try:
                out, err = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL: no checkpoint, no cleanup
                proc.communicate()
                kills += 1
                cmd = resume_cmd(store) if has_run(store) else run_cmd(store, sink)
                continue
            assert proc.returncode == 0, err
            if not out.strip() and "finished" in err:  # the kill came after the run had finished
                out = stored_products(store, sink)
            check_products(out, sink)
            break
        else:
            pytest.fail(f"{store} never finished")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_checkpoints_and_exits_with_the_signal_code(tmp_path: Path, signum: int, code: int) -> None:
    store, sink = tmp_path / "store", tmp_path / "sink.txt"
    proc = subprocess.Popen(run_cmd(store, sink), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
    deadline = time.monotonic() + 30
    while not sink.exists() or len(sink.read_text().splitlines()) < 200:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"actorflow resume --store {store}" in err
    assert "Traceback" not in err
    with af.store.open_store(store, create=False) as st:
        blob = st.read_checkpoint()
    assert blob is not None
    resumed = subprocess.run(resume_cmd(store), capture_output=True, text=True, env=ENV, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    check_products(resumed.stdout, sink)


def test_dead_letters_are_listed_from_the_store(tmp_path: Path) -> None:
    pipeline = tmp_path / "letters.py"
    pipeline.write_text(
        "import actorflow as af\n"
        "flow = af.Flow('letters')\n"
        "@flow.source\n"
        "def words() -> af.Stream[str]:\n"
        "    yield from ['ok', 'bad', 'fine', 'worse']\n"
        "@flow.task(on_error=af.DeadLetter())\n"
        "def shout(words: str) -> str:\n"
        "    if words in ('bad', 'worse'):\n"
        "        raise ValueError(f'cannot shout {words}')\n"
        "    return words.upper()\n"
    )
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "actorflow", "run", str(pipeline), "--store", str(store), "--json", "--quiet"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"shout": ["OK", "FINE"]}
    listed = subprocess.run(
        [sys.executable, "-m", "actorflow", "dead-letters", "--store", str(store), "--json"],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert [(d["task"], d["seq"], d["item"]) for d in letters] == [("shout", 1, "bad"), ("shout", 3, "worse")]
    assert letters[0]["error"] == "ValueError: cannot shout bad"
    text = subprocess.run(
        [sys.executable, "-m", "actorflow", "dead-letters", "--store", str(store)],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert "shout" in text.stdout and "cannot shout worse" in text.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "actorflow", "dead-letters", "--store", str(tmp_path / "none")],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_resume_refuses_a_store_of_another_run_with_exit_code_2(tmp_path: Path) -> None:
    store = tmp_path / "store"
    bad = subprocess.run(resume_cmd(store), capture_output=True, text=True, env=ENV, timeout=60)
    assert bad.returncode == 2 and "nothing to resume" in bad.stderr and "Traceback" not in bad.stderr


def test_a_second_sigint_aborts_at_once(tmp_path: Path) -> None:
    store, sink = tmp_path / "store", tmp_path / "sink.txt"
    cmd = run_cmd(store, sink)
    cmd[cmd.index("weigh.spin=0.0002")] = "weigh.spin=0.002"  # slow batches: the checkpoint waits
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
    deadline = time.monotonic() + 30
    while not sink.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err
