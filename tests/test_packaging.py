"""Dependencies: declared with minimum versions, heavy stacks as extras, imported only on use.

Each import check runs in a fresh interpreter, so nothing this test process already imported counts.
A missing extra is made missing for real in that interpreter (``sys.modules[name] = None`` makes
``import name`` fail exactly as an absent package does).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "actorflow"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Loaded only by the features that need them (the issue's list).
HEAVY = ("rich", "trio_websocket", "wsproto", "h11", "distributed", "dask", "trio_parallel", "watchfiles", "anyio")


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)


def loaded_after(code: str) -> set[str]:
    """Top-level names of the modules loaded in a fresh interpreter after running *code*."""
    done = python(code + "\nimport sys, json\nprint(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))")
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_actorflow_loads_no_optional_stack() -> None:
    loaded = loaded_after("import actorflow")
    assert "actorflow" in loaded
    assert sorted(loaded & set(HEAVY)) == []


@pytest.mark.parametrize(
    ("use", "brings"),
    [
        ("actorflow.console.summary_table", {"rich"}),
        ("actorflow.monitor.open_monitor", {"trio_websocket", "wsproto", "h11"}),
        ("actorflow.metrics.collector", {"h11"}),
    ],
)
def test_a_feature_loads_its_stack_when_used(use: str, brings: set[str]) -> None:
    loaded = loaded_after(f"import actorflow\nactorflow.{use.split('.', 1)[1]}")
    assert brings <= loaded
    assert not ({"distributed", "watchfiles", "anyio"} & loaded)


# -- what pyproject.toml declares -----------------------------------------------------------------


def _requirements() -> dict[str, str]:
    """Every declared requirement (core and extras) by normalised name -> its specifier."""
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)", req)
        assert m, req
        out[_norm(m.group(1))] = m.group(3)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_packages() -> set[str]:
    """Top-level modules the package imports anywhere (function-local and TYPE_CHECKING imports too)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.partition(".")[0])
        found.update(re.findall(r"""(?:load|require)\("([a-z_]+)""", path.read_text()))  # optional, by name
    return {m for m in found if m not in sys.stdlib_module_names and m != "actorflow"}


def test_every_imported_package_is_declared_with_a_minimum_version() -> None:
    dists = importlib.metadata.packages_distributions()
    declared = _requirements()
    imported = _imported_packages()
    assert {"trio", "msgpack", "lmdb", "rich", "distributed", "watchfiles", "anyio", "outcome"} <= imported
    for module in sorted(imported):
        names = {_norm(d) for d in dists.get(module, [module])}
        spec = next((declared[n] for n in names if n in declared), None)
        assert spec is not None, f"actorflow imports {module!r} but pyproject.toml does not declare it"
        assert ">=" in spec, f"{module!r} is declared without a minimum version: {spec!r}"


def test_heavy_stacks_are_extras_and_test_installs_them_all() -> None:
    project = PYPROJECT["project"]
    core = {_norm(re.split(r"[<>=\[ ]", r)[0]) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert {"trio", "trio-websocket", "msgpack", "cattrs", "attrs", "lmdb"} <= core
    assert not {"distributed", "dask", "watchfiles", "anyio", "psycopg", "psycopg-binary"} & core
    assert [r.split(">=")[0] for r in extras["dask"]] == ["distributed"]
    assert sorted(r.split(">=")[0] for r in extras["watch"]) == ["anyio", "watchfiles"]
    assert [r.split(">=")[0] for r in extras["postgres"]] == ["psycopg[binary]"]
    assert extras["all"] == ["actorflow[dask,watch,postgres]"]
    assert "actorflow[all]" in extras["test"]


def test_the_readme_quick_start_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    first = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/python examples/squares.py"
    second = "python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && .venv/bin/python -m pytest -q"
    assert first in readme and second in readme and second in ci


def test_the_main_job_runs_without_rich() -> None:
    # examples/squares.py prints the plain-text summary: it needs none of the optional stacks
    code = (
        "import sys, runpy\n"
        "for m in ('rich', 'trio_websocket', 'h11', 'trio_parallel'): sys.modules[m] = None\n"
        f"sys.argv = ['squares.py', '1000']\nrunpy.run_path({str(ROOT / 'examples' / 'squares.py')!r}, "
        "run_name='__main__')"
    )
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert "sum of the squares of 0..999 = 332,833,500" in done.stdout and "squares" in done.stdout


# -- a missing extra is one clear error ---------------------------------------------------------


def test_a_dask_executor_without_distributed_names_the_extra() -> None:
    done = python(
        "import sys\nsys.modules['distributed'] = None\nimport actorflow as af\n"
        "try:\n    af.DaskExecutor('tcp://127.0.0.1:8786')\n"
        "except af.MissingExtraError as exc:\n"
        "    assert isinstance(exc, ImportError) and isinstance(exc, af.ActorflowError)\n"
        "    print(exc.extra, '|', exc)\n"
    )
    assert done.returncode == 0, done.stderr
    extra, _, message = done.stdout.strip().partition(" | ")
    assert extra == "dask"
    assert message == (
        "DaskExecutor needs the 'distributed' package, which is not installed: pip install 'actorflow[dask]'"
    )


def test_watch_mode_without_watchfiles_is_one_line_and_exit_2(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipe.py"
    pipeline.write_text(
        "import actorflow as af\nflow = af.Flow('w')\n\n@flow.source\ndef numbers(n: int = 3) -> af.Stream[int]:\n"
        "    yield from range(n)\n"
    )
    done = python(
        "import sys\nsys.modules['watchfiles'] = None\nfrom actorflow._cli._cli import main\n"
        f"sys.exit(main(['run', {str(pipeline)!r}, '--watch', '--quiet']))"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "actorflow: error: actorflow run --watch needs the 'watchfiles' package, which is not installed: "
        "pip install 'actorflow[watch]'"
    ]
    assert done.stdout == ""  # refused before anything ran


def test_import_actorflow_loads_no_postgres_driver_and_a_postgres_sink_without_it_names_the_extra() -> None:
    done = python(
        "import sys\nimport actorflow as af\nassert 'psycopg' not in sys.modules, 'import actorflow loaded psycopg'\n"
        "sys.modules['psycopg'] = None\n"
        "flow = af.Flow('pg')\n\n@flow.source\ndef n() -> af.Stream[dict]:\n    yield {'x': 1}\n\n"
        "flow.add(af.PostgresSink, name='db', inputs={'item': 'n'})\n"
        "try:\n    af.run(flow, {'db': {'dsn': 'host=127.0.0.1', 'table': 't'}})\n"
        "except af.TaskFailed as exc:\n    print(type(exc.__cause__).__name__, '|', exc.__cause__)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "MissingExtraError | af.PostgresSink needs the 'psycopg' package, which is not installed: "
        "pip install 'actorflow[postgres]'"
    )
