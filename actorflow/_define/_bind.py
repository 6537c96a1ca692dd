"""The invocation phase: option values are checked and bound into an immutable run graph.

Nothing here runs task code. Every problem is collected and reported at once in one
:class:`InvocationError`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import pathlib
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._base import InvocationError, type_name
from .._storage import coerce, plain
from .._storage import describe as _describe
from ._executor_choice import bind_problems as executor_problems
from ._executor_choice import definition_problem, executor_named

if TYPE_CHECKING:
    from ._flow import Flow
    from ._spec import TaskDef

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
        if tname in flow.nested and tname not in tasks:
            inner = [n for n in tasks if n.startswith(f"{tname}/")]
            problems.append(
                f"{tname!r} is a nested flow: give options to its tasks by path ({', '.join(map(repr, inner))})"
            )
        elif tname not in tasks:
            problems.append(f"unknown task {tname!r}{_suggest(str(tname), list(tasks))}")
    bound: dict[str, Mapping[str, Any]] = {}
    for spec in tasks.values():
        bound[spec.name] = types.MappingProxyType(_bind_task(spec, options.get(spec.name, {}), problems))
    problems.extend(executor_problems(tasks.values()))
    problems.extend(_shared_paths(tasks, bound))
    if problems:
        raise InvocationError(flow.name, problems)
    return RunGraph(
        name=flow.name,
        tasks=types.MappingProxyType(dict(tasks)),
        options=types.MappingProxyType(bound),
        fingerprint=_fingerprint(flow.name, tasks, bound),
        aliases=types.MappingProxyType(dict(flow.nested)),
    )


def _shared_paths(tasks: Mapping[str, TaskDef], bound: dict[str, Mapping[str, Any]]) -> list[str]:
    """Paths that two sinks would both write: refused. A task class lists the options naming files
    only it may write in ``exclusive_paths`` (``af.JsonLinesSink``: ``path``); they are made absolute
    here, so a store records where the sink writes whatever directory a resume runs in."""
    writers: dict[str, str] = {}
    problems: list[str] = []
    for spec in tasks.values():
        cls = getattr(spec.fn, "__actorflow_class__", None)
        for option in getattr(cls, "exclusive_paths", ()):
            value = bound[spec.name].get(option)
            if not isinstance(value, str | os.PathLike) or not str(value):
                continue
            absolute = os.path.abspath(value)
            bound[spec.name] = types.MappingProxyType({**bound[spec.name], option: absolute})
            other = writers.setdefault(os.path.realpath(absolute), spec.name)
            if other != spec.name:
                problems.append(
                    f"tasks {other!r} and {spec.name!r} would both write {absolute!r} (option {option!r}): a file "
                    "has one writer, whose commits it tracks; give each sink its own path"
                )
    return problems


def with_executors(graph: RunGraph, executors: Mapping[str, Any] | None) -> RunGraph:
    """*graph* with some tasks on another executor, chosen for one run (``run(..., executors=...)``).

    *executors* maps task names to a name in ``EXECUTOR_NAMES`` or an :class:`Executor`; the other
    tasks keep the executor of their definition. Nothing else changes (options, fingerprint).

    Raises:
        InvocationError: every unknown task, unknown executor, or task that cannot run on the
            executor named (not a plain task, an async function, no streaming input, not sendable).
    """
    if not executors:
        return graph
    if not isinstance(executors, Mapping):
        raise InvocationError(
            graph.name, [f"executors must map task names to executors, got {_describe(executors)}"], "run settings"
        )
    problems: list[str] = []
    tasks = dict(graph.tasks)
    shaped: set[str] = set()  # tasks on a remote executor whose function unsendable() has passed
    for tname, choice in executors.items():
        spec = tasks.get(tname)
        if spec is None:
            problems.append(f"executors: unknown task {tname!r}{_suggest(str(tname), list(tasks))}")
            continue
        try:
            executor = executor_named(choice)
        except ValueError as exc:
            problems.append(f"task {tname!r}, executor {choice!r}: {exc}")
            continue
        problem = None
        if executor is not None and spec.kind != "task":
            problem = f"a {spec.kind} runs in its actor; only tasks take an executor"
        elif executor is not None:
            problem = definition_problem(spec.fn, spec.is_async, bool(spec.streaming_inputs), executor.remote)
        if problem:
            problems.append(f"task {tname!r}, executor {choice!r}: {problem}")
            continue
        settings = spec.settings.on(executor)
        if not settings.ordered and (settings.concurrency == 1) != (spec.concurrency == 1):
            problems.append(
                f"task {tname!r}, executor {choice!r}: the task is ordered=False and its concurrency follows the "
                f"executor ({spec.concurrency} -> {settings.concurrency}), which would change the order of its "
                "output; give the task concurrency= in its definition"
            )
            continue
        tasks[tname] = attrs.evolve(spec, settings=settings)
        if executor is not None and executor.remote:
            shaped.add(tname)  # definition_problem has run unsendable() on it
    problems.extend(executor_problems((tasks[t] for t in executors if t in tasks), shaped))
    if problems:
        raise InvocationError(graph.name, problems, "run settings")
    return attrs.evolve(graph, tasks=types.MappingProxyType(tasks))


def _bind_task(spec: TaskDef, given: Any, problems: list[str]) -> dict[str, Any]:
    """One task's option values (defaults filled in); what is wrong is added to *problems*."""
    if not isinstance(given, Mapping):
        problems.append(f"task {spec.name!r}: options must be a dict, got {_describe(given)}")
        given = {}
    known = {o.name: o for o in spec.options}
    for oname in given:
        if oname not in known:
            hint = _suggest(str(oname), list(known))
            if oname in {i.name for i in spec.inputs}:
                hint = f"; {oname!r} is an input from task {oname!r}, not an option"
            problems.append(f"task {spec.name!r}: unknown option {oname!r}{hint} (options: {sorted(known) or 'none'})")
    values: dict[str, Any] = {}
    for opt in spec.options:
        if opt.name in given:
            try:
                values[opt.name] = _absolute(coerce(given[opt.name], opt.annotation))
            except (TypeError, ValueError) as exc:
                problems.append(f"task {spec.name!r}, option {opt.name!r}: {exc}")
        elif opt.required:
            problems.append(
                f"task {spec.name!r}, option {opt.name!r}: required ({type_name(opt.annotation)}) but not given"
            )
        else:
            values[opt.name] = _absolute(opt.default)
    return values


def _absolute(value: Any) -> Any:
    """A local path option (``pathlib.Path``) made absolute: a store records option values, and a
    resume may run in another directory (pure paths, text and other values are kept as given)."""
    if isinstance(value, pathlib.Path) and not value.is_absolute():
        return value.absolute()
    return value


def _fingerprint(name: str, tasks: Mapping[str, TaskDef], options: Mapping[str, Mapping[str, Any]]) -> str:
    doc = {
        "flow": name,
        "tasks": [
            {
                "name": t.name,
                "kind": t.kind,
                "inputs": [[i.name, i.upstream, i.streaming, i.gather, type_name(i.annotation)] for i in t.inputs],
                "options": {k: plain(v) for k, v in options[t.name].items()},
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
