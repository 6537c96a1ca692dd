"""actorflow: an actor-based dataflow runtime for Python, built on trio.

Define tasks with the decorators of a :class:`Flow`, then run it with :func:`run`,
:func:`run_async` or :func:`open_run`.

The top level holds what a flow and the code around a run are written with. Everything else
lives in a sub-module named for its concern, loaded the first time it is used (``af.monitor``
after ``import actorflow as af`` works): ``events``, ``types``, ``console``, ``monitor``,
``metrics``, ``cache``, ``store``, ``graph``, ``mailbox``, ``testing`` and ``asyncio``. See
``docs/api.md``.
"""

from typing import TYPE_CHECKING

from . import events as events
from . import types as types
from ._base import SKIP as SKIP
from ._base import ActorflowError as ActorflowError
from ._base import Cursor as Cursor
from ._base import DeadLettered as DeadLettered
from ._base import DefinitionError as DefinitionError
from ._base import File as File
from ._base import InputChangedError as InputChangedError
from ._base import InvocationError as InvocationError
from ._base import MailboxTypeError as MailboxTypeError
from ._base import MalformedLineError as MalformedLineError
from ._base import MissingExtraError as MissingExtraError
from ._base import ResumeError as ResumeError
from ._base import RunCancelled as RunCancelled
from ._base import RunInterrupted as RunInterrupted
from ._base import RunResult as RunResult
from ._base import Seq as Seq
from ._base import StoreError as StoreError
from ._base import Stream as Stream
from ._base import Summary as Summary
from ._base import TaskFailed as TaskFailed
from ._base import TaskStats as TaskStats
from ._define import REQUIRED as REQUIRED
from ._define import Context as Context
from ._define import CsvSource as CsvSource
from ._define import DaskExecutor as DaskExecutor
from ._define import DeadLetter as DeadLetter
from ._define import Executor as Executor
from ._define import Fail as Fail
from ._define import Flow as Flow
from ._define import JsonLinesSink as JsonLinesSink
from ._define import JsonLinesSource as JsonLinesSource
from ._define import LinesSource as LinesSource
from ._define import PostgresSink as PostgresSink
from ._define import PostgresSource as PostgresSource
from ._define import ProcessExecutor as ProcessExecutor
from ._define import Restart as Restart
from ._define import Retry as Retry
from ._define import SecretError as SecretError
from ._define import Session as Session
from ._define import Sliding as Sliding
from ._define import SqliteSink as SqliteSink
from ._define import Task as Task
from ._define import ThreadExecutor as ThreadExecutor
from ._define import TransactionalSink as TransactionalSink
from ._define import Tumbling as Tumbling
from ._define import WindowResult as WindowResult
from ._run import ConcatResult as ConcatResult
from ._run import Feed as Feed
from ._run import PartReport as PartReport
from ._run import Run as Run
from ._run import Tap as Tap
from ._run import Watch as Watch
from ._run import concat as concat
from ._run import concat_async as concat_async
from ._run import external_source as external_source
from ._run import feed as feed
from ._run import open_run as open_run
from ._run import run as run
from ._run import run_async as run_async
from ._run import tap as tap
from ._run import watch as watch
from ._storage import register_codec as register_codec

if TYPE_CHECKING:  # loaded on first use at run time (see __getattr__ below)
    from . import asyncio as asyncio
    from . import cache as cache
    from . import console as console
    from . import graph as graph
    from . import mailbox as mailbox
    from . import metrics as metrics
    from . import monitor as monitor
    from . import store as store
    from . import testing as testing
    from .console import ConsoleProgress as ConsoleProgress
    from .console import observe as observe
    from .console import show_progress as show_progress
    from .console import summary_table as summary_table
    from .monitor import MonitorServer as MonitorServer
    from .monitor import open_monitor as open_monitor
    from .monitor import serve_monitor as serve_monitor
    from .store import Store as Store
    from .store import open_store as open_store

__version__ = "0.1.0"

__all__ = [
    # defining a flow
    "REQUIRED",
    "SKIP",
    "Context",
    "Cursor",
    "File",
    "Flow",
    "Seq",
    "Stream",
    "Task",
    "TransactionalSink",
    "JsonLinesSink",
    "LinesSource",
    "JsonLinesSource",
    "CsvSource",
    "SqliteSink",
    "PostgresSink",
    "PostgresSource",
    "external_source",
    "register_codec",
    # windows
    "Session",
    "Sliding",
    "Tumbling",
    "WindowResult",
    # running it
    "Run",
    "RunResult",
    "Summary",
    "TaskStats",
    "open_run",
    "run",
    "run_async",
    "Watch",
    "watch",
    "Feed",
    "Tap",
    "feed",
    "tap",
    "ConcatResult",
    "PartReport",
    "concat",
    "concat_async",
    # failure policies
    "DeadLetter",
    "DeadLettered",
    "Fail",
    "Restart",
    "Retry",
    # executors
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "ThreadExecutor",
    # errors
    "ActorflowError",
    "DefinitionError",
    "InvocationError",
    "MailboxTypeError",
    "MissingExtraError",
    "ResumeError",
    "InputChangedError",
    "MalformedLineError",
    "RunCancelled",
    "RunInterrupted",
    "SecretError",
    "StoreError",
    "TaskFailed",
    # sub-modules loaded with the package
    "events",
    "types",
]

#: Sub-modules loaded on first use: some bring heavy libraries (rich, trio-websocket, ...).
_SUBMODULES = ("asyncio", "cache", "console", "graph", "mailbox", "metrics", "monitor", "store", "testing")

#: Names earlier versions had at the top level, now in a sub-module; still reachable here, with a
#: DeprecationWarning naming their home.
_KEPT = {
    "ConsoleProgress": "console", "observe": "console", "show_progress": "console", "summary_table": "console",
    "MonitorServer": "monitor", "open_monitor": "monitor", "serve_monitor": "monitor",
    "Store": "store", "open_store": "store",
}

#: Internals that left the top level for good: the AttributeError says where they went.
_MOVED = {
    "Cache": "cache", "EventLog": "console", "Mailbox": "mailbox",
    "RunGraph": "graph", "TaskDef": "graph", "Input": "graph", "Option": "graph",
}

if not TYPE_CHECKING:  # type checkers keep flagging unknown names; the TYPE_CHECKING imports cover the rest

    def __getattr__(name: str) -> object:
        import importlib

        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        if name in _KEPT:
            import warnings

            home = _KEPT[name]
            warnings.warn(
                f"actorflow.{name} is now actorflow.{home}.{name}", DeprecationWarning, stacklevel=2
            )
            return getattr(importlib.import_module(f"{__name__}.{home}"), name)
        if name in _MOVED:
            raise AttributeError(f"actorflow.{name} moved: use actorflow.{_MOVED[name]}.{name}")
        raise AttributeError(f"module 'actorflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES, "__version__"})
