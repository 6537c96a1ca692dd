"""Every example in examples/ runs, as a script and through its functions."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_squares_prints_result_and_summary() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "squares.py"), "1000"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"= {sum(i * i for i in range(1000)):,}" in proc.stdout
    assert "numbers" in proc.stdout and "items/s" in proc.stdout


def test_wordcount_counts_words_overall_and_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("The cat sat.\nOn the mat!\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("the end\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not counted", encoding="utf-8")
    ns = load("wordcount.py")
    result = af.run(ns["flow"], options={"files": {"folder": tmp_path}})
    assert result["counts"]["the"] == 3 and result["counts"]["cat"] == 1
    assert sum(result["counts"].values()) == 8
    assert result["words_per_file"] == [6, 2, 0]
    assert result["report"] == {"a.txt": 6, "b.txt": 2, "c.txt": 0}
    assert ns["main"]([str(tmp_path)]) == 0


def test_fanout_fanin_example() -> None:
    ns = load("fanout_fanin.py")
    result = af.run(ns["flow"])
    readings = [50.0 + (i * 7) % 60 for i in range(20)]
    hot = [r for r in readings if r >= 100.0]
    assert result["hot"] == [f"HOT {round((r - 32) * 5 / 9 - 0.5, 2)}C" for r in hot]
    celsius = [round((r - 32) * 5 / 9 - 0.5, 2) for r in readings]
    assert result["stats"] == (min(celsius), max(celsius))


def test_resumable_example_dead_letters_and_resumes(tmp_path: Path) -> None:
    ns = load("resumable.py")
    opts = {"orders": {"count": 3000}, "fetch": {"work_us": 0}}
    result = af.run(ns["flow"], opts, store=tmp_path / "s")
    bad = [i for i in range(1, 3000) if i % 997 == 0]
    assert result["revenue"] == sum(i % 1000 for i in range(3000) if i not in bad)
    assert sorted(d["seq"] for d in result.dead_letters) == bad
    again = af.run(ns["flow"], opts, store=tmp_path / "s", resume=True)  # a finished run resumes at once
    assert again["revenue"] == result["revenue"]


def test_concat_folder_example_caches_unchanged_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello   world\n\n  second line \n", encoding="utf-8")
    (src / "b.txt").write_text("b file\n", encoding="utf-8")
    (src / "notes.md").write_text("not a part\n", encoding="utf-8")

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "concat_folder.py"), str(src), str(tmp_path / "out.txt"),
             "--store", str(tmp_path / "store")],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "(0 from the cache, 2 processed)" in run()
    expected = "# 2 files from src\n\n== a.txt ==\n   1  hello world\n   3  second line\n\n== b.txt ==\n   1  b file\n"
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == expected
    assert "(2 from the cache, 0 processed)" in run()
    (src / "b.txt").write_text("b file, changed\n", encoding="utf-8")
    assert "(1 from the cache, 1 processed)" in run()
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").endswith("   1  b file, changed\n")
    ns = load("concat_folder.py")
    assert ns["main"]([str(tmp_path / "missing"), str(tmp_path / "x.txt")]) == 2


def test_clickstream_prints_each_window_as_it_closes_matching_the_reference() -> None:
    from window_reference import reference_windows

    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "clickstream.py"), "300"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    clicks = load("clickstream.py")["simulate"](300)
    keys, times = [c.user for c in clicks], [c.at for c in clicks]
    printed: dict[str, list[tuple[str, float, float, int]]] = {"requests": [], "session": []}
    for line in proc.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in printed:
            user, span, clicks_text = rest.split(maxsplit=1)[0], rest[rest.index("[") + 1: rest.index(")")], rest
            start, end = (float(x) for x in span.split(","))
            printed[kind].append((user, start, end, int(clicks_text.split(")")[1].split()[0])))
    one = list(range(len(clicks)))
    for kind, window, size in (("requests", "tumbling", 10.0), ("session", "session", 30.0)):
        want, late = reference_windows(window, keys, times, one, size=size, lateness=2, init=0,
                                       fold=lambda acc, _x: acc + 1)
        assert printed[kind] == [(k, round(s, 1), round(e, 1), v) for k, s, e, v in want], kind
    assert f"{len(late)} late click(s) set aside" in proc.stdout and late


def test_files_to_postgres_loads_csv_files_into_postgresql_exactly_once(tmp_path: Path, pg_dsn: str) -> None:
    import psycopg

    (tmp_path / "orders-1.csv").write_text("order_id,customer,amount,paid\n1,alice,10.0,yes\n2,bob,20.5,no\n")
    (tmp_path / "orders-2.csv").write_text("order_id,customer,amount,paid\n3,carol,5,true\nnot-a-number,dan,1,no\n"
                                           "4,erin,2.5,false\n")
    ns = load("files_to_postgres.py")
    result = ns["load"](pg_dsn, str(tmp_path / "orders-*.csv"), tmp_path / "store")
    assert [d["error"].split(": not")[0] for d in result.dead_letters] == [
        "MalformedLineError: orders-2.csv, line 3"]
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT order_id, region, amount_with_tax, paid FROM orders ORDER BY order_id").fetchall()
    assert rows == [(1, "north", 12.0, True), (2, "south", 24.6, False), (3, "east", 6.0, True),
                    (4, "other", 3.0, False)]
    proc = subprocess.run(  # as a script: loads the same files again into the same table
        [sys.executable, str(EXAMPLES / "files_to_postgres.py"), pg_dsn, str(tmp_path / "orders-*.csv")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "orders: 8 rows" in proc.stdout and "orders-2.csv, line 3" in proc.stdout
