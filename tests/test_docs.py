"""The docs stay true: every path, module, name, method and CLI flag README.md and docs/ mention exists.

What is checked, in README.md and docs/*.md:

- paths of the repository (``actorflow/...``, ``docs/...``, ``examples/...``, ``benchmarks/...``,
  ``tests/...``, ``.ci/...``) and relative markdown links;
- modules: ``actorflow.x`` and private ``_x`` / ``_x.py`` (``_x.name`` too);
- public names: every ``af.X.Y`` and ``afa.X`` chain resolves, without a DeprecationWarning (the
  docs use each name's own home);
- methods and attributes on the usual receivers (``flow.``, ``run.``, ``result.``, ``host.``, ...)
  and on named classes (``Flow.replace``, ``Supervisor.checkpoint``);
- snake_case names in inline code appear in the package's source;
- ``actorflow`` subcommands and every ``--flag`` (of the CLI, or of the example or benchmark
  script that takes it).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
import actorflow.asyncio as afa
from actorflow._cli._cli import build_parser
from actorflow._observe._monitor_wire import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGE = ROOT / "actorflow"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def code_of(text: str) -> str:
    """The code in a markdown page: fenced blocks and inline code spans, one per line."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return "\n".join([*blocks, *spans])


def spans_of(text: str) -> list[str]:
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


# -- what exists ----------------------------------------------------------------------------------


def _all_modules() -> dict[str, Any]:
    mods = {"actorflow": af}
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="actorflow."):  # layer folders too
        if not info.name.endswith(".__main__"):
            mods[info.name] = importlib.import_module(info.name)
    return mods


MODULES = _all_modules()
#: Modules by their own name (``_flow``) wherever they sit; a module wins over a folder of its name (``_run``).
BY_NAME = {
    name.rpartition(".")[2]: mod for name, mod in sorted(MODULES.items(), key=lambda m: not hasattr(m[1], "__path__"))
}
CLASSES: dict[str, list[type]] = {}
for _mod in MODULES.values():
    for _obj in vars(_mod).values():
        if inspect.isclass(_obj) and (_obj.__module__ or "").startswith("actorflow"):
            CLASSES.setdefault(_obj.__name__, [])
            if _obj not in CLASSES[_obj.__name__]:
                CLASSES[_obj.__name__].append(_obj)
#: Every word of the package's, the examples' and the benchmarks' source.
SOURCE_WORDS = {
    w for folder in ("actorflow", "examples", "benchmarks") for p in (ROOT / folder).rglob("*.py")
    for w in re.findall(r"\w+", p.read_text())
}


def _has(cls: type, attr: str) -> bool:
    """*cls* (or an instance of it) has *attr*: a class attribute, or one its code assigns to self."""
    if hasattr(cls, attr):
        return True
    for klass in cls.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if re.search(rf"self\.{re.escape(attr)}\b", source):
            return True
    return False


RECEIVERS: dict[str, tuple[type, ...]] = {
    "flow": (af.Flow,),
    "run": (af.Run, afa.AsyncioRun),
    "result": (af.RunResult,),
    "host": (afa.Host,),
    "feed": (af.Feed, afa.AsyncioFeed),
    "ctx": (af.Context,),
    "monitor": (af.monitor.MonitorServer,),
    "server": (af.monitor.MonitorServer,),
    "progress": (af.console.ConsoleProgress,),
    "log": (af.console.EventLog,),
    "report": (af.ConcatResult,),
    "metrics": (af.metrics.MetricsCollector,),
    "recorder": (af.testing.EventRecorder,),
}


def _resolve(root: Any, chain: str, label: str) -> str | None:
    """None when ``root.chain`` resolves without a deprecation warning; else what is wrong."""
    obj = root
    for part in chain.split("."):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            try:
                obj = getattr(obj, part)
            except DeprecationWarning as exc:
                return f"{label}.{chain}: {exc}"
            except AttributeError:
                return f"{label}.{chain}: no {part!r}"
    return None


def _cli_words() -> tuple[set[str], set[str]]:
    """Every subcommand (``run``, ``cache ls``, ...) and every option string the CLI accepts."""
    commands: set[str] = set()
    flags: set[str] = set()

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            flags.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    commands.add(f"{prefix}{name}".strip())
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    for folder in ("examples", "benchmarks"):
        for script in (ROOT / folder).glob("*.py"):
            flags.update(re.findall(r"""["'](--[a-z][a-z-]*)["']""", script.read_text()))
    return commands, flags


COMMANDS, FLAGS = _cli_words()


# -- the checks, one per page -----------------------------------------------------------------------


@pytest.mark.parametrize("page", DOCS, ids=_ids(DOCS))
def test_paths_and_links_exist(page: Path) -> None:
    text = page.read_text()
    missing = []
    for ref in re.findall(r"(?<![\w/.-])((?:actorflow|docs|examples|benchmarks|tests|\.ci)/[\w./*-]*)", text):
        ref = ref.rstrip(".")
        if not (any(ROOT.glob(ref)) if "*" in ref else (ROOT / ref).exists()):
            missing.append(ref)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path = target.split("#")[0]
        if path and "://" not in path and not (page.parent / path).exists():
            missing.append(target)
    assert missing == [], f"{page.name} names paths that do not exist: {missing}"


