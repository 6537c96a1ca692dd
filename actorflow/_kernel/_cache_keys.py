"""Cache keys: what identifies a task's work, so that unchanged work is found again.

A task's key is a SHA-256 of its definition (the fingerprint of the code it runs and the values
that code reads, see :mod:`actorflow._define._fingerprint`, or the ``version=`` it declares), its option
values (an :class:`~actorflow.File` counts by content) and the keys of the tasks it reads from.
Its *partial key* leaves the last part out, and :func:`input_digest` fingerprints what it actually
read (for early cutoff). External sources, tasks that opt out (``cache=False``,
``checkpoint=False``) or whose code cannot be fingerprinted, and every task reading from one, have
no key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from typing import TYPE_CHECKING, Any

import attrs

from .._base import File, files_in, type_name
from .._define import EXTERNAL_ATTR, CodeFingerprint, code_fingerprint, keyed_text
from .._storage import plain as _plain
from ._cache import Cache

if TYPE_CHECKING:
    from .._define import RunGraph, TaskDef


# -- keys ------------------------------------------------------------------------------------------


def fingerprint(spec: TaskDef, values: bool = True) -> CodeFingerprint:
    """The :class:`~actorflow._define._fingerprint.CodeFingerprint` of a task's code: its function (or task
    class), a collector's ``finish``, and the user's code and values they reach (mutable values
    and values with no fingerprint only as being there unless *values*)."""
    cls = getattr(spec.fn, "__actorflow_class__", None)
    functions = [] if cls is not None else [spec.fn]
    if spec.finish is not None:
        functions.append(spec.finish)
    settings = spec.settings  # a keyed or window task's key, time and merge functions are its code too
    functions += [f for f in (settings.key, settings.time, settings.merge) if inspect.isfunction(f)]
    return code_fingerprint(functions, [cls] if cls is not None else [], values)


def definition_token(spec: TaskDef) -> str:
    """What identifies a task's code: its ``version=``, or the fingerprint of its code and of what
    that code reaches (:func:`fingerprint`)."""
    if spec.version is not None:
        return "version:" + spec.version
    digest = fingerprint(spec).digest
    keyed = keyed_text(spec.settings)  # the window and lateness, besides the functions' code
    return digest if not keyed else f"{digest}:{hashlib.sha256(keyed.encode()).hexdigest()[:16]}"


def unfingerprintable(spec: TaskDef) -> str | None:
    """Why *spec*'s code cannot be fingerprinted, so it cannot be cached (None: it can, or it pins
    ``version=``)."""
    if spec.version is not None:
        return None
    return fingerprint(spec).problem


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _setting(value: Any) -> str:
    """One task setting as stable text: a function by its name, anything else by its repr
    without memory addresses (they differ from one process to the next)."""
    if inspect.isfunction(value) or inspect.isclass(value):
        return f"{value.__module__}.{value.__qualname__}"
    return _ADDRESS.sub("", repr(value))


def code_token(spec: TaskDef) -> str:
    """What identifies a task's code and settings, for resume: its code's fingerprint (without
    mutable values: see :func:`fingerprint`), or its ``version=``, and every
    :class:`~actorflow._define._spec.TaskSettings` field (a short SHA-256 hex digest).

    Where the task runs is left out (the settings as if inline, ``TaskSettings.on(None)``): a run
    may be resumed on another executor (``executors=``), which computes the same items."""
    inline = spec.settings.on(None)
    settings = {a.name: _setting(getattr(inline, a.name)) for a in attrs.fields(type(inline))}
    # the code and constants, not mutable module state a running program may change (see fingerprint)
    code = "version:" + spec.version if spec.version is not None else fingerprint(spec, values=False).digest
    text = json.dumps({"def": code, "settings": settings}, sort_keys=True)
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
    return _json_safe(_plain(value))


def _json_safe(value: Any) -> Any:
    """Plain data for ``json.dumps``: ints beyond 64 bits as hex text (``json`` writes ints with
    ``repr()``, which refuses more than 4,300 digits)."""
    if type(value) is int and not -(1 << 63) <= value < (1 << 64):
        return {"bigint": f"{value:x}"}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


def uncacheable(graph: RunGraph) -> dict[str, str]:
    """Tasks that would be cached but for code that cannot be fingerprinted (and the tasks that read
    from them), each with why: what the ``CacheMiss`` event of such a task says."""
    why: dict[str, str] = {}
    for name, spec in graph.tasks.items():
        if not spec.cache or hasattr(spec.fn, EXTERNAL_ATTR):
            continue
        problem = unfingerprintable(spec)
        if problem is not None:
            why[name] = f"not cached: {problem}; pin the task's code with version='...' to cache it"
            continue
        up = next((u for u in upstreams(spec) if u in why), None)
        if up is not None:
            why[name] = f"not cached: it reads from {up!r}, which is not cached"
    return why


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
    it read then (see :mod:`actorflow._kernel._cache_run`).
    """
    keys: dict[str, str | None] = {}
    pairs: dict[str, tuple[str, str] | None] = {}
    for name, spec in graph.tasks.items():
        ups = upstreams(spec)
        if (not spec.cache or not spec.checkpoint or hasattr(spec.fn, EXTERNAL_ATTR)
                or any(keys.get(u) is None for u in ups)):
            keys[name] = pairs[name] = None
            continue
        if spec.version is None:
            fp = fingerprint(spec)
            if fp.problem is not None:
                keys[name] = pairs[name] = None
                continue
        doc = {
            "task": name,
            "kind": spec.kind,
            "def": "version:" + spec.version if spec.version is not None else fp.digest,
            "init": _json_safe(_plain(spec.init)) if spec.kind == "collector" else None,
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
