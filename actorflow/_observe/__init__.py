"""The observe layer: console, monitor (HTTP, sessions, wire), metrics.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
Its modules load optional packages, so each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._console import ConsoleProgress as ConsoleProgress
    from ._console import EventLog as EventLog
    from ._console import EventLogError as EventLogError
    from ._console import add_observe_arguments as add_observe_arguments
    from ._console import observe as observe
    from ._console import observe_options as observe_options
    from ._console import open_event_log as open_event_log
    from ._console import parse_host_port as parse_host_port
    from ._console import prepare_observe as prepare_observe
    from ._console import show_progress as show_progress
    from ._console import summary_table as summary_table
    from ._monitor import DEFAULT_PORT as DEFAULT_PORT
    from ._monitor import PROTOCOL_VERSION as PROTOCOL_VERSION
    from ._monitor import MonitorBindError as MonitorBindError
    from ._monitor import MonitorServer as MonitorServer
    from ._monitor import bind_monitor as bind_monitor
    from ._monitor import open_monitor as open_monitor
    from ._monitor import serve_monitor as serve_monitor
    from ._monitor_metrics import CONTENT_TYPE as CONTENT_TYPE
    from ._monitor_metrics import METRICS_PATH as METRICS_PATH
    from ._monitor_metrics import Metric as Metric
    from ._monitor_metrics import MetricsCollector as MetricsCollector
    from ._monitor_metrics import collector as collector
    from ._monitor_metrics import exposition as exposition
    from ._monitor_store import serve_stored as serve_stored
    from ._monitor_store import stored_hello as stored_hello

#: Where each name lives: (module, its name there; empty for the module itself).
_HOMES = {
    "CONTENT_TYPE": ("_monitor_metrics", "CONTENT_TYPE"),
    "ConsoleProgress": ("_console", "ConsoleProgress"),
    "DEFAULT_PORT": ("_monitor", "DEFAULT_PORT"),
    "EventLog": ("_console", "EventLog"),
    "EventLogError": ("_console", "EventLogError"),
    "METRICS_PATH": ("_monitor_metrics", "METRICS_PATH"),
    "Metric": ("_monitor_metrics", "Metric"),
    "MetricsCollector": ("_monitor_metrics", "MetricsCollector"),
    "MonitorBindError": ("_monitor", "MonitorBindError"),
    "MonitorServer": ("_monitor", "MonitorServer"),
    "PROTOCOL_VERSION": ("_monitor", "PROTOCOL_VERSION"),
    "add_observe_arguments": ("_console", "add_observe_arguments"),
    "bind_monitor": ("_monitor", "bind_monitor"),
    "collector": ("_monitor_metrics", "collector"),
    "exposition": ("_monitor_metrics", "exposition"),
    "observe": ("_console", "observe"),
    "observe_options": ("_console", "observe_options"),
    "open_event_log": ("_console", "open_event_log"),
    "open_monitor": ("_monitor", "open_monitor"),
    "parse_host_port": ("_console", "parse_host_port"),
    "prepare_observe": ("_console", "prepare_observe"),
    "serve_monitor": ("_monitor", "serve_monitor"),
    "serve_stored": ("_monitor_store", "serve_stored"),
    "show_progress": ("_console", "show_progress"),
    "stored_hello": ("_monitor_store", "stored_hello"),
    "summary_table": ("_console", "summary_table"),
}


if not TYPE_CHECKING:  # type checkers read the imports above and keep flagging unknown names

    def __getattr__(name: str) -> object:
        import importlib

        if name not in _HOMES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module, original = _HOMES[name]
        loaded = importlib.import_module(f"{__name__}.{module}")
        value = getattr(loaded, original) if original else loaded
        globals()[name] = value
        return value


__all__ = [
    "CONTENT_TYPE",
    "ConsoleProgress",
    "DEFAULT_PORT",
    "EventLog",
    "EventLogError",
    "METRICS_PATH",
    "Metric",
    "MetricsCollector",
    "MonitorBindError",
    "MonitorServer",
    "PROTOCOL_VERSION",
    "add_observe_arguments",
    "bind_monitor",
    "collector",
    "exposition",
    "observe",
    "observe_options",
    "open_event_log",
    "open_monitor",
    "parse_host_port",
    "prepare_observe",
    "serve_monitor",
    "serve_stored",
    "show_progress",
    "stored_hello",
    "summary_table",
]
