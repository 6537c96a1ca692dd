"""Model-based differential test: random valid flows run by actorflow against a plain interpreter.

Hypothesis draws a *description* of a flow (plain data: a list of :class:`Node`), from which

1. an actorflow :class:`~actorflow.Flow` is built, each task a function generated from source text
   (sync or async, plain or generator, inputs in any parameter order, options, ``af.Seq``), and
2. a sequential reference interpreter (lists, no actorflow) computes what every product must be.

The shapes covered: chains, fan-out, zips of same-level streams (items whose partner was skipped
are dropped), generator tasks yielding 0..k items per input, ``af.SKIP``, collectors with and
without ``per=`` (one product per item of the ``per`` stream, empty groups included, a fresh
``init`` per group), ``list[int]`` inputs (the whole stream; ``list[list[int]]`` over a stream of
lists), collector and task products read as constants, sources and generator tasks fed only such
final inputs, keyword-only inputs, sync and async handlers, random ``capacity``, ``batch_size`` and
``concurrency``, and now and then a source of a few thousand items with small mailboxes so that
backpressure happens.

Three properties: a plain run, a run with a store (and a second run of the same flow on it, served
from the product cache), and runs cut off at a random moment then resumed from the store.

Shapes the kernel issue lists as hanging are generated too (they are also regular tests in
``test_kernel_bugs.py``; ``ACTORFLOW_MODEL_HANG_SHAPES=0`` leaves them out):

- a zip whose one input can fall far behind the other (a long run of items without a partner, or
  a ``per=`` collector upstream, which only emits a group once the input moved past it): such a
  zip gets a capacity larger than the longest such run;
- wait cycles through final inputs: a task (or a zip) that stops consuming a stream until a product
  is complete whose completion needs that very stream to move (e.g. ``left(a: int, b: list[int])``
  with ``right(b: int, a: list[int])``, or a zip with a generator fed ``list[...]`` of its other
  input). ``per=`` is only ever a stream the collector's input descends from, at its level or above.

Every run is bounded by ``trio.fail_after`` so that a hang fails the test instead of freezing it.

The default profile runs a fixed, derandomized set of examples (CI). For a long random search:
``ACTORFLOW_HYPOTHESIS_PROFILE=long`` (1000 examples per property) or
``ACTORFLOW_MODEL_EXAMPLES=<n>``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import trio
from hypothesis import HealthCheck, assume, event, given, note, reject, settings
from hypothesis import strategies as st

import actorflow as af

# -- settings ----------------------------------------------------------------------------------------

_LONG = os.environ.get("ACTORFLOW_HYPOTHESIS_PROFILE", "") == "long"
_EXAMPLES = int(os.environ.get("ACTORFLOW_MODEL_EXAMPLES", "0") or 0)

#: Also generate the shapes the kernel issue lists as hanging (zips with a lagging side, wait cycles
#: through final inputs); a DefinitionError refusing one of them rejects the example.
HANG_SHAPES = os.environ.get("ACTORFLOW_MODEL_HANG_SHAPES", "1") not in ("", "0")

#: Seconds one run may take before it counts as a hang.
RUN_TIMEOUT = 20.0
#: Upper bound on the items all streams of one flow carry (keeps each example well under a second).
MAX_TOTAL_ITEMS = 30_000


def _limit_shrinking(seconds: int) -> None:
    """Hypothesis shrinks a failure for up to 5 minutes; in CI report it sooner (best effort: an
    internal constant, left alone if a Hypothesis release drops it)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        return
    if isinstance(getattr(engine, "MAX_SHRINKING_SECONDS", None), int):
        engine.MAX_SHRINKING_SECONDS = seconds


if not (_LONG or _EXAMPLES):
    _limit_shrinking(30)


def model_settings(ci_examples: int) -> settings:
    """Fixed and derandomized in CI; ``ACTORFLOW_HYPOTHESIS_PROFILE=long`` or ``ACTORFLOW_MODEL_EXAMPLES``
    for a long random search."""
    examples = _EXAMPLES or (1000 if _LONG else ci_examples)
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=not (_LONG or _EXAMPLES),
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# -- the description ---------------------------------------------------------------------------------

Seq = int | tuple[int, ...]
Items = list[tuple[Seq, Any]]

KINDS = ("source", "map", "zip", "gen", "collect", "final", "stateful")
PREFIX = {
    "source": "src", "map": "map", "zip": "zip", "gen": "gen", "collect": "col", "final": "fin", "stateful": "sta",
}


