"""Exactly once for windows: `actorflow run` of tests/pipelines/windows.py is SIGKILLed at random
moments and resumed; the transactional sink behind the window task then holds exactly the windows
of an uninterrupted run, each once and in order, and the keyed fold's product is the same."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "windows.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
N = 3000


def run_cmd(store: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "actorflow", "run", f"{PIPELINE}:flow", "--store", str(store),
        "--checkpoint-every", "0.05s", "--set", f"numbers.n={N}", "--set", "event.spin=0.001",
        "--set", f"out.path={out}", "--json", "--quiet",
    ]


def resume_cmd(store: Path) -> list[str]:
    return [sys.executable, "-m", "actorflow", "resume", "--store", str(store), "--json", "--quiet"]


def has_run(store: Path) -> bool:
    if not (store / "data.mdb").exists():
        return False
    try:
        with af.store.open_store(store, create=False) as st:
            return st.run_info() is not None
    except af.StoreError:
        return False


def uninterrupted(tmp: Path) -> tuple[list[str], dict[str, int]]:
    out = tmp / "plain.jsonl"
    proc = subprocess.run(run_cmd(tmp / "plain-store", out), capture_output=True, text=True, env=ENV, check=True)
    return out.read_text().splitlines(), json.loads(proc.stdout)["totals"]


def test_sigkill_at_random_moments_then_resume_emits_every_window_exactly_once(tmp_path: Path) -> None:
    want_lines, want_totals = uninterrupted(tmp_path)
    assert len(want_lines) > 50
    rng = random.Random(20261207)
    store, out = tmp_path / "store", tmp_path / "out.jsonl"
    cmd = run_cmd(store, out)
    kills = 0
    for _ in range(30):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
        limit = rng.uniform(0.4, 1.2) if kills < 6 else 120  # several kills, then let it finish
        try:
            stdout, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no checkpoint, no abort, no cleanup
            proc.communicate()
            kills += 1
            cmd = resume_cmd(store) if has_run(store) else run_cmd(store, out)
            continue
        assert proc.returncode == 0, err
        break
    else:
        raise AssertionError("the run never finished")
    assert kills >= 4, "the pipeline kept finishing before it could be killed"
    assert out.read_text().splitlines() == want_lines  # every window once, in order
    assert json.loads(stdout)["totals"] == want_totals
    with af.store.open_store(store, create=False) as st:
        late = [d for d in st.dead_letters() if d["task"] == "counts"]
    assert late and all("late" in d["error"] for d in late)
