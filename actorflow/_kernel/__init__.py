"""The kernel layer: the batch cycle, actors, mailboxes and inboxes, supervisor, checkpoints, cache, executor sessions.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from ._cache import DEFAULT_CACHE_LIMIT as DEFAULT_CACHE_LIMIT
from ._cache import Cache as Cache
from ._cache import open_cache as open_cache
from ._cache_keys import fingerprint as fingerprint
from ._cache_run import CacheRole as CacheRole
from ._cache_run import plan as plan
from ._checkpoint import apply as apply
from ._checkpoint import check_storable as check_storable
from ._checkpoint import load as load
from ._checkpoint import open_for_run as open_for_run
from ._loop import DEFAULT_BATCH_TIME as DEFAULT_BATCH_TIME
from ._mailbox import Mailbox as Mailbox
from ._mailbox import Waiters as Waiters
from ._runtime import DEFAULT_SLOW_ITEM as DEFAULT_SLOW_ITEM
from ._runtime import Runtime as Runtime
from ._runtime import current_run as current_run

__all__ = [
    "Cache",
    "CacheRole",
    "DEFAULT_BATCH_TIME",
    "DEFAULT_CACHE_LIMIT",
    "DEFAULT_SLOW_ITEM",
    "Mailbox",
    "Runtime",
    "Waiters",
    "apply",
    "check_storable",
    "current_run",
    "fingerprint",
    "load",
    "open_cache",
    "open_for_run",
    "plan",
]
