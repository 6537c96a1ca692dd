"""The monitor server: a run's graph, live events and controls over websockets, the live dashboard,
and Prometheus metrics (``GET /metrics``), all on one port.

See ``docs/observability.md`` and ``docs/monitor-protocol.md``. Importing this module loads
trio-websocket; ``import actorflow`` alone does not.
"""

from ._monitor import DEFAULT_PORT as DEFAULT_PORT
from ._monitor import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._monitor import MonitorBindError as MonitorBindError
from ._monitor import MonitorServer as MonitorServer
from ._monitor import open_monitor as open_monitor
from ._monitor import serve_monitor as serve_monitor

__all__ = ["DEFAULT_PORT", "PROTOCOL_VERSION", "MonitorBindError", "MonitorServer", "open_monitor", "serve_monitor"]