@dataclass(frozen=True)
class Node:
    """One task of a random flow, as plain data.

    kinds: ``source`` (a generator fed only options and final inputs), ``map`` (one item per item,
    may return ``af.SKIP``), ``zip`` (two streaming inputs), ``gen`` (0..fan items per item),
    ``collect`` (a fold, ``per=`` optional), ``final`` (a task fed only final inputs), ``stateful``
    (a task class keeping a running total in an instance attribute: its state must survive a resume).
    """

    name: str
    kind: str
    streams: tuple[str, ...] = ()  # streaming inputs (items one at a time)
    lists: tuple[str, ...] = ()  # streams read whole, as list[int]
    consts: tuple[str, ...] = ()  # products read as constants (collectors, final tasks)
    order: tuple[str, ...] = ()  # parameter order: inputs and the options "n", "k" and "seq"
    is_async: bool = False
    sleepy: bool = False  # an async handler that awaits trio.sleep(0) now and then
    a: int = 1
    b: int = 0
    m: int = 97
    skip: tuple[int, int] | None = None  # map/zip: SKIP when the value % skip[0] == skip[1]
    fan: int = 2  # gen: at most fan items per input item
    n: int = 0  # source: default of option n (how many items before the final inputs' values)
    set_n: int | None = None  # source: n given in the run's options
    k: int | None = None  # default of option k (None: the task has no option k)
    set_k: int | None = None  # k given in the run's options
    seq: bool = False  # map/gen: takes `seq: af.Seq` and adds it into the value
    kwonly: int | None = None  # parameters from this position on are keyword-only (a bare `*`)
    per: str | None = None
    fold: str = "sum"  # collect: "sum" (int) or "list" (list[int], appended in place)
    init: int = 0
    finish: str | None = None  # collect: None, "sync", "async" or "bare" (a lambda: no annotations)
    executor: str | None = None  # map: "thread" runs the (sync) handler on a thread executor
    as_task: bool = False  # source defined with @flow.task (a generator task fed only final inputs)
    capacity: int | None = None
    batch_size: int | None = None
    concurrency: int | None = None

    @property
    def finals(self) -> tuple[str, ...]:
        return (*self.lists, *self.consts)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.streams, *self.lists, *self.consts)

    @property
    def streaming(self) -> bool:
        return self.kind in ("source", "map", "zip", "gen", "stateful") or (
            self.kind == "collect" and self.per is not None
        )

    @property
    def product_type(self) -> str:
        """Annotation of an item (streams) or of the product (the rest)."""
        return "list[int]" if self.kind == "collect" and self.fold == "list" else "int"

    @property
    def n_value(self) -> int:
        return self.n if self.set_n is None else self.set_n

    @property
    def k_value(self) -> int:
        if self.k is None:
            return 0
        return self.k if self.set_k is None else self.set_k


def _settings_text(node: Node) -> str:
    kw = {"capacity": node.capacity, "batch_size": node.batch_size, "concurrency": node.concurrency}
    return ", ".join(f"{k}={v}" for k, v in kw.items() if v is not None)


def helper_source(node: Node) -> str:
    """The pure per-item arithmetic of *node*, shared by its task function and the reference."""
    name, a, b, m = node.name, node.a, node.b, node.m
    skip = "" if node.skip is None else f"\n    if r % {node.skip[0]} == {node.skip[1]}:\n        return None"
    if node.kind == "source":
        return f"def _h_{name}(v):\n    return (v * {a} + {b}) % {m}\n"
    if node.kind == "map":
        return f"def _h_{name}(x, e):\n    r = (x * {a} + {b} + e) % {m}{skip}\n    return r\n"
    if node.kind == "zip":
        return f"def _h_{name}(x, y, e):\n    r = (x * {a} + y * {b} + e) % {m}{skip}\n    return r\n"
    if node.kind == "gen":
        return (
            f"def _h_{name}(x, e):\n"
            f"    return [(x * {a} + j * {b} + e) % {m} for j in range((x + e) % {node.fan + 1})]\n"
        )
    if node.kind == "collect":
        if node.fold == "sum":
            text = f"def _h_{name}(acc, x, e):\n    return acc + x * {a} + {b} + e\n"
            fin = "acc * 3 + 1"
        else:
            text = f"def _h_{name}(acc, x, e):\n    acc.append((x * {a} + e) % {m})\n    return acc\n"
            fin = "acc[::-1]"
        if node.finish is not None:
            t = node.product_type
            text += f"\n\ndef _finref_{name}(acc: {t}) -> {t}:\n    return {fin}\n"
            if node.finish == "async":
                text += f"\n\nasync def _fin_{name}(acc: {t}) -> {t}:\n    return _finref_{name}(acc)\n"
            elif node.finish == "bare":
                text += f"\n\n_fin_{name} = lambda acc: _finref_{name}(acc)  # noqa: E731\n"
            else:
                text += f"\n\n_fin_{name} = _finref_{name}\n"
        return text
    if node.kind == "stateful":
        return f"def _h_{name}(total, x):\n    total = (total + x) % {m}\n    return total, (total * {a} + {b}) % {m}\n"
    assert node.kind == "final"
    return f"def _h_{name}(e):\n    return e * {a} + {b}\n"


def stateful_source(node: Node) -> str:
    """A task class keeping a running total in ``self.total`` (its state across items and resumes)."""
    (x,) = node.streams
    capacity = f"    capacity = {node.capacity}\n\n" if node.capacity is not None else ""
    return (
        f"class {node.name}(af.Task):\n{capacity}"
        "    def __init__(self):\n        self.total = 0\n\n"
        f"    def run(self, {x}: int) -> int:\n"
        f"        self.total, out = _h_{node.name}(self.total, {x})\n"
        "        return out\n"
    )


def parameters(node: Node, types: dict[str, str]) -> list[str]:
    """The parameter list of *node*'s function, in its drawn order."""
    params: list[str] = []
    for p in node.order:
        if p in node.streams:
            params.append(f"{p}: int")
        elif p in node.lists:
            params.append(f"{p}: list[{types[p]}]")  # list[list[int]] over a stream of list[int]
        elif p in node.consts:
            params.append(f"{p}: {types[p]}")
        elif p == "n":
            params.append(f"n: int = {node.n}")
        elif p == "k":
            params.append(f"k: int = {node.k}")
        elif p == "seq":
            params.append("seq: af.Seq")
        else:  # pragma: no cover - a bug in the generator
            raise AssertionError(p)
    if node.kwonly is not None and node.kwonly < len(params):
        params.insert(node.kwonly, "*")  # the parameters after it are keyword-only
    return params


