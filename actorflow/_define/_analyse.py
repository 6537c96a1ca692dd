"""Reading a task function's signature into a :class:`TaskDef`, in named steps.

1. **signature** — the function's parameters and resolved annotations;
2. **ports** — each parameter is an input (named after a task defined earlier), an option, or a
   marker (``af.Context``, ``af.Seq``, ``af.Cursor``);
3. **readiness** — streaming inputs (item by item, zipped by sequence number) and final inputs
   (whole products), generator levels;
4. **output** — what the task produces for its kind (stream or product, its type and depth);
5. **checks** — the rules that need everything above (executors, concurrency).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import keyword
import typing
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from .._base import (
    Cursor,
    DefinitionError,
    File,
    Seq,
    fits,
    inspect_empty,
    list_item_type,
    runtime_classes,
    stream_item_type,
    type_name,
)
from .._storage import coerce
from ._context import Context
from ._executor_choice import definition_problem
from ._spec import REQUIRED, Input, Option, TaskDef, TaskKind, TaskSettings, dead_letters, where
from ._windows import check_keyed_step, keyed_output

#: How close (difflib ratio) a required option's name may come to a task's before it is taken for a
#: misspelt input: ``numbrs`` for ``numbers`` (0.92) is refused, ``n`` for ``numbers`` is not.
MISSPELT_CUTOFF = 0.8


class Defined(Protocol):
    """What analysis reads of the flow a task joins: its name and the tasks defined so far."""

    name: str

    @property
    def defined(self) -> Mapping[str, TaskDef]: ...

    @property
    def nested(self) -> Mapping[str, str]: ...

    def stream_ancestors(self, name: str) -> set[str]: ...


@attrs.frozen
class _Ports:
    params: tuple[inspect.Parameter, ...]
    inputs: tuple[Input, ...]
    options: tuple[Option, ...]
    special: Mapping[str, str]
    acc_param: str | None


def is_generator(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """(is_async, is_generator) of a function (of a task class's run method)."""
    fn = getattr(fn, "__actorflow_run__", fn)
    if inspect.isasyncgenfunction(fn):
        return True, True
    if inspect.isgeneratorfunction(fn):
        return False, True
    return inspect.iscoroutinefunction(fn), False


def task_name(flow: Defined, fn: Callable[..., Any], kind: TaskKind, name: str | None) -> str:
    """The task's name (given, or the function's), checked to be new and not an earlier option."""
    if not callable(fn):
        raise DefinitionError(f"flow {flow.name!r}: @{kind} needs a function, got {fn!r}")
    if name is not None and (not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name)):
        raise DefinitionError(
            f"flow {flow.name!r}: {name!r} is not a valid task name: a task name is a Python identifier (letters, "
            "digits and underscores, not starting with a digit, not a keyword), e.g. 'clean_up_step'"
        )
    tname = name or getattr(fn, "__name__", None)
    if not tname or not isinstance(tname, str) or not tname.isidentifier():
        raise DefinitionError(f"flow {flow.name!r}: cannot name a task after {fn!r}; pass name='...'")
    if tname in flow.defined:
        raise DefinitionError(
            f"{where(flow.name, tname)}: a task with this name is already defined; "
            "choose another function name or pass name='...'"
        )
    check_not_an_option(flow, tname)
    return tname


def check_not_an_option(flow: Defined, tname: str) -> None:
    """A new task may not take the name of an earlier task's option: that task would never read it."""
    users = [t.name for t in flow.defined.values() if any(o.name == tname for o in t.options)]
    if users:
        raise DefinitionError(
            f"{where(flow.name, tname)}: {users[0]!r} was defined earlier with a parameter {tname!r}, which is an "
            f"option of {users[0]!r} because no task {tname!r} existed then; define {tname!r} before "
            f"{users[0]!r} to make it an input, or rename one of them"
        )


