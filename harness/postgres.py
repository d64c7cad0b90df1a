"""A PostgreSQL server of one's own: Debian's (`apt-get install postgresql`), in a temporary
folder, on a free loopback port, with a generated password; removed when done.

PostgreSQL refuses to run as root: as root, it runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.processes import free_port

READY_WITHIN = 60  # seconds, from starting the server to it accepting connections
USER = "store_test"


class PostgresError(RuntimeError):
    """The server did not start, or a statement failed; the message says why."""


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (the newest installed), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@dataclass
class Postgres:
    """A PostgreSQL server in `root`, listening on 127.0.0.1:`port`."""

    bin: Path
    root: Path
    port: int
    password: str
    process: subprocess.Popen | None = None

    def as_postgres(self, command: list[str]) -> list[str]:
        # setpriv execs the program (runuser would stay its parent, and not pass on every
        # signal).
        if os.geteuid() != 0:
            return command
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = (self.root / "postgres.log").open("a")
        self.process = subprocess.Popen(
            self.as_postgres(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.root / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_WITHIN
        while self.psql("SELECT 1", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL did not start:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): connections are cut, as in an outage."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(READY_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def psql(
        self, sql: str, database: str = "postgres", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [
                self.bin / "psql",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--username={USER}",
                f"--dbname={database}",
                "--tuples-only",
                "--no-align",
                f"--command={sql}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "3"},
        )
        if check and completed.returncode != 0:
            raise PostgresError(f"psql {sql!r}: {completed.stderr}")
        return completed

    def log(self) -> str:
        return (self.root / "postgres.log").read_text(errors="replace")


@contextlib.contextmanager
def throwaway_postgres(bin_dir: Path) -> Iterator[Postgres]:
    """A new cluster, started; stopped and deleted afterwards, whatever happened."""
    # Not under pytest's temporary folder, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="store-postgres-"))
    server = Postgres(bin_dir, root, free_port(), secrets.token_hex(16))
    try:
        (root / "password").write_text(server.password)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(root / "password", "postgres")
        subprocess.run(
            server.as_postgres(
                [
                    str(bin_dir / "initdb"),
                    f"--pgdata={root / 'data'}",
                    f"--username={USER}",
                    f"--pwfile={root / 'password'}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
