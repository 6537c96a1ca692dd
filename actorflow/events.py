"""Event records published on a run's event stream (``run.events()``).

Each event class has a ``kind``, its name on the wire (``Event.to_dict()``, event logs, the
monitor protocol): ``RunStarted`` is ``"run_started"``, and so on; ``TaskErrored`` (a task failed
the run) is ``"task_failed"``. Event names never repeat the names of exceptions:
``actorflow.TaskFailed`` is the error a failed run raises, ``TaskErrored`` the event.
"""

from typing import TYPE_CHECKING

from ._events import ActorRestarted as ActorRestarted
from ._events import BatchProcessed as BatchProcessed
from ._events import CacheHit as CacheHit
from ._events import CacheMiss as CacheMiss
from ._events import CheckpointWritten as CheckpointWritten
from ._events import Escalated as Escalated
from ._events import Event as Event
from ._events import EventStream as EventStream
from ._events import ItemDeadLettered as ItemDeadLettered
from ._events import ItemRetried as ItemRetried
from ._events import ItemSlow as ItemSlow
from ._events import RunFinished as RunFinished
from ._events import RunResumed as RunResumed
from ._events import RunStarted as RunStarted
from ._events import TaskErrored as TaskErrored
from ._events import TaskFinished as TaskFinished
from ._events import TaskProgress as TaskProgress
from ._events import TaskStarted as TaskStarted
from ._events import ZipUnmatched as ZipUnmatched

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