def analyse(
    flow: Defined, fn: Callable[..., Any], kind: TaskKind, name: str, settings: TaskSettings,
    wiring: Mapping[str, str] | None = None,
) -> TaskDef:
    """Read *fn*'s signature into a :class:`TaskDef` for a task *name* of *kind*, checking the wiring.

    *wiring* maps parameters to the tasks they read (``Flow.add(..., inputs=...)``); any other
    parameter is an input when it is named after a task.
    """
    is_async, is_gen = is_generator(fn)
    sig, hints = _signature(flow, name, fn)
    ports = _ports(flow, name, kind, sig, hints, is_gen, wiring or {})
    streaming_in = [i for i in ports.inputs if i.streaming]
    in_depth, in_ordered = _readiness(flow, name, ports.inputs)
    streaming, depth, out_type = _output(flow, name, kind, settings, hints, is_gen, streaming_in, in_depth)
    _checks(flow, name, fn, kind, settings, is_async, streaming_in, is_gen)
    if kind == "source" and dead_letters(settings.on_error) and "cursor_param" not in ports.special:
        raise DefinitionError(
            f"{where(flow.name, name)}: a source cannot dead-letter unless it takes an af.Cursor (it must reopen "
            "past the failed item); use af.Retry or af.Restart"
        )
    if not settings.checkpoint and (streaming_in or streaming):
        what = f"reads the stream {streaming_in[0].upstream!r} item by item" if streaming_in else "sends a stream"
        raise DefinitionError(
            f"{where(flow.name, name)}: checkpoint=False needs a product a resumed run can compute again from "
            f"its inputs, but it {what}; only a task fed whole products (final inputs, list[T] of a stream) can "
            "leave its product out of checkpoints"
        )
    stream_names = [i.name for i in streaming_in]
    leading = ports.params[: len(stream_names)]
    positional = [p.name for p in leading] == stream_names and all(p.kind is not p.KEYWORD_ONLY for p in leading)
    return TaskDef(
        name=name, kind=kind, fn=fn, settings=settings, is_async=is_async, is_generator=is_gen,
        params=tuple(p.name for p in ports.params), inputs=ports.inputs, options=ports.options,
        out_type=out_type, streaming=streaming, depth=depth,
        ordered=in_ordered and (settings.ordered or settings.concurrency == 1), positional=positional,
        cursor_param=ports.special.get("cursor_param"), seq_param=ports.special.get("seq_param"),
        context_param=ports.special.get("context_param"), acc_param=ports.acc_param,
        description=inspect.getdoc(fn) or "",
    )


# -- 1. signature ------------------------------------------------------------------------------------


