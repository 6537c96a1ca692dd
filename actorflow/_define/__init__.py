"""The define layer: the flow, task settings and their defaults, policies, executor choices, analysis, binding.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from ._bind import RunGraph as RunGraph
from ._bind import with_executors as with_executors
from ._connect_csv import CsvSource as CsvSource
from ._connect_files import JsonLinesSource as JsonLinesSource
from ._connect_files import LinesSource as LinesSource
from ._connect_pg import PostgresSink as PostgresSink
from ._connect_pg import PostgresSource as PostgresSource
from ._connect_sqlite import SqliteSink as SqliteSink
from ._context import Context as Context
from ._context import Report as Report
from ._context import SecretError as SecretError
from ._context import check_secrets as check_secrets
from ._context import redact as redact
from ._context import route as route
from ._context import scrub as scrub
from ._executor_choice import EXECUTOR_NAMES as EXECUTOR_NAMES
from ._executor_choice import DaskExecutor as DaskExecutor
from ._executor_choice import Executor as Executor
from ._executor_choice import ProcessExecutor as ProcessExecutor
from ._executor_choice import ThreadExecutor as ThreadExecutor
from ._executor_choice import is_client as is_client
from ._export import describe as describe
from ._fingerprint import CodeFingerprint as CodeFingerprint
from ._fingerprint import code_fingerprint as code_fingerprint
from ._fingerprint import is_user_file as is_user_file
from ._flow import Flow as Flow
from ._policy import DeadLetter as DeadLetter
from ._policy import Fail as Fail
from ._policy import Restart as Restart
from ._policy import Retry as Retry
from ._sampling import sampled_checker as sampled_checker
from ._sinks import JsonLinesSink as JsonLinesSink
from ._spec import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from ._spec import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from ._spec import EXTERNAL_ATTR as EXTERNAL_ATTR
from ._spec import REQUIRED as REQUIRED
from ._spec import Input as Input
from ._spec import Option as Option
from ._spec import TaskDef as TaskDef
from ._spec import TaskSettings as TaskSettings
from ._spec import positive_seconds as positive_seconds
from ._taskclass import Task as Task
from ._taskclass import TransactionalSink as TransactionalSink
from ._taskclass import end_of_stream_of as end_of_stream_of
from ._taskclass import instance_state as instance_state
from ._taskclass import is_stateful_class as is_stateful_class
from ._taskclass import is_transactional as is_transactional
from ._windows import Session as Session
from ._windows import Sliding as Sliding
from ._windows import Tumbling as Tumbling
from ._windows import WindowResult as WindowResult
from ._windows import key_annotation as key_annotation
from ._windows import keyed_text as keyed_text
from ._windows import seconds as seconds

__all__ = [
    "CodeFingerprint",
    "Context",
    "CsvSource",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CAPACITY",
    "DaskExecutor",
    "DeadLetter",
    "EXECUTOR_NAMES",
    "EXTERNAL_ATTR",
    "Executor",
    "Fail",
    "Flow",
    "Input",
    "JsonLinesSink",
    "JsonLinesSource",
    "LinesSource",
    "Option",
    "PostgresSink",
    "PostgresSource",
    "ProcessExecutor",
    "REQUIRED",
    "Report",
    "Restart",
    "Retry",
    "RunGraph",
    "SecretError",
    "Session",
    "Sliding",
    "SqliteSink",
    "Task",
    "TaskDef",
    "TaskSettings",
    "ThreadExecutor",
    "TransactionalSink",
    "Tumbling",
    "WindowResult",
    "check_secrets",
    "code_fingerprint",
    "describe",
    "end_of_stream_of",
    "instance_state",
    "is_client",
    "is_stateful_class",
    "is_transactional",
    "is_user_file",
    "key_annotation",
    "keyed_text",
    "positive_seconds",
    "redact",
    "route",
    "sampled_checker",
    "scrub",
    "seconds",
    "with_executors",
]
