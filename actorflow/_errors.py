"""Every exception actorflow raises, in one place.

Each message names the flow, task, port or option concerned and, where it can, says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ActorflowError(Exception):
    """Base class of every error actorflow raises on purpose."""


class DefinitionError(ActorflowError, ValueError):
    """A task definition or the wiring between tasks is invalid.

    Raised at definition time (when the decorator runs), never during a run.
    """


class InvocationError(ActorflowError, ValueError):
    """Option values (or run settings, such as ``executors=``) given to a flow are invalid.

    Attributes:
        problems: every problem found, one readable line each.
    """

    def __init__(self, flow: str, problems: Sequence[str], what: str = "options") -> None:
        self.flow = flow
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"invalid {what} for flow {flow!r} ({n} problem{'s' if n != 1 else ''}):\n{lines}")


class MailboxTypeError(ActorflowError, TypeError):
    """An item sent on a port does not have the port's type.

    Raised in the sending task; the run fails with it (wrapped in :class:`TaskFailed`).
    """

    def __init__(
        self, flow: str, task: str, port: str, expected: str, actual: str, seq: Any, reason: str = ""
    ) -> None:
        self.flow = flow
        self.task = task
        self.port = port
        self.expected = expected
        self.actual = actual
        self.seq = seq
        why = f": {reason}" if reason else ""
        super().__init__(
            f"flow {flow!r}, task {task!r}, port {port!r}: expected {expected}, got {actual} "
            f"(item seq {_fmt_seq(seq)}){why}"
        )


class TaskFailed(ActorflowError):
    """User code of a task raised; the run failed.

    The original exception is chained as ``__cause__``.

    Attributes:
        flow: the flow's name.
        task: the failing task's path (``outer/inner`` for nested flows).
        seq: the sequence number of the item being processed, or None when the failure was not
            tied to one item (a source, a collector's ``finish``, a task fed only final inputs).
    """

    def __init__(self, flow: str, task: str, seq: Any, error: BaseException) -> None:
        self.flow = flow
        self.task = task
        self.seq = seq
        self.error = error
        where = f" on item seq {_fmt_seq(seq)}" if seq is not None else ""
        super().__init__(f"task {task!r} of flow {flow!r} failed{where}: {describe(error)}")


class StoreError(ActorflowError):
    """A run store cannot be used: missing, foreign, corrupt, full, or from another run."""


class ResumeError(StoreError):
    """A run cannot resume from its store (a different graph or options, or nothing to resume)."""


class InputChangedError(ResumeError):
    """A file a source had read part of changed before the run resumed (edited, truncated, replaced).

    Attributes:
        path: the file.
    """

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(
            f"input file {path!r} changed under the source's cursor since the last checkpoint: {why}; a resume would "
            "mix two versions of it. Restore the file, or start a new run (a fresh store)"
        )


class MalformedLineError(ActorflowError, ValueError):
    """A line (or CSV record) of an input file that its source cannot read: a failed item.

    Attributes:
        file: the file's base name.
        line: its 1-based line number.
    """

    def __init__(self, file: str, line: int, why: str, text: str = "") -> None:
        self.file = file
        self.line = line
        shown = f": {text[:120]!r}" if text else ""
        super().__init__(f"{file}, line {line}: {why}{shown}")


class RunInterrupted(ActorflowError):
    """The run stopped on SIGINT or SIGTERM (after a final checkpoint when it has a store).

    Attributes:
        signal: the signal number.
        store: the store to resume from (None: the run had none, nothing to resume).
    """

    def __init__(self, signum: int, store: str | None) -> None:
        self.signal = signum
        self.store = store
        how = f"resume with: actorflow resume --store {store}" if store is not None else "no store: nothing to resume"
        super().__init__(f"interrupted by signal {signum}; {how}")


class RunCancelled(ActorflowError):
    """The run was cancelled with ``run.cancel()`` before it finished."""


def _fmt_seq(seq: Any) -> str:
    if isinstance(seq, tuple):
        return ".".join(str(s) for s in seq)
    return str(seq)


class LateItem(ActorflowError):
    """An item reached a window task behind its watermark (its window had closed): it is set aside
    as a dead letter, never folded, and counted as ``late`` in the task's stats."""


def describe(error: BaseException) -> str:
    """``Type: text`` for an exception, also when its ``__str__`` raises (then its repr, or a note)."""
    name = type(error).__name__
    try:
        text = str(error)
    except Exception:
        try:
            text = repr(error)
        except Exception:
            text = "<its message could not be printed>"
    return f"{name}: {text}" if text else name


class HandlerStopped(RuntimeError):
    """A sync handler raised ``StopIteration``: inside the C-level loop that calls it, that would end
    the batch silently, so it is reported as this error on the item that raised it."""

    def __init__(self) -> None:
        super().__init__("StopIteration raised by the handler (a plain function must not raise StopIteration; "
                         "return af.SKIP to drop an item)")


class ItemFailure(Exception):
    """Internal: user code raised on one item and its policy gave up; the run fails on that item.

    Carries the item's sequence number (None when the failure is not tied to one item).
    """

    def __init__(self, seq: Any, error: BaseException) -> None:
        super().__init__(seq, error)
        self.seq = seq
        self.error = error
