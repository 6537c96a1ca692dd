"""Event records published on a run's event stream (``run.events()``)."""

from ._events import BatchProcessed as BatchProcessed
from ._events import Event as Event
from ._events import EventStream as EventStream
from ._events import RunFinished as RunFinished
from ._events import RunStarted as RunStarted
from ._events import TaskFailed as TaskFailed
from ._events import TaskFinished as TaskFinished
from ._events import TaskStarted as TaskStarted

__all__ = [
    "BatchProcessed",
    "Event",
    "EventStream",
    "RunFinished",
    "RunStarted",
    "TaskFailed",
    "TaskFinished",
    "TaskStarted",
]
