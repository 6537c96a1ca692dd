"""The storage layer: bytes in and out: the msgpack codec, the cattrs converter, the LMDB store and spill area.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from ._codec import EncodeError as EncodeError
from ._codec import pack as pack
from ._codec import plain_batch as plain_batch
from ._codec import plain_seqs as plain_seqs
from ._codec import restore as restore
from ._codec import restore_items as restore_items
from ._codec import restore_like as restore_like
from ._codec import seq_from_plain as seq_from_plain
from ._codec import storable_problem as storable_problem
from ._codec import unpack as unpack
from ._codecs import register_codec as register_codec
from ._convert import coerce as coerce
from ._convert import converter as converter
from ._convert import describe as describe
from ._convert import plain as plain
from ._convert import strict as strict
from ._convert import structure_strictly as structure_strictly
from ._jsontext import dumps as dumps
from ._spill import SpilledStream as SpilledStream
from ._spill import SpillStore as SpillStore
from ._store import SCHEMA_VERSION as SCHEMA_VERSION
from ._store import Store as Store
from ._store import dangling as dangling
from ._store import open_store as open_store

__all__ = [
    "EncodeError",
    "SCHEMA_VERSION",
    "SpillStore",
    "SpilledStream",
    "Store",
    "coerce",
    "converter",
    "dangling",
    "describe",
    "dumps",
    "open_store",
    "pack",
    "plain",
    "plain_batch",
    "plain_seqs",
    "register_codec",
    "restore",
    "restore_items",
    "restore_like",
    "seq_from_plain",
    "storable_problem",
    "strict",
    "structure_strictly",
    "unpack",
]
