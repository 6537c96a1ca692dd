"""Class-based tasks: options and settings as class attributes, the work in ``run``.

    class Fetch(af.Task):
        concurrency = 8                 # a setting
        retries = 2                     # a setting: af.Retry(attempts=3)
        timeout: float = 5.0            # an option (annotated, with its default)

        async def run(self, urls: str) -> bytes:   # inputs are run's parameters
            ...

    flow.add(Fetch)

A subclass inherits ``run`` and the settings; the nearest definition wins. One instance is made
per actor (and a fresh one when the Restart policy restarts it); options are set on it as
attributes before the first call.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from .._base import DefinitionError
from ._policy import Restart, Retry
from ._spec import DEFAULT_BATCH_SIZE, DEFAULT_CAPACITY, TaskKind

#: Class attributes that configure the task rather than being options.
SETTINGS = (
    "kind", "name", "concurrency", "capacity", "batch_size", "batch_time", "ordered", "retries", "on_error", "executor",
    "cache", "version", "secrets", "init", "finish", "per", "rate_limit", "copy", "timeout", "key", "check",
)


class Task:
    """Base class of class-based tasks; add a subclass to a flow with :meth:`Flow.add`.

    Settings (class attributes, inherited, nearest definition wins): ``kind`` (``"task"``,
    ``"source"``, ``"sink"`` or ``"collector"``), ``name``, ``concurrency``, ``capacity``,
    ``batch_size``, ``ordered``, ``retries`` (shorthand for ``on_error=af.Retry(attempts=retries + 1)``),
    ``on_error``, ``cache``, ``secrets``, ``rate_limit`` (calls per second, tasks and sinks),
    ``key`` (tasks: per-key order with ``concurrency``; collectors: one accumulator per key), ``check``
    (``"sample"`` or ``"full"``: how its ports check the contents of items), and
    for collectors ``init``, ``finish``, ``per``.
    Annotated class attributes that are not settings are options.

    A task (kind ``"task"``) may define ``end_of_stream(self)``: a plain or async function or
    generator, called once after its streaming input ends. The items it yields (or the iterable it
    returns) go downstream after the outputs of the last input item (see ``docs/durability.md``).
    Such a task's public instance attributes (not options, not starting with ``_``) are its state:
    plain data, saved in every checkpoint and set again on resume before its first item.
    """

    kind: ClassVar[str] = "task"
    name: ClassVar[str | None] = None
    concurrency: ClassVar[int | None] = None
    capacity: ClassVar[int] = DEFAULT_CAPACITY
    batch_size: ClassVar[int] = DEFAULT_BATCH_SIZE
    batch_time: ClassVar[float | None] = None
    ordered: ClassVar[bool] = True
    retries: ClassVar[int] = 0
    on_error: ClassVar[Any] = None
    executor: ClassVar[Any] = None
    cache: ClassVar[bool] = True
    version: ClassVar[str | None] = None
    secrets: ClassVar[Sequence[str]] = ()
    init: ClassVar[Any] = None
    finish: ClassVar[Callable[[Any], Any] | None] = None
    per: ClassVar[Any] = None
    rate_limit: ClassVar[float | None] = None
    check: ClassVar[str] = "sample"
    copy: ClassVar[bool] = False
    timeout: ClassVar[float | None] = None
    #: ``key(item)``: with ``concurrency``, all items of one key go to the same worker (see docs/windows.md).
    key: ClassVar[Callable[[Any], Any] | None] = None

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's work: parameters are inputs (and ``af.Context``/``af.Seq``), as for functions."""
        raise NotImplementedError(f"{type(self).__name__} must define run()")


