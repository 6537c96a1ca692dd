"""The invocation phase: option values are checked and bound into an immutable run graph.

Nothing here runs task code. Every problem is collected and reported at once in one
:class:`InvocationError`.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import os
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import cattrs

from ._errors import InvocationError
from ._executors import bind_problems as executor_problems
from ._file import File
from ._named import NamedType
from ._typing import runtime_classes, type_name

if TYPE_CHECKING:
    from ._flow import Flow, TaskDef

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a bool, got {value!r}")


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(File, lambda value, _: File.of(value))
    conv.register_unstructure_hook(File, str)
    return conv


converter = _make_converter()


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def coerce(value: Any, annotation: Any) -> Any:
    """Return *value* as *annotation*, or raise ValueError/TypeError saying why not.

    Values that already have the right type are kept as they are. Text (from ``--set`` or a TOML
    file), mappings (for attrs classes) and lists are structured with cattrs.
    """
    if isinstance(annotation, NamedType):
        return annotation(coerce(value, annotation.root))
    classes = runtime_classes(annotation)
    if classes is None:
        return value
    if isinstance(value, os.PathLike) and not isinstance(value, classes):
        value = os.fspath(value)  # a Path given for an af.File (or a str) option
    if isinstance(value, classes) and not (isinstance(value, bool) and bool not in classes and int in classes):
        if isinstance(value, list | dict | tuple | set) and getattr(annotation, "__args__", None):
            return _structure(value, annotation)
        return value
    if isinstance(value, bool) or not isinstance(value, str | Mapping | list | tuple | int):
        raise TypeError(f"expected {type_name(annotation)}, got {_describe(value)}")
    if isinstance(value, int) and not any(issubclass(c, float | enum.Enum) for c in classes):
        raise TypeError(f"expected {type_name(annotation)}, got {_describe(value)}")
    if isinstance(value, str) and str not in classes and any(
        issubclass(c, list | tuple | set | frozenset) for c in classes
    ):
        raise TypeError(
            f"expected {type_name(annotation)}, got {_describe(value)} (give a list, e.g. [1, 2]; "
            "on the command line --set task.option='[1, 2]')"
        )
    return _structure(value, annotation)


def _structure(value: Any, annotation: Any) -> Any:
    try:
        return converter.structure(value, annotation)
    except Exception as exc:  # cattrs raises many kinds; all mean "does not fit"
        choices = ""
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            choices = f"; one of {', '.join(repr(m.value) for m in annotation)}"
        raise ValueError(f"expected {type_name(annotation)}, got {_describe(value)}{_why(exc)}{choices}") from exc


def _why(exc: Exception) -> str:
    """The useful part of a structuring error: what was wrong, and where inside the value."""
    if type(exc) is ValueError and str(exc):
        return f" ({exc})"
    if isinstance(exc, cattrs.BaseValidationError):
        leaves: list[str] = []

        def walk(group: BaseException, where: str) -> None:
            for sub in getattr(group, "exceptions", ()):
                note = next((n for n in getattr(sub, "__notes__", ()) if "@" in str(n) or "index" in str(n)), "")
                idx = getattr(note, "index", None)
                here = f"{where}[{idx!r}]" if idx is not None else where
                if isinstance(sub, cattrs.BaseValidationError):
                    walk(sub, here)
                else:
                    leaves.append(f"{here or 'value'}: {sub}")

        walk(exc, "")
        if leaves:
            return " (" + "; ".join(leaves[:3]) + ")"
    return ""



@attrs.frozen(eq=False)
class RunGraph:
    """A flow with validated option values: immutable, fingerprinted, what a run executes.

    Get one from :meth:`Flow.bind`.
    """

    name: str
    tasks: Mapping[str, TaskDef]
    options: Mapping[str, Mapping[str, Any]]
    fingerprint: str
    #: Nested flow name -> its output task (``outer.add(inner, name=...)``).
    aliases: Mapping[str, str] = attrs.field(factory=dict)

    def downstream(self, name: str) -> list[str]:
        """Names of the tasks that read from *name*."""
        return [t.name for t in self.tasks.values() if any(i.upstream == name for i in t.inputs)]


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def bind(flow: Flow, options: Mapping[str, Mapping[str, Any]] | None) -> RunGraph:
    """Check *options* against *flow*'s task definitions and return the run graph."""
    options = {} if options is None else options
    problems: list[str] = []
    if not isinstance(options, Mapping):
        problem = f"options must map task name to a dict of option values, got {_describe(options)}"
        raise InvocationError(flow.name, [problem])
    tasks = flow.tasks
    if flow.inputs:
        raise InvocationError(flow.name, [
            f"flow {flow.name!r} takes inputs {flow.inputs}; it runs only inside another flow "
            "(outer.add(flow, name=..., inputs={...}))"
        ])
    for tname in options:
        if tname in flow._aliases and tname not in tasks:
            inner = [n for n in tasks if n.startswith(f"{tname}/")]
            problems.append(
                f"{tname!r} is a nested flow: give options to its tasks by path ({', '.join(map(repr, inner))})"
            )
        elif tname not in tasks:
            problems.append(f"unknown task {tname!r}{_suggest(str(tname), list(tasks))}")
    bound: dict[str, Mapping[str, Any]] = {}
    for spec in tasks.values():
        given = options.get(spec.name, {})
        if not isinstance(given, Mapping):
            problems.append(f"task {spec.name!r}: options must be a dict, got {_describe(given)}")
            given = {}
        known = {o.name: o for o in spec.options}
        values: dict[str, Any] = {}
        for oname in given:
            if oname not in known:
                hint = _suggest(str(oname), list(known))
                if oname in {i.name for i in spec.inputs}:
                    hint = f"; {oname!r} is an input from task {oname!r}, not an option"
                problems.append(
                    f"task {spec.name!r}: unknown option {oname!r}{hint} (options: {sorted(known) or 'none'})"
                )
        for opt in spec.options:
            if opt.name in given:
                try:
                    values[opt.name] = coerce(given[opt.name], opt.annotation)
                except (TypeError, ValueError) as exc:
                    problems.append(f"task {spec.name!r}, option {opt.name!r}: {exc}")
            elif opt.required:
                problems.append(
                    f"task {spec.name!r}, option {opt.name!r}: required ({type_name(opt.annotation)}) but not given"
                )
            else:
                values[opt.name] = opt.default
        bound[spec.name] = types.MappingProxyType(values)
    problems.extend(executor_problems(tasks.values()))
    if problems:
        raise InvocationError(flow.name, problems)
    return RunGraph(
        name=flow.name,
        tasks=types.MappingProxyType(dict(tasks)),
        options=types.MappingProxyType(bound),
        fingerprint=_fingerprint(flow.name, tasks, bound),
        aliases=types.MappingProxyType(dict(flow._aliases)),
    )


def _fingerprint(name: str, tasks: Mapping[str, TaskDef], options: Mapping[str, Mapping[str, Any]]) -> str:
    doc = {
        "flow": name,
        "tasks": [
            {
                "name": t.name,
                "kind": t.kind,
                "inputs": [[i.name, i.upstream, i.streaming, i.gather, type_name(i.annotation)] for i in t.inputs],
                "options": {k: _plain(v) for k, v in options[t.name].items()},
                "per": t.per,
                # what the implementation is (not its code: a fixed bug may still resume) and its settings
                "fn": f"{getattr(t.fn, '__module__', '')}.{getattr(t.fn, '__qualname__', '')}",
                "out": type_name(t.out_type),
                "generator": t.is_generator,
                "ordered": t.ordered,
                "concurrency": t.concurrency,
            }
            for t in tasks.values()
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()


def _plain(value: Any) -> Any:
    try:
        return converter.unstructure(value)
    except Exception:  # an exotic value still fingerprints by its repr
        return repr(value)
