"""Task definitions and the `Flow` that holds them.

A task is a plain Python function. Its parameters named after tasks already defined in the same
flow are its *inputs*; every other parameter is an *option* (typed by its annotation, defaulted
by its default). An input annotated with the upstream's item type is *streaming* (one item per
call); one annotated ``list[T]`` is *final* (the whole product once the upstream is done).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, final, overload

import attrs

from ._context import Context
from ._errors import DefinitionError
from ._mailbox import DEFAULT_BATCH_SIZE, DEFAULT_CAPACITY
from ._policy import DeadLetter, Fail, Restart, Retry
from ._typing import Cursor, Seq, fits, inspect_empty, list_item_type, runtime_classes, stream_item_type, type_name

if TYPE_CHECKING:
    from ._bind import RunGraph

F = TypeVar("F", bound=Callable[..., Any])

TaskKind = Literal["source", "task", "collector", "sink", "input"]


@final
class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of an option that has none: a value must be given when the flow is bound.
REQUIRED: Final = _Required()


@attrs.frozen
class Input:
    """One input port of a task.

    Attributes:
        name: the parameter's name, which is also the upstream task's name.
        annotation: the parameter's annotation.
        streaming: True when the task receives the upstream's items one at a time.
        gather: True when a stream is gathered into a list (annotation ``list[T]``).
    """

    name: str
    annotation: Any
    streaming: bool
    gather: bool
    #: The task read from, when it is not the parameter's name (inside a nested flow).
    source: str | None = None

    @property
    def upstream(self) -> str:
        """The task this input reads from (its name, unless the input was rewired)."""
        return self.source or self.name


@attrs.frozen
class Option:
    """One option of a task: a parameter that is not an input.

    Attributes:
        name: the parameter's name.
        annotation: its declared type (``Any`` when unannotated).
        default: its default value, or :data:`REQUIRED`.
    """

    name: str
    annotation: Any
    default: Any

    @property
    def required(self) -> bool:
        """True when the option has no default."""
        return self.default is REQUIRED


@attrs.frozen(eq=False)
class TaskDef:
    """A defined task: what a decorator records about a function.

    Users get these from ``flow.tasks``; they are read-only.
    """

    name: str
    kind: TaskKind
    fn: Callable[..., Any]
    is_async: bool
    is_generator: bool
    params: tuple[str, ...]
    inputs: tuple[Input, ...]
    options: tuple[Option, ...]
    #: Item type when `streaming`, otherwise the product type.
    out_type: Any
    #: True when the task's product is a stream of items.
    streaming: bool
    #: Nesting depth of the output stream's sequence numbers (0 for final products).
    depth: int
    #: False when the output may come out of input order.
    ordered: bool
    concurrency: int = 1
    capacity: int = DEFAULT_CAPACITY
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Where batches run: None (inline) or an :class:`Executor` (worker processes, Dask).
    executor: Any = None
    #: Failure policy (:class:`Retry`, :class:`Restart`, :class:`DeadLetter`, :class:`Fail`; None = fail).
    on_error: Any = None
    #: Parameter annotated ``af.Cursor`` (a source that resumes from a cursor), if any.
    cursor_param: str | None = None
    #: Parameter annotated ``af.Seq`` (receives each item's sequence number), if any.
    seq_param: str | None = None
    #: Parameter annotated ``af.Context`` (receives the run context), if any.
    context_param: str | None = None
    #: Names of the secrets the task may read through its context.
    secrets: tuple[str, ...] = ()
    #: Whether the task's products may be cached (see the caching how-to); True unless opted out.
    cache: bool = True
    #: Explicit definition version for the cache key (instead of the function's source code).
    version: str | None = None
    init: Any = None
    finish: Callable[..., Any] | None = None
    per: str | None = None
    acc_param: str | None = None
    description: str = ""

    @property
    def streaming_inputs(self) -> tuple[Input, ...]:
        """Inputs received one item at a time (zipped by sequence number when several)."""
        return tuple(i for i in self.inputs if i.streaming)

    @property
    def final_inputs(self) -> tuple[Input, ...]:
        """Inputs received once, whole, before the task starts."""
        return tuple(i for i in self.inputs if not i.streaming)

    @property
    def out_classes(self) -> tuple[type, ...] | None:
        """Classes the output port checks each item against (None: unchecked)."""
        return runtime_classes(self.out_type)


def _where(flow: str, task: str, param: str | None = None) -> str:
    loc = f"flow {flow!r}, task {task!r}"
    return f"{loc}, parameter {param!r}" if param else loc


class Flow:
    """A graph of tasks, defined with decorators, in definition order.

    Args:
        name: the flow's name, used in errors, events and the CLI.

    Example:
        >>> flow = Flow("squares")
        >>> @flow.source
        ... def numbers(n: int = 3) -> Stream[int]:
        ...     yield from range(n)
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"a flow needs a non-empty string name, got {name!r}")
        self.name = name
        self._tasks: dict[str, TaskDef] = {}
        self._by_fn: dict[Callable[..., Any], str] = {}
        #: Names outer tasks use for nested flows' outputs: name -> the output task's path.
        self._aliases: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, tasks={list(self._tasks)})"

    # -- query ---------------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskDef]:
        """Task definitions by name, in definition (hence topological) order."""
        return dict(self._tasks)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` pairs, in definition order."""
        return [(i.upstream, t.name) for t in self._tasks.values() for i in t.inputs]

    def upstream(self, name: str) -> list[str]:
        """Names of the tasks *name* reads from (for a nested flow: the tasks feeding its inputs)."""
        if self._is_nested(name):
            inner = set(self.nested_tasks(name))
            ups = [i.upstream for n in inner for i in self._tasks[n].inputs if i.upstream not in inner]
            return list(dict.fromkeys(sorted(ups, key=list(self._tasks).index)))
        return [i.upstream for i in self._get(name).inputs]

    def downstream(self, name: str) -> list[str]:
        """Names of the tasks that read from *name* (for a nested flow: from any of its tasks)."""
        if self._is_nested(name):
            inner = set(self.nested_tasks(name))
            return [
                t.name for t in self._tasks.values()
                if t.name not in inner and any(i.upstream in inner for i in t.inputs)
            ]
        self._get(name)
        return [t.name for t in self._tasks.values() if any(i.upstream == name for i in t.inputs)]

    def nested_tasks(self, name: str) -> list[str]:
        """The tasks of the flow nested under *name* (``name/<task>``), in order."""
        if not self._is_nested(name):
            raise KeyError(f"flow {self.name!r} has no nested flow {name!r}")
        return [n for n in self._tasks if n.startswith(name + "/")]

    def _is_nested(self, name: str) -> bool:
        return name in self._aliases and name not in self._tasks

    def topological_order(self) -> list[str]:
        """Task names such that every task comes after the tasks it reads from."""
        return list(self._tasks)

    def _get(self, name: str) -> TaskDef:
        try:
            return self._tasks[name]
        except KeyError:
            if self._is_nested(name):
                return self._tasks[self._aliases[name]]  # a nested flow stands for its output task
            raise KeyError(f"flow {self.name!r} has no task {name!r}; it has {list(self._tasks)}") from None

    def task_name(self, ref: str | Callable[..., Any]) -> str:
        """The name of a task given as its name or its function."""
        if isinstance(ref, str):
            self._get(ref)
            return ref
        try:
            return self._by_fn[ref]
        except (KeyError, TypeError):
            raise KeyError(f"{ref!r} is not a task of flow {self.name!r}") from None

    def input(self, name: str, item_type: Any = Any, *, stream: bool = True) -> TaskDef:
        """Declare an input this flow takes when nested in another flow (see :meth:`add`).

        Tasks defined afterwards read it by naming a parameter *name*. A flow with inputs runs only
        inside another flow.

        Args:
            name: the input's name.
            item_type: the type of its items (or of its product when ``stream=False``).
            stream: True for a stream of items, False for a single final product.
        """
        if not isinstance(name, str) or not name.isidentifier() or name in self._tasks:
            raise DefinitionError(f"flow {self.name!r}: input name {name!r} is taken or not an identifier")
        spec = TaskDef(
            name=name, kind="input", fn=_no_call, is_async=False, is_generator=False, params=(), inputs=(),
            options=(), out_type=item_type, streaming=stream, depth=1 if stream else 0, ordered=True,
        )
        self._tasks[name] = spec
        return spec

    @property
    def inputs(self) -> list[str]:
        """Names of the inputs declared with :meth:`input`."""
        return [t.name for t in self._tasks.values() if t.kind == "input"]

    def add(
        self,
        task: Any,
        *,
        name: str | None = None,
        inputs: Mapping[str, str | Callable[..., Any]] | None = None,
        output: str | None = None,
    ) -> TaskDef:
        """Add a class-based task (a subclass of :class:`Task`) or a nested :class:`Flow`.

        For a flow, *name* is required: its tasks become ``name/<task>``, *inputs* wires each of
        its declared inputs to a task of this flow, and tasks defined afterwards read its output
        (its last task, or *output*) by naming a parameter *name*.
        """
        if isinstance(task, Flow):
            from ._compound import inline

            if name is None:
                raise DefinitionError(f"flow {self.name!r}: adding flow {task.name!r} needs name='...'")
            return inline(self, task, name, inputs, output)
        task_class = task
        from ._taskclass import task_function

        fn, settings = task_function(task_class)
        kind = settings.pop("kind")
        per = settings.pop("per")
        if kind != "collector":
            for key in ("init", "finish"):
                settings.pop(key)
        if kind in ("source", "collector"):
            settings.pop("concurrency")
            settings.pop("ordered")
        if kind == "sink":
            settings.pop("ordered")
            settings.pop("batch_size")
            settings["concurrency"] = settings["concurrency"] or 1
        per_name = self.task_name(per) if per is not None else None
        extra: dict[str, Any] = {"per": per_name} if kind == "collector" else {}
        return self._define(fn, kind, name=name, **extra, **settings)

    # -- mutation ------------------------------------------------------------------------------

    def copy(self, name: str | None = None) -> Flow:
        """A new flow with the same task definitions (mutating one leaves the other alone)."""
        other = Flow(name or self.name)
        other._tasks = dict(self._tasks)
        other._by_fn = dict(self._by_fn)
        other._aliases = dict(self._aliases)
        return other

    def remove(self, name: str) -> None:
        """Remove a task that no other task reads from.

        Raises:
            DefinitionError: other tasks depend on it (they are named).
        """
        if self._is_nested(name):  # a nested flow goes as a whole
            inner = set(self.nested_tasks(name))
            users = self.downstream(name) + [
                t.name for t in self._tasks.values() if t.per in inner and t.name not in inner
            ]
            if users:
                raise DefinitionError(
                    f"{_where(self.name, name)}: cannot remove nested flow, {sorted(set(users))} depend on it; "
                    "remove those first"
                )
            for n in inner:
                self._by_fn.pop(self._tasks.pop(n).fn, None)
            del self._aliases[name]
            return
        self._get(name)
        users = self.downstream(name) + [t.name for t in self._tasks.values() if t.per == name]
        if users:
            raise DefinitionError(
                f"{_where(self.name, name)}: cannot remove it, {sorted(set(users))} depend on it; remove those first"
            )
        spec = self._tasks.pop(name)
        self._by_fn.pop(spec.fn, None)

    def replace(self, name: str, fn: Callable[..., Any]) -> TaskDef:
        """Swap a task's implementation (a test double, a faster version), keeping its place.

        The new function is read like a decorator would read it, with the task's kind and
        settings, against the tasks defined before it; its output must still fit every task that
        reads it, and stream where the old one streamed.

        Raises:
            DefinitionError: the new function's inputs, options or types do not fit.
        """
        old = self._get(name)
        name = old.name
        order = list(self._tasks)
        before = Flow(self.name)
        before._tasks = {n: self._tasks[n] for n in order[: order.index(name)]}
        prefix, _, short = name.rpartition("/")
        wiring: dict[str, str] = {}
        if prefix:  # a task of a nested flow: its parameters name its siblings and the flow's inputs
            for n in order:
                if n.startswith(prefix + "/"):
                    wiring.update({i.name: i.upstream for i in self._tasks[n].inputs})
            for n in before._tasks.copy():
                if n.startswith(prefix + "/"):
                    wiring[n[len(prefix) + 1:]] = n
            before._tasks.update({s: self._tasks[f] for s, f in wiring.items() if f in before._tasks})
        new = analyse(
            before, fn, old.kind, name=short, capacity=old.capacity, batch_size=old.batch_size,
            concurrency=old.concurrency, ordered=old.ordered, init=old.init, finish=old.finish, per=old.per,
            executor=old.executor, on_error=old.on_error, secrets=old.secrets, cache=old.cache,
        )
        if prefix:
            new = attrs.evolve(
                new, name=name, inputs=tuple(attrs.evolve(i, source=wiring.get(i.name, i.name)) for i in new.inputs)
            )
        if new.streaming != old.streaming or new.depth != old.depth:
            what = "a stream" if old.streaming else "a single product"
            raise DefinitionError(
                f"{_where(self.name, name)}: the replacement must produce {what} at the same generator level "
                "as the task it replaces"
            )
        for down in self.downstream(name):
            for inp in self._tasks[down].inputs:
                if inp.name != name:
                    continue
                accepted = list_item_type(inp.annotation)[1] if inp.gather else inp.annotation
                if not fits(new.out_type, accepted):
                    raise DefinitionError(
                        f"{_where(self.name, down, name)}: the replacement for {name!r} produces "
                        f"{type_name(new.out_type)}, which does not fit the annotation {type_name(inp.annotation)}"
                    )
        self._by_fn.pop(old.fn, None)
        self._tasks[name] = new
        self._by_fn[fn] = name
        return new

    def to_json(self) -> str:
        """The graph as JSON: tasks (kind, types, inputs, options with defaults) and edges."""
        from ._export import to_json

        return to_json(self)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        from ._export import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from ._export import to_dot

        return to_dot(self)

    def bind(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> RunGraph:
        """Validate option values and return the immutable run graph (see :class:`RunGraph`)."""
        from ._bind import bind

        return bind(self, options)

    # -- decorators ----------------------------------------------------------------------------

    @overload
    def source(self, fn: F, /) -> F: ...
    @overload
    def source(
        self,
        *,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Callable[[F], F]: ...
    def source(  # type: ignore[misc]  # mypy cannot match the decorator-factory overload
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Any:
        """Define a source: a sync or async generator function whose items start a stream.

        Its parameters are options (or final inputs); it has no streaming input. A parameter
        annotated ``af.Cursor`` receives how many items were already consumed when a run resumes
        (0 otherwise), and the source should start there; a source without one is replayed from
        the start on resume and the consumed prefix skipped, so it must be deterministic.
        ``on_error`` may be :class:`Retry` or :class:`Restart` (the generator is re-created and
        its consumed prefix skipped) or :class:`Fail`.
        """

        def deco(f: F) -> F:
            self._define(
                f, "source", name=name, capacity=capacity, batch_size=batch_size, on_error=on_error, secrets=secrets,
                cache=cache, version=version,
            )
            return f

        return deco(fn) if fn is not None else deco

    @overload
    def task(self, fn: F, /) -> F: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        executor: Any = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Callable[[F], F]: ...
    def task(  # type: ignore[misc]
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        executor: Any = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Any:
        """Define a task.

        With a streaming input it runs once per item (returning :data:`SKIP` drops the item; a
        generator function yields zero or more items per input item). With only final inputs it
        runs once and its return value is its product.

        Args:
            concurrency: how many workers share the task's mailbox. Use more than 1 for tasks that
                wait on I/O.
            ordered: keep output in input order (the default); False lets items out as they finish.
            capacity: the mailbox bound, in items.
            batch_size: the most items sent downstream in one message (and, with an executor, the
                most items sent to a worker at once).
            executor: run the function on whole batches elsewhere: ``"process"`` or
                :class:`ProcessExecutor` (local worker processes) or :class:`DaskExecutor` (a Dask
                cluster). The function must be a sync, module-level function. ``concurrency`` then
                defaults to the executor's ``in_flight`` (batches kept running at once).
        """

        def deco(f: F) -> F:
            self._define(
                f,
                "task",
                name=name,
                concurrency=concurrency,
                executor=executor,
                ordered=ordered,
                capacity=capacity,
                batch_size=batch_size,
                on_error=on_error,
                secrets=secrets,
                cache=cache,
                version=version,
            )
            return f

        return deco(fn) if fn is not None else deco

    def collector(
        self,
        *,
        init: Any,
        finish: Callable[[Any], Any] | None = None,
        per: str | Callable[..., Any] | None = None,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Callable[[F], F]:
        """Define a collector: ``step(acc, item) -> acc`` folds a stream, starting from *init*.

        Args:
            init: the starting accumulator; a fresh deep copy is used for every fold, so ``{}`` or
                ``[]`` are safe.
            finish: optional ``finish(acc) -> product`` applied when the stream ends.
            per: an upstream generator task (name or function). The collector then folds separately
                the items descending from each item of that stream and emits one product per such
                item, as a stream; without it, one product for the whole stream.
        """
        per_name = self.task_name(per) if per is not None else None

        def deco(f: F) -> F:
            self._define(
                f, "collector", name=name, capacity=capacity, init=init, finish=finish, per=per_name,
                on_error=on_error, secrets=secrets, cache=cache, version=version,
            )
            return f

        return deco

    @overload
    def sink(self, fn: F, /) -> F: ...
    @overload
    def sink(
        self,
        *,
        name: str | None = None,
        concurrency: int = 1,
        capacity: int = DEFAULT_CAPACITY,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Callable[[F], F]: ...
    def sink(  # type: ignore[misc]
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int = 1,
        capacity: int = DEFAULT_CAPACITY,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
    ) -> Any:
        """Define a sink: called once per item for its side effects; it has no product.

        A parameter annotated ``af.Seq`` receives each item's sequence number, so an external
        system can de-duplicate the items a resumed run delivers again (at-least-once).
        """

        def deco(f: F) -> F:
            self._define(
                f, "sink", name=name, concurrency=concurrency, capacity=capacity, on_error=on_error, secrets=secrets,
                cache=cache, version=version,
            )
            return f

        return deco(fn) if fn is not None else deco

    # -- definition ----------------------------------------------------------------------------

    def _define(
        self,
        fn: Callable[..., Any],
        kind: TaskKind,
        *,
        name: str | None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int | None = 1,
        ordered: bool = True,
        init: Any = None,
        finish: Callable[..., Any] | None = None,
        per: str | None = None,
        executor: Any = None,
        on_error: Any = None,
        secrets: Any = (),
        cache: bool = True,
        version: str | None = None,
    ) -> TaskDef:
        spec = analyse(
            self,
            fn,
            kind,
            name=name,
            capacity=capacity,
            batch_size=batch_size,
            concurrency=concurrency,
            ordered=ordered,
            init=init,
            finish=finish,
            per=per,
            executor=executor,
            on_error=on_error,
            secrets=secrets,
            cache=cache,
            version=version,
        )
        self._tasks[spec.name] = spec
        self._by_fn[fn] = spec.name
        return spec

    def _stream_ancestors(self, name: str) -> set[str]:
        """Every streaming task whose items reach *name* through streaming inputs (itself too)."""
        out: set[str] = set()
        todo = [name]
        while todo:
            t = self._tasks[todo.pop()]
            if t.streaming and t.name not in out:
                out.add(t.name)
                todo.extend(i.upstream for i in t.streaming_inputs)
        return out

    def _ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(i.upstream for i in self._tasks[n].inputs)
        return out

    def _iter_specs(self) -> Iterator[TaskDef]:
        return iter(self._tasks.values())


def _no_call(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a flow input is fed by the outer flow; it is never called")


def _is_generator(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """(is_async, is_generator) of a function (of a task class's run method)."""
    fn = getattr(fn, "__actorflow_run__", fn)
    if inspect.isasyncgenfunction(fn):
        return True, True
    if inspect.isgeneratorfunction(fn):
        return False, True
    return inspect.iscoroutinefunction(fn), False


def analyse(
    flow: Flow,
    fn: Callable[..., Any],
    kind: TaskKind,
    *,
    name: str | None,
    capacity: int,
    batch_size: int,
    concurrency: int | None,
    ordered: bool,
    init: Any,
    finish: Callable[..., Any] | None,
    per: str | None,
    executor: Any = None,
    on_error: Any = None,
    secrets: Any = (),
    cache: bool = True,
    version: str | None = None,
) -> TaskDef:
    """Read a function's signature into a :class:`TaskDef`, checking the wiring."""
    if not callable(fn):
        raise DefinitionError(f"flow {flow.name!r}: @{kind} needs a function, got {fn!r}")
    tname = name or getattr(fn, "__name__", None)
    if not tname or not isinstance(tname, str) or not tname.isidentifier():
        raise DefinitionError(f"flow {flow.name!r}: cannot name a task after {fn!r}; pass name='...'")
    if executor is not None:
        from ._executors import as_executor

        executor = as_executor(flow.name, tname, executor)
    if concurrency is None:
        concurrency = executor.in_flight if executor is not None else 1
    if tname in flow._tasks:
        raise DefinitionError(
            f"{_where(flow.name, tname)}: a task with this name is already defined; "
            "choose another function name or pass name='...'"
        )
    for label, value in (("capacity", capacity), ("batch_size", batch_size), ("concurrency", concurrency)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DefinitionError(f"{_where(flow.name, tname)}: {label} must be a positive int, got {value!r}")
    if executor is not None and capacity == DEFAULT_CAPACITY:
        capacity = max(capacity, batch_size * concurrency)  # room for every batch in flight to be full
    is_async, is_gen = _is_generator(fn)
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        hint = (
            "; annotations must name types visible at module level (with `from __future__ import annotations`"
            " a class defined inside a function cannot be resolved)"
            if isinstance(exc, NameError)
            else ""
        )
        raise DefinitionError(f"{_where(flow.name, tname)}: cannot read the signature: {exc}{hint}") from exc

    params = list(sig.parameters.values())
    acc_param = None
    if kind == "collector":
        if not params:
            raise DefinitionError(
                f"{_where(flow.name, tname)}: a collector's first parameter is the accumulator, "
                "as in step(acc, item)"
            )
        acc_param = params[0].name
        params = params[1:]
        if is_gen:
            raise DefinitionError(f"{_where(flow.name, tname)}: a collector's step cannot be a generator")

    inputs: list[Input] = []
    options: list[Option] = []
    special: dict[str, str] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise DefinitionError(
                f"{_where(flow.name, tname, p.name)}: *args and **kwargs are not supported; "
                "name every input and option"
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise DefinitionError(f"{_where(flow.name, tname, p.name)}: positional-only parameters are not supported")
        ann = hints.get(p.name, inspect_empty)
        if p.name in flow._aliases and p.name not in flow._tasks:
            target = flow._tasks[flow._aliases[p.name]]
            inputs.append(attrs.evolve(_input_port(flow, tname, p.name, ann, target), source=target.name))
            continue
        if ann is Context:
            special["context_param"] = p.name
            continue
        if ann is Cursor or ann is Seq:
            marker = "cursor_param" if ann is Cursor else "seq_param"
            if marker in special:
                raise DefinitionError(f"{_where(flow.name, tname, p.name)}: only one parameter may be {type_name(ann)}")
            if ann is Cursor and kind != "source":
                raise DefinitionError(f"{_where(flow.name, tname, p.name)}: only a source can take an af.Cursor")
            if ann is Seq and kind not in ("task", "sink"):
                raise DefinitionError(f"{_where(flow.name, tname, p.name)}: only tasks and sinks can take an af.Seq")
            special[marker] = p.name
            continue
        up = flow._tasks.get(p.name)
        if up is None:
            default = REQUIRED if p.default is p.empty else p.default
            option_ann = Any if ann is inspect_empty else ann
            _check_default(flow.name, tname, p.name, option_ann, default)
            options.append(Option(p.name, option_ann, default))
            continue
        if up.kind == "sink":
            raise DefinitionError(
                f"{_where(flow.name, tname, p.name)}: {p.name!r} is a sink, which has no product to read"
            )
        inputs.append(_input_port(flow, tname, p.name, ann, up))

    streaming_in = [i for i in inputs if i.streaming]
    final_in = [i for i in inputs if not i.streaming]
    if streaming_in and final_in:
        shared = set()
        for s in streaming_in:
            for f in final_in:
                shared |= flow._stream_ancestors(s.upstream) & flow._ancestors(f.upstream)
        if shared:
            raise DefinitionError(
                f"{_where(flow.name, tname)}: it streams from {[s.name for s in streaming_in]} and waits for the "
                f"whole of {[f.name for f in final_in]}, which both come from {sorted(shared)}; that would "
                "deadlock once mailboxes fill. Read both as items, or both as lists."
            )
    depths = {flow._tasks[i.upstream].depth for i in streaming_in}
    if len(depths) > 1:
        raise DefinitionError(
            f"{_where(flow.name, tname)}: streaming inputs {[i.name for i in streaming_in]} come from different "
            "generator levels and cannot be zipped by sequence number"
        )
    in_depth = depths.pop() if depths else 0
    in_ordered = all(flow._tasks[i.upstream].ordered for i in streaming_in)

    ret = hints.get("return", inspect_empty)
    is_stream_ann, item_ann = stream_item_type(ret)
    out_type: Any = Any if item_ann is inspect_empty else item_ann
    description = inspect.getdoc(fn) or ""

    if kind == "source":
        if not is_gen:
            raise DefinitionError(
                f"{_where(flow.name, tname)}: a source must be a generator function (use yield), "
                "sync or async"
            )
        if streaming_in:
            raise DefinitionError(
                f"{_where(flow.name, tname, streaming_in[0].name)}: a source cannot stream from another task; "
                "use @flow.task with a generator function instead"
            )
        streaming, depth = True, 1
    elif kind == "task":
        if is_gen:
            streaming, depth = True, in_depth + 1
        else:
            if is_stream_ann and ret is not inspect_empty:
                raise DefinitionError(
                    f"{_where(flow.name, tname)}: declared to return {type_name(ret)} but is not a generator function"
                )
            streaming, depth = bool(streaming_in), in_depth
    elif kind == "collector":
        if not streaming_in:
            raise DefinitionError(
                f"{_where(flow.name, tname)}: a collector needs a streaming input (a parameter named after an "
                f"upstream task, annotated with its item type); tasks so far: {list(flow._tasks)}"
            )
        if per is not None:
            if per not in flow._stream_ancestors(streaming_in[0].upstream) or not flow._tasks[per].streaming:
                raise DefinitionError(
                    f"{_where(flow.name, tname)}: per={per!r} must be a stream that the collector's input descends "
                    f"from; {streaming_in[0].upstream!r} descends from "
                    f"{sorted(flow._stream_ancestors(streaming_in[0].upstream))}"
                )
            streaming, depth = True, flow._tasks[per].depth
        else:
            streaming, depth = False, 0
    else:  # sink
        if not streaming_in:
            raise DefinitionError(f"{_where(flow.name, tname)}: a sink needs a streaming input")
        if is_gen:
            raise DefinitionError(f"{_where(flow.name, tname)}: a sink cannot be a generator function")
        streaming, depth, out_type = False, 0, type(None)
    if executor is not None:
        from ._executors import check_definition

        check_definition(flow.name, tname, fn, is_async, bool(streaming_in))
    if not isinstance(cache, bool):
        raise DefinitionError(f"{_where(flow.name, tname)}: cache must be True or False, got {cache!r}")
    if version is not None and (not isinstance(version, str) or not version):
        raise DefinitionError(f"{_where(flow.name, tname)}: version must be a non-empty string, got {version!r}")
    if concurrency > 1 and kind not in ("task", "sink"):
        raise DefinitionError(f"{_where(flow.name, tname)}: concurrency applies to tasks and sinks only")
    if concurrency > 1 and not streaming_in:
        raise DefinitionError(f"{_where(flow.name, tname)}: concurrency needs a streaming input")

    return TaskDef(
        name=tname,
        kind=kind,
        fn=fn,
        is_async=is_async,
        is_generator=is_gen,
        params=tuple(p.name for p in params),
        inputs=tuple(inputs),
        options=tuple(options),
        out_type=out_type,
        streaming=streaming,
        depth=depth,
        ordered=in_ordered and (ordered or concurrency == 1),
        concurrency=concurrency,
        capacity=capacity,
        batch_size=batch_size,
        executor=executor,
        init=init,
        finish=finish,
        per=per,
        acc_param=acc_param,
        description=description,
        on_error=check_policy(flow.name, tname, kind, on_error),
        cursor_param=special.get("cursor_param"),
        seq_param=special.get("seq_param"),
        context_param=special.get("context_param"),
        secrets=_secret_names(flow.name, tname, secrets),
        cache=cache,
        version=version,
    )


def _check_default(flow: str, task: str, name: str, annotation: Any, default: Any) -> None:
    """An option's default must be a value of its type (never a function computing one)."""
    if default is REQUIRED or default is None:
        return
    if inspect.isfunction(default) or inspect.ismethod(default) or isinstance(default, functools.partial):
        raise DefinitionError(
            f"{_where(flow, task, name)}: an option's default must be a value, not a function ({default!r:.60}); "
            "compute it inside the task, or make the option required"
        )
    from ._bind import coerce
    from ._file import File

    if File in (runtime_classes(annotation) or ()):
        return  # a default file need not exist until the run binds it
    try:
        coerce(default, annotation)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"{_where(flow, task, name)}: the default {default!r:.60} does not fit: {exc}") from None


def _secret_names(flow: str, task: str, secrets: Any) -> tuple[str, ...]:
    if isinstance(secrets, str) or not all(isinstance(s, str) and s for s in secrets):
        raise DefinitionError(f"{_where(flow, task)}: secrets must be a list of names, got {secrets!r}")
    return tuple(secrets)


def check_policy(flow: str, task: str, kind: TaskKind, policy: Any) -> Any:
    """Validate a task's ``on_error`` policy."""
    if policy is None:
        return None
    if not isinstance(policy, Fail | Retry | Restart | DeadLetter):
        raise DefinitionError(
            f"{_where(flow, task)}: on_error must be af.Retry(...), af.Restart(...), af.DeadLetter() or af.Fail(), "
            f"got {policy!r}"
        )
    dead = isinstance(policy, DeadLetter) or (isinstance(policy, Retry) and isinstance(policy.then, DeadLetter))
    if kind == "source" and dead:
        raise DefinitionError(
            f"{_where(flow, task)}: a source cannot dead-letter (there is no item to set aside); "
            "use af.Retry or af.Restart"
        )
    return policy


def _input_port(flow: Flow, task: str, pname: str, ann: Any, up: TaskDef) -> Input:
    if ann is inspect_empty:
        return Input(pname, Any, streaming=up.streaming, gather=False)
    if up.streaming:
        is_list, elem = list_item_type(ann)
        up_is_list = typing.get_origin(up.out_type) is list or up.out_type is list
        if is_list and not up_is_list:
            if not fits(up.out_type, elem):
                raise DefinitionError(
                    f"{_where(flow.name, task, pname)}: upstream {pname!r} yields items of type "
                    f"{type_name(up.out_type)}, which do not fit list[{type_name(elem)}]"
                )
            return Input(pname, ann, streaming=False, gather=True)
        if not fits(up.out_type, ann):
            raise DefinitionError(
                f"{_where(flow.name, task, pname)}: upstream {pname!r} yields items of type "
                f"{type_name(up.out_type)}, which do not fit the annotation {type_name(ann)} "
                f"(annotate list[{type_name(up.out_type)}] to receive the whole stream at once)"
            )
        return Input(pname, ann, streaming=True, gather=False)
    if not fits(up.out_type, ann):
        raise DefinitionError(
            f"{_where(flow.name, task, pname)}: upstream {pname!r} produces {type_name(up.out_type)}, "
            f"which does not fit the annotation {type_name(ann)}"
        )
    return Input(pname, ann, streaming=False, gather=False)
