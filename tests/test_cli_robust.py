"""The `actorflow` command line on harder inputs, as real subprocesses.

Executor tasks in a pipeline run from the CLI, `resume` from another directory, and command-line
paths or addresses that cannot be used: each of those is one clear line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 2 and a single `actorflow: error:` line on stderr holding every fragment."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actorflow: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


SQUARES = '''\
import actorflow as af

flow = af.Flow("squares")


@flow.source(batch_size=4)
def numbers(n: int = 10) -> af.Stream[int]:
    yield from range(n)


@flow.collector(init=0)
def total(acc: int, numbers: int) -> int:
    return acc + numbers * numbers
'''


# -- executor tasks ---------------------------------------------------------------------------------


PROCESS_PIPELINE = '''\
import os
from dataclasses import dataclass

import actorflow as af
import shapes_helpers  # a module next to the pipeline: the workers import it too

flow = af.Flow("in_processes")


@dataclass
class Pair:
    n: int
    pid: int


def cube(x: int) -> int:
    return x ** 3


@flow.source(batch_size=4)
def numbers(n: int = 12) -> af.Stream[int]:
    yield from range(n)


@flow.task(executor="process", batch_size=4)
def crunch(numbers: int) -> Pair:
    return Pair(shapes_helpers.shift(cube(numbers)), os.getpid())


@flow.collector(init=0)
def total(acc: int, crunch: Pair) -> int:
    assert type(crunch) is Pair  # the class made in the worker is this module's class
    return acc + crunch.n


@flow.collector(init=[])
def pids(acc: list[int], crunch: Pair) -> list[int]:
    return sorted({*acc, crunch.pid})


@flow.collector(init=0)
def home(acc: int, numbers: int) -> int:
    return os.getpid()


if __name__ == "__main__":
    raise SystemExit("the __main__ block must not run under actorflow run")
'''


def test_process_executor_tasks_run_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "shapes_helpers.py").write_text("def shift(x: int) -> int:\n    return x + 1\n")
    (tmp_path / "in_processes.py").write_text(PROCESS_PIPELINE)
    done = cli("run", str(tmp_path / "in_processes.py"), "--set", "numbers.n=12", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    products = json.loads(done.stdout)
    assert products["total"] == sum(i**3 + 1 for i in range(12))
    assert products["pids"] and products["home"] not in products["pids"]  # the batches ran in workers


def test_process_executor_pipeline_with_an_odd_file_name(tmp_path: Path) -> None:
    """A file name that is no module name (or names another module) still works."""
    for name in ("my-pipeline.py", "json.py"):
        (tmp_path / "shapes_helpers.py").write_text("def shift(x: int) -> int:\n    return x - 1\n")
        (tmp_path / name).write_text(PROCESS_PIPELINE)
        done = cli("run", str(tmp_path / name), "--set", "numbers.n=5", "--json", "--quiet")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["total"] == sum(i**3 - 1 for i in range(5))


def test_the_main_block_does_not_run_and_flow_choice_is_unchanged(tmp_path: Path) -> None:
    pipeline = tmp_path / "two.py"
    pipeline.write_text(
        SQUARES
        + "\nother = af.Flow('other')\n\n\n@other.source()\ndef one() -> af.Stream[int]:\n    yield 1\n"
        + "\n\nif __name__ == '__main__':\n    raise SystemExit('main block ran')\n"
    )
    ambiguous = cli("run", str(pipeline), "--quiet")
    one_line_error(ambiguous, "defines 2 flows", "name one as")
    done = cli("run", f"{pipeline}:squares", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 285}
    broken = tmp_path / "broken.py"
    broken.write_text("import actorflow as af\nraise RuntimeError('no luck')\n")
    one_line_error(cli("run", str(broken)), "failed to load: RuntimeError: no luck")


# -- resume from anywhere -------------------------------------------------------------------------------


INTERRUPTING_PIPELINE = '''\
import os
import signal
from pathlib import Path

import actorflow as af

flow = af.Flow("interrupting")
MARK = Path(__file__).with_name("interrupted.mark")


@flow.source(batch_size=10)
def numbers(n: int = 200_000) -> af.Stream[int]:
    yield from range(n)


@flow.task(batch_size=10)
def gate(numbers: int) -> int:
    if numbers == 100 and not MARK.exists():  # the first run interrupts itself, as Ctrl-C would
        MARK.touch()
        os.kill(os.getpid(), signal.SIGINT)
    return numbers


@flow.collector(init=0)
def total(acc: int, gate: int) -> int:
    return acc + gate
'''


@pytest.mark.parametrize("target", ["pipe.py", "pipe.py:interrupting"])
def test_resume_works_from_another_directory(tmp_path: Path, target: str) -> None:
    (tmp_path / "pipe.py").write_text(INTERRUPTING_PIPELINE)
    started = cli("run", target, "--store", "store", "--checkpoint-every", "10s", "--json", "--quiet", cwd=tmp_path)
    assert started.returncode == 130, started.stderr
    assert "actorflow resume --store store" in started.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = cli("resume", "--store", str(tmp_path / "store"), "--json", "--quiet", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"total": sum(range(200_000))}


# -- unusable paths and addresses: one line, exit 2 ----------------------------------------------------


@pytest.mark.parametrize(
    ("where", "why"),
    [("missing/dir/events.jsonl", "No such file or directory"), (".", "Is a directory")],
)
def test_unwritable_events_file_is_a_usage_error(tmp_path: Path, where: str, why: str) -> None:
    (tmp_path / "squares.py").write_text(SQUARES)
    events = str(tmp_path / where)
    for extra in ([], ["--watch"]):
        done = cli("run", "squares.py", "--store", "store", "--events", events, "--quiet", *extra, cwd=tmp_path)
        one_line_error(done, "cannot write the event log", why)
        assert not (tmp_path / "store").exists()  # found before the run or its store started
    (tmp_path / "squares.py").write_text(INTERRUPTING_PIPELINE)
    assert cli("run", "squares.py", "--store", "store", "--quiet", cwd=tmp_path).returncode == 130
    resumed = cli("resume", "--store", str(tmp_path / "store"), "--events", events, "--quiet")
    one_line_error(resumed, "cannot write the event log", why)


def test_monitor_port_in_use_or_address_not_ours_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "squares.py").write_text(SQUARES)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--watch"]):
            done = cli("run", "squares.py", "--store", "store", "--monitor", f"127.0.0.1:{port}", "--quiet", *extra,
                       cwd=tmp_path)
            one_line_error(done, f"cannot serve the monitor on 127.0.0.1:{port}", "in use")
            assert not (tmp_path / "store").exists()
    # TEST-NET-1 (RFC 5737) is never an address of this machine
    done = cli("run", "squares.py", "--monitor", "192.0.2.1:8765", "--monitor-token", "t", "--quiet", cwd=tmp_path)
    one_line_error(done, "cannot serve the monitor on 192.0.2.1:8765")


def test_a_free_monitor_port_still_serves(tmp_path: Path) -> None:
    (tmp_path / "squares.py").write_text(SQUARES)
    done = cli("run", "squares.py", "--monitor", "127.0.0.1:0", "--json", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 285}
    assert "monitor: dashboard at http://127.0.0.1:" in done.stderr


@pytest.mark.parametrize("kind", ["proc", "under_a_file"])
def test_store_directory_that_cannot_be_made_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    if kind == "proc":
        if not Path("/proc").is_dir():
            pytest.skip("needs /proc")
        store = "/proc/nope"
    else:
        (tmp_path / "a_file").write_text("")
        store = str(tmp_path / "a_file" / "store")
    (tmp_path / "squares.py").write_text(SQUARES)
    for extra in ([], ["--watch"]):
        done = cli("run", "squares.py", "--store", store, "--quiet", *extra, cwd=tmp_path)
        one_line_error(done, f"cannot create the store directory {store!r}")


SAFETY_NET = '''\
import sys

import trio

from actorflow._cli import _cli


def boom(args):
    async def main():
        async with trio.open_nursery() as nursery:  # the error arrives inside an exception group
            nursery.start_soon(trio.Path(args.path).read_text)

    trio.run(main)
    return 0


def register(sub):
    sub.add_parser("boom").add_argument("path")
    sub.choices["boom"].set_defaults(handler=boom)


_cli.COMMANDS.append(register)
raise SystemExit(_cli.main(sys.argv[1:]))
'''


def test_any_other_os_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing" / "file.txt")
    done = subprocess.run(
        [sys.executable, "-c", SAFETY_NET, "boom", missing], capture_output=True, text=True, env=ENV, timeout=60
    )
    one_line_error(done, f"No such file or directory: {missing!r}")
    debug = subprocess.run(
        [sys.executable, "-c", SAFETY_NET, "--debug", "boom", missing], capture_output=True, text=True, env=ENV,
        timeout=60,
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr
