"""The run store (an LMDB environment): run metadata, checkpoints, dead letters and the cache.

Runs open their store themselves (``af.run(flow, store=DIR)``); :func:`open_store` is for reading
one from code, e.g. its dead letters or its latest checkpoint. See ``docs/durability.md``.
"""

from ._storage import SCHEMA_VERSION as SCHEMA_VERSION
from ._storage import Store as Store
from ._storage import open_store as open_store

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]
