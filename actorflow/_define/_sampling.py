"""The sampling rule of deep checks on a stream: which items' contents a port checks.

Every item's class is checked where it is sent, always (one C pass a batch, ``_outcheck``). The
contents of items -- container elements, record fields, the deep check of ``_typing.batch_checker``
-- cost as much as a cheap pipeline's own work, so a port checks them by a documented sample:
every item of the first :data:`CHECK_FIRST` items through it, then, in each batch, the items at
positions 0, :data:`CHECK_STRIDE`, 2 x :data:`CHECK_STRIDE`, ... (the first item of every batch
and one in eight). ``check="full"`` on a task checks every item of its ports.
"""

from __future__ import annotations

from typing import Any, final

from .._base import BatchCheck, batch_checker

#: How a port checks the contents of items (``check=`` on a task): ``"sample"`` (the default) or ``"full"``.
CHECK_MODES = ("sample", "full")
#: A port checks the contents of its first ``CHECK_FIRST`` items whole (in batches; a batch that
#: starts before the count is reached is checked whole) ...
CHECK_FIRST = 1000
#: ... then, in each batch, the items at positions 0, ``CHECK_STRIDE``, ``2 * CHECK_STRIDE``, ...
CHECK_STRIDE = 8


@final
class SampledCheck:
    """One port's deep check of whole batches: :func:`batch_checker` applied by the documented rule.

    Every item's class is checked elsewhere, always (``isinstance``, one C pass a batch). The
    contents (container elements, record fields) are checked for every item of the first
    :data:`CHECK_FIRST` items through the port; after that, per batch, for the items at positions
    0, 8, 16, ... (:data:`CHECK_STRIDE`): the first item of every batch and one item in eight.
    With *full* (``check="full"``) every item is checked. Stateful (it counts the items it has
    seen), so each port has its own.
    """

    __slots__ = ("check", "full", "left")

    def __init__(self, check: BatchCheck, full: bool) -> None:
        self.check = check
        self.full = full
        #: Items still to be checked whole before sampling starts.
        self.left = CHECK_FIRST

    def __call__(self, items: list[Any]) -> bool:
        left = self.left
        if left > 0 or self.full:
            self.left = left - len(items)
            return self.check(items)
        return self.check(items[::CHECK_STRIDE])


def sampled_checker(tp: Any, full: bool = False) -> SampledCheck | None:
    """A new :class:`SampledCheck` of values of *tp* (None: the class check says it all)."""
    check = batch_checker(tp)
    return None if check is None else SampledCheck(check, full)
