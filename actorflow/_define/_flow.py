"""Task definitions and the `Flow` that holds them.

A task is a plain Python function. Its parameters named after tasks already defined in the same
flow are its *inputs*; every other parameter is an *option* (typed by its annotation, defaulted
by its default). An input annotated with the upstream's item type is *streaming* (one item per
call); one annotated ``list[T]`` is *final* (the whole product once the upstream is done).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from .._base import DefinitionError
from . import _export
from ._analyse import analyse, check_not_an_option, task_name
from ._bind import RunGraph, bind
from ._compound import inline
from ._replace import replacement
from ._spec import DEFAULT_BATCH_SIZE, DEFAULT_CAPACITY, REQUIRED, Input, Option, TaskDef, TaskKind, TaskSettings
from ._spec import where as _where
from ._taskclass import task_function
from ._windows import Session, Sliding, Tumbling

__all__ = ["REQUIRED", "Flow", "Input", "Option", "TaskDef", "TaskKind", "TaskSettings"]

F = TypeVar("F", bound=Callable[..., Any])


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
        check_not_an_option(self, name)
        spec = TaskDef(
            name=name, kind="input", fn=_no_call, settings=TaskSettings(), is_async=False, is_generator=False,
            params=(), inputs=(), options=(), out_type=item_type, streaming=stream, depth=1 if stream else 0,
            ordered=True,
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
        on_error: Any = None,
    ) -> TaskDef:
        """Add a class-based task (a subclass of :class:`Task`) or a nested :class:`Flow`.

        For a flow, *name* is required: its tasks become ``name/<task>``, *inputs* wires each of
        its declared inputs to a task of this flow, and tasks defined afterwards read its output
        (its last task, or *output*) by naming a parameter *name*.

        For a task class, *inputs* maps parameters of its ``run`` to the tasks (names or functions)
        they read, e.g. ``flow.add(af.JsonLinesSink, name="out", inputs={"item": "square"})``;
        other parameters named after a task read it as usual. *on_error* sets the task's failure
        policy, in place of the class's (``flow.add(af.JsonLinesSource, on_error=af.DeadLetter())``).
        """
        if isinstance(task, Flow):
            if on_error is not None:
                raise DefinitionError(f"flow {self.name!r}: on_error is for a task class, not a nested flow")
            if name is None:
                raise DefinitionError(f"flow {self.name!r}: adding flow {task.name!r} needs name='...'")
            return inline(self, task, name, inputs, output)
        fn, kind, given = task_function(task)
        if on_error is not None:
            given["on_error"] = on_error
        if given.get("per") is not None:
            given["per"] = self.task_name(given["per"])
        wiring = {p: self.task_name(t) if callable(t) else t for p, t in (inputs or {}).items()}
        return self._define(fn, kind, name, wiring, **given)

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
        new = replacement(self, self._get(name), fn)
        self._by_fn.pop(self._tasks[new.name].fn, None)
        self._tasks[new.name] = new
        self._by_fn[fn] = new.name
        return new

    def to_json(self) -> str:
        """The graph as JSON: tasks (kind, types, inputs, options with defaults) and edges."""
        return _export.to_json(self)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        return _export.to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        return _export.to_dot(self)

    def bind(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> RunGraph:
        """Validate option values and return the immutable run graph (see :class:`RunGraph`)."""
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
        batch_time: float | None = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        copy: bool = False,
    ) -> Callable[[F], F]: ...
    def source(  # type: ignore[misc]  # mypy cannot match the decorator-factory overload
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_time: float | None = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        copy: bool = False,
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
                f, "source", name, capacity=capacity, batch_size=batch_size, batch_time=batch_time, on_error=on_error,
                secrets=secrets,
                cache=cache, version=version, copy=copy, check=check,
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
        batch_time: float | None = None,
        executor: Any = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        rate_limit: float | None = None,
        copy: bool = False,
        timeout: float | None = None,
        checkpoint: bool = True,
        zip: str = "drop",
        key: Callable[[Any], Any] | None = None,
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
        batch_time: float | None = None,
        executor: Any = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        rate_limit: float | None = None,
        copy: bool = False,
        timeout: float | None = None,
        checkpoint: bool = True,
        zip: str = "drop",
        key: Callable[[Any], Any] | None = None,
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
                most items sent to a worker at once): the upper bound of the time-sized batches.
            batch_time: seconds one batch should take (default: the run's ``batch_time``, 10 ms).
            executor: run the function on whole batches elsewhere: ``"thread"`` or
                :class:`ThreadExecutor` (worker threads, for blocking I/O and C code that releases the
                GIL), ``"process"`` or :class:`ProcessExecutor` (local worker processes) or
                :class:`DaskExecutor` (a Dask cluster; ``"dask"``: the scheduler Dask is configured
                with). The function must be sync (and, for processes and Dask, module-level). A run
                may choose another one (``executors=``). ``concurrency`` then
                defaults to the executor's ``in_flight`` (batches kept running at once).
            rate_limit: the most calls per second, across all the task's workers (bursts of at
                most ``concurrency``); a task held back is *throttled*, not busy.
            check: how the task's ports check the contents of items (container elements, record
                fields): ``"sample"`` (the default: the first 1,000 items whole, then the first
                item of every batch and one in eight) or ``"full"`` (every item). Every item's
                class is always checked. The same keyword works on sources, collectors and sinks.
            copy: give every reader of the output stream after the first its own deep copy of each
                item (readers share item objects by default: a reader that mutates its items should
                ask for copies).
            timeout: seconds one item may run; a longer one fails with ``TimeoutError`` under
                ``on_error``. An async handler is cancelled; on a thread or process executor the
                call is abandoned (its thread runs on until it returns; a process is killed). A
                plain function running inline cannot be stopped and is refused.
            checkpoint: False keeps the product out of checkpoints and the cache (a model object,
                something that cannot be stored): a resumed run computes it again. Only for a task
                fed only final inputs (whole products), which a resumed run can give it again.
            zip: with several streaming inputs (items zipped by sequence number), what to do with
                an item whose partner never comes: ``"drop"`` it (counted in the summary's
                ``unmatched`` and reported by one ``ZipUnmatched`` event per port) or ``"strict"``:
                the task fails with :class:`TaskFailed` naming the port and the item's seq.
            key: ``key(item)``: with ``concurrency``, all items of one key go to the same worker, so
                per-key order holds while keys run in parallel (inline only; see docs/windows.md).
        """

        def deco(f: F) -> F:
            self._define(
                f,
                "task",
                name,
                concurrency=concurrency,
                executor=executor,
                ordered=ordered,
                capacity=capacity,
                batch_size=batch_size,
                batch_time=batch_time,
                on_error=on_error,
                secrets=secrets,
                cache=cache,
                version=version,
                rate_limit=rate_limit,
                check=check,
                copy=copy,
                timeout=timeout,
                checkpoint=checkpoint,
                zip=zip,
                key=key,
            )
            return f

        return deco(fn) if fn is not None else deco

    def collector(
        self,
        *,
        init: Any,
        finish: Callable[[Any], Any] | None = None,
        per: str | Callable[..., Any] | None = None,
        key: Callable[[Any], Any] | None = None,
        name: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_time: float | None = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
    ) -> Callable[[F], F]:
        """Define a collector: ``step(acc, item) -> acc`` folds a stream, starting from *init*.

        Args:
            init: the starting accumulator; a fresh deep copy is used for every fold, so ``{}`` or
                ``[]`` are safe.
            finish: optional ``finish(acc) -> product`` applied when the stream ends.
            per: an upstream generator task (name or function). The collector then folds separately
                the items descending from each item of that stream and emits one product per such
                item, as a stream; without it, one product for the whole stream.
            key: ``key(item)``: one accumulator per key; the product is a ``dict`` of key to
                ``finish(acc)`` in first-seen key order (see docs/windows.md).
        """
        per_name = self.task_name(per) if per is not None else None

        def deco(f: F) -> F:
            self._define(
                f, "collector", name, capacity=capacity, batch_time=batch_time, init=init, finish=finish, per=per_name,
                on_error=on_error, secrets=secrets, cache=cache, version=version, key=key, check=check,
            )
            return f

        return deco

    def window(
        self, window: Tumbling | Sliding | Session, /, *, init: Any, key: Callable[[Any], Any] | None = None,
        time: Callable[[Any], Any] | None = None, lateness: float = 0.0, finish: Callable[[Any], Any] | None = None,
        merge: Callable[[Any, Any], Any] | None = None, name: str | None = None, capacity: int = DEFAULT_CAPACITY,
        batch_time: float | None = None, on_error: Any = None, cache: bool = True, version: str | None = None,
    ) -> Callable[[F], F]:
        """Define a window task: ``step(acc, item) -> acc`` folds each key's items per window, from *init*.

        Each closed window goes downstream as a :class:`WindowResult` once the watermark passes its
        end; late items go to dead letters. *window* is :class:`Tumbling`, :class:`Sliding` or
        :class:`Session`; ``key(item)`` (default: one key), ``time(item)`` (event time, seconds or a
        datetime; default: processing time), ``lateness`` (seconds), ``finish(acc)``, and
        ``merge(acc_a, acc_b)`` for sessions: see docs/windows.md.
        """

        def deco(f: F) -> F:
            self._define(
                f, "collector", name, capacity=capacity, batch_time=batch_time, init=init, finish=finish,
                on_error=on_error, cache=cache, version=version, key=key, window=window, time=time,
                lateness=lateness, merge=merge,
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
        batch_time: float | None = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        rate_limit: float | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]: ...
    def sink(  # type: ignore[misc]
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        concurrency: int = 1,
        capacity: int = DEFAULT_CAPACITY,
        batch_time: float | None = None,
        on_error: Any = None,
        secrets: Sequence[str] = (),
        cache: bool = True,
        version: str | None = None,
        check: str = "sample",
        rate_limit: float | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Define a sink: called once per item for its side effects; it has no product.

        A parameter annotated ``af.Seq`` receives each item's sequence number, so an external
        system can de-duplicate the items a resumed run delivers again (at-least-once).
        ``rate_limit`` and ``timeout`` are as for :meth:`task` (a sink with a timeout must be async).
        """

        def deco(f: F) -> F:
            self._define(
                f, "sink", name, concurrency=concurrency, capacity=capacity, batch_time=batch_time, on_error=on_error,
                secrets=secrets, cache=cache, version=version, rate_limit=rate_limit, timeout=timeout, check=check,
            )
            return f

        return deco(fn) if fn is not None else deco

    # -- definition ----------------------------------------------------------------------------

    def _define(
        self, fn: Callable[..., Any], kind: TaskKind, name: str | None, wiring: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> TaskDef:
        """Define a task from a function and its settings (a decorator's keywords or a task class's)."""
        tname = task_name(self, fn, kind, name)
        spec = analyse(self, fn, kind, tname, TaskSettings.of(self.name, tname, kind, **settings), wiring)
        self._tasks[spec.name] = spec
        self._by_fn[fn] = spec.name
        return spec

    # -- what analysis reads (see _analyse.Defined) ---------------------------------------------

    @property
    def defined(self) -> Mapping[str, TaskDef]:
        """The tasks defined so far (a live view; read-only by convention)."""
        return self._tasks

    @property
    def nested(self) -> Mapping[str, str]:
        """Nested flows' names -> their output task."""
        return self._aliases

    def stream_ancestors(self, name: str) -> set[str]:
        """Every streaming task whose items reach *name* through streaming inputs (itself too)."""
        out: set[str] = set()
        todo = [name]
        while todo:
            t = self._tasks[todo.pop()]
            if t.streaming and t.name not in out:
                out.add(t.name)
                todo.extend(i.upstream for i in t.streaming_inputs)
        return out


def _no_call(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a flow input is fed by the outer flow; it is never called")