class TransactionalSink(Task):
    """Base class of sinks whose writes become visible exactly once: two-phase commit tied to checkpoints.

    On its one instance per actor the runtime calls :meth:`begin` (at start, at resume and after
    each :meth:`prepare`), ``run(self, <input>)`` for each item (define it; its parameter is the
    input, wired by name or with ``flow.add(..., inputs={"<param>": "<task>"})``), :meth:`prepare`
    while a checkpoint is taken, :meth:`commit` once that checkpoint is durable (and again on
    resume, so it must be idempotent) and :meth:`abort` when the run fails, is cancelled or
    interrupted. Without a store, ``prepare`` and ``commit`` run once, at the run's end. See
    ``docs/durability.md``.

    A transactional sink is not cached by default (``cache = False``: its writes are the point),
    cannot use ``af.Restart`` (a new instance would lose the open transaction) nor an executor.
    """

    kind: ClassVar[str] = "sink"
    cache: ClassVar[bool] = False

    def begin(self) -> None:
        """Open a transaction: the items of the following ``run`` calls belong to it."""

    def prepare(self) -> Any:
        """Flush the open transaction and return a token naming it (msgpack-encodable plain data).

        Called after the epoch's last item, while a checkpoint is taken; the token is saved in that
        checkpoint. A token restored from a checkpoint comes back as msgpack gives it (a tuple as a list).
        """
        return None

    def finish_prepare(self, token: Any) -> Awaitable[None] | None:
        """Make the transaction *token* that ``prepare`` closed durable (may be ``async def``).

        ``prepare`` and ``begin`` run while every actor is parked and must be quick plain methods:
        ``prepare`` closes the transaction and names it. Slow, durable work (a database round trip)
        goes here: it is awaited after the checkpoint's snapshot, while the actors run again, and
        the checkpoint is written only once it returned. A sink driving a blocking client runs it in
        a thread (``trio.to_thread.run_sync``), one call at a time, and keeps writes of the next
        transaction behind it.
        """
        return None

    def commit(self, token: Any) -> Awaitable[None] | None:
        """Make the prepared transaction *token* visible. Must be idempotent: it runs again on resume.

        May be ``async def`` (it is awaited). ``abort`` is always a plain method.
        """
        return None

    def abort(self, token: Any) -> None:
        """Discard a transaction that will never be committed (*token* None: the open, unprepared one)."""

    def close(self) -> None:
        """Release connections and files at the run's end, whatever its outcome (after any ``abort``)."""


def _options(cls: type[Task]) -> dict[str, tuple[Any, Any]]:
    """Option name -> (annotation, default) from the annotated class attributes, nearest first."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError as exc:
        raise DefinitionError(f"task class {cls.__qualname__}: cannot resolve an annotation: {exc}") from exc
    out: dict[str, tuple[Any, Any]] = {}
    for name, ann in hints.items():
        if name.startswith("_") or typing.get_origin(ann) is ClassVar or name in ("kind", "name"):
            continue
        # a setting's name annotated as a plain attribute is a setting when the class gives it a value of
        # its own, else the class's option (PostgresSource's option `key` is not the `key` setting)
        if name in SETTINGS and getattr(cls, name, None) is not getattr(Task, name, None):
            continue
        out[name] = (ann, getattr(cls, name, inspect.Parameter.empty))
    return out


def task_function(cls: type[Task]) -> tuple[Callable[..., Any], TaskKind, dict[str, Any]]:
    """A function standing for *cls* (its signature: run's parameters plus the options), its kind and settings.

    The settings are the keywords :meth:`TaskSettings.of <actorflow._define._spec.TaskSettings.of>` takes.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise DefinitionError(f"expected a subclass of af.Task, got {cls!r}")
    if cls.run is Task.run:
        raise DefinitionError(f"task class {cls.__qualname__} does not define run()")
    run = cls.run
    try:
        run_hints = typing.get_type_hints(run)
    except NameError as exc:
        raise DefinitionError(f"task class {cls.__qualname__}: cannot resolve an annotation of run(): {exc}") from exc
    params = list(inspect.signature(run).parameters.values())[1:]
    options = _options(cls)
    clash = [p.name for p in params if p.name in options]
    if clash:
        raise DefinitionError(f"task class {cls.__qualname__}: {clash} are both run() parameters and options")
    option_params = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, (a, d) in options.items()
    ]
    annotations = {p.name: run_hints.get(p.name, inspect.Parameter.empty) for p in params}
    annotations = {k: v for k, v in annotations.items() if v is not inspect.Parameter.empty}
    annotations.update({n: a for n, (a, _) in options.items()})
    if "return" in run_hints:
        annotations["return"] = run_hints["return"]
    option_names = tuple(options)

    def make() -> Any:
        return cls()

    def call(*args: Any, **kwargs: Any) -> Any:
        instance = make()
        for name in option_names:
            if name in kwargs:
                setattr(instance, name, kwargs.pop(name))
        return instance.run(*args, **kwargs)

    call.__name__ = call.__qualname__ = cls.name or _snake(cls.__name__)
    call.__doc__ = cls.__doc__
    call.__module__ = cls.__module__
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) if p.kind is p.POSITIONAL_ONLY else p for p in params]
        + option_params,
        return_annotation=annotations.get("return", inspect.Signature.empty),
    )
    call.__annotations__ = annotations
    call.__actorflow_class__ = cls  # type: ignore[attr-defined]
    call.__actorflow_run__ = run  # type: ignore[attr-defined]
    call.__actorflow_options__ = option_names  # type: ignore[attr-defined]
    on_error = cls.on_error
    retries = cls.retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DefinitionError(
            f"task class {cls.__qualname__}: retries must be a whole number of retries (0 or more), got {retries!r}"
        )
    if on_error is None and retries:
        on_error = Retry(attempts=retries + 1)
    setting = {n: getattr(Task, n) if n in options else getattr(cls, n) for n in SETTINGS}  # options are not settings
    settings = {
        "concurrency": setting["concurrency"], "capacity": setting["capacity"], "batch_size": setting["batch_size"],
        "batch_time": setting["batch_time"],
        "ordered": setting["ordered"], "on_error": on_error, "executor": setting["executor"],
        "secrets": setting["secrets"], "init": setting["init"], "finish": setting["finish"], "per": setting["per"],
        "cache": setting["cache"], "version": setting["version"], "rate_limit": setting["rate_limit"],
        "copy": setting["copy"], "timeout": setting["timeout"], "key": setting["key"], "check": setting["check"],
    }
    if cls.kind not in ("task", "source", "sink", "collector"):
        raise DefinitionError(f"task class {cls.__qualname__}: kind must be task, source, sink or collector")
    _check_hooks(cls, on_error)
    return call, cls.kind, settings  # type: ignore[return-value]  # checked just above