def without_moved_names(text: str) -> str:
    """*text* without its "Moved names" sections, which name what is no longer there on purpose."""
    return re.sub(r"^## Moved names.*?(?=^## |\Z)", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", DOCS, ids=_ids(DOCS))
def test_modules_and_public_names_exist(page: Path) -> None:
    code = code_of(without_moved_names(page.read_text()))
    wrong: list[str] = []
    for chain in re.findall(r"(?<![\w.])af\.([A-Za-z_][\w.]*\w)", code):
        wrong.append(_resolve(af, chain, "af") or "")
    for chain in re.findall(r"(?<![\w.])afa\.([A-Za-z_][\w.]*\w)", code):
        wrong.append(_resolve(afa, chain, "afa") or "")
    for name in re.findall(r"(?<![\w./\"'])actorflow\.([a-z_][\w.]*\w)", code):
        if f"actorflow.{name}" in (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL):
            continue  # websocket subprotocol names, not modules
        wrong.append(_resolve(af, name, "actorflow") or "")
    for mod, attr in re.findall(r"(?<![\w./])(_[a-z][a-z_]*)(?:\.py)?(?:\.([a-z_]\w*))?\b", code):
        if mod not in BY_NAME:
            wrong.append(f"module {mod} does not exist")
        elif attr and attr != "py" and not hasattr(BY_NAME[mod], attr):
            wrong.append(f"{mod}.{attr} does not exist")
    wrong = [w for w in wrong if w]
    assert wrong == [], f"{page.name}: {wrong}"


@pytest.mark.parametrize("page", DOCS, ids=_ids(DOCS))
def test_methods_and_attributes_exist(page: Path) -> None:
    code = code_of(page.read_text())
    wrong = []
    for m in re.finditer(r"(?<![\w.\"'/])(" + "|".join(RECEIVERS) + r")\.([a-z_]\w*)\b", code):
        receiver, attr = m.groups()
        if re.search(r"--[\w-]+[ =]$", code[max(0, m.start() - 30):m.start()]):
            continue  # a file named like one (--store run.store)
        if not any(_has(cls, attr) for cls in RECEIVERS[receiver]):
            wrong.append(f"{receiver}.{attr}")
    for cls_name, attr in re.findall(r"(?<![\w.])([A-Z][a-z]+[A-Za-z]*)\.([a-z_]\w*)\b", code):
        classes = CLASSES.get(cls_name)
        if classes is None:
            if cls_name in ("Path",):
                continue
            wrong.append(f"{cls_name} (no such class)")
        elif not any(_has(c, attr) for c in classes):
            wrong.append(f"{cls_name}.{attr}")
    assert wrong == [], f"{page.name} names attributes that do not exist: {wrong}"


@pytest.mark.parametrize("page", DOCS, ids=_ids(DOCS))
def test_names_in_inline_code_appear_in_the_source(page: Path) -> None:
    unknown = []
    for span in spans_of(page.read_text()):
        m = re.fullmatch(r"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(\(\))?", span.strip())
        if m and m.group(1) not in SOURCE_WORDS:
            unknown.append(span)
    assert unknown == [], f"{page.name} names things the package does not have: {unknown}"


@pytest.mark.parametrize("page", DOCS, ids=_ids(DOCS))
def test_cli_commands_and_flags_exist(page: Path) -> None:
    code = code_of(page.read_text())
    wrong = []
    for line in code.splitlines():
        for words in re.findall(r"(?:^|[\s(`])(?<!import )actorflow((?:\s+[a-z][a-z-]*)+)", line):
            parts = words.split()
            if parts and parts[0] not in COMMANDS:
                wrong.append(f"actorflow {parts[0]}")
            elif len(parts) > 1 and f"{parts[0]} {parts[1]}" not in COMMANDS and any(
                c.startswith(parts[0] + " ") for c in COMMANDS
            ):
                wrong.append(f"actorflow {parts[0]} {parts[1]}")
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", code):
        if flag not in FLAGS:
            wrong.append(flag)
    assert wrong == [], f"{page.name} names CLI commands or flags that do not exist: {sorted(set(wrong))}"


def test_the_checks_read_the_pages() -> None:
    everything = "\n".join(code_of(p.read_text()) for p in DOCS)
    assert "af.run" in everything and "--store" in everything and "flow.replace" in everything
    assert {"run", "resume", "cache ls", "graph"} <= COMMANDS and "--checkpoint-every" in FLAGS
    assert _resolve(af, "Mailbox", "af") is not None  # moved: found wrong
    assert _resolve(af, "open_monitor", "af") is not None  # deprecated here: found wrong
    assert _resolve(af, "monitor.open_monitor", "af") is None
    moved = without_moved_names((ROOT / "docs" / "api.md").read_text())
    assert "## Moved names" not in moved and "## Dependencies" in moved
