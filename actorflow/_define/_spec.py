"""What a defined task is: its settings (one frozen value), its ports, and its definition record.

Settings are what the user chooses about how a task runs (capacity, batch size, concurrency,
failure policy, executor, caching…). They are built and validated once, by :meth:`TaskSettings.of`,
from a decorator's keywords or a class-based task's attributes; everything that copies a task
(``Flow.replace``, nested flows) carries the same value along, and a change is an
``attrs.evolve`` of it. A :class:`TaskDef` is the rest: what reading the function's signature found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, final

import attrs

from .._base import DefinitionError, runtime_classes
from ._executor_choice import Executor, executor_named
from ._policy import DeadLetter, Fail, Restart, Retry
from ._sampling import CHECK_MODES
from ._windows import Windower, check_keyed

TaskKind = Literal["source", "task", "collector", "sink", "input"]

#: The values of the task setting ``zip``: drop unmatched items (counted, reported) or fail on them.
ZIP_MODES = ("drop", "strict")
#: The default bound of a task's mailboxes, in items (``capacity=``).
DEFAULT_CAPACITY = 4096
#: The default upper bound of a batch, in items (``batch_size=``).
DEFAULT_BATCH_SIZE = 1024

#: Attribute set on a source function made by ``af.external_source``: the item type it accepts.
EXTERNAL_ATTR = "__actorflow_external__"


@final
class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of an option that has none: a value must be given when the flow is bound.
REQUIRED: Final = _Required()


def where(flow: str, task: str, param: str | None = None) -> str:
    """``flow 'f', task 't'`` (and ``, parameter 'p'``): the place named in definition errors."""
    loc = f"flow {flow!r}, task {task!r}"
    return f"{loc}, parameter {param!r}" if param else loc


@attrs.frozen
class TaskSettings:
    """How a task runs: one frozen value per task, built once by :meth:`of`.

    Attributes:
        capacity: the bound of each of the task's mailboxes, in items.
        batch_size: the most items in one message sent downstream (and, with an executor, sent to a
            worker at once): the upper bound of the time-sized batches.
        batch_time: the seconds one batch should take (None: the run's ``batch_time``). Batches
            start at one item and grow while they take less, shrink when they take more.
        concurrency: workers sharing the task's mailbox (tasks and sinks).
        ordered: keep output in input order (with ``concurrency`` > 1).
        on_error: the failure policy (None: fail the run).
        executor: where batches run (None: inline, in the actor).
        cache: whether the task's products may be cached.
        version: an explicit definition version for the cache key.
        secrets: names of the secrets the task may read through its context.
        init: a collector's starting accumulator.
        finish: a collector's ``finish(acc) -> product``.
        per: a collector's group stream (a task name), or None for one product.
        rate_limit: the most calls per second across all the task's workers (None: no limit).
        check: how its ports check the contents of items: ``"sample"`` (the rule in
            ``_sampling.SampledCheck``) or ``"full"`` (every element of every item).
        copy: give each reader of the output stream after the first its own deep copy of the items.
        timeout: seconds one item may run before it fails with ``TimeoutError`` under the task's
            policy (None: no limit); tasks and sinks.
        checkpoint: False keeps the task's product out of checkpoints and the cache: a resumed run
            computes it again from its inputs (tasks fed only final inputs; see ``Flow.task``).
        zip: what a task zipping several streams does with items that find no partner:
            ``"drop"`` (the default: counted in the summary and reported by a ``ZipUnmatched``
            event) or ``"strict"`` (the task fails, naming the port and the item's seq).
        follows_executor: the settings left to their defaults, which follow the executor
            (``concurrency``, ``capacity``): :meth:`on` resizes them when a run picks another one.
        key: a keyed collector's or window's ``key(item)`` (None: not keyed).
        window: a window task's windower (``af.Tumbling``, ``af.Sliding``, ``af.Session``), or None.
        time: a window's ``time(item)`` (event time; None: processing time).
        lateness: seconds a window's watermark stays behind the largest event time.
        merge: a session window's ``merge(acc_a, acc_b)``, or None.
    """

    capacity: int = DEFAULT_CAPACITY
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_time: float | None = None
    concurrency: int = 1
    ordered: bool = True
    on_error: Any = None
    executor: Executor | None = None
    cache: bool = True
    version: str | None = None
    secrets: tuple[str, ...] = ()
    init: Any = None
    finish: Callable[..., Any] | None = None
    per: str | None = None
    rate_limit: float | None = None
    check: str = "sample"
    copy: bool = False
    timeout: float | None = None
    zip: str = "drop"
    follows_executor: tuple[str, ...] = ()
    checkpoint: bool = True
    key: Callable[..., Any] | None = None
    window: Windower | None = None
    time: Callable[..., Any] | None = None
    lateness: float = 0.0
    merge: Callable[..., Any] | None = None

    @classmethod
    def of(
        cls,
        flow: str,
        task: str,
        kind: TaskKind,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_time: float | None = None,
        concurrency: int | None = 1,
        ordered: bool = True,
        on_error: Any = None,
        executor: Any = None,
        cache: bool = True,
        version: str | None = None,
        secrets: Sequence[str] = (),
        init: Any = None,
        finish: Callable[..., Any] | None = None,
        per: str | None = None,
        rate_limit: float | None = None,
        check: str = "sample",
        copy: bool = False,
        timeout: float | None = None,
        checkpoint: bool = True,
        zip: str = "drop",
        key: Callable[..., Any] | None = None,
        window: Any = None,
        time: Callable[..., Any] | None = None,
        lateness: float = 0.0,
        merge: Callable[..., Any] | None = None,
    ) -> TaskSettings:
        """Validate a task's settings and resolve their defaults (an executor's concurrency).

        Raises:
            DefinitionError: a setting is of the wrong kind, naming the task and the setting.
        """
        here = where(flow, task)
        if executor is not None:
            try:
                executor = executor_named(executor)
            except ValueError as exc:
                raise DefinitionError(f"{here}: {exc}") from None
        follows = tuple(  # a tuple: its repr is the same in every process (resume compares settings as text)
            name for name, left in (("concurrency", concurrency is None), ("capacity", capacity == DEFAULT_CAPACITY))
            if left
        )
        if concurrency is None:
            concurrency = _in_flight(executor)
        for label, value in (("capacity", capacity), ("batch_size", batch_size), ("concurrency", concurrency)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DefinitionError(f"{here}: {label} must be a positive int, got {value!r}")
        if "capacity" in follows:
            capacity = _capacity(executor, batch_size, concurrency)
        if batch_time is not None and not positive_seconds(batch_time):
            raise DefinitionError(f"{here}: batch_time must be a positive number of seconds, got {batch_time!r}")
        for label, flag in (("ordered", ordered), ("cache", cache), ("copy", copy), ("checkpoint", checkpoint)):
            if not isinstance(flag, bool):
                raise DefinitionError(f"{here}: {label} must be True or False, got {flag!r}")
        if not checkpoint and kind != "task":
            raise DefinitionError(f"{here}: checkpoint=False applies to tasks (a product computed again on resume)")
        if version is not None and (not isinstance(version, str) or not version):
            raise DefinitionError(f"{here}: version must be a non-empty string, got {version!r}")
        if concurrency > 1 and kind not in ("task", "sink"):
            raise DefinitionError(f"{here}: concurrency applies to tasks and sinks only")
        _check_modes(here, zip, check)
        if finish is not None and not callable(finish):
            raise DefinitionError(f"{here}: finish must be a function of the accumulator, got {finish!r}")
        lateness = check_keyed(here, kind, key=key, window=window, time=time, lateness=lateness, merge=merge, per=per)
        return cls(
            capacity=capacity, batch_size=batch_size, batch_time=batch_time, concurrency=concurrency, ordered=ordered,
            on_error=check_policy(flow, task, kind, on_error), executor=executor, cache=cache, version=version,
            secrets=_secret_names(flow, task, secrets), init=init, finish=finish, per=per,
            rate_limit=_rate_limit(here, kind, rate_limit), check=check, copy=copy,
            timeout=_timeout(here, kind, timeout), zip=zip, follows_executor=follows, checkpoint=checkpoint,
            key=key, window=window, time=time, lateness=lateness, merge=merge,
        )

    def on(self, executor: Executor | None) -> TaskSettings:
        """These settings with *executor* (None: inline); ``concurrency`` and ``capacity`` left to
        their defaults follow it as they would have in the definition."""
        concurrency = _in_flight(executor) if "concurrency" in self.follows_executor else self.concurrency
        capacity = self.capacity
        if "capacity" in self.follows_executor:
            capacity = _capacity(executor, self.batch_size, concurrency)
        return attrs.evolve(self, executor=executor, concurrency=concurrency, capacity=capacity)


def _check_modes(here: str, zip: Any, check: Any) -> None:
    """The settings that name a mode: ``zip`` and ``check``."""
    if zip not in ZIP_MODES:
        raise DefinitionError(f"{here}: zip must be one of {', '.join(map(repr, ZIP_MODES))}, got {zip!r}")
    if check not in CHECK_MODES:
        raise DefinitionError(f"{here}: check must be {' or '.join(map(repr, CHECK_MODES))}, got {check!r}")


def _timeout(here: str, kind: TaskKind, timeout: Any) -> float | None:
    """A task's ``timeout``, checked: a positive, finite number of seconds, on a task or sink."""
    if timeout is None:
        return None
    if not positive_seconds(timeout):
        raise DefinitionError(f"{here}: timeout must be a positive number of seconds, got {timeout!r}")
    if kind not in ("task", "sink"):
        raise DefinitionError(f"{here}: timeout applies to tasks and sinks (their items), not to a {kind}")
    return float(timeout)


def _rate_limit(here: str, kind: TaskKind, rate_limit: Any) -> float | None:
    """A task's ``rate_limit``, checked: a positive, finite number of calls per second, on a task or sink."""
    if rate_limit is None:
        return None
    if not positive_seconds(rate_limit):  # the same test: a positive, finite number
        raise DefinitionError(f"{here}: rate_limit must be a positive number of calls per second, got {rate_limit!r}")
    if kind not in ("task", "sink"):
        raise DefinitionError(f"{here}: rate_limit applies to tasks and sinks (their calls), not to a {kind}")
    return float(rate_limit)


def _in_flight(executor: Executor | None) -> int:
    """A task's default concurrency: its executor's batches in flight, or one worker inline."""
    return executor.in_flight if executor is not None else 1


def _capacity(executor: Executor | None, batch_size: int, concurrency: int) -> int:
    """A task's default mailbox capacity: with an executor, room for every batch in flight to be full."""
    return max(DEFAULT_CAPACITY, batch_size * concurrency) if executor is not None else DEFAULT_CAPACITY


def positive_seconds(value: Any) -> bool:
    """True for a positive, finite number of seconds (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")


def _secret_names(flow: str, task: str, secrets: Any) -> tuple[str, ...]:
    if isinstance(secrets, str) or not all(isinstance(s, str) and s for s in secrets):
        raise DefinitionError(f"{where(flow, task)}: secrets must be a list of names, got {secrets!r}")
    return tuple(secrets)


def check_policy(flow: str, task: str, kind: TaskKind, policy: Any) -> Any:
    """Validate a task's ``on_error`` policy."""
    if policy is None:
        return None
    if not isinstance(policy, Fail | Retry | Restart | DeadLetter):
        raise DefinitionError(
            f"{where(flow, task)}: on_error must be af.Retry(...), af.Restart(...), af.DeadLetter() or af.Fail(), "
            f"got {policy!r}"
        )
    return policy  # a source may dead-letter only with an af.Cursor: checked by _analyse.analyse


def dead_letters(policy: Any) -> bool:
    """True when *policy* sets failed items aside (``af.DeadLetter()``, or a Retry that ends in one)."""
    return isinstance(policy, DeadLetter) or (isinstance(policy, Retry) and isinstance(policy.then, DeadLetter))


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
    """A defined task: its settings and what reading its function found.

    Users get these from ``flow.tasks``; they are read-only. The settings are read through
    :attr:`settings` (the forwarding properties below are shorthands for the same value).
    """

    name: str
    kind: TaskKind
    fn: Callable[..., Any]
    settings: TaskSettings
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
    #: False when the output may come out of input order (inputs unordered, or concurrency with ordered=False).
    ordered: bool
    #: True when the streaming inputs can be passed positionally (they lead the signature, not keyword-only).
    positional: bool = True
    #: Parameter annotated ``af.Cursor`` (a source that resumes from a cursor), if any.
    cursor_param: str | None = None
    #: Parameter annotated ``af.Seq`` (receives each item's sequence number), if any.
    seq_param: str | None = None
    #: Parameter annotated ``af.Context`` (receives the run context), if any.
    context_param: str | None = None
    #: A collector's accumulator parameter.
    acc_param: str | None = None
    description: str = ""

    # -- settings, read through ------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self.settings.capacity

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def batch_time(self) -> float | None:
        return self.settings.batch_time

    @property
    def concurrency(self) -> int:
        return self.settings.concurrency

    @property
    def executor(self) -> Executor | None:
        return self.settings.executor

    @property
    def rate_limit(self) -> float | None:
        return self.settings.rate_limit

    @property
    def copy(self) -> bool:
        return self.settings.copy

    @property
    def timeout(self) -> float | None:
        return self.settings.timeout

    @property
    def on_error(self) -> Any:
        return self.settings.on_error

    @property
    def cache(self) -> bool:
        return self.settings.cache

    @property
    def version(self) -> str | None:
        return self.settings.version

    @property
    def checkpoint(self) -> bool:
        return self.settings.checkpoint

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.settings.secrets

    @property
    def init(self) -> Any:
        return self.settings.init

    @property
    def finish(self) -> Callable[..., Any] | None:
        return self.settings.finish

    @property
    def per(self) -> str | None:
        return self.settings.per

    @property
    def zip(self) -> str:
        return self.settings.zip

    # -- derived ---------------------------------------------------------------------------------

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
