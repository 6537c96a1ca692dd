"""The run layer: the user's handle and what sits beside it: run, feeds and taps, concat, watch.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from ._asyncio_io import AsyncioFeed as AsyncioFeed
from ._asyncio_io import AsyncioSourceFeed as AsyncioSourceFeed
from ._asyncio_io import AsyncioTap as AsyncioTap
from ._asyncio_io import _EventPipe as _EventPipe
from ._asyncio_io import _settle as _settle
from ._concat import ConcatResult as ConcatResult
from ._concat import PartReport as PartReport
from ._concat import concat as concat
from ._concat import concat_async as concat_async
from ._gateway import Feed as Feed
from ._gateway import Tap as Tap
from ._gateway import external_source as external_source
from ._gateway import external_sources as external_sources
from ._gateway import feed as feed
from ._gateway import structure_item as structure_item
from ._gateway import tap as tap
from ._run import Options as Options
from ._run import Run as Run
from ._run import RunOptions as RunOptions
from ._run import _settings as _settings
from ._run import open_run as open_run
from ._run import run as run
from ._run import run_async as run_async
from ._run import store_state as store_state
from ._watch import Watch as Watch
from ._watch import require_watch as require_watch
from ._watch import watch as watch

__all__ = [
    "AsyncioFeed",
    "AsyncioSourceFeed",
    "AsyncioTap",
    "ConcatResult",
    "Feed",
    "Options",
    "PartReport",
    "Run",
    "RunOptions",
    "Tap",
    "Watch",
    "_EventPipe",
    "_settings",
    "_settle",
    "concat",
    "concat_async",
    "external_source",
    "external_sources",
    "feed",
    "open_run",
    "require_watch",
    "run",
    "run_async",
    "store_state",
    "structure_item",
    "tap",
    "watch",
]
