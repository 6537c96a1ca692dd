"""The curated namespace: a short top level, one home per name, sub-modules loaded on use, docs/api.md in step."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import actorflow as af

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = (
    "actorflow", "actorflow.events", "actorflow.types", "actorflow.console", "actorflow.monitor",
    "actorflow.metrics", "actorflow.cache", "actorflow.store", "actorflow.graph", "actorflow.mailbox",
    "actorflow.testing", "actorflow.asyncio",
)

TOP_LEVEL = {
    # defining a flow
    "Flow", "Task", "Stream", "Seq", "Cursor", "Context", "File", "SKIP", "REQUIRED", "external_source",
    "TransactionalSink", "JsonLinesSink", "register_codec",
    # keyed state and windows
    "Tumbling", "Sliding", "Session", "WindowResult",
    # connectors
    "LinesSource", "JsonLinesSource", "CsvSource", "SqliteSink", "PostgresSink", "PostgresSource",
    # around a run
    "run", "run_async", "open_run", "watch", "Watch", "Run", "RunResult", "Summary", "TaskStats",
    "feed", "tap", "Feed", "Tap", "concat", "concat_async", "ConcatResult", "PartReport",
    # policies, executors, errors
    "Retry", "Restart", "DeadLetter", "Fail",
    "Executor", "ProcessExecutor", "ThreadExecutor", "DaskExecutor",
    "ActorflowError", "DefinitionError", "InvocationError", "MailboxTypeError", "MissingExtraError", "ResumeError",
    "InputChangedError", "MalformedLineError",
    "RunCancelled", "RunInterrupted", "SecretError", "StoreError", "TaskFailed", "DeadLettered",
    # light sub-modules
    "events", "types",
}


def public(module: str) -> dict[str, Any]:
    mod = importlib.import_module(module)
    return {name: getattr(mod, name) for name in mod.__all__}


def test_the_top_level_is_what_a_flow_and_a_run_need() -> None:
    assert set(af.__all__) == TOP_LEVEL
    assert len(af.__all__) == len(set(af.__all__))
    assert set(dir(af)) >= TOP_LEVEL | {"monitor", "console", "metrics", "testing", "cache", "store"}


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_exists_and_is_documented(module: str) -> None:
    for name, obj in public(module).items():
        assert not name.startswith("_")
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert inspect.getdoc(obj), f"{module}.{name} has no docstring"


def test_one_name_one_thing() -> None:
    """The same name in two public modules is the same object; one object has one public name."""
    by_name: dict[str, list[tuple[str, Any]]] = {}
    names_of: dict[int, set[str]] = {}
    for module in PUBLIC_MODULES:
        for name, obj in public(module).items():
            by_name.setdefault(name, []).append((module, obj))
            if inspect.isclass(obj) or inspect.isfunction(obj):
                names_of.setdefault(id(obj), set()).add(name)
    clashes = {
        name: [m for m, _ in places] for name, places in by_name.items()
        if len({id(o) for _, o in places}) > 1 and name != "run"  # af.run / actorflow.asyncio.run: one job, two loops
    }
    assert clashes == {}
    aliases = {frozenset(n) for n in names_of.values() if len(n) > 1}
    assert aliases == set()
    assert af.TaskFailed is not af.events.TaskErrored and af.events.TaskErrored.kind == "task_failed"


def test_the_event_keeps_its_wire_kind_and_the_old_names_say_where_to_go() -> None:
    with pytest.raises(AttributeError, match=r"TaskErrored \(kind 'task_failed'\).*exception is actorflow.TaskFailed"):
        af.events.TaskFailed  # noqa: B018
    with pytest.raises(AttributeError, match="is now AsyncioFeed"):
        af.asyncio.Feed  # noqa: B018
    event = af.events.TaskErrored(run_id="r", task="t", seq=3, error="E: x")
    assert event.to_dict()["kind"] == "task_failed"


@pytest.mark.parametrize(
    ("name", "home"),
    [("Cache", "cache"), ("EventLog", "console"), ("Mailbox", "mailbox"), ("RunGraph", "graph"),
     ("TaskDef", "graph"), ("Input", "graph"), ("Option", "graph")],
)
def test_internals_left_the_top_level_and_say_where_they_went(name: str, home: str) -> None:
    with pytest.raises(AttributeError, match=rf"use actorflow\.{home}\.{name}"):
        getattr(af, name)
    assert getattr(importlib.import_module(f"actorflow.{home}"), name) is not None


@pytest.mark.parametrize(
    ("name", "home"),
    [("open_monitor", "monitor"), ("serve_monitor", "monitor"), ("MonitorServer", "monitor"),
     ("observe", "console"), ("show_progress", "console"), ("summary_table", "console"),
     ("ConsoleProgress", "console"), ("open_store", "store"), ("Store", "store")],
)
def test_names_earlier_docs_put_at_the_top_still_work_with_a_warning(name: str, home: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"actorflow\.{name} is now actorflow\.{home}\.{name}"):
        obj = getattr(af, name)
    assert obj is getattr(importlib.import_module(f"actorflow.{home}"), name)
    assert name not in af.__all__


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Flwo'"):
        af.Flwo  # type: ignore[attr-defined]  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert af.monitor.open_monitor is not None  # its home: no warning


def test_sub_modules_are_reachable_after_a_plain_import() -> None:
    code = (
        "import sys\nimport actorflow as af\n"
        "assert 'actorflow.monitor' not in sys.modules\n"
        "assert callable(af.monitor.open_monitor) and callable(af.metrics.collector)\n"
        "assert callable(af.testing.fail_item) and af.cache.Cache and af.graph.RunGraph and af.mailbox.Mailbox\n"
        "from actorflow import console\nassert console.EventLog\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_docs_api_md_lists_every_public_name_in_its_home() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    top = page[page.index("| group | names |"):page.index("## Sub-modules")]
    assert set(re.findall(r"`(\w+)`", top)) == TOP_LEVEL
    table = page[page.index("## Sub-modules"):page.index("## One name")]
    for module in PUBLIC_MODULES[1:]:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{module}` |"))
        listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
        assert listed == set(importlib.import_module(module).__all__), module
