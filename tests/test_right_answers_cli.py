"""Issue 22, point 7: the last raw tracebacks and untrue messages of the command line, as real
subprocesses: one clear line and exit code 2 for usage; valid JSON; ints of any size stored."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

FLOATS = '''
import actorflow as af

flow = af.Flow("floats")


@flow.source
def numbers() -> af.Stream[float]:
    yield from (1.0, float("nan"), float("inf"), float("-inf"))


@flow.collector(init=[])
def kept(acc: list[float], numbers: float) -> list[float]:
    return [*acc, numbers]


@flow.collector(init=0.0)
def total(acc: float, numbers: float) -> float:
    return acc + numbers


@flow.collector(init=0)
def huge(acc: int, numbers: float) -> int:
    return 10 ** 20000 + 7
'''


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actorflow: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_base_exception_at_import_is_one_line(tmp_path: Path) -> None:
    pipe = tmp_path / "boom.py"
    pipe.write_text("class Boom(BaseException):\n    pass\n\nraise Boom('at import')\n")
    one_line_error(cli("run", str(pipe)), "failed to load: Boom: at import", "boom.py:4")


def test_a_binary_config_file_is_one_line(tmp_path: Path) -> None:
    pipe = tmp_path / "floats.py"
    pipe.write_text(FLOATS)
    config = tmp_path / "bad.toml"
    config.write_bytes(b"\xff\xfe[numbers]\n")
    one_line_error(cli("run", str(pipe), "--config", str(config)), "is not UTF-8 text", "bad.toml")


def test_a_directory_is_not_a_pipeline_file(tmp_path: Path) -> None:
    folder = tmp_path / "x.py"
    folder.mkdir()
    one_line_error(cli("run", str(folder)), "is a directory")
    one_line_error(cli("run", str(tmp_path)), "is a directory")


def test_a_dangling_symlink_store_says_what_it_is(tmp_path: Path) -> None:
    pipe = tmp_path / "floats.py"
    pipe.write_text(FLOATS)
    link = tmp_path / "store"
    link.symlink_to(tmp_path / "gone")
    one_line_error(cli("run", str(pipe), "--store", str(link), "--quiet"), "symbolic link", "does not exist")


def test_json_output_is_valid_json_with_non_finite_floats_as_strings_and_huge_ints(tmp_path: Path) -> None:
    pipe = tmp_path / "floats.py"
    pipe.write_text(FLOATS)
    for extra in ([], ["--store", str(tmp_path / "store")], ["--store", str(tmp_path / "store")]):
        done = cli("run", str(pipe), "--json", "--quiet", *extra)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout, parse_constant=lambda c: pytest_fail(c), parse_int=int_of_any_size)
        assert doc["kept"] == [1.0, "NaN", "Infinity", "-Infinity"] and doc["total"] == "NaN"
        assert doc["huge"] == 10**20000 + 7


def test_plain_output_prints_a_huge_int(tmp_path: Path) -> None:
    pipe = tmp_path / "floats.py"
    pipe.write_text(FLOATS)
    done = cli("run", str(pipe), "--quiet")
    assert done.returncode == 0 and "huge = 1000" in done.stdout, done.stderr


def int_of_any_size(text: str) -> int:
    return int(decimal.Decimal(text))  # int(text) refuses more than 4,300 digits


def pytest_fail(constant: str) -> None:
    raise AssertionError(f"not JSON: {constant}")


def test_from_previous_without_resume_is_refused() -> None:

    flow = af.Flow("alone")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.ResumeError, match=r"from_previous=True .* needs resume=True"):  # with no store too
        af.run(flow, from_previous=True)


def test_a_task_name_that_is_no_identifier_says_what_a_valid_name_is() -> None:

    class Step(af.Task):
        def run(self) -> int:
            return 1

    flow = af.Flow("names")
    with pytest.raises(af.DefinitionError, match=r"'clean-up step' is not a valid task name: a task name is a Python "
                       r"identifier .* e\.g\. 'clean_up_step'"):
        flow.add(Step, name="clean-up step")


def test_a_misspelt_input_is_a_definition_error_with_did_you_mean() -> None:
    flow = af.Flow("squares")

    @flow.source
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    with pytest.raises(af.DefinitionError, match=r"parameter 'numbrs': no task 'numbrs'; did you mean 'numbers'\?"):

        @flow.task
        def square(numbrs: int) -> int:
            return numbrs * numbrs

    @flow.task
    def scaled(numbers: int, factor: int = 2, numbrs: int = 0) -> int:  # options with defaults: as declared
        return numbers * factor + numbrs

    @flow.task
    def shifted(numbers: int, n: int) -> int:  # a required option far from any task's name
        return numbers + n

    assert [o.name for o in flow.tasks["scaled"].options] == ["factor", "numbrs"]
    assert af.run(flow, {"shifted": {"n": 1}})["shifted"] == [1, 2, 3]
