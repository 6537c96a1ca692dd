"""Exactly once: `actorflow run` with transactional sinks is SIGKILLed at random moments and resumed.

The pipeline (tests/pipelines/transactional.py) writes every square to an ``af.JsonLinesSink`` and
to the SQLite sink shown in docs/durability.md. After any number of kills and resumes the JSON
lines file holds every item once, in sequence order, and the table every row once.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "transactional.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
N = 3000


def run_cmd(store: Path, out: Path, db: Path) -> list[str]:
    return [
        sys.executable, "-m", "actorflow", "run", f"{PIPELINE}:flow", "--store", str(store),
        "--checkpoint-every", "0.05s", "--set", f"numbers.n={N}", "--set", "square.spin=0.001",
        "--set", f"out.path={out}", "--set", f"rows.path={db}", "--json", "--quiet",
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


def test_sigkill_at_random_moments_then_resume_writes_every_item_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    store, out, db = tmp_path / "store", tmp_path / "out.jsonl", tmp_path / "rows.db"
    cmd = run_cmd(store, out, db)
    kills = 0
    for _ in range(30):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
        limit = rng.uniform(0.4, 1.2) if kills < 6 else 120  # several kills, then let it finish
        try:
            _, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no checkpoint, no abort, no cleanup
            proc.communicate()
            kills += 1
            cmd = resume_cmd(store) if has_run(store) else run_cmd(store, out, db)
            continue
        assert proc.returncode == 0, err
        break
    else:
        raise AssertionError("the run never finished")
    assert kills >= 4, "the pipeline kept finishing before it could be killed"
    squares = [i * i for i in range(N)]
    assert [json.loads(line) for line in out.read_text().splitlines()] == squares  # once each, in order
    with sqlite3.connect(db) as conn:
        rows = [v for (v,) in conn.execute("SELECT value FROM rows")]
        staged = conn.execute("SELECT count(*) FROM staged").fetchone()[0]
    assert len(rows) == N and sorted(rows) == squares and staged == 0
    assert [p.name for p in tmp_path.iterdir() if ".txn-" in p.name] == []
