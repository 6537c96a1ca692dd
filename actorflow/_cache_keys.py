"""Cache keys: what identifies a task's work, so that unchanged work is found again.

A task's key is a SHA-256 of its definition (the source code of its function and the plain module
constants it reads, or the ``version=`` it declares), its option values (an :class:`~actorflow.File`
counts by content) and the keys of the tasks it reads from. Its *partial key* leaves the last part
out, and :func:`input_digest` fingerprints what it actually read (for early cutoff). External
sources and tasks that opt out (``cache=False``), and every task reading from one, have no key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import marshal
import re
from typing import TYPE_CHECKING, Any

import attrs

from ._cache import Cache
from ._convert import plain as _plain
from ._file import File, files_in
from ._spec import EXTERNAL_ATTR
from ._typing import type_name
from ._windows import keyed_text

if TYPE_CHECKING:
    from ._bind import RunGraph
    from ._spec import TaskDef


# -- keys ------------------------------------------------------------------------------------------


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return hashlib.sha256(marshal.dumps(code)).hexdigest()
        return repr(obj)


_PLAIN = (int, float, str, bytes, bool, type(None))


def _constants(fn: Any) -> str:
    """The plain module-level constants a function reads (``WEIGHT = 10``), as text."""
    code, glob = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if code is None or glob is None:
        return ""
    names: set[str] = set()
    todo = [code]
    while todo:
        c = todo.pop()
        names.update(c.co_names)
        todo.extend(k for k in c.co_consts if inspect.iscode(k))
    found = []
    for name in sorted(names):
        value = glob.get(name)
        if isinstance(value, _PLAIN) or (
            isinstance(value, tuple | frozenset) and all(isinstance(v, _PLAIN) for v in value)
        ):
            found.append(f"{name}={value!r}")
    return ";".join(found)


def definition_token(spec: TaskDef) -> str:
    """What identifies a task's code: its ``version=``, or the source of its function(s) and the
    plain module constants they read."""
    if spec.version is not None:
        return "version:" + spec.version
    cls = getattr(spec.fn, "__actorflow_class__", None)
    if cls is not None:
        classes = [c for c in cls.__mro__ if c.__module__ not in ("builtins", "actorflow._taskclass")]
        parts = [_source(c) for c in classes]
        parts += [_constants(f) for c in classes for f in vars(c).values() if inspect.isfunction(f)]
    else:
        fn = inspect.unwrap(spec.fn)
        parts = [_source(fn), _constants(fn)]
    if spec.finish is not None:
        parts += [_source(spec.finish), _constants(spec.finish)]
    if keyed := keyed_text(spec.settings):  # keyed and window settings, their functions' source
        parts.append(keyed)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _setting(value: Any) -> str:
    """One task setting as stable text: a function by its name, anything else by its repr
    without memory addresses (they differ from one process to the next)."""
    if inspect.isfunction(value) or inspect.isclass(value):
        return f"{value.__module__}.{value.__qualname__}"
    return _ADDRESS.sub("", repr(value))


def code_token(spec: TaskDef) -> str:
    """What identifies a task's code and settings, for resume: its :func:`definition_token` and
    every :class:`~actorflow._spec.TaskSettings` field (a short SHA-256 hex digest).

    Where the task runs is left out (the settings as if inline, ``TaskSettings.on(None)``): a run
    may be resumed on another executor (``executors=``), which computes the same items."""
    inline = spec.settings.on(None)
    settings = {a.name: _setting(getattr(inline, a.name)) for a in attrs.fields(type(inline))}
    text = json.dumps({"def": definition_token(spec), "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def code_tokens(graph: RunGraph) -> dict[str, str]:
    """:func:`code_token` of every task of *graph*, by task name (a store records them with its run)."""
    return {name: code_token(spec) for name, spec in graph.tasks.items()}


def _token(value: Any, cache: Cache) -> Any:
    """An option value as plain data for the key; files by content."""
    if isinstance(value, File):
        return {"file": cache.file_token(value)}
    if isinstance(value, list | tuple):
        return [_token(v, cache) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_token(v, cache) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): _token(v, cache) for k, v in value.items()}
    if files_in(value):  # an attrs class holding files
        return {a.name: _token(getattr(value, a.name), cache) for a in attrs.fields(type(value))}
    return _plain(value)


def upstreams(spec: TaskDef) -> list[str]:
    """The tasks *spec* reads from (its inputs' upstreams, then its ``per`` task)."""
    ups = [i.upstream for i in spec.inputs]
    if spec.per is not None:
        ups.append(spec.per)
    return ups


def compute_key_pairs(graph: RunGraph, cache: Cache) -> dict[str, tuple[str, str] | None]:
    """Every task's ``(key, partial key)`` (None: not cacheable), in topological order.

    The partial key leaves out the keys of the tasks it reads from: it names the task's own
    definition and options, so early cutoff can find the entry the task wrote last time whatever
    it read then (see :mod:`actorflow._cache_run`).
    """
    keys: dict[str, str | None] = {}
    pairs: dict[str, tuple[str, str] | None] = {}
    for name, spec in graph.tasks.items():
        ups = upstreams(spec)
        if not spec.cache or hasattr(spec.fn, EXTERNAL_ATTR) or any(keys.get(u) is None for u in ups):
            keys[name] = pairs[name] = None
            continue
        doc = {
            "task": name,
            "kind": spec.kind,
            "def": definition_token(spec),
            "init": _plain(spec.init) if spec.kind == "collector" else None,
            "options": {k: _token(v, cache) for k, v in graph.options[name].items()},
            "inputs": [[i.name, None, i.streaming, i.gather] for i in spec.inputs],
            "per": None,
            "out": type_name(spec.out_type),
            "depth": spec.depth,
        }
        partial = _digest(doc)
        doc["inputs"] = [[i.name, keys[i.upstream], i.streaming, i.gather] for i in spec.inputs]
        doc["per"] = keys[spec.per] if spec.per is not None else None
        keys[name] = key = _digest(doc)
        pairs[name] = (key, partial)
    return pairs


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()[:32]


def input_digest(spec: TaskDef, digests: dict[str, str | None]) -> str | None:
    """The fingerprint of what *spec* reads, from the output digests of the tasks it reads from
    (None when one of them is unknown)."""
    if any(digests.get(u) is None for u in upstreams(spec)):
        return None
    doc = [[i.name, digests[i.upstream]] for i in spec.inputs]
    doc.append(["per", digests[spec.per] if spec.per is not None else None])
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32]