def is_transactional(fn: Callable[..., Any]) -> bool:
    """True when *fn* stands for an :class:`TransactionalSink` subclass."""
    cls = getattr(fn, "__actorflow_class__", None)
    return isinstance(cls, type) and issubclass(cls, TransactionalSink)


def end_of_stream_of(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The ``end_of_stream`` method of the task class *fn* stands for (unbound), if it defines one."""
    cls = getattr(fn, "__actorflow_class__", None)
    return getattr(cls, "end_of_stream", None) if cls is not None else None


def is_stateful_class(spec: Any) -> bool:
    """Whether *spec* (a ``TaskDef``) is a task class run inline whose instance state a checkpoint holds:
    every task class but transactional sinks (their transactions are their state) and executor-backed
    ones (their instances live in workers)."""
    fn = spec.fn
    return hasattr(fn, "__actorflow_class__") and not is_transactional(fn) and spec.executor is None


def instance_state(instance: Any, fn: Callable[..., Any]) -> dict[str, Any]:
    """The state of a task-class instance: its public attributes that are not options."""
    options = set(getattr(fn, "__actorflow_options__", ()))
    return {k: v for k, v in vars(instance).items() if not k.startswith("_") and k not in options}


def _check_hooks(cls: type[Task], on_error: Any) -> None:
    """``end_of_stream`` only on tasks and without parameters; transactional sinks keep their instance."""
    here = f"task class {cls.__qualname__}"
    eos = getattr(cls, "end_of_stream", None)
    if eos is not None:
        if cls.kind != "task":
            raise DefinitionError(f"{here}: end_of_stream is for tasks (kind 'task'), not a {cls.kind}")
        if not callable(eos) or len(inspect.signature(eos).parameters) != 1:
            raise DefinitionError(f"{here}: end_of_stream must be a method taking only self")
    if issubclass(cls, TransactionalSink):
        if cls.kind != "sink":
            raise DefinitionError(f"{here}: a TransactionalSink is a sink; do not change its kind")
        if isinstance(on_error, Restart):
            raise DefinitionError(f"{here}: a transactional sink cannot use af.Restart (the open transaction would "
                                  "be lost); use af.Retry or af.DeadLetter")
        if cls.executor is not None:
            raise DefinitionError(f"{here}: a transactional sink runs in its actor; it cannot take an executor")


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
