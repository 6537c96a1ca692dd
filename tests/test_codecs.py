"""``af.register_codec``: types msgpack has no form for, stored by checkpoints, the cache and spill
areas; Decimal, UUID and numpy arrays out of the box (issue 22, point 6)."""

from __future__ import annotations

import decimal
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import actorflow as af
from actorflow._storage._codec import pack, storable_problem, unpack

ROOT = Path(__file__).resolve().parent.parent


class Money:
    """A class of the user's that is neither attrs nor a dataclass."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents

    def __hash__(self) -> int:
        return hash(self.cents)


def test_decimal_uuid_and_numpy_round_trip_exactly() -> None:
    values = [decimal.Decimal("0.1"), uuid.UUID(int=7), [decimal.Decimal("-1e-30")]]
    assert unpack(pack(values)) == values
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = unpack(pack({"a": array}))["a"]
    assert back.dtype == np.float32 and back.shape == (3, 4) and (back == array).all() and back.flags.writeable
    assert storable_problem(decimal.Decimal) is None and storable_problem(np.ndarray) is None
    with pytest.raises(TypeError, match="holds Python objects"):
        pack(np.array([object()], dtype=object))


def test_an_unregistered_class_is_refused_then_stored_once_registered(tmp_path: Path) -> None:
    flow = af.Flow("money")

    @flow.source
    def cents() -> af.Stream[int]:
        yield from range(5)

    @flow.collector(init=None)
    def total(acc: Money | None, cents: int) -> Money:
        return Money((acc.cents if acc else 0) + cents)

    assert "Money is not plain data" in str(storable_problem(Money))
    with pytest.raises(af.ActorflowError, match="Money"):
        af.run(flow, store=tmp_path / "refused")
    af.register_codec(Money, lambda m: m.cents, Money)
    try:
        assert af.run(flow, store=tmp_path / "store")["total"] == Money(10)
        again = af.run(flow, store=tmp_path / "store")  # from the cache: decoded back into Money
        assert again.summary.tasks["total"].cache == "hit" and again["total"] == Money(10)
    finally:
        from actorflow._storage import _codecs

        _codecs._BY_CLASS.pop(Money, None)
        _codecs._BY_NAME.pop(_codecs._name(Money), None)


def test_decimal_products_are_cached_and_checkpointed_with_a_store(tmp_path: Path) -> None:
    flow = af.Flow("prices")

    @flow.source
    def prices() -> af.Stream[decimal.Decimal]:
        yield from (decimal.Decimal("0.10"), decimal.Decimal("0.20"))

    @flow.collector(init=decimal.Decimal(0))
    def total(acc: decimal.Decimal, prices: decimal.Decimal) -> decimal.Decimal:
        return acc + prices

    @flow.source
    def ids() -> af.Stream[uuid.UUID]:
        yield uuid.UUID(int=1)

    first = af.run(flow, store=tmp_path / "store")
    assert first["total"] == decimal.Decimal("0.30") and list(first["ids"]) == [uuid.UUID(int=1)]
    second = af.run(flow, store=tmp_path / "store")
    assert second.summary.tasks["total"].cache == "hit"
    assert type(second["total"]) is decimal.Decimal and second["total"] == decimal.Decimal("0.30")
    assert list(second["ids"]) == [uuid.UUID(int=1)]


def test_import_actorflow_does_not_import_numpy() -> None:
    code = "import sys, actorflow; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_register_codec_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="expected a class"):
        af.register_codec("Money", str, str)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decode must be callable"):
        af.register_codec(Money, str, None)  # type: ignore[arg-type]


def test_option_values_and_pushed_text_are_structured_with_the_codec() -> None:
    from actorflow._storage._convert import coerce

    assert coerce("0.25", decimal.Decimal) == decimal.Decimal("0.25")
    assert coerce(str(uuid.UUID(int=7)), uuid.UUID) == uuid.UUID(int=7)
    flow = af.Flow("priced")

    @flow.source
    def prices(step: decimal.Decimal = decimal.Decimal("0.5")) -> af.Stream[decimal.Decimal]:
        yield step

    assert list(af.run(flow, {"prices": {"step": "0.25"}})["prices"]) == [decimal.Decimal("0.25")]
