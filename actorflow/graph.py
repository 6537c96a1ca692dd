"""What a flow is made of, for code that inspects flows: task definitions, their ports and
settings, and the bound run graph.

``flow.tasks`` maps names to :class:`TaskDef` (with its :class:`Input` and :class:`Option` ports
and its :class:`TaskSettings`); ``flow.bind(options)`` returns a :class:`RunGraph`, which
``af.run`` and ``af.open_run`` also accept.
"""

from ._define import Input as Input
from ._define import Option as Option
from ._define import RunGraph as RunGraph
from ._define import TaskDef as TaskDef
from ._define import TaskSettings as TaskSettings

__all__ = ["Input", "Option", "RunGraph", "TaskDef", "TaskSettings"]
