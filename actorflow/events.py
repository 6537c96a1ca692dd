"""Event records published on a run's event stream (``run.events()``).

Each event class has a ``kind``, its name on the wire (``Event.to_dict()``, event logs, the
monitor protocol): ``RunStarted`` is ``"run_started"``, and so on; ``TaskErrored`` (a task failed
the run) is ``"task_failed"``. Event names never repeat the names of exceptions:
``actorflow.TaskFailed`` is the error a failed run raises, ``TaskErrored`` the event.
"""

from typing import TYPE_CHECKING

from ._base import ActorRestarted as ActorRestarted
from ._base import BatchProcessed as BatchProcessed
from ._base import CacheHit as CacheHit
from ._base import CacheMiss as CacheMiss
from ._base import CheckpointWritten as CheckpointWritten
from ._base import Escalated as Escalated
from ._base import Event as Event
from ._base import EventStream as EventStream
from ._base import ItemDeadLettered as ItemDeadLettered
from ._base import ItemRetried as ItemRetried
from ._base import ItemSlow as ItemSlow
from ._base import RunFinished as RunFinished
from ._base import RunResumed as RunResumed
from ._base import RunStarted as RunStarted
from ._base import TaskErrored as TaskErrored
from ._base import TaskFinished as TaskFinished
from ._base import TaskProgress as TaskProgress
from ._base import TaskStarted as TaskStarted
from ._base import ZipUnmatched as ZipUnmatched

__all__ = [
    "ActorRestarted",
    "BatchProcessed",
    "CacheHit",
    "CacheMiss",
    "CheckpointWritten",
    "Escalated",
    "Event",
    "EventStream",
    "ItemDeadLettered",
    "ItemRetried",
    "ItemSlow",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "TaskErrored",
    "TaskFinished",
    "TaskProgress",
    "TaskStarted",
    "ZipUnmatched",
]

if not TYPE_CHECKING:  # type checkers keep flagging unknown names

    def __getattr__(name: str) -> object:
        if name == "TaskFailed":
            raise AttributeError(
                "actorflow.events has no 'TaskFailed': the event is TaskErrored (kind 'task_failed'); "
                "the exception is actorflow.TaskFailed"
            )
        if name == "DeadLettered":
            raise AttributeError(
                "actorflow.events has no 'DeadLettered': the event is ItemDeadLettered (kind 'dead_lettered'); "
                "the exception (a strict run's dead letters) is actorflow.DeadLettered"
            )
        raise AttributeError(f"module 'actorflow.events' has no attribute {name!r}")