def task_source(node: Node, types: dict[str, str]) -> str:
    """The task function of *node* (its name is the task's name; its parameters wire it)."""
    if node.kind == "stateful":
        return stateful_source(node)
    params = parameters(node, types)
    extra = f"_extra([{', '.join(node.finals)}])" + (" + k" if node.k is not None else "")
    if node.seq:
        extra += " + _seqterm(seq)"
    name, sig = node.name, ", ".join(params)
    adef = "async def" if node.is_async else "def"
    if node.kind == "source":
        wait = "        if v % 7 == 0:\n            await trio.sleep(0)\n" if node.sleepy else ""
        return (
            f"{adef} {name}({sig}) -> af.Stream[int]:\n"
            f"    for v in _basis(n, [{', '.join(node.finals)}]):\n{wait}"
            f"        yield _h_{name}(v)\n"
        )
    if node.kind in ("map", "zip"):
        wait = f"    if {node.streams[0]} % 5 == 0:\n        await trio.sleep(0)\n" if node.sleepy else ""
        args = ", ".join(node.streams)
        return (
            f"{adef} {name}({sig}) -> int:\n{wait}"
            f"    r = _h_{name}({args}, {extra})\n"
            "    return af.SKIP if r is None else r\n"
        )
    if node.kind == "gen":
        (x,) = node.streams
        if node.is_async:
            wait = "        if v % 3 == 0:\n            await trio.sleep(0)\n" if node.sleepy else ""
            return (
                f"async def {name}({sig}) -> af.Stream[int]:\n"
                f"    for v in _h_{name}({x}, {extra}):\n{wait}"
                "        yield v\n"
            )
        return f"def {name}({sig}) -> af.Stream[int]:\n    yield from _h_{name}({x}, {extra})\n"
    if node.kind == "collect":
        (x,) = node.streams
        t = node.product_type
        wait = f"    if {x} % 5 == 0:\n        await trio.sleep(0)\n" if node.sleepy else ""
        return f"{adef} {name}(acc: {t}, {sig}) -> {t}:\n{wait}    return _h_{name}(acc, {x}, {extra})\n"
    assert node.kind == "final"
    wait = "    await trio.sleep(0)\n" if node.sleepy else ""
    return f"{adef} {name}({sig}) -> int:\n{wait}    return _h_{name}({extra})\n"


def decorator_text(node: Node) -> str:
    extra = _settings_text(node)
    if node.kind == "collect":
        parts = [f"init={[] if node.fold == 'list' else node.init}"]
        if node.finish is not None:
            parts.append(f"finish=_fin_{node.name}")
        if node.per is not None:
            parts.append(f"per={node.per!r}")
        if node.capacity is not None:
            parts.append(f"capacity={node.capacity}")
        return f"@flow.collector({', '.join(parts)})"
    if node.kind == "source" and not node.as_task:
        kw = {"capacity": node.capacity, "batch_size": node.batch_size}
        text = ", ".join(f"{k}={v}" for k, v in kw.items() if v is not None)
        return f"@flow.source({text})" if text else "@flow.source"
    if node.kind == "stateful":
        return f"# flow.add({node.name}, name={node.name!r})"
    if node.executor is not None:
        extra = f"{extra}, executor={node.executor!r}" if extra else f"executor={node.executor!r}"
    return f"@flow.task({extra})" if extra else "@flow.task"


# -- pure helpers the generated code calls -----------------------------------------------------------


def _weight(value: Any) -> int:
    return value if isinstance(value, int) else len(value) + sum(map(_weight, value))


def extra_of(values: list[Any]) -> int:
    """How final inputs enter a task's arithmetic: ints as they are, lists by length and sum."""
    return sum(map(_weight, values)) % 101


def _flat(value: Any) -> list[int]:
    return [value] if isinstance(value, int) else [x for v in value for x in _flat(v)]


def basis(n: int, finals: list[Any]) -> list[int]:
    """What a source iterates over: range(n), then its final inputs' values (lists flattened)."""
    return list(range(n)) + _flat(finals)


def seqterm(seq: Seq) -> int:
    return seq if isinstance(seq, int) else sum(seq)


def child_seq(seq: Seq, j: int) -> Seq:
    return (seq, j) if isinstance(seq, int) else (*seq, j)


def seq_prefix(seq: Seq, depth: int) -> Seq:
    if isinstance(seq, int):
        return seq
    return seq[0] if depth == 1 else seq[:depth]


# -- the model: a description, its generated code and its reference products ----------------------


