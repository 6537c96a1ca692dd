"""What the person running a flow sees: dead letters, retries and failures counted and named; errors
that point at the user's line and item; ``strict``; ``resume="auto"``; a plain Ctrl-C; ``--version``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

PIPELINE = '''
import os
import actorflow as af

flow = af.Flow("ops")

@flow.source
def numbers(n: int = 2000) -> af.Stream[int]:
    yield from range(n)

@flow.task(on_error=af.DeadLetter())
def validate(numbers: int) -> int:
    if numbers % 97 == 5:
        raise ValueError(f"bad {numbers}")
    if numbers == 1500 and os.environ.get("OPS_STOP"):
        raise KeyboardInterrupt
    return numbers

@flow.collector(init=0)
def total(acc: int, validate: int) -> int:
    return acc + validate
'''

GOOD_TOTAL = sum(i for i in range(2000) if i % 97 != 5)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actorflow", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, cwd=cwd, timeout=120)


def make_flow(fail: str = "dead") -> af.Flow:
    flow = af.Flow("counted")
    attempts: dict[int, int] = {}

    @flow.source
    def numbers(n: int = 100) -> af.Stream[int]:
        yield from range(n)

    policy = af.DeadLetter() if fail == "dead" else None

    @flow.task(on_error=policy)
    def validate(numbers: int) -> int:
        if numbers % 10 == 3:
            raise ValueError(f"bad {numbers}")
        return numbers

    @flow.task(on_error=af.Retry(attempts=3, backoff=0.0))
    def flaky(validate: int) -> int:
        attempts[validate] = attempts.get(validate, 0) + 1
        if validate % 20 == 19 and attempts[validate] == 1:
            raise OSError("try again")
        return validate

    @flow.collector(init=0)
    def total(acc: int, flaky: int) -> int:
        return acc + flaky

    return flow


def test_summary_counts_failures_retries_and_dead_letters() -> None:
    result = af.run(make_flow())
    tasks = result.summary.tasks
    assert (tasks["validate"].failures, tasks["validate"].retries, tasks["validate"].dead_letters) == (10, 0, 10)
    assert (tasks["flaky"].failures, tasks["flaky"].retries, tasks["flaky"].dead_letters) == (5, 5, 0)
    assert (tasks["total"].failures, tasks["total"].dead_letters) == (0, 0)
    assert result.summary.dead_letters == 10 and result.summary.retries == 5 and result.summary.failures == 15
    assert len(result.dead_letters) == 10
    text = str(result.summary)
    header = text.splitlines()[1]
    assert "failures" in header and "retries" in header and "dead" in header
    assert "10 items dead-lettered in `validate`" in text


def test_a_clean_run_shows_no_failure_columns() -> None:
    result = af.run(make_flow(), options={"numbers": {"n": 3}})
    assert result.summary.dead_letters == 0
    assert "dead" not in str(result.summary)


def test_strict_raises_dead_lettered_after_the_run_with_its_products() -> None:
    with pytest.raises(af.DeadLettered) as info:
        af.run(make_flow(), strict=True)
    assert info.value.counts == {"validate": 10}
    assert info.value.result["total"] == sum(i for i in range(100) if i % 10 != 3)
    assert "10 items dead-lettered" in str(info.value)
    assert af.run(make_flow(), options={"numbers": {"n": 3}}, strict=True)["total"] == 3  # none: no error


def test_a_failure_names_the_item_and_the_users_line() -> None:
    flow = af.Flow("pointed")

    @flow.source
    def words(n: int = 3) -> af.Stream[str]:
        yield "fine"
        yield "x" * 500 + "\nsecond line"

    @flow.task
    def divide(words: str) -> float:
        return 1 / (len(words) // 100 - 5)  # the line the error must point at

    line = _line_of("return 1 / (len(words) // 100 - 5)")

    async def main() -> tuple[BaseException, list[af.events.Event]]:
        async with af.open_run(flow) as run:
            events = run.events()
            try:
                await run.result()
            except af.TaskFailed as exc:
                return exc, [e async for e in events]
        raise AssertionError("the run did not fail")

    exc, events = trio.run(main)
    assert isinstance(exc, af.TaskFailed)
    message = str(exc)
    assert "failed on item seq 1: ZeroDivisionError: division by zero" in message
    assert f"raised at {__file__}:{line}" in message
    assert exc.where == f"{__file__}:{line}"
    assert exc.item is not None and exc.item.startswith("'xxx") and len(exc.item) == 80 and "\n" not in exc.item
    failed = [e for e in events if isinstance(e, af.events.TaskErrored)]
    assert failed and failed[0].item == exc.item and failed[0].where == exc.where
    assert failed[0].to_dict()["where"] == exc.where


def _line_of(text: str) -> int:
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text in line and "_line_of" not in line:
            return number
    raise AssertionError(text)


def test_cli_ends_with_the_dead_letter_line_and_strict_fails(tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(PIPELINE)
    done = cli("run", "ops.py", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f'{{"total": {GOOD_TOTAL}}}'
    assert done.stderr.rstrip().splitlines()[-1] == (
        "actorflow: 21 items dead-lettered in `validate` — see result.dead_letters (a --store keeps them)"
    )
    assert "dead" in done.stderr and "retries" in done.stderr  # the table's columns

    done = cli("run", "ops.py", "--json", "--quiet", "--strict", "--store", "st", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == f'{{"total": {GOOD_TOTAL}}}'  # the products are still printed
    assert done.stderr.strip() == (
        "actorflow: error: 21 items dead-lettered in `validate` — see `actorflow dead-letters --store st` "
        "(--strict: a dead letter fails the run)"
    )
    listed = cli("dead-letters", "--store", "st", cwd=tmp_path)
    assert "21 dead letters" in listed.stdout


def test_cli_failure_stops_every_bar_and_prints_the_summary(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(
        "import actorflow as af\nflow = af.Flow('boom')\n"
        "@flow.source\ndef numbers() -> af.Stream[int]:\n    yield from range(50)\n"
        "@flow.task\ndef explode(numbers: int) -> int:\n    if numbers == 3:\n        raise ValueError('three')\n"
        "    return numbers\n"
        "@flow.task\ndef after(explode: int) -> int:\n    return explode\n"
    )
    done = cli("run", "boom.py", cwd=tmp_path, env={"COLUMNS": "200"})
    assert done.returncode == 1
    assert "flow 'boom'" in done.stderr and "failed" in done.stderr  # the summary, after the failure
    assert "task 'explode' failed at item 3 (3): ValueError: three — at " in done.stderr
    assert f"{tmp_path / 'boom.py'}:9" in done.stderr
    assert "running" not in done.stderr.split("flow 'boom'")[0].splitlines()[-2]  # no bar left running
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("actorflow: error: task 'explode' of flow 'boom' failed on item seq 3: ValueError: three")
    assert "(item 3, raised at " in last


def test_ctrl_c_in_a_script_is_a_plain_keyboard_interrupt_and_auto_resumes(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, time\nimport actorflow as af\nflow = af.Flow('slowsq')\n"
        "@flow.source\ndef numbers(n: int = 300) -> af.Stream[int]:\n    yield from range(n)\n"
        "@flow.task\ndef slow_square(numbers: int) -> int:\n"
        "    if numbers == 20:\n        print('ready', flush=True)\n"
        "    time.sleep(0.005)\n    return numbers * numbers\n"
        "@flow.collector(init=0)\ndef total(acc: int, slow_square: int) -> int:\n    return acc + slow_square\n"
        "if __name__ == '__main__':\n"
        "    result = af.run(flow, store=sys.argv[1], resume='auto', checkpoint_every=0.05)\n"
        "    restored = result.summary.tasks['slow_square'].restored\n"
        "    print('total', result['total'], 'restored', restored, flush=True)\n"
    )
    args = [sys.executable, str(script), str(tmp_path / "st")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err and "raised by task" not in err and "slow_square" not in err
    assert "checkpoint written" in err and "resume='auto'" in err
    expected = sum(i * i for i in range(300))
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=60)
    assert again.returncode == 0, again.stderr
    words = again.stdout.split()
    assert words[words.index("total") + 1] == str(expected) and int(words[words.index("restored") + 1]) > 0
    fresh = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=60)  # finished: a new run
    words = fresh.stdout.split()
    assert words[words.index("total") + 1] == str(expected) and words[words.index("restored") + 1] == "0"


def test_resume_auto_needs_a_store_and_a_valid_value(tmp_path: Path) -> None:
    with pytest.raises(af.ActorflowError, match="needs store=PATH"):
        af.run(make_flow(), resume="auto")
    with pytest.raises(af.ActorflowError, match="resume must be True, False or 'auto'"):
        af.run(make_flow(), store=tmp_path / "s", resume="yes")  # type: ignore[typeddict-item]
    fresh = af.run(make_flow(), store=tmp_path / "s", resume="auto")  # nothing there: a fresh run
    assert fresh["total"] == sum(i for i in range(100) if i % 10 != 3)


def test_cli_resume_if_unfinished_and_resume_of_a_finished_store(tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(PIPELINE)
    stopped = cli("run", "ops.py", "--store", "st", "--quiet", "--json", cwd=tmp_path, env={"OPS_STOP": "1"})
    assert stopped.returncode == 130, stopped.stderr
    resumed = cli("run", "ops.py", "--store", "st", "--resume-if-unfinished", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == f'{{"total": {GOOD_TOTAL}}}'
    assert "restored" in resumed.stderr  # the console says what came from the checkpoint
    done = cli("resume", "--store", "st", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "holds a finished run: nothing to resume" in done.stderr
    again = cli("run", "ops.py", "--store", "st", "--resume-if-unfinished", "--json", "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == f'{{"total": {GOOD_TOTAL}}}'
    bad = cli("run", "ops.py", "--resume-if-unfinished", cwd=tmp_path)
    assert bad.returncode == 2 and "--resume-if-unfinished needs --store DIR" in bad.stderr


def test_version() -> None:
    done = cli("--version", cwd=ROOT)
    assert done.returncode == 0
    assert done.stdout.startswith(f"actorflow {af.__version__} (Python ")


def test_a_worker_that_dies_at_start_up_explains_the_main_module_rule(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import actorflow as af\nflow = af.Flow('unguarded')\n"
        "@flow.source\ndef numbers(n: int = 2) -> af.Stream[int]:\n    yield from range(n)\n"
        "@flow.task(executor='process')\ndef square(numbers: int) -> int:\n    return numbers * numbers\n"
        "print(af.run(flow)['square'])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=120,
                          cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "TaskFailed" in last and "worker process died" in last
    assert 'if __name__ == "__main__":' in last and "importable module" in last
