"""What ``actorflow run`` shows and writes, for your own programs: live progress bars per task, the
summary table, the event log (``--events FILE``) and :func:`observe`, which attaches all of it
(and a monitor) to a run.

Importing this module loads rich; ``import actorflow`` alone does not.
"""

from ._observe import ConsoleProgress as ConsoleProgress
from ._observe import EventLog as EventLog
from ._observe import EventLogError as EventLogError
from ._observe import observe as observe
from ._observe import show_progress as show_progress
from ._observe import summary_table as summary_table

__all__ = ["ConsoleProgress", "EventLog", "EventLogError", "observe", "show_progress", "summary_table"]
