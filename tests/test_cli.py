"""The `actorflow` command line, run as a real subprocess: output, exit codes, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SQUARES = ROOT / "examples" / "squares.py"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120
    )


def test_run_prints_products_as_json() -> None:
    done = cli("run", str(SQUARES), "--set", "numbers.n=100", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 328350}


def test_run_prints_products_as_text_and_a_summary() -> None:
    done = cli("run", f"{SQUARES}:squares", "--set", "numbers.n=10")
    assert done.returncode == 0, done.stderr
    assert "total = 285" in done.stdout
    assert "numbers" in done.stderr  # the summary table goes to stderr


def test_config_file_and_set_override(tmp_path: Path) -> None:
    config = tmp_path / "opts.toml"
    config.write_text("[numbers]\nn = 4\n")
    done = cli("run", str(SQUARES), "--config", str(config), "--json", "--quiet")
    assert json.loads(done.stdout) == {"total": 14}
    done = cli("run", str(SQUARES), "--config", str(config), "--set", "numbers.n=5", "--json", "--quiet")
    assert json.loads(done.stdout) == {"total": 30}


def test_invalid_invocation_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    done = cli("run", str(SQUARES), "--set", "numbers.n=lots", "--set", "numbrs.n=1", "--quiet")
    assert done.returncode == 2
    assert "option 'n': expected int, got str 'lots'" in done.stderr
    assert "unknown task 'numbrs'; did you mean 'numbers'?" in done.stderr
    assert "Traceback" not in done.stderr
    bad_set = cli("run", str(SQUARES), "--set", "numbers-n")
    assert bad_set.returncode == 2 and "TASK.OPTION=VALUE" in bad_set.stderr
    missing = cli("run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    (tmp_path / "bad.toml").write_text("numbers = 3\n")
    bad_toml = cli("run", str(SQUARES), "--config", str(tmp_path / "bad.toml"))
    assert bad_toml.returncode == 2 and "one [table] per task" in bad_toml.stderr
    usage = cli("frobnicate")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_task_failure_exits_1_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    pipeline = tmp_path / "boom.py"
    pipeline.write_text(
        "import actorflow as af\n"
        "flow = af.Flow('boom')\n"
        "@flow.source\n"
        "def numbers() -> af.Stream[int]:\n"
        "    yield from range(5)\n"
        "@flow.task\n"
        "def explode(numbers: int) -> int:\n"
        "    if numbers == 3:\n"
        "        raise ValueError('three')\n"
        "    return numbers\n"
    )
    done = cli("run", str(pipeline), "--quiet")
    assert done.returncode == 1
    assert "task 'explode' of flow 'boom' failed on item seq 3: ValueError: three" in done.stderr
    assert "Traceback" not in done.stderr
    debug = cli("--debug", "run", str(pipeline), "--quiet")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_choosing_among_several_flows(tmp_path: Path) -> None:
    pipeline = tmp_path / "two.py"
    pipeline.write_text(
        "import actorflow as af\n"
        "a = af.Flow('first')\n"
        "@a.source\n"
        "def one() -> af.Stream[int]:\n"
        "    yield 1\n"
        "b = af.Flow('second')\n"
        "@b.source\n"
        "def two() -> af.Stream[int]:\n"
        "    yield 2\n"
    )
    ambiguous = cli("run", str(pipeline))
    assert ambiguous.returncode == 2 and "defines 2 flows" in ambiguous.stderr
    assert json.loads(cli("run", f"{pipeline}:b", "--json", "--quiet").stdout) == {"two": [2]}
    assert json.loads(cli("run", f"{pipeline}:first", "--json", "--quiet").stdout) == {"one": [1]}
    unknown = cli("run", f"{pipeline}:third")
    assert unknown.returncode == 2 and "no flow named 'third'" in unknown.stderr


def test_tasks_lists_options_types_and_defaults() -> None:
    done = cli("tasks", str(ROOT / "examples" / "wordcount.py"))
    assert done.returncode == 0, done.stderr
    assert "files (source) -> Path" in done.stdout
    assert "option folder: Path (default PosixPath('.'))" in done.stdout
    assert "input  files: Path (stream)" in done.stdout
    assert "words_per_file (collector) -> int" in done.stdout


def test_graph_exports() -> None:
    mermaid = cli("graph", str(SQUARES), "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart LR") and "numbers --> square" in mermaid.stdout
    dot = cli("graph", str(SQUARES), "--format", "dot")
    assert dot.stdout.startswith('digraph "squares"') and '"square" -> "total";' in dot.stdout
    doc = json.loads(cli("graph", str(SQUARES), "--format", "json").stdout)
    assert [t["name"] for t in doc["tasks"]] == ["numbers", "square", "total"]
    assert doc["tasks"][0]["options"] == [{"name": "n", "type": "int", "required": False, "default": 10}]
    assert {"from": "square", "to": "total", "mode": "stream"} in doc["edges"]
    bad = cli("graph", str(SQUARES), "--format", "png")
    assert bad.returncode == 2


def test_python_dash_m_and_console_script_agree() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("run", "resume", "dead-letters", "cache", "tasks", "graph"):
        assert command in done.stdout
    script = Path(sys.executable).parent / "actorflow"  # installed by pip from [project.scripts]
    assert script.exists(), "the actorflow console script is not installed next to this Python"
    via_script = subprocess.run(
        [str(script), "run", str(SQUARES), "--set", "numbers.n=100", "--json", "--quiet"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )
    assert via_script.returncode == 0, via_script.stderr
    assert json.loads(via_script.stdout) == json.loads(cli("run", str(SQUARES), "--set", "numbers.n=100",
                                                           "--json", "--quiet").stdout)


def test_debug_after_the_subcommand_and_unreadable_config(tmp_path: Path) -> None:
    done = cli("run", str(tmp_path / "missing.py"), "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr and "not found" in done.stderr
    done = cli("run", str(SQUARES), "--config", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"config file {str(tmp_path)!r} cannot be read" in done.stderr


def test_graph_json_exports_plain_defaults() -> None:
    done = cli("graph", str(ROOT / "examples" / "wordcount.py"), "--format", "json")
    files = next(t for t in json.loads(done.stdout)["tasks"] if t["name"] == "files")
    folder = next(o for o in files["options"] if o["name"] == "folder")
    assert folder["default"] == "." and "PosixPath" not in done.stdout


def test_executor_flag_picks_where_a_task_runs(tmp_path: Path) -> None:
    pipe = tmp_path / "pids.py"
    pipe.write_text(
        "import os\nimport actorflow as af\nflow = af.Flow('pids')\n\n"
        "@flow.source\ndef numbers(n: int = 8) -> af.Stream[int]:\n    yield from range(n)\n\n"
        "@flow.task\ndef pid(numbers: int) -> int:\n    return os.getpid()\n\n"
        "@flow.task\ndef main_pid(numbers: int) -> int:\n    return os.getpid()\n"
    )
    done = cli("run", str(pipe), "--executor", "pid=process", "--executor", "main_pid=thread", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    products = json.loads(done.stdout)
    assert len(set(products["main_pid"])) == 1  # threads: still the CLI's own process
    assert not set(products["pid"]) & set(products["main_pid"])  # worker processes


def test_bad_executor_flag_exits_2_before_anything_runs() -> None:
    for flag, message in (
        ("square", "--executor expects TASK=NAME"),
        ("square=gpu", "task 'square', executor 'gpu': executor must be one of 'inline', 'thread', 'process', 'dask'"),
        ("sqare=thread", "executors: unknown task 'sqare'; did you mean 'square'?"),
        ("square=process", "task 'square', executor 'process': an executor runs sync functions"),
    ):
        done = cli("run", str(SQUARES), "--executor", flag, "--json", "--quiet")
        assert done.returncode == 2, (flag, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
