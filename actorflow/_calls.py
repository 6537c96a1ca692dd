"""Adapters that call user functions with inputs and options, built once per actor.

Options and final inputs are bound with :func:`functools.partial`; streaming items are passed
positionally when the streaming parameters come first (the usual case), by keyword otherwise.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ._flow import TaskDef
from ._taskclass import bound_instance


def bind_consts(spec: TaskDef, consts: dict[str, Any]) -> Callable[..., Any]:
    """*spec.fn* with every option and final input bound (for a task class: a fresh instance's run)."""
    instance_run = bound_instance(spec.fn, consts)
    if instance_run is not None:
        return instance_run
    return functools.partial(spec.fn, **consts) if consts else spec.fn


def item_call(spec: TaskDef, consts: dict[str, Any]) -> Callable[[Any], Any]:
    """A one-argument callable: the item (a tuple of items for zipped inputs).

    For a task with an ``af.Seq`` parameter the argument is an ``(item, seq)`` pair instead.
    """
    fn = bind_consts(spec, consts)
    names = [i.name for i in spec.streaming_inputs]
    if spec.seq_param is not None:
        seq_name, raw = spec.seq_param, spec.fn
        if len(names) == 1:
            (one,) = names
            return lambda pair: raw(**consts, **{one: pair[0], seq_name: pair[1]})
        return lambda pair: raw(**consts, **dict(zip(names, pair[0], strict=True)), **{seq_name: pair[1]})
    positional = list(spec.params[: len(names)]) == names
    if len(names) == 1:
        if positional:
            return fn
        (name,) = names
        return lambda item: fn(**{name: item})
    if positional:
        return lambda items: fn(*items)
    return lambda items: fn(**dict(zip(names, items, strict=True)))


def step_call(spec: TaskDef, consts: dict[str, Any]) -> Callable[[Any, Any], Any]:
    """A two-argument callable ``step(acc, item)`` for collectors."""
    fn = bind_consts(spec, consts)
    names = [i.name for i in spec.streaming_inputs]
    positional = list(spec.params[: len(names)]) == names
    if len(names) == 1:
        if positional:
            return fn
        (name,) = names
        return lambda acc, item: fn(acc, **{name: item})
    if positional:
        return lambda acc, items: fn(acc, *items)
    return lambda acc, items: fn(acc, **dict(zip(names, items, strict=True)))


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions (also behind partials)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn)