def _signature(flow: Defined, tname: str, fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        return inspect.signature(fn), typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        hint = (
            "; annotations must name types visible at module level (with `from __future__ import annotations`"
            " a class defined inside a function cannot be resolved)"
            if isinstance(exc, NameError)
            else ""
        )
        raise DefinitionError(f"{where(flow.name, tname)}: cannot read the signature: {exc}{hint}") from exc


# -- 2. ports ----------------------------------------------------------------------------------------


def _ports(
    flow: Defined, tname: str, kind: TaskKind, sig: inspect.Signature, hints: dict[str, Any], is_gen: bool,
    wiring: Mapping[str, str],
) -> _Ports:
    params = list(sig.parameters.values())
    acc_param = None
    if kind == "collector":
        if not params:
            raise DefinitionError(
                f"{where(flow.name, tname)}: a collector's first parameter is the accumulator, as in step(acc, item)"
            )
        acc_param = params[0].name
        params = params[1:]
        if is_gen:
            raise DefinitionError(f"{where(flow.name, tname)}: a collector's step cannot be a generator")
    inputs: list[Input] = []
    options: list[Option] = []
    special: dict[str, str] = {}
    for p in params:
        _check_parameter_kind(flow, tname, p)
        ann = hints.get(p.name, inspect_empty)
        marker = _marker(flow, tname, kind, p.name, ann, special)
        if marker is not None:
            special[marker] = p.name
            continue
        port = _wired(flow, tname, p.name, ann, wiring[p.name]) if p.name in wiring else _input_for(
            flow, tname, p.name, ann
        )
        if port is not None:
            inputs.append(port)
            continue
        default = REQUIRED if p.default is p.empty else p.default
        if default is REQUIRED:
            _check_not_misspelt(flow, tname, p.name)
        option_ann = Any if ann is inspect_empty else ann
        _check_default(flow.name, tname, p.name, option_ann, default)
        options.append(Option(p.name, option_ann, default))
    unknown = sorted(set(wiring) - {p.name for p in params})
    if unknown:
        raise DefinitionError(
            f"{where(flow.name, tname)}: inputs= names {unknown}, which are not parameters of its run()"
        )
    return _Ports(tuple(params), tuple(inputs), tuple(options), special, acc_param)


def _check_not_misspelt(flow: Defined, tname: str, pname: str) -> None:
    """A required option named almost like a readable task is a misspelt input: refused, naming the task."""
    readable = [n for n, t in flow.defined.items() if t.kind != "sink"] + list(flow.nested)
    close = difflib.get_close_matches(pname, readable, n=1, cutoff=MISSPELT_CUTOFF)
    if close:
        raise DefinitionError(
            f"{where(flow.name, tname, pname)}: no task {pname!r}; did you mean {close[0]!r}? (a parameter without "
            "a default that names no task is a required option: to keep it one, give it a name further from "
            f"{close[0]!r})"
        )


def _check_parameter_kind(flow: Defined, tname: str, p: inspect.Parameter) -> None:
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
        raise DefinitionError(
            f"{where(flow.name, tname, p.name)}: *args and **kwargs are not supported; name every input and option"
        )
    if p.kind is p.POSITIONAL_ONLY:
        raise DefinitionError(f"{where(flow.name, tname, p.name)}: positional-only parameters are not supported")


def _marker(flow: Defined, tname: str, kind: TaskKind, pname: str, ann: Any, seen: Mapping[str, str]) -> str | None:
    """Which marker parameter this is (``context_param``, ``cursor_param``, ``seq_param``), if any."""
    if ann is Context:
        return "context_param"
    if ann is not Cursor and ann is not Seq:
        return None
    marker = "cursor_param" if ann is Cursor else "seq_param"
    here = where(flow.name, tname, pname)
    if marker in seen:
        raise DefinitionError(f"{here}: only one parameter may be {type_name(ann)}")
    if ann is Cursor and kind != "source":
        raise DefinitionError(f"{here}: only a source can take an af.Cursor")
    if ann is Seq and kind not in ("task", "sink"):
        raise DefinitionError(f"{here}: only tasks and sinks can take an af.Seq")
    return marker


def _input_for(flow: Defined, tname: str, pname: str, ann: Any) -> Input | None:
    """The input port a parameter named after a defined task (or nested flow) makes, else None."""
    tasks = flow.defined
    if pname in flow.nested and pname not in tasks:
        target = tasks[flow.nested[pname]]
        return attrs.evolve(_input_port(flow, tname, pname, ann, target), source=target.name)
    up = tasks.get(pname)
    if up is None:
        return None
    if up.kind == "sink":
        raise DefinitionError(f"{where(flow.name, tname, pname)}: {pname!r} is a sink, which has no product to read")
    return _input_port(flow, tname, pname, ann, up)


def _wired(flow: Defined, tname: str, pname: str, ann: Any, target: str) -> Input:
    """The input port of parameter *pname* wired explicitly to the task (or nested flow) *target*."""
    tasks = flow.defined
    name = flow.nested.get(target, target) if target not in tasks else target
    up = tasks.get(name)
    if up is None:
        raise DefinitionError(
            f"{where(flow.name, tname, pname)}: inputs= wires it to {target!r}, which is not a task defined before it"
        )
    if up.kind == "sink":
        raise DefinitionError(f"{where(flow.name, tname, pname)}: {target!r} is a sink, which has no product to read")
    return attrs.evolve(_input_port(flow, tname, target, ann, up), name=pname, source=name)


def _input_port(flow: Defined, task: str, pname: str, ann: Any, up: TaskDef) -> Input:
    here = where(flow.name, task, pname)
    if ann is inspect_empty:
        return Input(pname, Any, streaming=up.streaming, gather=False)
    if not up.streaming:
        if not fits(up.out_type, ann):
            raise DefinitionError(
                f"{here}: upstream {pname!r} produces {type_name(up.out_type)}, which does not fit the annotation "
                f"{type_name(ann)}"
            )
        return Input(pname, ann, streaming=False, gather=False)
    is_list, elem = list_item_type(ann)
    if is_list and up.per is not None and (up.out_type is Any or up.out_type is inspect_empty):
        # a per-collector whose finish= declares no return type: list[T] reads its products whole (the
        # annotation rule), rather than guessing that each product is a list
        return Input(pname, ann, streaming=False, gather=True)
    if fits(up.out_type, ann):
        return Input(pname, ann, streaming=True, gather=False)
    if is_list and fits(up.out_type, elem):
        return Input(pname, ann, streaming=False, gather=True)  # list[T] over a stream of T: the whole stream
    if is_list:
        raise DefinitionError(
            f"{here}: upstream {pname!r} yields items of type {type_name(up.out_type)}, which do not fit "
            f"list[{type_name(elem)}]"
        )
    raise DefinitionError(
        f"{here}: upstream {pname!r} yields items of type {type_name(up.out_type)}, which do not fit the annotation "
        f"{type_name(ann)} (annotate list[{type_name(up.out_type)}] to receive the whole stream at once)"
    )


def _check_default(flow: str, task: str, name: str, annotation: Any, default: Any) -> None:
    """An option's default must be a value of its type (never a function computing one)."""
    if default is REQUIRED or default is None:
        return
    if inspect.isfunction(default) or inspect.ismethod(default) or isinstance(default, functools.partial):
        raise DefinitionError(
            f"{where(flow, task, name)}: an option's default must be a value, not a function ({default!r:.60}); "
            "compute it inside the task, or make the option required"
        )
    if File in (runtime_classes(annotation) or ()):
        return  # a default file need not exist until the run binds it
    try:
        coerce(default, annotation)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"{where(flow, task, name)}: the default {default!r:.60} does not fit: {exc}") from None


