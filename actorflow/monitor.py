"""The monitor server: a run's graph, live events and controls over websockets, the live dashboard,
and Prometheus metrics (``GET /metrics``), all on one port.

See ``docs/observability.md`` and ``docs/monitor-protocol.md``. Importing this module loads
trio-websocket; ``import actorflow`` alone does not.
"""

from ._observe import DEFAULT_PORT as DEFAULT_PORT
from ._observe import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._observe import MonitorBindError as MonitorBindError
from ._observe import MonitorServer as MonitorServer
from ._observe import open_monitor as open_monitor
from ._observe import serve_monitor as serve_monitor

__all__ = ["DEFAULT_PORT", "PROTOCOL_VERSION", "MonitorBindError", "MonitorServer", "open_monitor", "serve_monitor"]
