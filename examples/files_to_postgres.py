"""CSV files → parse → enrich → PostgreSQL, exactly once across crashes and resumes.

    pip install 'actorflow[postgres]'
    actorflow run examples/files_to_postgres.py --store /tmp/orders.store --checkpoint-every 1s \\
        --set 'orders.path=data/orders-*.csv' --set 'load.dsn=host=127.0.0.1 dbname=shop' \\
        --set load.table=orders
    # kill it at any moment (even kill -9), then:
    actorflow resume --store /tmp/orders.store

``orders`` reads every CSV file the glob matches, in sorted order, as :class:`Order` records
(``af.CsvSource`` with ``record = Order``): its cursor is the file and the byte offset, so a
resumed run goes on where the last checkpoint was, and a file edited in between is refused. A row
that does not parse is set aside as a dead letter (``actorflow dead-letters --store ...``) with
its file and line. ``enrich`` adds the amount with tax and the customer's region; ``load``
(``af.PostgresSink``) creates the table from :class:`Enriched` if it is missing and writes each
row exactly once (the server needs ``max_prepared_transactions`` ≥ 1).

Try it on a throwaway server: ``python tests/pg.py`` starts one and prints its DSN;
``python examples/files_to_postgres.py DSN CSV...`` loads the CSV files into ``orders`` and prints
the row count.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import attrs

import actorflow as af

flow = af.Flow("files_to_postgres")

#: Regions by the first letter of a customer's name (an enrichment table).
REGIONS = {"a": "north", "b": "south", "c": "east"}


@attrs.frozen
class Order:
    """One row of an orders CSV file (the header names the fields; values are converted from text)."""

    order_id: int
    customer: str
    amount: float
    paid: bool = False


@attrs.frozen
class Enriched:
    """An order as it is loaded: one column per field."""

    order_id: int
    customer: str
    amount: float
    amount_with_tax: float
    region: str
    paid: bool


class Orders(af.CsvSource):
    """Orders from CSV files; a row that does not parse is a dead letter naming its file and line."""

    record = Order
    on_error = af.DeadLetter()


flow.add(Orders, name="orders")


@flow.task
def enrich(orders: Order, tax_rate: float = 0.2) -> Enriched:
    """The order with its amount including tax and the customer's region."""
    region = REGIONS.get(orders.customer[:1].lower(), "other")
    return Enriched(orders.order_id, orders.customer, orders.amount, round(orders.amount * (1 + tax_rate), 2),
                    region, orders.paid)


flow.add(af.PostgresSink, name="load", inputs={"item": "enrich"})


def load(dsn: str, pattern: str, store: Path | None = None, table: str = "orders") -> af.RunResult:
    """Load the CSV files *pattern* matches into *table* of the database *dsn*."""
    options = {"orders": {"path": pattern}, "load": {"dsn": dsn, "table": table}}
    return af.run(flow, options, store=store, checkpoint_every=1.0 if store is not None else None)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: files_to_postgres.py DSN CSV-FILE-OR-GLOB", file=sys.stderr)
        return 2
    import psycopg

    dsn, pattern = argv[0], argv[1]
    with tempfile.TemporaryDirectory() as work:
        result = load(dsn, pattern, Path(work) / "store")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT count(*), sum(amount_with_tax) FROM orders").fetchone()
    print(f"orders: {rows[0]} rows, {rows[1]} with tax; {len(result.dead_letters)} rows set aside")
    for letter in result.dead_letters:
        print(f"  set aside: {letter['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
