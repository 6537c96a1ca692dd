"""The product cache of a store, for inspecting and clearing it from code.

Runs use the cache on their own (``af.run(flow, store=DIR)``, ``cache=``, ``cache_limit=``; see
``docs/caching.md``); :class:`Cache` is the store-facing view the ``actorflow cache`` command uses:
``Cache(store).entries()``, ``Cache(store).clear(task=None)``.
"""

from ._kernel import DEFAULT_CACHE_LIMIT as DEFAULT_CACHE_LIMIT
from ._kernel import Cache as Cache

__all__ = ["DEFAULT_CACHE_LIMIT", "Cache"]
