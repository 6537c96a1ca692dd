"""The semantics of a keyed fold, as one pure logic object over batches (no trio, no actor).

``@flow.collector(init=..., key=fn)`` keeps one accumulator per key, in order of the key's first
appearance; its product is the ``dict`` of key to ``finish(acc)``. :class:`KeyedFoldLogic` does
the folding (``on_batch``), the product (``on_eof``) and the state a checkpoint holds
(``state`` / ``restore``, one :class:`KeyedState` record).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._window_logic import fresh_of


def _same(value: Any) -> Any:
    return value


@attrs.frozen
class KeyedState:
    """A keyed fold's state as plain data: ``accs`` is ``[[key, acc], ...]`` in first-seen key order."""

    accs: list[Any]


class KeyedFoldLogic:
    """One accumulator per key.

    Args:
        key: ``key(item)``, any storable value.
        step: ``step(acc, item) -> acc``.
        init: every key's starting accumulator (deep-copied unless immutable).
        finish: ``finish(acc) -> value`` per key at the end (None: the accumulator).
    """

    def __init__(
        self, key: Callable[[Any], Any], step: Callable[[Any, Any], Any], init: Any,
        finish: Callable[[Any], Any] | None = None,
    ) -> None:
        self.key = key
        #: ``step(acc, item)``; the actor sets it anew before each batch (a restart rebinds it).
        self.step = step
        self.fresh = fresh_of(init)
        self.finish = finish or _same
        self.accs: dict[Any, Any] = {}
        #: After ``on_batch`` raised: the index of the item whose code raised.
        self.at = 0

    def on_batch(self, items: list[Any], pos: int = 0) -> None:
        """Fold ``items[pos:]`` into their keys' accumulators.

        Raises:
            Exception: what the user's code raised; ``at`` is then that item's index and the items
                before it are folded.
        """
        accs, keyf, step, fresh = self.accs, self.key, self.step, self.fresh
        i = pos
        try:
            for i in range(pos, len(items)):  # `i` is read when user code raises
                x = items[i]
                k = keyf(x)
                if k in accs:
                    accs[k] = step(accs[k], x)
                else:
                    accs[k] = step(fresh(), x)
        except BaseException:
            self.at = i
            raise

    def on_eof(self) -> dict[Any, Any]:
        """The product: every key's ``finish(acc)``, in first-seen key order."""
        finish = self.finish
        return {k: finish(a) for k, a in self.accs.items()}

    def state(self) -> KeyedState:
        return KeyedState(accs=[[k, a] for k, a in self.accs.items()])

    def restore(self, st: KeyedState, *, key: Callable[[Any], Any] = _same, acc: Callable[[Any], Any] = _same) -> None:
        """Take back what :meth:`state` gave; *key* and *acc* turn plain data back into their types."""
        self.accs = {key(k): acc(a) for k, a in st.accs}
