"""Event records published on a run's event stream (``run.events()``)."""

from ._events import ActorRestarted as ActorRestarted
from ._events import BatchProcessed as BatchProcessed
from ._events import CacheHit as CacheHit
from ._events import CacheMiss as CacheMiss
from ._events import CheckpointWritten as CheckpointWritten
from ._events import DeadLettered as DeadLettered
from ._events import Escalated as Escalated
from ._events import Event as Event
from ._events import EventStream as EventStream
from ._events import ItemRetried as ItemRetried
from ._events import RunFinished as RunFinished
from ._events import RunResumed as RunResumed
from ._events import RunStarted as RunStarted
from ._events import TaskFailed as TaskFailed
from ._events import TaskFinished as TaskFinished
from ._events import TaskProgress as TaskProgress
from ._events import TaskStarted as TaskStarted

__all__ = [
    "ActorRestarted",
    "BatchProcessed",
    "CacheHit",
    "CacheMiss",
    "CheckpointWritten",
    "DeadLettered",
    "Escalated",
    "Event",
    "EventStream",
    "ItemRetried",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "TaskFailed",
    "TaskFinished",
    "TaskProgress",
    "TaskStarted",
]
