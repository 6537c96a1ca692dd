"""The run context a task can ask for with a parameter annotated ``af.Context``.

It carries the run id, the task's path, a progress reporter, a logger bound to the task, and the
secrets the task declared (``@flow.task(secrets=["API_KEY"])``). Secret values are held only
here and in the run: never in options, events, logs, exports, error messages or the store.

On an executor (threads, processes, Dask) the task gets a *detached* copy (:meth:`Context.detached`):
the same run id, task and declared secrets, sent to the worker with each batch (pickled for
processes and Dask); its progress reports and log records are kept in the copy and routed back
with the batch's results, where the run publishes them and logs them through the task's own logger
(:func:`route`), in the order the task made them.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, final

from .._base import ActorflowError
from .._base import _events as ev

if TYPE_CHECKING:
    from ._bind import RunGraph

REDACTED = "***"


class RunView(Protocol):
    """What a context reads from the run it belongs to (the kernel's ``Runtime`` is one)."""

    @property
    def run_id(self) -> str: ...

    @property
    def secrets(self) -> Mapping[str, str]: ...

    @property
    def bus(self) -> ev.EventBus: ...

    @property
    def graph(self) -> RunGraph: ...


class SecretError(ActorflowError, KeyError):
    """A task asked for a secret it did not declare, or that the runner was not given."""

    def __str__(self) -> str:
        return str(self.args[0])


@final
class Context:
    """What a task knows about its run. Declare a parameter ``ctx: af.Context`` to receive it.

    Attributes:
        run_id: the run's id.
        task: the task's path (its name; ``outer/inner`` inside a nested flow).
        logger: a :class:`logging.LoggerAdapter` whose records carry the run id and task.
    """

    __slots__ = ("_declared", "_reports", "_run", "_secrets", "logger", "run_id", "task")

    def __init__(self, run: RunView | None, task: str, secrets: Mapping[str, str], run_id: str = "",
                 declared: tuple[str, ...] = ()) -> None:
        self._run = run
        self.run_id = run.run_id if run is not None else run_id
        self.task = task
        self._secrets = dict(secrets)
        self._declared = declared
        #: A detached context's progress reports and log records, not yet routed back (None: attached).
        self._reports: list[Report] | None = None
        self.logger: logging.LoggerAdapter[logging.Logger] = _RedactingAdapter(
            logging.getLogger(f"actorflow.task.{task}"), {"run_id": self.run_id, "task": task},
            run.secrets if run is not None else self._secrets, self,
        )

    def __repr__(self) -> str:
        return f"Context(run_id={self.run_id!r}, task={self.task!r}, secrets={sorted(self._secrets)})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for a worker process or Dask) as a detached copy: no run, the declared secrets only."""
        return _detached, (self.run_id, self.task, self._secrets, self._declared_names())

    def detached(self) -> Context:
        """A copy for an executor's workers: progress and log records are kept for :func:`route`."""
        return _detached(self.run_id, self.task, self._secrets, self._declared_names())

    def take_reports(self) -> list[Report]:
        """A detached context's reports since the last call (and forget them)."""
        out, self._reports = self._reports or [], []
        return out

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress within the task (published as a ``task_progress`` event; from a worker,
        when its batch comes back)."""
        if self._run is None:
            self._report(("progress", done, total))
            return
        self._run.bus.publish(ev.TaskProgress(run_id=self.run_id, task=self.task, done=done, total=total))

    def _report(self, report: Report) -> None:
        reports = self._reports
        if reports is None:
            reports = self._reports = []
        reports.append(report)

    def _declared_names(self) -> tuple[str, ...]:
        if self._run is not None and self.task in self._run.graph.tasks:
            return tuple(sorted(self._run.graph.tasks[self.task].secrets))
        return self._declared

    def secret(self, name: str) -> str:
        """The value of a secret this task declared.

        Raises:
            SecretError: the task did not declare *name*, or the runner was not given it.
        """
        if name not in self._secrets:
            declared = list(self._declared_names())
            if name in declared:
                raise SecretError(
                    f"task {self.task!r}: secret {name!r} was not given to the run "
                    "(pass secrets={...} to af.run, or --secret NAME=ENV_VAR)"
                )
            raise SecretError(f"task {self.task!r} reads secret {name!r} but declares only {declared}")
        return self._secrets[name]

    @property
    def secret_names(self) -> list[str]:
        """Names of the secrets this task may read."""
        return sorted(self._secrets)


#: What a detached context keeps for the run: ``("progress", done, total)`` or ``("log", level, text)``.
Report = tuple[str, int, Any]


def _detached(run_id: str, task: str, secrets: Mapping[str, str], declared: tuple[str, ...]) -> Context:
    ctx = Context(None, task, secrets, run_id, declared)
    ctx._reports = []
    return ctx


class _RedactingAdapter(logging.LoggerAdapter[logging.Logger]):
    """A task's logger: messages are formatted here and every secret value of the run is masked.

    A detached context's logger keeps each record (level and text, after masking) for :func:`route`:
    a worker process's own logging is not the run's. Every level is kept; the run's logger decides.
    """

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object], secrets: Mapping[str, str],
                 ctx: Context | None = None) -> None:
        super().__init__(logger, extra)
        self._secrets = secrets
        self._ctx = ctx

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        ctx = self._ctx
        detached = ctx is not None and ctx._run is None
        if not detached and not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(map(str, (msg, *args)))
        if self._secrets:
            text = redact(text, self._secrets)
        if detached:
            assert ctx is not None
            if kwargs.get("exc_info"):  # logger.exception(): the traceback travels as text
                info = kwargs["exc_info"]
                exc = info if isinstance(info, BaseException) else sys.exc_info()[1]
                if exc is not None:
                    text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
            ctx._report(("log", level, redact(text, self._secrets) if self._secrets else text))
            return
        text, extra = self.process(text, kwargs)
        self.logger.log(level, text, **extra)


def route(ctx: Context, reports: list[Report]) -> None:
    """Publish and log, through the run's own *ctx*, what a detached copy of it reported in a worker."""
    for kind, a, b in reports:
        if kind == "progress":
            ctx.progress(a, b)
        elif kind == "log":
            ctx.logger.log(a, "%s", b)


def scrub(error: BaseException, secrets: Mapping[str, str]) -> None:
    """Mask secret values in the text arguments of *error* and the exceptions chained to it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        try:
            exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        except (AttributeError, TypeError):  # an exception type that does not allow it
            pass
        todo += [exc.__cause__, exc.__context__]


def check_secrets(secrets: Any) -> dict[str, str]:
    """The secrets given to a run, checked: a mapping of names to string values."""
    if secrets is None:
        return {}
    if not isinstance(secrets, Mapping):
        raise ActorflowError(f"secrets must map secret names to string values, got {type(secrets).__name__}")
    bad = [k for k, v in secrets.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        kinds = ", ".join(f"{k!r}: {type(secrets[k]).__name__}" for k in bad[:5])
        raise ActorflowError(f"secrets must map names to string values; not strings: {kinds}")
    return dict(secrets)


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """*text* with every secret value replaced by ``***``."""
    for value in secrets.values():
        if value and len(value) >= 3:
            text = text.replace(value, REDACTED)
    return text
