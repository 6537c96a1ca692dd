"""Executors as values: where a task's batches run, chosen when a task is defined or a run starts.

:class:`ThreadExecutor`, :class:`ProcessExecutor` and :class:`DaskExecutor` (or their names, see
:func:`executor_named`) are plain settings; the sessions that run batches on them are kernel work
(``_executors``). Functions travel to workers by reference (module and qualified name), so an
executor task must be a module-level function: lambdas, closures and nested functions are refused
when the task is defined or the flow is bound, with a message naming the task.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, final

from .._base import load, require, target_of
from ._classstate import stateful

if TYPE_CHECKING:
    from ._spec import TaskDef


# -- executors ---------------------------------------------------------------------------------


class Executor:
    """Base class of executors: where a task's batches run. Use a subclass.

    An executor is a value (a definition): :func:`actorflow._kernel._executors.open_session` opens it for a
    run of a task.

    Attributes:
        in_flight: how many batches the task keeps running at once (the task's default
            ``concurrency``). More than the number of workers keeps every worker busy while
            results travel back.
    """

    in_flight: int = 1
    #: True when batches run in other processes: the function must be importable there.
    remote = True


def _positive(label: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{label} must be a positive int, got {value!r}")
    return value


@final
class ThreadExecutor(Executor):
    """Run batches of a sync handler in worker threads (``trio.to_thread``), a few items per call.

    For blocking I/O and C code that releases the GIL. The function may be any sync callable
    (nothing is sent to another process). A call in flight is waited for on cancellation or
    checkpoint, and its results are kept.

    Args:
        threads: the most threads running this task's batches at once (also its default
            ``concurrency``).
    """

    #: Runs in this process: functions need not be importable by workers.
    remote = False

    def __init__(self, threads: int = 4) -> None:
        self.threads = _positive("ThreadExecutor threads", threads)
        self.in_flight = self.threads

    def __repr__(self) -> str:
        return f"ThreadExecutor(threads={self.threads})"


@final
class ProcessExecutor(Executor):
    """Run batches in a pool of local worker processes (trio-parallel).

    The pool is opened when the task starts and shut down when it ends; a cancelled run kills
    the workers that are still busy. Use it for CPU-bound pure-Python functions; for functions
    that wait on I/O, plain ``concurrency=`` is cheaper.

    Args:
        workers: how many worker processes; defaults to the number of CPUs.
        in_flight: how many batches to keep running at once; defaults to ``2 * workers``.
        idle_timeout: seconds an idle worker waits for work before exiting.

    Example:
        >>> @flow.task(executor=af.ProcessExecutor(workers=2), batch_size=500)
        ... def crunch(numbers: int) -> int:
        ...     return slow_pure_python(numbers)
    """

    def __init__(self, workers: int | None = None, *, in_flight: int | None = None, idle_timeout: float = 60.0) -> None:
        self.workers = _positive("ProcessExecutor workers", workers if workers is not None else os.cpu_count() or 1)
        in_flight = in_flight if in_flight is not None else 2 * self.workers
        self.in_flight = _positive("ProcessExecutor in_flight", in_flight)
        if not isinstance(idle_timeout, int | float) or idle_timeout <= 0:
            raise ValueError(f"ProcessExecutor idle_timeout must be a positive number, got {idle_timeout!r}")
        self.idle_timeout = float(idle_timeout)

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers}, in_flight={self.in_flight})"


@final
class DaskExecutor(Executor):
    """Run batches on a Dask distributed cluster (needs the extra: ``pip install 'actorflow[dask]'``).

    Args:
        address_or_client: a scheduler address (``"tcp://host:8786"``), a cluster object with a
            ``scheduler_address`` (such as ``distributed.LocalCluster``), or a synchronous
            ``distributed.Client``. Given an address or a cluster, each run opens its own client
            and closes it when the task ends; a client you pass is used as is and left open.
        in_flight: how many batches to keep submitted at once. If in doubt, twice the number of
            worker threads in the cluster.

    The workers must be able to import actorflow and the module that defines the task's
    function (install your package on them).

    Example:
        >>> cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1)
        >>> @flow.task(executor=af.DaskExecutor(cluster), batch_size=500)
        ... def crunch(numbers: int) -> int:
        ...     return slow_pure_python(numbers)
    """

    def __init__(self, address_or_client: Any, *, in_flight: int = 4) -> None:
        require("distributed", "DaskExecutor")  # imported when a run starts; refused now if missing
        target = address_or_client
        if not (
            (isinstance(target, str) and target)
            or isinstance(getattr(target, "scheduler_address", None), str)
            or is_client(target)
        ):
            raise TypeError(
                "DaskExecutor needs a scheduler address (str), a cluster with a scheduler_address or a "
                f"distributed.Client, got {type(target).__name__} {target!r}"
            )
        self.target = target
        self.in_flight = _positive("DaskExecutor in_flight", in_flight)

    def __repr__(self) -> str:
        return f"DaskExecutor({self.target!r}, in_flight={self.in_flight})"


def is_client(obj: Any) -> bool:
    """True when *obj* is a ``distributed.Client`` (without importing distributed when it is not loaded)."""
    if "distributed" not in sys.modules:
        return False
    from distributed import Client

    return isinstance(obj, Client)


# -- definition and bind time checks -----------------------------------------------------------


#: The executors a task can be given by name (``"inline"``: in the actor, no executor).
EXECUTOR_NAMES = ("inline", "thread", "process", "dask")


def executor_named(executor: Any) -> Executor | None:
    """*executor* (a name in :data:`EXECUTOR_NAMES` or an :class:`Executor`) as an executor (None: inline).

    ``"thread"`` and ``"process"`` are a default :class:`ThreadExecutor` and :class:`ProcessExecutor`;
    ``"dask"`` is a :class:`DaskExecutor` on the scheduler Dask itself is configured with (the
    ``DASK_SCHEDULER_ADDRESS`` environment variable or the ``scheduler-address`` setting of Dask's
    configuration): like a ``DaskExecutor`` given an address, each run opens its own client.

    Raises:
        ValueError: *executor* is neither, or ``"dask"`` has no scheduler configured (the message says what to do).
    """
    if isinstance(executor, Executor):
        return executor
    if executor == "inline":
        return None
    if executor == "process":
        return ProcessExecutor()
    if executor == "thread":
        return ThreadExecutor()
    if executor == "dask":
        return DaskExecutor(_dask_address())
    raise ValueError(
        f"executor must be one of {', '.join(map(repr, EXECUTOR_NAMES))}, af.ThreadExecutor(...), "
        f"af.ProcessExecutor(...) or af.DaskExecutor(...), got {executor!r}"
    )


def _dask_address() -> str:
    settings = load("distributed", "executor 'dask'").config  # Dask's configuration, as distributed reads it
    address = settings.get("scheduler-address", None)
    if not isinstance(address, str) or not address:
        raise ValueError(
            "executor 'dask' runs on the scheduler Dask is configured with, and none is: set "
            "DASK_SCHEDULER_ADDRESS=tcp://host:8786 (or Dask's 'scheduler-address' setting), or pass "
            "af.DaskExecutor(address_or_cluster_or_client)"
        )
    return address


def definition_problem(
    fn: Callable[..., Any], is_async: bool, has_stream: bool, remote: bool = True
) -> str | None:
    """Why a task cannot run in an executor (*remote*: in other processes), or None when it can.

    Known at definition time; the caller names the place (``_analyse`` the flow and task,
    ``with_executors`` the task and the executor chosen for the run).
    """
    if is_async:
        return (
            "an executor runs sync functions in worker processes; define it with plain 'def' "
            "(async functions run inline; use concurrency= for I/O-bound work)"
        )
    if not has_stream:
        return "executor= needs a streaming input (it runs batches of items)"
    return (unsendable(fn) if remote else None) or stateful(fn)


def unsendable(fn: Callable[..., Any]) -> str | None:
    """Why *fn* cannot be sent to a worker by reference, or None when it can (shape only)."""
    fn = target_of(fn)
    if not inspect.isfunction(fn) and not isinstance(fn, type):
        return (
            f"executor tasks must be module-level functions; {fn!r} is a {type(fn).__name__} "
            "and cannot be sent to a worker"
        )
    qual = fn.__qualname__
    name = f"{fn.__module__}.{qual}"
    if fn.__name__ == "<lambda>":
        return f"{name} is a lambda, which cannot be sent to a worker; define it with def at module level"
    if "<locals>" in qual:
        return (
            f"{name} is defined inside another function (a closure or nested function), which cannot be "
            "sent to a worker; define it at module level and pass values through options"
        )
    if getattr(fn, "__closure__", None):
        return f"{name} is a closure, which cannot be sent to a worker; define it at module level"
    return None


def importable(fn: Callable[..., Any]) -> bool:
    """True when *fn* is found again by importing its module and looking up its qualified name."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    obj: Any = module
    for part in getattr(fn, "__qualname__", "<?>").split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is fn


def bind_problems(tasks: Iterable[TaskDef], shaped: Collection[str] = ()) -> list[str]:
    """Problems with executor tasks, found when a flow is bound (the functions now exist).

    *shaped* names tasks whose function :func:`unsendable` has already passed; only importing it is checked.
    """
    problems: list[str] = []
    for spec in tasks:
        if spec.executor is None or not spec.executor.remote:
            continue
        reason = None if spec.name in shaped else unsendable(spec.fn)
        if reason is None and not importable(target_of(spec.fn)):
            fn = target_of(spec.fn)
            reason = (
                f"{fn.__module__}.{fn.__qualname__} cannot be found by importing module {fn.__module__!r} and "
                f"looking up {fn.__qualname__!r}, so it cannot be sent to a worker; define it at module level "
                "under its own name"
            )
        if reason:
            problems.append(f"task {spec.name!r}: {reason}")
    return problems
