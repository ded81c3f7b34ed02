"""A throwaway PostgreSQL server for tests of a PostgreSQL-backed Dagster instance.

Debian's server binaries (``initdb``, ``pg_ctl``; package ``postgresql``, scripts/postgres.sh)
run directly: a cluster in a temp folder, listening on a free 127.0.0.1 port with its socket
in that folder, stopped and deleted at the end. The system's own cluster is never touched.

Fixtures (import them into the test module): ``postgres_server`` (one per session) and
``instance_storage``, parametrized over ``sqlite`` and ``postgres``: the ``storage:`` section
of dagster.yaml ("" for Dagster's default SQLite, or a fresh database of that server).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from b3_assets_tests.support.ci import skip_unless

USER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's newest
    /usr/lib/postgresql/N/bin (Debian keeps them off PATH)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    root: Path
    port: int
    host: str = "127.0.0.1"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (one per test keeps their instances apart)."""
        import psycopg2

        name = name or f"dagster_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(host=self.host, port=self.port, user=USER, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def storage_yaml(self, db_name: str) -> str:
        """The ``storage:`` section of a dagster.yaml on ``db_name``."""
        return (
            "storage:\n  postgres:\n    postgres_db:\n"
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; dagster-postgres
            # brings psycopg2 (deploy/dagster.yaml says the same).
            "      scheme: postgresql+psycopg2\n"
            f"      hostname: {self.host}\n      port: {self.port}\n"
            f"      username: {USER}\n      password: ''\n      db_name: {db_name}\n"
        )


def _as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    return ["runuser", "-u", USER, "--", *args] if os.geteuid() == 0 else args


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="b3-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(root, USER, USER)
    data, log = root / "data", root / "server.log"
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        for attempt in range(3):  # another process may take the free port in between
            port = _free_port()
            # A throwaway cluster: durability off, it only has to be fast.
            options = (
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            started = subprocess.run(
                _as_server_user(
                    [
                        str(bin_dir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        "60",
                        "start",
                    ]
                ),
                capture_output=True,
                text=True,
                timeout=90,
            )
            if started.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(
                    f"PostgreSQL did not start: {started.stderr}\n"
                    + log.read_text(errors="replace")[-2000:]
                )
        try:
            yield PostgresServer(root=root, port=port)
        finally:
            subprocess.run(
                _as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; skips (fails in CI) without the binaries."""
    bin_dir = find_bin_dir()
    skip_unless(
        bin_dir is not None,
        "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql",
    )
    assert bin_dir is not None
    with running_postgres(bin_dir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def instance_storage(request: pytest.FixtureRequest) -> str:
    """The ``storage:`` section of dagster.yaml: "" (Dagster's default, SQLite files in
    DAGSTER_HOME) or a fresh database on ``postgres_server``."""
    if request.param == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.storage_yaml(server.create_database())
