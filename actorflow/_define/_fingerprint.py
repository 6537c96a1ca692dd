"""What a task's code depends on, as one fingerprint: the code the cache key and resume compare.

:func:`code_fingerprint` walks from a task's function(s) through what they reach in the user's own
code -- functions and classes they call or instantiate (transitively), module-level values they read,
attributes of the user's modules they name, closure values and defaults -- and returns its digest,
the source files it read and, when a value cannot be fingerprinted, why.

*User code* is every module outside the standard library, site-packages and actorflow itself: the
pipeline file, its package, modules next to it. What lies outside counts by its qualified name only
(a library upgrade is not seen: pin ``version=`` for that).

Values count by content: plain data (ints of any size, floats, text, bytes), tuples, lists, dicts and
sets of them, enums, paths, dates, decimals, UUIDs, compiled regular expressions, loggers (by name),
attrs classes and dataclasses (by fields), ``functools.partial`` (its function and arguments). A value
the code *writes to* (``counts[k] += 1``, ``seen.append(x)``, ``global n``) is its side effect, not its
input, and is left out. Anything else (an open file, a client, a lock) cannot be fingerprinted: the
walk says so, naming the value, and the task is not cached unless it pins ``version=``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import dis
import enum
import fractions
import functools
import hashlib
import inspect
import logging
import os
import pathlib
import re
import site
import sys
import sysconfig
import types
import uuid
from collections.abc import Iterable
from typing import Any, final

import attrs

__all__ = ["CodeFingerprint", "code_fingerprint", "is_user_file"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

#: Methods that change a container: a name they are called on is written to, not read.
_MUTATORS = frozenset({
    "append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear", "remove",
    "discard", "appendleft", "extendleft", "popleft", "rotate", "sort", "reverse", "subtract",
    "__setitem__", "__delitem__", "__iadd__",
})
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME", "LOAD_CLASSDEREF"})
_STORES = frozenset({"STORE_GLOBAL", "STORE_DEREF", "DELETE_GLOBAL", "DELETE_DEREF", "STORE_NAME"})
_SUBSCRIPT_WRITES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE"})


def _system_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages())  # Debian's dist-packages too
    roots.add(site.getusersitepackages())
    roots.add(os.path.dirname(os.path.abspath(__file__)))  # actorflow itself
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


#: Folders that hold installed packages wherever they are (a venv, Debian's dist-packages).
_PACKAGE_DIRS = {"site-packages", "dist-packages"}


_ROOTS = _system_roots()


def is_user_file(filename: str | None) -> bool:
    """Whether *filename* (a code object's ``co_filename``, a module's ``__file__``) is the user's
    code: not the standard library, site-packages, actorflow, nor a frozen or built-in module."""
    if not filename or filename.startswith("<frozen"):
        return False
    if filename.startswith("<"):  # exec'd text (<string>, a notebook cell): the user's
        return True
    real = os.path.realpath(filename)
    if any(real.startswith(root) for root in _ROOTS):
        return False
    return not _PACKAGE_DIRS.intersection(real.split(os.sep))


def _module_file(module: Any) -> str | None:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else None


def _class_is_user(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    if module is not None and _module_file(module) is not None:
        return is_user_file(_module_file(module))
    if cls.__module__ in ("builtins", *sys.builtin_module_names):
        return False
    return any(  # a class of a module not (or no longer) in sys.modules: by its methods' files
        is_user_file(f.__code__.co_filename) for f in vars(cls).values() if isinstance(f, types.FunctionType)
    )


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The global and free names *code* (and the code nested in it) reads, and those it writes to."""
    read: set[str] = set()
    written: set[str] = set()
    todo = [code]
    while todo:
        c = todo.pop()
        read.update(c.co_names)
        read.update(c.co_freevars)
        todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        written.update(_written(c))
    return read, written


def _written(code: types.CodeType) -> set[str]:
    """Names *code* assigns (``global n``), mutates through a method (``seen.append``) or stores
    into by subscript (``counts[k] += 1``, ``out[k] = v``): the task's side effects, not its inputs.

    Where the container of a subscript store cannot be told apart, nothing is taken for written:
    a value fingerprinted that need not be costs a cache miss, one left out could give a stale hit.
    """
    out: set[str] = set()
    ins = list(dis.get_instructions(code))
    line: list[str] = []  # global/free names loaded on the current line, in order
    augmented = False
    for k, i in enumerate(ins):
        if i.starts_line is not None and i.starts_line is not False:  # an int (3.11, 3.12) or a bool
            line, augmented = [], False
        if i.opname in _STORES:
            out.add(str(i.argval))
        elif i.opname in _LOADS:
            line.append(str(i.argval))
        elif i.opname in ("LOAD_ATTR", "LOAD_METHOD") and k and ins[k - 1].opname in _LOADS:
            if i.argval in _MUTATORS:
                out.add(str(ins[k - 1].argval))
        elif i.opname == "BINARY_OP" and str(i.argrepr).endswith("="):
            augmented = True
        elif i.opname in _SUBSCRIPT_WRITES:
            if k >= 2 and ins[k - 2].opname in _LOADS:  # NAME[key] = ...: the container, then a simple key
                out.add(str(ins[k - 2].argval))
            elif augmented and line:  # NAME[key] op= ...: the container is loaded first
                out.add(line[0])
    return out


