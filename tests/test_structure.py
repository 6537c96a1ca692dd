"""The package's shape: imports run one way (no circles), small modules.

Function-local imports count (an import moved into a function to dodge a circle is still a
circle); imports under ``if TYPE_CHECKING:`` do not, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "actorflow"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules that *path* imports when it runs (at import time or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name in modules)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                names_modules = all(f"{target}.{a.name}" in modules for a in child.names)
                if target in modules and not names_modules:  # `from . import _export` uses only the module
                    found.add(target)
                for alias in child.names:  # `from . import _events` names a module
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        found.add(sub)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (the package's own ``__init__`` left out as a target)."""
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _imports(p, modules) for p in files}
    for deps in graph.values():
        deps.discard("actorflow")  # re-exports only; nothing inside imports it for its own use
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_checker_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    found = cycles(import_graph())
    assert found == [], f"import circles in actorflow/: {found}"


def test_no_module_over_600_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_architecture_doc_names_only_files_that_exist() -> None:
    import re

    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(_[a-z_]+\.py)`", text))
    named |= {f"{m}.py" for m in re.findall(r"(?<![\w./])(_[a-z_]+)\b", text)}  # not a folder: actorflow/_x/
    named = {n for n in named if not n.startswith("__")}
    files = {p.name for p in PACKAGE.rglob("*.py")}  # modules may sit in layer folders
    missing = sorted(n for n in named if n not in files and not n.endswith("*.py"))
    assert "_flow.py" in named and "_loop.py" in named  # the check reads the page
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"