# -- 3. readiness ------------------------------------------------------------------------------------


def _readiness(flow: Defined, tname: str, inputs: tuple[Input, ...]) -> tuple[int, bool]:
    """The generator level of the streaming inputs and whether they arrive in order."""
    # A task that streams one input and waits for the whole of another (even one computed from the
    # same stream: share(xs: int, total: int)) runs: its mailboxes spill to disk while it waits.
    streaming_in = [i for i in inputs if i.streaming]
    tasks = flow.defined
    depths = {tasks[i.upstream].depth for i in streaming_in}
    if len(depths) > 1:
        raise DefinitionError(
            f"{where(flow.name, tname)}: streaming inputs {[i.name for i in streaming_in]} come from different "
            "generator levels and cannot be zipped by sequence number"
        )
    return (depths.pop() if depths else 0), all(tasks[i.upstream].ordered for i in streaming_in)


# -- 4. output ---------------------------------------------------------------------------------------


def _output(
    flow: Defined,
    tname: str,
    kind: TaskKind,
    settings: TaskSettings,
    hints: dict[str, Any],
    is_gen: bool,
    streaming_in: list[Input],
    in_depth: int,
) -> tuple[bool, int, Any]:
    """(streaming, depth, out_type) of the task's output."""
    here = where(flow.name, tname)
    ret = hints.get("return", inspect_empty)
    is_stream_ann, item_ann = stream_item_type(ret)
    out_type: Any = Any if item_ann is inspect_empty else item_ann
    if kind == "source":
        if not is_gen:
            raise DefinitionError(f"{here}: a source must be a generator function (use yield), sync or async")
        if streaming_in:
            raise DefinitionError(
                f"{where(flow.name, tname, streaming_in[0].name)}: a source cannot stream from another task; "
                "use @flow.task with a generator function instead"
            )
        return True, 1, out_type
    if kind == "task":
        if is_gen:
            return True, in_depth + 1, out_type
        if is_stream_ann and ret is not inspect_empty:
            raise DefinitionError(f"{here}: declared to return {type_name(ret)} but is not a generator function")
        return bool(streaming_in), in_depth, out_type
    if kind == "collector":
        return _collector_output(flow, tname, settings, streaming_in, out_type)
    if not streaming_in:
        raise DefinitionError(f"{here}: a sink needs a streaming input")
    if is_gen:
        raise DefinitionError(f"{here}: a sink cannot be a generator function")
    return False, 0, type(None)


