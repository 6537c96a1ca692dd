"""actorflow: an actor-based dataflow runtime for Python, built on trio.

Define tasks with the decorators of a :class:`Flow`, then run it with :func:`run`,
:func:`run_async` or :func:`open_run`.
"""

from . import events as events
from . import types as types
from ._bind import RunGraph as RunGraph
from ._cache import Cache as Cache
from ._concat import ConcatResult as ConcatResult
from ._concat import PartReport as PartReport
from ._concat import concat as concat
from ._concat import concat_async as concat_async
from ._console import ConsoleProgress as ConsoleProgress
from ._console import EventLog as EventLog
from ._console import observe as observe
from ._console import show_progress as show_progress
from ._console import summary_table as summary_table
from ._context import Context as Context
from ._context import SecretError as SecretError
from ._errors import ActorflowError as ActorflowError
from ._errors import DefinitionError as DefinitionError
from ._errors import InvocationError as InvocationError
from ._errors import MailboxTypeError as MailboxTypeError
from ._errors import ResumeError as ResumeError
from ._errors import RunCancelled as RunCancelled
from ._errors import RunInterrupted as RunInterrupted
from ._errors import StoreError as StoreError
from ._errors import TaskFailed as TaskFailed
from ._executors import DaskExecutor as DaskExecutor
from ._executors import Executor as Executor
from ._executors import ProcessExecutor as ProcessExecutor
from ._file import File as File
from ._flow import Flow as Flow
from ._gateway import Feed as Feed
from ._gateway import Tap as Tap
from ._gateway import external_source as external_source
from ._gateway import feed as feed
from ._gateway import tap as tap
from ._mailbox import Mailbox as Mailbox
from ._monitor import MonitorServer as MonitorServer
from ._monitor import open_monitor as open_monitor
from ._monitor import serve_monitor as serve_monitor
from ._policy import DeadLetter as DeadLetter
from ._policy import Fail as Fail
from ._policy import Restart as Restart
from ._policy import Retry as Retry
from ._result import RunResult as RunResult
from ._result import Summary as Summary
from ._result import TaskStats as TaskStats
from ._run import Run as Run
from ._run import open_run as open_run
from ._run import run as run
from ._run import run_async as run_async
from ._spec import REQUIRED as REQUIRED
from ._spec import Input as Input
from ._spec import Option as Option
from ._spec import TaskDef as TaskDef
from ._store import Store as Store
from ._store import open_store as open_store
from ._taskclass import Task as Task
from ._typing import SKIP as SKIP
from ._typing import Cursor as Cursor
from ._typing import Seq as Seq
from ._typing import Stream as Stream

__version__ = "0.1.0"

__all__ = [
    "REQUIRED",
    "SKIP",
    "ActorflowError",
    "Cache",
    "ConcatResult",
    "ConsoleProgress",
    "Context",
    "Cursor",
    "DaskExecutor",
    "DeadLetter",
    "DefinitionError",
    "EventLog",
    "Executor",
    "Fail",
    "Feed",
    "File",
    "Flow",
    "Input",
    "InvocationError",
    "Mailbox",
    "MailboxTypeError",
    "MonitorServer",
    "Option",
    "PartReport",
    "ProcessExecutor",
    "Restart",
    "ResumeError",
    "Retry",
    "Run",
    "RunCancelled",
    "RunInterrupted",
    "RunGraph",
    "RunResult",
    "SecretError",
    "Seq",
    "Store",
    "StoreError",
    "Stream",
    "Summary",
    "Tap",
    "Task",
    "TaskDef",
    "TaskFailed",
    "TaskStats",
    "concat",
    "concat_async",
    "events",
    "external_source",
    "feed",
    "observe",
    "open_monitor",
    "open_store",
    "open_run",
    "run",
    "run_async",
    "serve_monitor",
    "show_progress",
    "summary_table",
    "tap",
    "types",
]