class Model:
    """A description, its generated code (namespace *ns*) and what the reference interpreter computed."""

    def __init__(self, nodes: list[Node], code: str, ns: dict[str, Any]) -> None:
        self.nodes = nodes
        self.code = code
        self.ns = ns
        self.streams: dict[str, Items] = {}
        self.expected: dict[str, Any] = {}

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example: a runnable script
        return 'Model("""\n' + self.script() + '""")'

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    @property
    def options(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for node in self.nodes:
            if node.set_n is not None:
                out.setdefault(node.name, {})["n"] = node.set_n
            if node.set_k is not None:
                out.setdefault(node.name, {})["k"] = node.set_k
        return out

    def script(self) -> str:
        return (
            "import actorflow as af, trio\n"
            "from tests.test_model import basis as _basis, extra_of as _extra, seqterm as _seqterm\n\n"
            'flow = af.Flow("model")\n\n'
            + self.code
            + f"\nresult = af.run(flow, {self.options!r})\n# expected: {self.expected!r:.600}\n"
        )

    def build(self) -> af.Flow:
        """A fresh actorflow flow from the generated functions."""
        flow = af.Flow("model")
        for i, node in enumerate(self.nodes):
            try:
                self._define(flow, node)
            except af.DefinitionError:
                # with ACTORFLOW_MODEL_HANG_SHAPES, refusing a shape that could hang is a valid answer
                if HANG_SHAPES and deadlocks(self.nodes[: i + 1]):
                    reject()
                raise
        return flow

    def _define(self, flow: af.Flow, node: Node) -> None:
        fn = self.ns[node.name]
        kw: dict[str, Any] = {
            k: v
            for k, v in (("capacity", node.capacity), ("batch_size", node.batch_size),
                         ("concurrency", node.concurrency))
            if v is not None
        }
        if node.kind == "collect":
            kw.pop("batch_size", None)
            kw.pop("concurrency", None)
            init: Any = [] if node.fold == "list" else node.init
            finish = self.ns[f"_fin_{node.name}"] if node.finish is not None else None
            flow.collector(init=init, finish=finish, per=node.per, **kw)(fn)
        elif node.kind == "source" and not node.as_task:
            kw.pop("concurrency", None)
            flow.source(**kw)(fn)
        elif node.kind == "stateful":
            flow.add(fn, name=node.name)  # its settings are class attributes
        else:
            if node.executor is not None:
                kw["executor"] = node.executor
            flow.task(**kw)(fn)


def compile_model(nodes: list[Node]) -> Model:
    types = {n.name: n.product_type for n in nodes}
    ns: dict[str, Any] = {"af": af, "trio": trio, "_extra": extra_of, "_basis": basis, "_seqterm": seqterm}
    chunks = []
    for node in nodes:
        helper = helper_source(node)
        fn = task_source(node, types)
        for text in (helper, fn):
            exec(compile(text, f"<model {node.name}>", "exec", dont_inherit=True), ns)
        chunks.append(f"{helper}\n\n{decorator_text(node)}\n{fn}")
    model = Model(nodes, "\n\n".join(chunks), ns)
    model.streams, model.expected = evaluate(nodes, ns)
    return model


# -- the reference interpreter -------------------------------------------------------------------------


def depths(nodes: list[Node]) -> dict[str, int]:
    """Generator level of each stream (0 for products), as actorflow defines it."""
    out: dict[str, int] = {}
    for node in nodes:
        if node.kind == "source":
            out[node.name] = 1
        elif node.kind in ("map", "zip", "stateful"):
            out[node.name] = out[node.streams[0]]
        elif node.kind == "gen":
            out[node.name] = out[node.streams[0]] + 1
        elif node.kind == "collect" and node.per is not None:
            out[node.name] = out[node.per]
        else:
            out[node.name] = 0
    return out


def _fold_per(node: Node, items: Items, groups: Items, depth: int, fold: Callable[[Any, Any], Any],
              init: Any, fin: Callable[[Any], Any]) -> Items:
    """A per= collector: one product per item of the per stream, in its order, empty groups included."""
    accs: dict[Seq, Any] = {}
    for s, x in items:
        key = seq_prefix(s, depth)
        accs[key] = fold(accs[key] if key in accs else copy.deepcopy(init), x)
    out = [(g, fin(accs.pop(g) if g in accs else copy.deepcopy(init))) for g, _ in groups]
    return out + [(g, fin(accs.pop(g))) for g in sorted(accs)]  # items of no group: never in valid flows


def _step(node: Node, streams: dict[str, Items], consts: dict[str, Any], level: dict[str, int],
          finals: list[Any], h: Callable[..., Any], fin: Callable[[Any], Any]) -> None:
    """Evaluate one node into *streams* or *consts*."""
    e = extra_of(finals) + node.k_value
    if node.kind == "source":
        streams[node.name] = [(i, h(v)) for i, v in enumerate(basis(node.n_value, finals))]
    elif node.kind == "map":
        outs = [(s, h(x, e + (seqterm(s) if node.seq else 0))) for s, x in streams[node.streams[0]]]
        streams[node.name] = [(s, r) for s, r in outs if r is not None]
    elif node.kind == "zip":
        left, right = (streams[x] for x in node.streams)
        partner = dict(right)
        outs = [(s, h(x, partner[s], e)) for s, x in left if s in partner]
        streams[node.name] = [(s, r) for s, r in outs if r is not None]
    elif node.kind == "stateful":
        total, out = 0, []
        for s, x in streams[node.streams[0]]:
            total, r = h(total, x)
            out.append((s, r))
        streams[node.name] = out
    elif node.kind == "gen":
        streams[node.name] = [
            (child_seq(s, j), v)
            for s, x in streams[node.streams[0]]
            for j, v in enumerate(h(x, e + (seqterm(s) if node.seq else 0)))
        ]
    elif node.kind == "collect":
        init: Any = [] if node.fold == "list" else node.init
        items = streams[node.streams[0]]
        if node.per is None:
            acc = copy.deepcopy(init)
            for _, x in items:
                acc = h(acc, x, e)
            consts[node.name] = fin(acc)
        else:
            fold = functools.partial(_apply_fold, h, e)
            streams[node.name] = _fold_per(node, items, streams[node.per], level[node.per], fold, init, fin)
    else:
        consts[node.name] = h(e)


def _apply_fold(h: Callable[..., Any], e: int, acc: Any, x: Any) -> Any:
    return h(acc, x, e)


def evaluate(nodes: list[Node], ns: dict[str, Any]) -> tuple[dict[str, Items], dict[str, Any]]:
    """Run the description sequentially with lists: every stream, then the products of the run."""
    streams: dict[str, Items] = {}
    consts: dict[str, Any] = {}
    level = depths(nodes)
    for node in nodes:
        finals = [[v for _, v in streams[x]] for x in node.lists] + [consts[x] for x in node.consts]
        fin = ns.get(f"_finref_{node.name}", _identity)
        _step(node, streams, consts, level, finals, ns[f"_h_{node.name}"], fin)
    read = {x for node in nodes for x in node.inputs}
    products: dict[str, Any] = {}
    for node in nodes:
        if node.name in consts:
            products[node.name] = consts[node.name]
        elif node.kind == "collect" or node.name not in read:
            products[node.name] = [v for _, v in streams[node.name]]
    return streams, products


def _identity(acc: Any) -> Any:
    return acc


# -- which shapes are generated ---------------------------------------------------------------------------


def stream_ancestors(nodes: list[Node], name: str) -> set[str]:
    """Streams whose items reach *name* through streaming inputs (itself included), as actorflow computes it."""
    by = {n.name: n for n in nodes}
    out: set[str] = set()
    todo = [name]
    while todo:
        node = by[todo.pop()]
        if node.streaming and node.name not in out:
            out.add(node.name)
            todo.extend(node.streams)
    return out


def lineage(nodes: list[Node], name: str) -> set[str]:
    """Streams whose items are the ancestors of *name*'s items by sequence number (valid ``per=`` targets).

    A ``per=`` collector's items are numbered like its ``per`` stream, so lineage goes on there."""
    by = {n.name: n for n in nodes}
    out: set[str] = set()
    todo = [name]
    while todo:
        node = by[todo.pop()]
        if node.name in out:
            continue
        out.add(node.name)
        if node.kind == "collect":
            assert node.per is not None
            todo.append(node.per)
        else:
            todo.extend(node.streams)
    return out


def deadlocks(nodes: list[Node]) -> bool:
    """True when some actor could wait on itself through bounded mailboxes and final inputs.

    States: C(x) = x can complete, P(x) = x keeps taking items from its inboxes, Q(x) = x can produce.
    C(x) needs every input complete and every streaming consumer of x to keep taking; P(x) and Q(x)
    need x's final inputs complete (an actor waits for them before it starts); P(x) needs its
    consumers to keep taking; a zip takes from one input only while the other produces. A cycle is
    a possible deadlock (this rejects a bit more than what really hangs).
    """
    consumers: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        for x in node.streams:
            consumers[x].append(node.name)
        if node.per is not None:
            consumers[node.per].append(node.name)
    edges: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for node in nodes:
        name = node.name
        for up in (*node.inputs, *((node.per,) if node.per else ())):
            edges["C", name].add(("C", up))
        for d in consumers[name]:
            edges["C", name].add(("P", d))
            edges["P", name].add(("P", d))
        for f in node.finals:
            edges["P", name].add(("C", f))
            edges["Q", name].add(("C", f))
        for x in node.streams:
            edges["Q", name].add(("Q", x))
            if len(node.streams) > 1:
                edges["P", name].add(("Q", x))
    state: dict[tuple[str, str], int] = {}

    def visit(v: tuple[str, str]) -> bool:
        state[v] = 1
        for w in edges.get(v, ()):
            if state.get(w) == 1 or (w not in state and visit(w)):
                return True
        state[v] = 2
        return False

    return any(v not in state and visit(v) for v in list(edges))


def origin(nodes: list[Node], name: str) -> str:
    """The source, generator or per= collector a stream's items come from one to one."""
    by = {n.name: n for n in nodes}
    node = by[name]
    while node.kind in ("map", "zip", "stateful"):
        node = by[node.streams[0]]
    return node.name


def forbidden(nodes: list[Node], node: Node) -> bool:
    """Whether *node* may not be added after *nodes*: a possible wait cycle (with
    ``ACTORFLOW_MODEL_HANG_SHAPES`` nothing is: a refusal at definition rejects the example)."""
    return not HANG_SHAPES and deadlocks([*nodes, node])


def longest_unmatched_run(left: list[Seq], right: list[Seq]) -> int:
    """The most items one input of a zip delivers in a row while the other delivers none."""
    a, b = set(left), set(right)
    merged = sorted(a | b)
    best = run_a = run_b = 0
    for s in merged:
        if s in a and s in b:
            run_a = run_b = 0
        elif s in a:
            run_a, run_b = run_a + 1, 0
        else:
            run_a, run_b = 0, run_b + 1
        best = max(best, run_a, run_b)
    return best


def zip_capacity(nodes: list[Node], streams: dict[str, Items], node: Node) -> int:
    """The capacity a zip needs so that neither input can fill its buffers while the other lags
    (a zip with less hangs today: kernel issue, see test_kernel_bugs.py)."""
    sides = [[s for s, _ in streams[x]] for x in node.streams]
    lagging = any(
        by.kind == "collect" for x in node.streams for by in nodes if by.name in stream_ancestors(nodes, x)
    )
    if lagging:  # a per= collector emits a group only once its input moved past it
        return max(map(len, sides)) + 1
    return longest_unmatched_run(*sides) + 1


# -- strategies ----------------------------------------------------------------------------------------


def _maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any], *, chance: int = 2) -> Any:
    """None most of the time, else a draw (1 in *chance*)."""
    return draw(strategy) if draw(st.integers(0, chance - 1)) == 0 else None