def _collector_output(
    flow: Defined, tname: str, settings: TaskSettings, streaming_in: list[Input], step_type: Any
) -> tuple[bool, int, Any]:
    here = where(flow.name, tname)
    if not streaming_in:
        raise DefinitionError(
            f"{here}: a collector needs a streaming input (a parameter named after an upstream task, annotated "
            f"with its item type); tasks so far: {list(flow.defined)}"
        )
    out_type = step_type
    if settings.finish is not None:  # the product is what finish returns
        try:
            out_type = typing.get_type_hints(settings.finish).get("return", Any)
        except (TypeError, NameError):
            out_type = Any
    if settings.key is not None or settings.window is not None:
        return keyed_output(here, settings, streaming_in, out_type)
    per = settings.per
    if per is None:
        return False, 0, out_type
    tasks = flow.defined
    source = streaming_in[0].upstream
    ancestors = flow.stream_ancestors(source)
    if per not in ancestors or not tasks[per].streaming:
        raise DefinitionError(
            f"{here}: per={per!r} must be a stream that the collector's input descends from; {source!r} descends "
            f"from {sorted(ancestors)}"
        )
    if tasks[per].depth > tasks[source].depth:
        raise DefinitionError(
            f"{here}: per={per!r} yields at generator level {tasks[per].depth}, deeper than the collector's input "
            f"{source!r} (level {tasks[source].depth}), so its items cannot group the input's items; name a stream "
            f"at level {tasks[source].depth} or above"
        )
    return True, tasks[per].depth, out_type


# -- 5. checks ---------------------------------------------------------------------------------------


def _check_timeout(
    flow: Defined, tname: str, fn: Callable[..., Any], kind: TaskKind, settings: TaskSettings, is_async: bool,
    streaming_in: list[Input],
) -> None:
    """``timeout=`` needs an item to time: a streaming input, one value per item, and a handler that
    can be stopped (async, or run by an executor, which abandons it)."""
    here = where(flow.name, tname)
    if not streaming_in:
        raise DefinitionError(f"{here}: timeout= applies per item: it needs a streaming input")
    if is_generator(fn)[1]:
        raise DefinitionError(f"{here}: timeout= applies to tasks that return one value per item and to sinks, "
                              "not to generator tasks")
    if settings.executor is not None and settings.executor.remote:
        raise DefinitionError(
            f"{here}: timeout= is supported inline (async handlers) and on thread executors, not on "
            f"{settings.executor!r}: a worker process's start-up and queueing would count against each item; "
            "use executor=\"thread\""
        )
    if settings.executor is None and not is_async:
        hint = " (a sink must be async)" if kind == "sink" else (
            ", or run it on a thread executor (executor=\"thread\"), which abandons an item that runs too long"
        )
        raise DefinitionError(
            f"{here}: timeout= cannot stop a plain function running inline (it holds the loop until it returns); "
            f"make it async{hint}"
        )


def _checks(
    flow: Defined,
    tname: str,
    fn: Callable[..., Any],
    kind: TaskKind,
    settings: TaskSettings,
    is_async: bool,
    streaming_in: list[Input],
    is_gen: bool = False,
) -> None:
    if settings.executor is not None:
        problem = definition_problem(fn, is_async, bool(streaming_in), settings.executor.remote)
        if problem:
            raise DefinitionError(f"{where(flow.name, tname)}: {problem}")
    check_keyed_step(where(flow.name, tname), kind, settings, is_async, is_gen, bool(streaming_in))
    if settings.concurrency > 1 and not streaming_in:
        raise DefinitionError(f"{where(flow.name, tname)}: concurrency needs a streaming input")
    if settings.timeout is not None:
        _check_timeout(flow, tname, fn, kind, settings, is_async, streaming_in)
    if kind != "collector" and (settings.per is not None or settings.finish is not None):
        raise DefinitionError(f"{where(flow.name, tname)}: per= and finish= apply to collectors only")
