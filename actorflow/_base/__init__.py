"""The base layer: values every layer uses: errors, typing helpers, event and result records, optional packages.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from . import _events as _events
from ._calls import bind as bind
from ._calls import instance_of as instance_of
from ._calls import item_caller as item_caller
from ._calls import step_caller as step_caller
from ._calls import target_of as target_of
from ._errors import ActorflowError as ActorflowError
from ._errors import DeadLettered as DeadLettered
from ._errors import DefinitionError as DefinitionError
from ._errors import HandlerStopped as HandlerStopped
from ._errors import InputChangedError as InputChangedError
from ._errors import InvocationError as InvocationError
from ._errors import ItemFailure as ItemFailure
from ._errors import LateItem as LateItem
from ._errors import MailboxTypeError as MailboxTypeError
from ._errors import MalformedLineError as MalformedLineError
from ._errors import ResumeError as ResumeError
from ._errors import RunCancelled as RunCancelled
from ._errors import RunInterrupted as RunInterrupted
from ._errors import StoreError as StoreError
from ._errors import TaskFailed as TaskFailed
from ._errors import _fmt_seq as _fmt_seq
from ._errors import describe as describe
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
from ._extras import MissingExtraError as MissingExtraError
from ._extras import load as load
from ._extras import require as require
from ._file import File as File
from ._file import content_hash as content_hash
from ._file import files_in as files_in
from ._named import define as define
from ._named import get as get
from ._named import registry as registry
from ._named import undefine as undefine
from ._result import RunResult as RunResult
from ._result import Summary as Summary
from ._result import TaskStats as TaskStats
from ._result import task_status as task_status
from ._typing import SKIP as SKIP
from ._typing import BatchCheck as BatchCheck
from ._typing import Cursor as Cursor
from ._typing import NamedType as NamedType
from ._typing import Seq as Seq
from ._typing import Stream as Stream
from ._typing import _Skip as _Skip
from ._typing import _strip as _strip
from ._typing import admits as admits
from ._typing import batch_checker as batch_checker
from ._typing import deep_checker as deep_checker
from ._typing import fits as fits
from ._typing import inspect_empty as inspect_empty
from ._typing import list_item_type as list_item_type
from ._typing import record_fields as record_fields
from ._typing import runtime_classes as runtime_classes
from ._typing import stream_item_type as stream_item_type
from ._typing import type_name as type_name
from ._typing import type_problem as type_problem

__all__ = [
    "ActorRestarted",
    "ActorflowError",
    "BatchCheck",
    "BatchProcessed",
    "CacheHit",
    "CacheMiss",
    "CheckpointWritten",
    "Cursor",
    "DeadLettered",
    "DefinitionError",
    "Escalated",
    "Event",
    "EventStream",
    "File",
    "HandlerStopped",
    "InputChangedError",
    "InvocationError",
    "ItemDeadLettered",
    "ItemFailure",
    "ItemRetried",
    "ItemSlow",
    "LateItem",
    "MailboxTypeError",
    "MalformedLineError",
    "MissingExtraError",
    "NamedType",
    "ResumeError",
    "RunCancelled",
    "RunFinished",
    "RunInterrupted",
    "RunResult",
    "RunResumed",
    "RunStarted",
    "SKIP",
    "Seq",
    "StoreError",
    "Stream",
    "Summary",
    "TaskErrored",
    "TaskFailed",
    "TaskFinished",
    "TaskProgress",
    "TaskStarted",
    "TaskStats",
    "ZipUnmatched",
    "_Skip",
    "_events",
    "_fmt_seq",
    "_strip",
    "admits",
    "batch_checker",
    "bind",
    "content_hash",
    "deep_checker",
    "define",
    "describe",
    "files_in",
    "fits",
    "get",
    "inspect_empty",
    "instance_of",
    "item_caller",
    "list_item_type",
    "load",
    "record_fields",
    "registry",
    "require",
    "runtime_classes",
    "step_caller",
    "stream_item_type",
    "target_of",
    "task_status",
    "type_name",
    "type_problem",
    "undefine",
]
