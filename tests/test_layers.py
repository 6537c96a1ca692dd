"""The layers: every module of ``actorflow/`` belongs to one layer, and imports only run downward.

``MODULES`` is the module → layer map (docs/architecture.md's diagram is drawn from it, and the
modules sit in their layer's folders by it; ``write_diagram()`` redraws the diagram). Imports are read from
the source with :mod:`ast`: function-local imports and type-only imports (under ``if
TYPE_CHECKING:``) count, since a type annotation that names a module above is a dependency on it
too. ``ALLOWED_UPWARD`` lists the upward imports still to cut; it may only shrink (an entry whose
import is gone fails the test, so the list cannot go stale).

Once the modules sit in their folders (``FOLDERS``), a folder's ``__init__.py`` is its door: a
module outside the folder imports what lies inside only from the door (``from .._kernel import
Runtime``), never from a private module behind it, as trio's ``_core`` is used.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "actorflow"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

# relayout.py sets this to True when it moves the modules into their layer folders.
FOLDERS = True

# The layers from the bottom up: each folder imports only from itself and the folders before it.
LAYERS: dict[str, str] = {
    "_base": "values every layer uses: errors, typing helpers, event and result records, optional packages",
    "_storage": "bytes in and out: the msgpack codec, the cattrs converter, the LMDB store and spill area",
    "_define": "the flow, task settings and their defaults, policies, executor choices, analysis, binding",
    "_kernel": "the batch cycle, actors, mailboxes and inboxes, supervisor, checkpoints, cache, executor sessions",
    "_run": "the user's handle and what sits beside it: run, feeds and taps, concat, watch",
    "_observe": "console, monitor (HTTP, sessions, wire), metrics",
    "_cli": "the command line",
}
# Folders whose door imports each name on first use (PEP 562): their modules load optional stacks
# (rich, trio-websocket, h11), and `af.metrics` should load only what it uses.
LAZY_DOORS = frozenset({"_observe"})

TOP = "public"  # the public modules at the top of the package; they may import from every layer

# The public modules stay at the top of the package, re-exporting from the layers.
PUBLIC = frozenset(
    {
        "__init__",
        "__main__",
        "asyncio",
        "cache",
        "console",
        "events",
        "graph",
        "mailbox",
        "metrics",
        "monitor",
        "store",
        "testing",
        "types",
    }
)

MODULES: dict[str, str] = {
    # base
    "_calls": "_base",
    "_errors": "_base",
    "_events": "_base",
    "_extras": "_base",
    "_file": "_base",
    "_named": "_base",
    "_result": "_base",
    "_typing": "_base",
    # storage
    "_codec": "_storage",
    "_codecs": "_storage",
    "_convert": "_storage",
    "_jsontext": "_storage",
    "_spill": "_storage",
    "_store": "_storage",
    # define
    "_analyse": "_define",
    "_classstate": "_define",
    "_bind": "_define",
    "_compound": "_define",
    "_connect_csv": "_define",
    "_connect_files": "_define",
    "_connect_pg": "_define",
    "_connect_rows": "_define",
    "_connect_sqlite": "_define",
    "_context": "_define",
    "_executor_choice": "_define",
    "_export": "_define",
    "_fingerprint": "_define",
    "_replace": "_define",
    "_flow": "_define",
    "_policy": "_define",
    "_sampling": "_define",
    "_sinks": "_define",
    "_spec": "_define",
    "_taskclass": "_define",
    "_windows": "_define",
    # kernel
    "_actor": "_kernel",
    "_actor_kinds": "_kernel",
    "_cache": "_kernel",
    "_cache_hook": "_kernel",
    "_cache_keys": "_kernel",
    "_cache_run": "_kernel",
    "_checkpoint": "_kernel",
    "_collect": "_kernel",
    "_cycle": "_kernel",
    "_executors": "_kernel",
    "_histogram": "_kernel",
    "_inbox": "_kernel",
    "_input_files": "_kernel",
    "_keyed": "_kernel",
    "_loop": "_kernel",
    "_mailbox": "_kernel",
    "_outcheck": "_kernel",
    "_partition": "_kernel",
    "_remote": "_kernel",
    "_runtime": "_kernel",
    "_signals": "_kernel",
    "_slow": "_kernel",
    "_source_position": "_kernel",
    "_state": "_kernel",
    "_stats": "_kernel",
    "_supervisor": "_kernel",
    "_task_context": "_kernel",
    "_transact": "_kernel",
    "_window_actor": "_kernel",
    "_window_logic": "_kernel",
    # run
    "_asyncio_io": "_run",
    "_concat": "_run",
    "_gateway": "_run",
    "_run": "_run",
    "_run_settings": "_run",
    "_watch": "_run",
    # observe
    "_console": "_observe",
    "_monitor": "_observe",
    "_monitor_http": "_observe",
    "_monitor_metrics": "_observe",
    "_monitor_process": "_observe",
    "_monitor_session": "_observe",
    "_monitor_store": "_observe",
    "_monitor_wire": "_observe",
    "_progress": "_observe",
    # cli
    "_cli": "_cli",
    "_cli_cache": "_cli",
    "_cli_durable": "_cli",
    "_cli_options": "_cli",
    "_cli_ops": "_cli",
}

# (importer, imported) pairs of modules that still import upward; this list may only shrink.
ALLOWED_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {
        ("_runtime", "_gateway"),  # type only: Runtime.feeds holds the run layer's Feed objects
    }
)

DIAGRAM_START = "<!-- layers: begin (generated from tests/test_layers.py by its write_diagram()) -->"
DIAGRAM_END = "<!-- layers: end -->"


# -- reading the package -------------------------------------------------------------------------


def files() -> list[Path]:
    """Every Python file of the package."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    """``actorflow/_kernel/_actor.py`` -> ``actorflow._kernel._actor``; a folder's ``__init__`` is the folder."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def short(name: str) -> str:
    """The map's name of a dotted module: its last part; a layer folder's door is ``_kernel/``.

    ``actorflow`` itself is ``__init__``. A folder may share its name with a module inside it
    (``_run/_run.py``): the trailing slash tells the door apart.
    """
    if name == "actorflow":
        return "__init__"
    last = name.rpartition(".")[2]
    return f"{last}/" if name == f"actorflow.{last}" and (PACKAGE / last).is_dir() else last


