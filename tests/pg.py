"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary directory, 127.0.0.1 on a free port.

``pg_server`` (session scope) starts one server for the whole run and removes it at the end;
``pg_server.create_schema(name)`` gives a test its own empty schema (as good as an empty database,
and far cheaper than ``create_database(name)``); ``pg_url`` is the URL of the ``balancer`` database,
``postgresql+psycopg://balancer:PASSWORD@127.0.0.1:PORT/balancer``.

The binaries come from ``$BALANCER_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package), else ``initdb`` on PATH. Missing binaries FAIL the tests that
need them (CI installs ``postgresql``); they never skip. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user (or ``nobody``): ``subprocess`` switches user
before exec, and the temporary directory is handed to that user. ``postgres`` is a direct child of
the test process (no ``pg_ctl`` daemon), so it is reaped and signalled without a pid file. It
listens on 127.0.0.1 only, keeps its unix socket inside the temporary directory, runs with fsync
off (its data is thrown away), and is stopped (immediate shutdown) at session end, or at
interpreter exit if the session never reached its teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

SUPERUSER = "balancer"
INSTALL_HINT = "install them: apt-get install --no-install-recommends postgresql (Debian/Ubuntu)"


class PgUnavailable(RuntimeError):
    """The server could not be found or started; the message says why and what to install."""


def find_bindir() -> Path:
    """The directory holding initdb and postgres."""
    if env := os.environ.get("BALANCER_PG_BINDIR"):
        candidates = [env]  # asked for explicitly: no silent fallback to another installation
    else:
        versions = glob.glob("/usr/lib/postgresql/*/bin")
        candidates = sorted(versions, key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
        if on_path := shutil.which("initdb"):
            candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if all((Path(c) / tool).is_file() for tool in ("initdb", "postgres")):
            return Path(c)
    looked = ", ".join(candidates) or "$BALANCER_PG_BINDIR, /usr/lib/postgresql/*/bin, PATH"
    raise PgUnavailable(
        f"PostgreSQL server binaries (initdb, postgres) not found in {looked}; "
        f"{INSTALL_HINT}, or set BALANCER_PG_BINDIR"
    )


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PgUnavailable(
        "running as root and neither a 'postgres' nor a 'nobody' user exists; "
        "PostgreSQL refuses to run as root (the postgresql package creates 'postgres')"
    )


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"{name!r}: use lower-case letters, digits and _ (at most 63)")
    return name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway server, a child process of the tests; ``stop()`` removes it and its directory."""

    root: Path
    bindir: Path
    run_as: str | None
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "balancer") -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL. (~10 MB each: prefer ``create_schema``.)"""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{_identifier(name)}"')  # type: ignore[arg-type]
        return self.url(name)

    def create_schema(self, name: str, database: str = "balancer") -> str:
        """A new empty schema in ``database``; returns a URL whose connections use only that schema.

        As good as a fresh database for code that does not name schemas, and costs a catalog row
        instead of a copy of the template database.
        """
        with self.connect(database) as conn:
            conn.execute(f'CREATE SCHEMA "{_identifier(name)}"')  # type: ignore[arg-type]
        return f"{self.url(database)}?options=-csearch_path%3D{name}"

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for p in (self.root, pwfile):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        initdb = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._as_user(),
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            raise PgUnavailable(f"initdb exited {initdb.returncode}:\n{initdb.stdout}{initdb.stderr}")
        for attempt in range(3):  # the free port can be taken between choosing and binding it
            try:
                self._start_postgres()
                break
            except PgUnavailable:
                if attempt == 2:
                    raise
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{SUPERUSER}"')  # type: ignore[arg-type]

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments: run as the unprivileged user, from a directory it may enter."""
        if not self.run_as:
            return {"cwd": self.root}
        return {
            "cwd": self.root,
            "user": self.run_as,
            "group": pwd.getpwnam(self.run_as).pw_gid,
            "extra_groups": [],
        }

    def outage(self, seconds: float) -> None:
        """Stop the server (immediate shutdown: clients see their connections die) and start it again
        on the same port after ``seconds``; the data stays."""
        self._terminate()
        time.sleep(seconds)  # the outage itself, not a synchronisation
        self._start_postgres(port=self.port)

    def _start_postgres(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "off",  # the data is thrown away: skip what only protects it from power loss
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **self._as_user()
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise PgUnavailable(
                    f"postgres exited at start:\n{self.log.read_text(errors='replace')[-3000:]}"
                )
            try:
                self.connect().close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        self._terminate()
        raise PgUnavailable(f"postgres not ready after 60 s:\n{self.log.read_text(errors='replace')[-3000:]}")

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        # immediate shutdown: the postmaster stops its backends and exits without the shutdown
        # checkpoint a fast shutdown writes (tens of seconds with many test databases); the data is
        # deleted next anyway
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()  # its backends exit on their own once the postmaster is gone
            proc.wait(30)

    def stop(self) -> None:
        """Stop the server and delete its directory; safe to call twice."""
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """Start a server or raise PgUnavailable; the caller must ``stop()`` it."""
    bindir = find_bindir()
    run_as = _run_as()
    server = PgServer(root=Path(tempfile.mkdtemp(prefix="balancer-pg-")), bindir=bindir, run_as=run_as)
    atexit.register(server.stop)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_server()
    except PgUnavailable as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:  # fail outside the except block: the message alone, no chained traceback
        pytest.fail(f"PostgreSQL for the tests: {problem}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """URL of the server's (shared) ``balancer`` database."""
    return pg_server.url()
