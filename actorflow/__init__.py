"""actorflow: an actor-based dataflow runtime for Python, built on trio.

Define tasks with the decorators of a :class:`Flow`, then run it with :func:`run`,
:func:`run_async` or :func:`open_run`.
"""

from . import events as events
from ._bind import RunGraph as RunGraph
from ._errors import ActorflowError as ActorflowError
from ._errors import DefinitionError as DefinitionError
from ._errors import InvocationError as InvocationError
from ._errors import MailboxTypeError as MailboxTypeError
from ._errors import RunCancelled as RunCancelled
from ._errors import TaskFailed as TaskFailed
from ._flow import REQUIRED as REQUIRED
from ._flow import Flow as Flow
from ._flow import Input as Input
from ._flow import Option as Option
from ._flow import TaskDef as TaskDef
from ._mailbox import Mailbox as Mailbox
from ._run import Run as Run
from ._run import RunResult as RunResult
from ._run import Summary as Summary
from ._run import TaskStats as TaskStats
from ._run import open_run as open_run
from ._run import run as run
from ._run import run_async as run_async
from ._typing import SKIP as SKIP
from ._typing import Stream as Stream

__version__ = "0.1.0"

__all__ = [
    "REQUIRED",
    "SKIP",
    "ActorflowError",
    "DefinitionError",
    "Flow",
    "Input",
    "InvocationError",
    "Mailbox",
    "MailboxTypeError",
    "Option",
    "Run",
    "RunCancelled",
    "RunGraph",
    "RunResult",
    "Stream",
    "Summary",
    "TaskDef",
    "TaskFailed",
    "TaskStats",
    "events",
    "open_run",
    "run",
    "run_async",
]
