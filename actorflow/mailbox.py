"""The typed, bounded mailbox between two actors, for tests and tools that look inside a run.

A run wires one :class:`Mailbox` per streaming edge; ``run.runtime.mailboxes`` maps each mailbox's
name (``"task.port"``) to the mailbox, the actor reading it and its input port.
"""

from ._define import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from ._define import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from ._kernel import Mailbox as Mailbox

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CAPACITY", "Mailbox"]
