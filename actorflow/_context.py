"""The run context a task can ask for with a parameter annotated ``af.Context``.

It carries the run id, the task's path, a progress reporter, a logger bound to the task, and the
secrets the task declared (``@flow.task(secrets=["API_KEY"])``). Secret values are held only
here and in the run: never in options, events, logs, exports, error messages or the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, final

from . import _events as ev
from ._errors import ActorflowError

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

    __slots__ = ("_run", "_secrets", "logger", "run_id", "task")

    def __init__(self, run: RunView, task: str, secrets: Mapping[str, str]) -> None:
        self._run = run
        self.run_id = run.run_id
        self.task = task
        self._secrets = dict(secrets)
        self.logger: logging.LoggerAdapter[logging.Logger] = _RedactingAdapter(
            logging.getLogger(f"actorflow.task.{task}"), {"run_id": run.run_id, "task": task}, run.secrets
        )

    def __repr__(self) -> str:
        return f"Context(run_id={self.run_id!r}, task={self.task!r}, secrets={sorted(self._secrets)})"

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress within the task (published as a ``task_progress`` event)."""
        self._run.bus.publish(ev.TaskProgress(run_id=self.run_id, task=self.task, done=done, total=total))

    def secret(self, name: str) -> str:
        """The value of a secret this task declared.

        Raises:
            SecretError: the task did not declare *name*, or the runner was not given it.
        """
        if name not in self._secrets:
            declared = sorted(self._run.graph.tasks[self.task].secrets) if self.task in self._run.graph.tasks else []
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


class _RedactingAdapter(logging.LoggerAdapter[logging.Logger]):
    """A task's logger: messages are formatted here and every secret value of the run is masked."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object], secrets: Mapping[str, str]) -> None:
        super().__init__(logger, extra)
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(map(str, (msg, *args)))
        if self._secrets:
            text = redact(text, self._secrets)
        text, extra = self.process(text, kwargs)
        self.logger.log(level, text, **extra)


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
