"""A throwaway PostgreSQL 15 cluster for tests, examples and benchmarks.

:func:`start` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/15/bin`` (or ``$PG_BIN``)
on a free port of 127.0.0.1, with its socket in its own temporary directory, and
``max_prepared_transactions`` set (``af.PostgresSink`` uses ``PREPARE TRANSACTION``). ``initdb``
refuses to run as root, so as root the server runs as the unprivileged user ``actorflow-pg``
(created with ``useradd`` when missing) through ``runuser``. :meth:`Server.stop` stops it and removes
its directory.

Missing binaries are an error naming what to install (``.ci/run`` installs ``postgresql-15``);
set ``ACTORFLOW_SKIP_POSTGRES=1`` to skip the tests that need the server instead (local use only).

Run it by hand: ``python tests/pg.py`` starts a server, prints its DSN and waits for Enter.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "actorflow-pg"
SKIP_ENV = "ACTORFLOW_SKIP_POSTGRES"


class Missing(RuntimeError):
    """The PostgreSQL binaries are not installed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_user() -> list[str]:
    """The prefix that runs a command as the unprivileged user (nothing unless we are root)."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)
    return ["runuser", "-u", USER, "--"]


class Server:
    """A running throwaway cluster: :attr:`dsn` reaches its ``postgres`` database as superuser ``postgres``."""

    def __init__(self, root: Path, port: int, prefix: list[str]) -> None:
        self.root = root
        self.port = port
        self.prefix = prefix
        self.dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"

    def dsn_for(self, dbname: str) -> str:
        """The DSN of another database of this cluster."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Create database *name* and return its DSN."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def stop(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        subprocess.run([*self.prefix, str(BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                        "-w", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> Server:
    """Start a throwaway cluster (see the module's docstring).

    Raises:
        Missing: the binaries are not there.
        RuntimeError: initdb or pg_ctl failed (their output is in the message).
    """
    if not (BIN / "initdb").exists():
        raise Missing(f"PostgreSQL binaries not found in {BIN}: apt-get install postgresql-15 (or set PG_BIN; "
                      f"set {SKIP_ENV}=1 to skip the tests that need it)")
    prefix = _as_user()
    root = Path(tempfile.mkdtemp(prefix="actorflow-pg-"))
    os.chmod(root, 0o755)
    if prefix:
        shutil.chown(root, USER, USER)
    data, sock = root / "data", root / "sock"
    port = _free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    run("mkdir", "-p", str(sock))
    run(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_prepared_transactions=64 "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    run(str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "60", "start")
    server = Server(root, port, prefix)
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w waited for it; make sure TCP answers too
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    srv = start()
    print(srv.dsn, flush=True)
    try:
        input("PostgreSQL is running; press Enter to stop it\n")
    finally:
        srv.stop()
