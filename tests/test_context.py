"""The run context: run id, task path, progress, logger, and secrets that never leak."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import actorflow as af

SECRET = "s3cr3t-t0ken-value"
ROOT = Path(__file__).resolve().parent.parent


def secret_flow() -> af.Flow:
    flow = af.Flow("secretive")

    @flow.source
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    @flow.task(secrets=["API_KEY"])
    def call(numbers: int, ctx: af.Context) -> str:
        ctx.progress(numbers + 1, 3)
        ctx.logger.info("calling with item %s", numbers)
        key = ctx.secret("API_KEY")
        if numbers == 2 and key == SECRET:
            raise PermissionError(f"server refused key {key}")
        return f"{ctx.task}@{ctx.run_id}:{len(key)}"

    @flow.task
    def snoop(numbers: int, ctx: af.Context) -> str:
        return ctx.secret("API_KEY")

    return flow


async def test_context_carries_run_id_and_task() -> None:
    flow = secret_flow()
    flow.remove("snoop")

    def describe(numbers: int, ctx: af.Context) -> str:
        return f"{ctx.task}|{ctx.run_id}|{ctx.secret_names}"

    flow.replace("call", describe)
    async with af.open_run(flow) as run:
        events = run.events()
        result = await run.result()
    assert result["call"] == [f"call|{run.run_id}|[]"] * 3
    assert all(e.kind != "task_progress" for e in [e async for e in events])


async def test_progress_events_and_logger_records(caplog: pytest.LogCaptureFixture) -> None:
    flow = secret_flow()
    flow.remove("snoop")
    caplog.set_level(logging.INFO, logger="actorflow.task.call")
    with pytest.raises(af.TaskFailed):
        async with af.open_run(flow, secrets={"API_KEY": SECRET}) as run:
            events = run.events()
    progress = [(e.done, e.total) async for e in events if isinstance(e, af.events.TaskProgress)]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    records = [r for r in caplog.records if r.name == "actorflow.task.call"]
    assert [r.getMessage() for r in records] == [f"calling with item {i}" for i in range(3)]
    assert all(r.task == "call" and r.run_id == run.run_id for r in records)  # type: ignore[attr-defined]


async def test_secret_values_never_leak(tmp_path: Path) -> None:
    flow = secret_flow()
    flow.remove("snoop")
    seen: list[dict[str, Any]] = []
    with pytest.raises(af.TaskFailed) as info:
        async with af.open_run(flow, secrets={"API_KEY": SECRET, "OTHER": "unused-secret"},
                               store=tmp_path / "s") as run:
            async for event in run.events():
                seen.append(event.to_dict())
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert SECRET not in json.dumps(seen, default=str)
    assert SECRET not in flow.to_json() + flow.to_mermaid() + flow.to_dot()
    assert SECRET not in repr(flow.bind({}))
    for file in (tmp_path / "s").iterdir():
        assert SECRET.encode() not in file.read_bytes()


def test_a_task_reads_only_the_secrets_it_declares() -> None:
    flow = secret_flow()
    flow.remove("call")
    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, secrets={"API_KEY": SECRET})
    assert isinstance(info.value.__cause__, af.SecretError)
    assert "task 'snoop' reads secret 'API_KEY' but declares only []" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_declared_secret_that_was_not_given_is_named() -> None:
    flow = secret_flow()
    flow.remove("snoop")
    with pytest.raises(af.TaskFailed, match="secret 'API_KEY' was not given to the run"):
        af.run(flow)


def test_secrets_must_be_a_list_of_names() -> None:
    flow = af.Flow("bad")
    with pytest.raises(af.DefinitionError, match="secrets must be a list of names"):

        @flow.source(secrets="API_KEY")
        def numbers() -> af.Stream[int]:
            yield 1


def test_cli_secret_from_environment(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.py"
    pipeline.write_text(
        "import actorflow as af\n"
        "flow = af.Flow('env')\n"
        "@flow.task(secrets=['TOKEN'])\n"
        "def token_length(ctx: af.Context) -> int:\n"
        "    return len(ctx.secret('TOKEN'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MY_TOKEN": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "actorflow", "run", str(pipeline), "--secret", "TOKEN=MY_TOKEN", "--json", "--quiet"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"token_length": len(SECRET)}
    assert SECRET not in done.stdout + done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "actorflow", "run", str(pipeline), "--secret", "TOKEN=NOT_SET_ANYWHERE"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert missing.returncode == 2 and "environment variable 'NOT_SET_ANYWHERE' is not set" in missing.stderr


def test_secrets_are_masked_in_task_logs_and_chained_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    import traceback

    flow = af.Flow("leaky")

    @flow.task(secrets=["API_KEY"])
    def call(ctx: af.Context) -> str:
        key = ctx.secret("API_KEY")
        ctx.logger.warning("using token=%s", key)
        ctx.logger.info(f"also inline {key}")
        raise PermissionError(f"server refused key {key}")

    caplog.set_level(logging.INFO, logger="actorflow.task")
    with pytest.raises(af.TaskFailed) as info:
        af.run(flow, secrets={"API_KEY": SECRET})
    assert SECRET not in caplog.text and "using token=***" in caplog.text and "also inline ***" in caplog.text
    assert SECRET not in "".join(traceback.format_exception(info.value))  # the chained cause too
    assert "server refused key ***" in str(info.value.__cause__)


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"API_KEY": 12345}, r"not strings: 'API_KEY': int"),
        (["API_KEY"], r"secrets must map secret names to string values, got list"),
    ],
)
def test_bad_secrets_arguments_are_refused_before_the_run(secrets: Any, message: str) -> None:
    flow = secret_flow()
    flow.remove("snoop")
    with pytest.raises(af.ActorflowError, match=message):
        af.run(flow, secrets=secrets)