def draw_finals(
    draw: st.DrawFn, nodes: list[Node], kind: str, streams: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Final inputs (list[int] streams and constants) that make no wait cycle with *streams*."""
    int_streams = [n.name for n in nodes if n.streaming and n.product_type == "int"]
    consts = [n.name for n in nodes if not n.streaming]
    if kind != "final" and draw(st.integers(0, 2 if kind != "source" else 1)) != 0:
        return (), ()

    def fits(extra: Node) -> bool:
        return not forbidden(nodes, replace(extra, name="probe", kind=kind, streams=streams))

    all_streams = [n.name for n in nodes if n.streaming]  # per= collectors of lists read as list[list[int]]
    list_ok = [x for x in all_streams if x not in streams and fits(Node("", "", lists=(x,)))]
    const_ok = [x for x in consts if fits(Node("", "", consts=(x,)))]
    pool = [*list_ok, *const_ok]
    chosen = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)) if pool else []
    lists = tuple(x for x in chosen if x in list_ok)
    const_in = tuple(x for x in chosen if x in const_ok)
    if kind == "final" and not lists and not const_in:
        lists = (draw(st.sampled_from(int_streams)),)
    return lists, const_in


def draw_kind_fields(
    draw: st.DrawFn, nodes: list[Node], kind: str, streams: tuple[str, ...], has_finals: bool, big: bool
) -> dict[str, Any]:
    """Settings and arithmetic particular to *kind*."""
    small = st.integers(1, 64)
    fields: dict[str, Any] = {}
    if kind == "collect":
        fields["fold"] = draw(st.sampled_from(["sum", "list"]))
        fields["init"] = draw(st.integers(0, 5))
        fields["finish"] = draw(st.sampled_from([None, "sync", "async", "bare"]))
        fields["per"] = _maybe(draw, st.sampled_from(sorted(lineage(nodes, streams[0]))))
        if fields["per"] is not None and fields["fold"] == "list" and draw(st.booleans()):
            fields["fold"] = "sum"
    elif kind != "final":
        fields["batch_size"] = draw(st.integers(1, 16)) if big else _maybe(draw, small)
    if kind in ("map", "zip", "gen"):
        fields["concurrency"] = draw(st.sampled_from([None, None, 1, 2, 3, 4]))
        fields["skip"] = _maybe(draw, st.tuples(st.integers(1, 5), st.integers(0, 1)))  # (1, 0) drops every item
        fields["seq"] = kind != "zip" and draw(st.integers(0, 3)) == 0
        if kind == "gen":
            fields["fan"] = draw(st.integers(0, 3))
        if kind == "map" and draw(st.integers(0, 5)) == 0:
            fields["executor"] = "thread"
    if kind == "source":
        fields["as_task"] = has_finals and draw(st.booleans())
        sizes = st.integers(1500, 3000) if big and not nodes else st.integers(0, 5 if has_finals else 60)
        fields["n"] = draw(sizes)
        fields["set_n"] = _maybe(draw, sizes, chance=3)
    elif draw(st.integers(0, 3)) == 0:
        fields["k"] = draw(st.integers(0, 9))
        fields["set_k"] = _maybe(draw, st.integers(0, 9))
    return fields


def draw_node(draw: st.DrawFn, index: int, nodes: list[Node], big: bool) -> Node:
    level = depths(nodes)
    int_streams = [n.name for n in nodes if n.streaming and n.product_type == "int"]
    pairs = [
        (x, y) for x, y in itertools.combinations(int_streams, 2)
        if level[x] == level[y] and not forbidden(nodes, Node("probe", "zip", streams=(x, y)))
    ]
    # favour zips of generator outputs (tuple sequence numbers) and of streams with different origins
    favoured = [p for p in pairs if level[p[0]] > 1 or origin(nodes, p[0]) != origin(nodes, p[1])]
    deep = [p for p in pairs if level[p[0]] > 1]
    pairs += favoured * 3
    kinds = ["source"]
    if int_streams:
        kinds += ["source", "map", "map", "zip", "zip", "gen", "gen", "collect", "collect", "final", "stateful"]
    kinds += ["zip"] * (2 if deep else 0)
    kind = draw(st.sampled_from(kinds))
    if kind == "zip" and not pairs:
        kind = "map"
    is_async = draw(st.booleans())
    fields: dict[str, Any] = {
        "is_async": is_async,
        "sleepy": is_async and draw(st.booleans()),
        "a": draw(st.integers(1, 7)),
        "b": draw(st.integers(0, 9)),
        "m": draw(st.integers(2, 200)),
        "capacity": draw(st.integers(1, 8)) if big else _maybe(draw, st.integers(1, 64)),
    }
    streams: tuple[str, ...] = ()
    if kind in ("map", "zip", "gen", "collect", "stateful"):
        streams = draw(st.sampled_from(pairs if kind == "zip" else [(x,) for x in int_streams]))
    if kind == "stateful":  # a task class: one streaming input, its state in an attribute
        node = Node(f"{PREFIX[kind]}{index}", kind, streams=streams, order=streams, a=fields["a"], b=fields["b"],
                    m=fields["m"], capacity=fields["capacity"])
        return node
    lists, const_in = draw_finals(draw, nodes, kind, streams)
    fields.update(draw_kind_fields(draw, nodes, kind, streams, bool(lists or const_in), big))
    node = Node(f"{PREFIX[kind]}{index}", kind, streams=streams, lists=lists, consts=const_in, **fields)
    if forbidden(nodes, node):  # per= adds waits the final inputs were not checked against
        assert kind not in ("source", "final"), node  # nothing waits on a node just added
        node = replace(node, lists=(), consts=())
    required = [*node.inputs, *(("seq",) if node.seq else ())]
    defaulted = [*(("n",) if kind == "source" else ()), *(("k",) if node.k is not None else ())]
    order = [*draw(st.permutations(required)), *draw(st.permutations(defaulted))]
    kwonly = _maybe(draw, st.integers(0, len(order) - 1), chance=4) if order else None
    if node.executor is not None and (node.is_async or node.seq):  # an executor runs plain functions, no af.Seq
        node = replace(node, executor=None)
    return replace(node, order=tuple(order), kwonly=kwonly)


@st.composite
def models(draw: st.DrawFn) -> Model:
    big = draw(st.integers(0, 7)) == 0
    count = draw(st.integers(2, 7))
    nodes: list[Node] = []
    for i in range(count):
        nodes.append(draw_node(draw, i, nodes, big))
    ns: dict[str, Any] = {"af": af, "trio": trio, "_extra": extra_of, "_basis": basis, "_seqterm": seqterm}
    for node in nodes:
        exec(compile(helper_source(node), f"<model {node.name}>", "exec", dont_inherit=True), ns)
    streams, _ = evaluate(nodes, ns)
    assume(sum(len(s) for s in streams.values()) <= MAX_TOTAL_ITEMS)
    for i, node in enumerate(nodes):
        if node.kind == "zip" and not HANG_SHAPES:
            need = zip_capacity(nodes, streams, node)
            if need > (node.capacity or 4096):
                nodes[i] = replace(node, capacity=need)
    return compile_model(nodes)


# -- running -----------------------------------------------------------------------------------------------


def run_trio(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """``trio.run(fn, ...)`` under a timeout, so that a hang fails instead of freezing the suite."""

    async def main() -> Any:
        with trio.fail_after(RUN_TIMEOUT):
            return await fn(*args, **kwargs)

    try:
        return trio.run(main)
    except trio.TooSlowError:
        raise AssertionError(f"the run did not finish within {RUN_TIMEOUT:g} s: it hangs") from None


def check(model: Model, actual: dict[str, Any], what: str) -> None:
    expected = model.expected
    if actual != expected:
        missing = "<none>"
        wrong = sorted(k for k in expected.keys() | actual.keys() if actual.get(k, missing) != expected.get(k, missing))
        lines = [f"{what}: products differ for {wrong}"]
        for k in wrong:
            lines.append(f"  {k}: actorflow {actual.get(k, '<none>')!r:.300}")
            lines.append(f"  {k}: reference {expected.get(k, '<none>')!r:.300}")
        raise AssertionError("\n".join(lines))


def products(result: af.RunResult) -> dict[str, Any]:
    return {k: result[k] for k in result}


@contextmanager
def temp_store() -> Iterator[str]:
    """A fresh store directory per example (function-scoped tmp_path and Hypothesis do not mix)."""
    root = tempfile.mkdtemp(prefix="actorflow-model-")
    try:
        yield os.path.join(root, "store")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def batch_estimate(model: Model) -> int:
    """About how many batch events a run of *model* publishes (to place a cut somewhere inside it)."""
    total = 0
    for node in model.nodes:
        items = len(model.streams.get(node.name, ())) + sum(len(model.streams[x]) for x in node.streams)
        total += math.ceil(items / (node.batch_size or 1024)) + 1
    return total


def describe(model: Model) -> None:
    """Label the example for ``--hypothesis-show-statistics``."""
    kinds = {n.kind for n in model.nodes}
    for kind in sorted(kinds):
        event(f"has {kind}")
    if any(n.kind == "collect" and n.per for n in model.nodes):
        event("has per= collector")
    if any(n.finals and n.streams for n in model.nodes):
        event("has streaming + final inputs")
    if any(n.kind == "source" and n.finals for n in model.nodes):
        event("has source fed final inputs")
    if any(n.skip for n in model.nodes):
        event("has skip")
    if any((n.concurrency or 1) > 1 for n in model.nodes):
        event("has concurrency > 1")
    if any(n.kind == "zip" and n.capacity and n.capacity > 64 for n in model.nodes):
        event("zip capacity raised")
    total = sum(len(s) for s in model.streams.values())
    event(f"items: {'0' if not total else '<100' if total < 100 else '<1000' if total < 1000 else '>=1000'}")
    event(f"nodes: {len(model.nodes)}")


# -- properties ------------------------------------------------------------------------------------------


@model_settings(200)
@given(model=models())
def test_random_flows_match_the_reference(model: Model) -> None:
    note(model.script())
    describe(model)
    flow = model.build()
    actual = run_trio(af.run_async, flow, model.options)
    check(model, products(actual), "run")


@model_settings(100)
@given(model=models(), every=st.sampled_from([None, 0.001, 0.01]))
def test_random_flows_with_a_store_match_the_reference(model: Model, every: float | None) -> None:
    note(model.script())
    flow = model.build()
    with temp_store() as store:
        first = run_trio(af.run_async, flow, model.options, store=store, checkpoint_every=every)
        check(model, products(first), "run with a store")
        again = run_trio(af.run_async, flow, model.options, store=store, checkpoint_every=every)
        check(model, products(again), "second run on the same store (product cache)")
        assert {t.cache for t in again.summary.tasks.values()} <= {"hit"}, again.summary


@dataclass(frozen=True)
class Cut:
    """Cancel a run after *at* percent of its estimated batch events, after an explicit checkpoint at
    *checkpoint_at* percent (None: none besides the periodic ones)."""

    at: int
    checkpoint_at: int | None


async def run_and_cut(
    flow: af.Flow, model: Model, store: str, cut: Cut, resume: bool, every: float | None
) -> tuple[str, int]:
    """One run that is cancelled at the cut; returns how it ended and how many checkpoints it wrote."""
    estimate = batch_estimate(model)
    stop = cut.at * estimate // 100
    mark = None if cut.checkpoint_at is None else min(cut.checkpoint_at * estimate // 100, stop)
    batches = checkpoints = 0
    async with af.open_run(flow, model.options, store=store, resume=resume, checkpoint_every=every) as run:
        async for event in run.events():
            if isinstance(event, af.events.CheckpointWritten):
                checkpoints += 1
            if isinstance(event, af.events.BatchProcessed):
                batches += 1
            if mark is not None and batches >= mark:
                mark = None
                if run.status == "running":
                    await run.checkpoint_now()
            if batches >= stop:
                run.cancel()
                break
        try:
            result = await run.result()
        except af.RunCancelled:
            return "cancelled", checkpoints
    check(model, products(result), "a run that finished before its cut")
    return "finished", checkpoints


@model_settings(100)
@given(
    model=models(),
    cuts=st.lists(
        st.builds(
            Cut,
            st.one_of(st.just(0), st.integers(0, 30), st.integers(0, 100)),
            st.one_of(st.none(), st.just(0), st.integers(0, 100)),
        ),
        min_size=1,
        max_size=3,
    ),
    every=st.sampled_from([None, 0.001, 0.005]),
)
def test_cancel_then_resume_matches_the_reference(model: Model, cuts: list[Cut], every: float | None) -> None:
    note(model.script())
    flow = model.build()
    with temp_store() as store:
        for i, cut in enumerate(cuts):
            how, written = run_trio(run_and_cut, flow, model, store, cut, i > 0, every)
            note(f"cut {i}: {cut} -> {how}, {written} checkpoints")
        final = run_trio(af.run_async, flow, model.options, store=store, resume=True, checkpoint_every=every)
        check(model, products(final), f"resumed after {len(cuts)} cut(s)")


# -- the reference interpreter itself, on small examples checked by hand ---------------------------------


def test_reference_per_collector_groups_and_zip_of_a_skipping_branch() -> None:
    nodes = [
        Node("src0", "source", order=("n",), n=5, a=1, b=0, m=100),  # 0 1 2 3 4
        Node("gen1", "gen", streams=("src0",), order=("src0",), a=1, b=10, m=1000, fan=2),  # x % 3 children
        Node("col2", "collect", streams=("gen1",), order=("gen1",), per="src0", a=1, b=0, init=0),
        Node("map3", "map", streams=("src0",), order=("src0",), a=1, b=0, m=100, skip=(2, 0)),  # odd only
        Node("zip4", "zip", streams=("src0", "map3"), order=("map3", "src0"), a=1, b=100, m=10_000),
        Node("col5", "collect", streams=("gen1",), order=("gen1",), fold="list", a=1, m=1000),
    ]
    model = compile_model(nodes)
    # gen1: 0 -> [], 1 -> [1], 2 -> [2, 12], 3 -> [], 4 -> [4]
    assert model.streams["gen1"] == [((1, 0), 1), ((2, 0), 2), ((2, 1), 12), ((4, 0), 4)]
    assert model.expected["col2"] == [0, 1, 14, 0, 4]  # empty groups give init
    assert model.expected["zip4"] == [1 + 100, 3 + 300]  # only the sequence numbers both sides have
    assert model.expected["col5"] == [1, 2, 12, 4]
    assert set(model.expected) == {"col2", "zip4", "col5"}  # src0, gen1 and map3 are read
    flow = model.build()
    assert products(af.run(flow)) == model.expected


def test_reference_rejects_the_cross_wait() -> None:
    a = Node("a", "source", order=("n",), n=3)
    b = Node("b", "source", order=("n",), n=3)
    left = Node("left", "map", streams=("a",), lists=("b",), order=("a", "b"))
    right = Node("right", "map", streams=("b",), lists=("a",), order=("b", "a"))
    assert not deadlocks([a, b, left])
    assert deadlocks([a, b, left, right])
    g = Node("g", "source", lists=("a",), order=("a", "n"), as_task=True)
    assert deadlocks([a, g, Node("pair", "zip", streams=("a", "g"), order=("a", "g"))])
    assert longest_unmatched_run([0, 1, 2, 3, 4], [2]) == 2