def layer_of(name: str) -> str:
    """The layer of a module or folder by its map name; KeyError names one the map lacks."""
    if name.endswith("/"):
        return name[:-1]
    if name in PUBLIC:
        return TOP
    return MODULES[name]


def rank(layer: str) -> int:
    return len(LAYERS) if layer == TOP else list(LAYERS).index(layer)


def imports(path: Path, modules: set[str], name: str = "") -> set[tuple[str, str]]:
    """(module, name) pairs *path* imports from the package, type-only and function-local ones too.

    ``from .._kernel import Runtime`` gives ``("actorflow._kernel", "Runtime")``; ``from . import
    _events`` gives ``("actorflow", "_events")`` (a module reached as a name); ``import
    actorflow._x`` gives ``("actorflow._x", "")``.
    """
    name = name or dotted(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((a.name, "") for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target in modules:
                found.update((target, a.name) for a in node.names)
    return found


def door_homes(folder: str) -> dict[str, str]:
    """What a layer folder's door re-exports: name -> the map name of the module it comes from."""
    door = PACKAGE / folder / "__init__.py"
    homes: dict[str, str] = {}
    for node in ast.walk(ast.parse(door.read_text())) if door.is_file() else []:  # lazy doors: TYPE_CHECKING
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                homes[alias.asname or alias.name] = node.module or alias.name
    return homes


def edges() -> dict[str, set[str]]:
    """Map name -> the map names it imports (a name taken from a folder's door counts as its module)."""
    modules = {dotted(p) for p in files()}
    homes = {f"actorflow.{folder}": door_homes(folder) for folder in LAYERS}
    out: dict[str, set[str]] = {}
    for path in files():
        me = short(dotted(path))
        deps = out.setdefault(me, set())
        for target, item in imports(path, modules):
            if f"{target}.{item}" in modules:  # `from . import _events`: the module itself
                deps.add(short(f"{target}.{item}"))
            elif item in homes.get(target, {}):
                deps.add(homes[target][item])
            elif target != "actorflow":  # the top package's names (``__version__``) are no layer's
                deps.add(short(target))
        deps.discard(me)
    return out


def upward() -> set[tuple[str, str]]:
    """(importer, imported) pairs where the imported module lies in a layer above the importer's."""
    return {
        (a, b)
        for a, deps in edges().items()
        for b in deps
        if rank(layer_of(b)) > rank(layer_of(a))
    }


def diagram() -> str:
    """The module diagram of docs/architecture.md, drawn from the map (modules that exist only)."""
    present = {short(dotted(p)) for p in files()}
    top = "actorflow/" if FOLDERS else ""  # before the move every module sits at the top: no folder column
    rows = [("public", top, "the public modules, re-exporting from the layers", sorted(PUBLIC & present))]
    for layer in reversed(LAYERS):
        names = sorted(m for m, where in MODULES.items() if where == layer and m in present)
        rows.append((layer.strip("_"), f"actorflow/{layer}/" if FOLDERS else "", LAYERS[layer], names))
    lines = ["```"]
    for n, (label, folder, about, names) in enumerate(rows):
        if n:
            lines.append(" " * 9 + "│")
        width = 20 if FOLDERS else 0
        lines.append(f"{label:<9}{folder:<{width}}{about}")
        row = " " * (9 + width)
        for m in names:
            if len(row) + len(m) > 100:
                lines.append(row.rstrip())
                row = " " * (9 + width)
            row += m + "  "
        lines.append(row.rstrip())
    lines.append("```")
    if ALLOWED_UPWARD:
        cut = ", ".join(f"`{a}` → `{b}`" for a, b in sorted(ALLOWED_UPWARD))
        lines += ["", f"Imports that still run upward, to cut: {cut}."]
    return "\n".join(lines)


# -- the tests -------------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    names = {short(dotted(p)) for p in files()}
    unknown = sorted(n for n in names if n not in MODULES and n not in PUBLIC and not n.endswith("/"))
    assert unknown == [], f"modules with no layer in tests/test_layers.py MODULES: {unknown}"
    assert set(MODULES.values()) <= set(LAYERS)
    if FOLDERS:  # after the move the map names exactly what exists
        stale = sorted(set(MODULES) - names)
        assert stale == [], f"MODULES names modules that do not exist: {stale}"


def test_the_checker_finds_an_upward_import(tmp_path: Path) -> None:
    assert rank(layer_of("_errors")) < rank(layer_of("_spec")) < rank(layer_of("_runtime")) < rank(TOP)
    assert ("_spec", "_errors") not in upward()  # downward is fine
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._runtime import Runtime\n")
    source.write_text(source.read_text() + "def f() -> None:\n    from .high import run\n")
    found = imports(source, {"pkg.high", "pkg._runtime"}, name="pkg.low")
    assert found == {("pkg._runtime", "Runtime"), ("pkg.high", "run")}  # type-only and function-local imports count


def test_imports_run_downward() -> None:
    found = upward()
    new = sorted(found - ALLOWED_UPWARD)
    assert new == [], "imports that run upward against the layers (importer, imported): " + ", ".join(
        f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a, b in new
    )


def test_the_allow_list_only_shrinks() -> None:
    gone = sorted(ALLOWED_UPWARD - upward())
    assert gone == [], f"ALLOWED_UPWARD names imports that no longer run upward; remove them: {gone}"


@pytest.mark.skipif(not FOLDERS, reason="the modules are not in their layer folders yet")
def test_every_module_sits_in_its_layer_folder() -> None:
    misplaced = []
    for path in files():
        name = short(dotted(path))
        if name.endswith("/"):  # a door
            continue
        want = PACKAGE if layer_of(name) == TOP else PACKAGE / layer_of(name)
        if path.parent != want:
            misplaced.append(f"{path.relative_to(PACKAGE.parent)} (belongs in {want.relative_to(PACKAGE.parent)})")
    assert misplaced == []


def _door_names(folder: str) -> set[str]:
    tree = ast.parse((PACKAGE / folder / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            return set(value)
    raise AssertionError(f"actorflow/{folder}/__init__.py has no __all__")


@pytest.mark.skipif(not FOLDERS, reason="the modules are not in their layer folders yet")
def test_a_folder_is_used_from_outside_only_through_its_door() -> None:
    modules = {dotted(p) for p in files()}
    doors = {f"actorflow.{folder}": _door_names(folder) for folder in LAYERS}
    through_the_wall = []
    for path in files():
        me = dotted(path)
        for target, item in imports(path, modules):
            if target in doors:
                inside = me.startswith(target + ".")
                if not inside and item != "*" and item not in doors[target]:
                    through_the_wall.append(f"{me}: {item} is not in {target}.__all__")
                continue
            folder = ".".join(target.split(".")[:2])
            if folder in doors and not me.startswith(folder + ".") and me != folder:
                through_the_wall.append(f"{me} imports {target} past the door of {folder}")
    assert through_the_wall == []


@pytest.mark.skipif(not FOLDERS, reason="the modules are not in their layer folders yet")
def test_a_lazy_door_imports_nothing_until_a_name_is_used() -> None:
    for folder in LAZY_DOORS:
        tree = ast.parse((PACKAGE / folder / "__init__.py").read_text())
        eager = [ast.unparse(node) for node in tree.body if isinstance(node, ast.ImportFrom) and node.level]
        assert eager == [], f"actorflow/{folder}/__init__.py imports at once: {eager}"


def test_the_architecture_diagram_is_drawn_from_the_map() -> None:
    text = ARCHITECTURE.read_text()
    found = re.search(re.escape(DIAGRAM_START) + r"\n(.*?)\n" + re.escape(DIAGRAM_END), text, re.S)
    assert found, f"docs/architecture.md lacks the generated diagram between {DIAGRAM_START!r} and {DIAGRAM_END!r}"
    assert found.group(1) == diagram(), "docs/architecture.md's diagram is stale: run write_diagram()"


def write_diagram() -> None:
    """Rewrite docs/architecture.md's diagram from the map (relayout.py calls it after the move)."""
    text = ARCHITECTURE.read_text()
    start, end = text.index(DIAGRAM_START) + len(DIAGRAM_START), text.index(DIAGRAM_END)
    ARCHITECTURE.write_text(text[:start] + "\n" + diagram() + "\n" + text[end:])
