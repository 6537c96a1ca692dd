"""Exactly once through the connectors: `actorflow run` reading CSV files and writing SQLite and
PostgreSQL is SIGKILLed at random moments and resumed; each table then holds every row once."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "connectors.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
N = 3000


def has_run(store: Path) -> bool:
    """True once the store records its run (a kill before that leaves nothing to resume)."""
    if not (store / "data.mdb").exists():
        return False
    try:
        with af.store.open_store(store, create=False) as st:
            return st.run_info() is not None
    except af.StoreError:
        return False


def test_sigkill_at_random_moments_then_resume_reads_and_writes_every_row_exactly_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    half = N // 2
    for name, ids in (("a.csv", range(half)), ("b.csv", range(half, N))):
        (tmp_path / name).write_text("id,customer,amount\n" + "".join(f'{i},"c {i % 7}",{i}.5\n' for i in ids))
    store, db = tmp_path / "store", tmp_path / "out.db"
    run_cmd = [
        sys.executable, "-m", "actorflow", "run", f"{PIPELINE}:flow", "--store", str(store),
        "--checkpoint-every", "0.05s", "--set", "enrich.spin=0.001", "--set", f"orders.path={tmp_path}/*.csv",
        "--set", f"lite.path={db}", "--set", "lite.table=orders", "--set", f"pg.dsn={pg_dsn}",
        "--set", "pg.table=orders", "--json", "--quiet",
    ]
    resume_cmd = [sys.executable, "-m", "actorflow", "resume", "--store", str(store), "--json", "--quiet"]
    rng = random.Random(20261207)
    cmd, kills = run_cmd, 0
    for _ in range(40):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
        limit = rng.uniform(0.5, 1.5) if kills < 10 else 300  # many kills, then let it finish
        try:
            _, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no checkpoint, no abort, no cleanup
            proc.communicate()
            kills += 1
            cmd = resume_cmd if has_run(store) else run_cmd
            continue
        assert proc.returncode == 0, err
        break
    else:
        raise AssertionError("the run never finished")
    assert kills >= 8, f"only {kills} kills: the pipeline kept finishing first"
    expected = (N, N, 0, N - 1, sum(range(N)))
    check = "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(id) FROM orders"
    with sqlite3.connect(db) as conn:
        assert conn.execute(check).fetchone() == expected
        assert conn.execute("SELECT count(*) FROM orders__actorflow_staged").fetchone() == (0,)
        assert conn.execute("SELECT customer, doubled FROM orders WHERE id = 10").fetchone() == ("C 3", 21.0)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute(check).fetchone() == expected
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)  # none left behind
        assert conn.execute("SELECT customer, doubled FROM orders WHERE id = 10").fetchone() == ("C 3", 21.0)


def test_the_pipeline_s_code_tokens_are_the_same_in_every_process() -> None:
    """A resume compares code tokens with the ones the run recorded; a frozen attrs class read by a
    task (here `enrich`) must give the same token whatever the process's hash seed."""
    code = (
        "import runpy, json\nfrom actorflow._kernel._cache_keys import code_tokens\n"
        f"ns = runpy.run_path({str(PIPELINE)!r})\n"
        "g = ns['flow'].bind({'orders': {'path': 'x'}, 'lite': {'path': 'a', 'table': 't'}, "
        "'pg': {'dsn': 'd', 'table': 't'}})\nprint(json.dumps(code_tokens(g)))\n"
    )
    tokens = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**ENV, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in (1, 2, 3)
    ]
    assert tokens[0] == tokens[1] == tokens[2] and "enrich" in tokens[0]
