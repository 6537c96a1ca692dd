"""Every exception actorflow raises, in one place.

Each message names the flow, task, port or option concerned and, where it can, says what to do.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
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
        #: A short ``repr`` of the item (one line, cut), or None when the failure had no one item.
        self.item: str | None = item_text(error)
        #: ``file:line`` of the user's code where the error was raised (None when not known).
        self.where: str | None = user_frame(error)
        on = f" on item seq {_fmt_seq(seq)}" if seq is not None else ""
        facts = [f"item {self.item}"] if self.item is not None else []
        facts += [f"raised at {self.where}"] if self.where else []
        about = f" ({', '.join(facts)})" if facts else ""
        super().__init__(
            f"task {task!r} of flow {flow!r} failed{on}: {describe(error)}{about}{worker_hint(error)}"
        )


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


class DeadLettered(ActorflowError):
    """A run with ``strict=True`` (``actorflow run --strict``) set items aside as dead letters.

    Raised after the run ended; its products are still there.

    Attributes:
        result: the run's :class:`RunResult` (products, summary and ``dead_letters``).
        counts: dead letters by task name.
    """

    def __init__(self, result: Any, counts: dict[str, int]) -> None:
        self.result = result
        self.counts = dict(counts)
        total = sum(counts.values())
        where = ", ".join(f"{n} in {t!r}" for t, n in counts.items())
        super().__init__(
            f"{total} item{'s' if total != 1 else ''} dead-lettered ({where}); strict runs fail on any dead "
            "letter (result.dead_letters lists them)"
        )


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

    def __init__(self, seq: Any, error: BaseException, item: Any = None, *, with_item: bool = False) -> None:
        super().__init__(seq, error)
        self.seq = seq
        self.error = error
        if with_item:
            remember_item(error, item)


# -- what a failure says about the user's code -------------------------------------------------------

#: Longest item repr a failure message shows.
ITEM_TEXT_WIDTH = 80
_ITEM_ATTR = "_actorflow_item_text"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def short_repr(value: Any, width: int = ITEM_TEXT_WIDTH) -> str:
    """``repr(value)`` on one line, cut to *width* characters (``…`` marks a cut)."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__} object: repr raised {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def remember_item(error: BaseException, item: Any) -> None:
    """Keep a short repr of the item *error* was raised on, for :class:`TaskFailed` and the event."""
    try:
        setattr(error, _ITEM_ATTR, short_repr(item))
    except (AttributeError, TypeError):  # an exception type with slots
        pass


def item_text(error: BaseException) -> str | None:
    """The short item repr :func:`remember_item` kept on *error* (None if none)."""
    text = getattr(error, _ITEM_ATTR, None)
    return text if isinstance(text, str) else None


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_PACKAGE_DIR, *(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)}
    return tuple(os.path.abspath(d) + os.sep for d in dirs)


def user_frame(error: BaseException) -> str | None:
    """``file:line`` of the innermost frame of *error*'s traceback that is the user's code.

    Frames in actorflow, the standard library and installed packages are skipped, so a
    ``ZeroDivisionError`` raised by the user's ``1 / x`` points at that line; if every frame is
    library code, the innermost frame outside actorflow is given.
    """
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    if not frames:
        return None
    libs = _library_dirs()
    outside = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep)]
    mine = [f for f in outside if not os.path.abspath(f.filename).startswith(libs)
            and not f.filename.startswith("<frozen")]
    frame = (mine or outside or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


#: Errors of a process pool whose worker died (trio-parallel's, concurrent.futures').
_BROKEN_WORKER = ("BrokenWorkerError", "BrokenWorkerProcessError", "BrokenProcessPool")


def worker_hint(error: BaseException) -> str:
    """What to do when a worker process died (most often at start-up, re-importing the main module)."""
    if type(error).__name__ not in _BROKEN_WORKER:
        return ""
    return (
        ". A worker process died; if it died at start-up, it could not import the main module: a worker "
        "imports the script that started the run again, so guard the script's run with "
        "`if __name__ == \"__main__\":`, or define the tasks in an importable module (see docs/scale-out.md)"
    )


def failure_facts(error: BaseException, secrets: Any = None) -> dict[str, str | None]:
    """What a task-failure event adds to its text: the item's short repr and the user's ``file:line``.

    Secret values (a mapping of names to values) are masked in the item's text, as everywhere.
    """
    if isinstance(error, TaskFailed):
        item, where = error.item, error.where
    else:
        item, where = item_text(error), user_frame(error)
    for value in (secrets or {}).values():
        if item is not None and value and len(value) >= 3:
            item = item.replace(value, "***")
    return {"item": item, "where": where}