def _code_digest(code: types.CodeType) -> str:
    """A code object's instructions, names and constants (not its line numbers)."""
    h = hashlib.sha256()
    todo = [code]
    while todo:
        c = todo.pop()
        h.update(c.co_code)
        h.update(repr((c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars, c.co_argcount)).encode())
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                todo.append(k)
            else:
                h.update(_const_text(k).encode())
    return h.hexdigest()


def _const_text(k: Any) -> str:
    if type(k) is int:
        return f"int:{k:x}"  # no repr(): ints beyond 4,300 digits have none
    if isinstance(k, tuple | frozenset):
        return "(" + ",".join(sorted(map(_const_text, k)) if isinstance(k, frozenset) else map(_const_text, k)) + ")"
    return f"{type(k).__name__}:{k!r}"


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


class _Unseen(Exception):
    """A value with no content fingerprint."""


@final
@attrs.frozen
class CodeFingerprint:
    """What :func:`code_fingerprint` found.

    Attributes:
        digest: SHA-256 hex digest of everything seen.
        problem: why part of it cannot be fingerprinted (None: everything could).
        files: the user's source files the walk read.
    """

    digest: str
    problem: str | None
    files: frozenset[str]


@final
class _Walk:
    def __init__(self, values: bool = True) -> None:
        #: Fingerprint mutable values (dicts, lists, sets) and refuse what has no fingerprint; False:
        #: both count as ``<state>`` (the code a resume compares, see ``code_fingerprint``).
        self.values = values
        self.parts: list[str] = []
        self.seen: set[int] = set()
        self.problem: str | None = None
        self.files: set[str] = set()
        self._stack: set[int] = set()

    # -- code ------------------------------------------------------------------------------------

    def function(self, fn: types.FunctionType) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        code = fn.__code__
        self.files.add(code.co_filename)
        self.parts.append(f"def {fn.__module__}.{fn.__qualname__}\n{_source(fn)}\n{_code_digest(code)}")
        read, written = _names(code)
        glob = fn.__globals__
        for name in sorted(read - written):
            if name in glob:
                self.global_(fn, name, glob[name], read)
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            if name in written:
                continue
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (assigned later)
                continue
            self.value(f"{fn.__qualname__}: closure value {name!r}", value)
        for i, value in enumerate(fn.__defaults__ or ()):
            self.value(f"{fn.__qualname__}: default #{i + 1}", value)
        for name, value in sorted((fn.__kwdefaults__ or {}).items()):
            self.value(f"{fn.__qualname__}: default of {name!r}", value)

    def global_(self, fn: types.FunctionType, name: str, value: Any, read: set[str]) -> None:
        label = f"{fn.__qualname__}: module-level {name!r}"
        if isinstance(value, types.ModuleType):
            self.parts.append(f"module {name}={value.__name__}")
            if is_user_file(_module_file(value)):  # helpers.f(x): the attributes it names, seen too
                self.files.add(str(_module_file(value)))
                for attr in sorted(read):
                    if attr in vars(value) and not isinstance(vars(value)[attr], types.ModuleType):
                        self.value(f"{label}.{attr}", vars(value)[attr], f"{name}.{attr}")
            return
        self.value(label, value, name)

    def klass(self, cls: type) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        for c in cls.__mro__:
            if c is object or not _class_is_user(c):
                continue
            self.parts.append(f"class {c.__module__}.{c.__qualname__}\n{_source(c)}")
            for attr, member in sorted(vars(c).items()):
                fn = member.__func__ if isinstance(member, staticmethod | classmethod) else member
                if isinstance(fn, property):
                    for part in (fn.fget, fn.fset, fn.fdel):
                        if isinstance(part, types.FunctionType):
                            self.function(part)
                elif isinstance(fn, types.FunctionType):
                    if not fn.__code__.co_filename.startswith("<"):  # generated (attrs, dataclasses): from the
                        self.function(fn)  # fields the class's source shows; attrs' __hash__ holds a salted hash
                elif not attr.startswith("__") and isinstance(member, type):
                    self.value(f"{c.__qualname__}.{attr}", member)

    # -- values ----------------------------------------------------------------------------------

    def value(self, label: str, value: Any, name: str = "") -> None:
        try:
            text = self.token(value)
        except _Unseen as exc:
            if self.problem is None and self.values:
                self.problem = f"{label} ({exc}) cannot be fingerprinted"
            text = "<state>" if not self.values else f"<unseen {type(value).__module__}.{type(value).__qualname__}>"
        self.parts.append(f"{name or label}={text}")

    def token(self, v: Any) -> str:
        """*v* as stable text (code it reaches is walked); raises _Unseen when it has no content fingerprint."""
        t = type(v)
        if v is None or t in (bool, float, str, bytes, complex):
            return f"{t.__name__}:{v!r}"
        if isinstance(v, enum.Enum):
            return f"enum:{t.__module__}.{t.__qualname__}.{v.name}"
        if isinstance(v, int):
            return f"int:{int(v):x}"  # hex: ints of any size (repr() refuses past 4,300 digits)
        if isinstance(v, str | bytes | float):  # subclasses of plain types
            return f"{t.__name__}:{t.__mro__[1].__name__}:{v!r}"
        if isinstance(v, list | dict | set) and not self.values:
            return "<state>"
        if isinstance(v, tuple | list | dict | set | frozenset):
            return self._container(v)
        code = self._code_token(v)
        return code if code is not None else self._object_token(v)

    def _code_token(self, v: Any) -> str | None:
        """Functions, classes and the like (walked when they are the user's), else None."""
        if isinstance(v, types.FunctionType):
            if is_user_file(v.__code__.co_filename):
                self.function(v)
            return f"function:{v.__module__}.{v.__qualname__}"
        if isinstance(v, type):
            if _class_is_user(v):
                self.klass(v)
            return f"class:{v.__module__}.{v.__qualname__}"
        if isinstance(v, types.BuiltinFunctionType | types.MethodDescriptorType | types.WrapperDescriptorType):
            return f"builtin:{getattr(v, '__module__', None)}.{getattr(v, '__qualname__', repr(v))}"
        if isinstance(v, functools.partial):
            return f"partial:{self.token(v.func)}:{self.token(v.args)}:{self.token(v.keywords)}"
        if isinstance(v, types.MethodType):
            return f"method:{self.token(v.__func__)}:{self.token(v.__self__)}"
        return None

    def _object_token(self, v: Any) -> str:
        t = type(v)
        if isinstance(v, pathlib.PurePath | dt.date | dt.time | dt.timedelta | decimal.Decimal | uuid.UUID
                      | fractions.Fraction | range | slice):
            return f"{t.__qualname__}:{v!r}"
        if isinstance(v, re.Pattern):
            return f"pattern:{v.pattern!r}:{v.flags}"
        if isinstance(v, logging.Logger):
            return f"logger:{v.name}"
        if attrs.has(t) or dataclasses.is_dataclass(v):
            if _class_is_user(t):
                self.klass(t)
            fields = [a.name for a in attrs.fields(t)] if attrs.has(t) else [f.name for f in dataclasses.fields(v)]
            return f"record:{t.__module__}.{t.__qualname__}" + self._container({f: getattr(v, f) for f in fields})
        if t.__module__.split(".")[0] in ("typing", "types", "typing_extensions", "actorflow", "collections"):
            return f"{t.__qualname__}:" + _ADDRESS.sub("", repr(v))  # type aliases, markers such as af.SKIP
        raise _Unseen(f"a {t.__module__}.{t.__qualname__}")

    def _container(self, v: Any) -> str:
        if id(v) in self._stack:
            return "<cycle>"
        self._stack.add(id(v))
        try:
            t = type(v)
            head = t.__qualname__ if t in (tuple, list, dict, set, frozenset) else f"{t.__module__}.{t.__qualname__}"
            if isinstance(v, dict):
                body = ",".join(f"{self.token(k)}:{self.token(x)}" for k, x in v.items())
            elif isinstance(v, set | frozenset):
                body = ",".join(sorted(self.token(x) for x in v))
            else:
                body = ",".join(self.token(x) for x in v)
            return f"{head}[{body}]"
        finally:
            self._stack.discard(id(v))


def code_fingerprint(
    functions: Iterable[Any] = (), classes: Iterable[type] = (), values: bool = True
) -> CodeFingerprint:
    """The fingerprint of *functions* and *classes* and of all the user's code and values they reach
    (see the module docstring).

    With *values* False, mutable values (dicts, lists, sets) and values with no fingerprint count
    only as being there: what a resume compares is the code, while such values are the program's
    state, which may change as it runs (a module-level registry, a dict of switches)."""
    walk = _Walk(values)
    for fn in functions:
        fn = inspect.unwrap(fn)
        if isinstance(fn, types.FunctionType):
            walk.function(fn)
        else:
            walk.value("the task's function", fn)
    for cls in classes:
        walk.klass(cls)
    digest = hashlib.sha256("\n".join(walk.parts).encode("utf-8", "surrogatepass")).hexdigest()
    files = frozenset(f for f in walk.files if is_user_file(f) and not f.startswith("<"))
    return CodeFingerprint(digest, walk.problem, files)
