"""Prometheus metrics of a run, for services that embed one.

The monitor serves them at ``GET /metrics`` (``af.monitor.open_monitor(run, ...)``, or
``actorflow run --monitor HOST:PORT``). Without a monitor, make a collector right after
:func:`~actorflow.open_run` and mount :meth:`MetricsCollector.render` on your own HTTP server
(answer with :data:`CONTENT_TYPE`), or serve :meth:`MetricsCollector.handle` with
``trio.serve_tcp``. The text is the Prometheus text exposition format 0.0.4, written by actorflow
itself (no extra package). See ``docs/observability.md`` for every metric.
"""

from ._observe import CONTENT_TYPE as CONTENT_TYPE
from ._observe import METRICS_PATH as METRICS_PATH
from ._observe import Metric as Metric
from ._observe import MetricsCollector as MetricsCollector
from ._observe import collector as collector
from ._observe import exposition as exposition

__all__ = ["CONTENT_TYPE", "METRICS_PATH", "Metric", "MetricsCollector", "collector", "exposition"]
