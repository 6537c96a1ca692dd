"""A pipeline for the connectors' SIGKILL test: CSV files → a slowish task → SQLite and PostgreSQL.

``orders`` (an ``af.CsvSource`` of :class:`Order` records over a glob) → ``enrich`` (spins
``spin`` seconds per row) → ``lite`` (``af.SqliteSink``) and ``pg`` (``af.PostgresSink``).
"""

from __future__ import annotations

import time

import attrs

import actorflow as af

flow = af.Flow("connectors")


@attrs.frozen
class Order:
    id: int
    customer: str
    amount: float


@attrs.frozen
class Enriched:
    id: int
    customer: str
    amount: float
    doubled: float


class Orders(af.CsvSource):
    record = Order
    batch_size = 32


flow.add(Orders, name="orders")


@flow.task(capacity=64, batch_size=32)
def enrich(orders: Order, spin: float = 0.0) -> Enriched:
    if spin:
        end = time.perf_counter() + spin
        while time.perf_counter() < end:
            pass
    return Enriched(orders.id, orders.customer.upper(), orders.amount, orders.amount * 2)


flow.add(af.SqliteSink, name="lite", inputs={"item": "enrich"})
flow.add(af.PostgresSink, name="pg", inputs={"item": "enrich"})
