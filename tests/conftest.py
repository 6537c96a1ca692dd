from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- PostgreSQL: one throwaway cluster per test session, a fresh database per test (tests/pg.py) --

_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A running PostgreSQL 15 cluster (fails clearly when the binaries are missing)."""
    from tests import pg

    if os.environ.get(pg.SKIP_ENV):
        pytest.skip(f"{pg.SKIP_ENV} is set: PostgreSQL tests skipped")
    try:
        server = pg.start()
    except pg.Missing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: object, request: pytest.FixtureRequest) -> str:
    """The DSN of a new, empty database on the session's cluster."""
    from tests import pg

    assert isinstance(pg_server, pg.Server)
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + f"_{next(_databases)}"
    return pg_server.create_database(name)
