"""Frozen statistics records: what observers (console, monitor, metrics) read of a running run.

The kernel makes them (``Runtime.edge_stats``, ``Runtime.busy``); observers never reach into
actors or mailboxes. Each record is a value taken at one moment: it does not change afterwards.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class EdgeStats:
    """One edge of the graph at one moment.

    Attributes:
        source: the task the edge leaves.
        target: the task it feeds.
        port: the input of *target* it feeds.
        sent: items put on the edge so far (for an edge that hands over a whole product: the
            product's items once it is ready).
        queued: items waiting for *target* on this edge (a zip's drained but unmatched items
            included); 0 for a product edge.
        capacity: the mailbox's bound in items (None: a product edge has no mailbox).
    """

    source: str
    target: str
    port: str
    sent: int
    queued: int
    capacity: int | None
