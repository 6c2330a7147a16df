"""What the study tests share: a throw-away PostgreSQL server on loopback."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import free_port


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl")]
    if found[-1] is None:
        pytest.fail("PostgreSQL is not installed; `make test` installs Debian's postgresql package")
    return Path(found[-1]).parent


class PostgresServer:
    """A throw-away PostgreSQL server on loopback (as the postgres user when the tests run as root)."""

    def __init__(self) -> None:
        self.binaries = _postgres_bin()
        self.data = Path(tempfile.mkdtemp(prefix="qa-lab-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        port = free_port()
        self.url = f"postgresql://qa@127.0.0.1:{port}/postgres"
        self.options = f"-p {port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._ctl("initdb", "-D", self.data / "db", "-U", "qa", "--auth=trust")
        self._ctl("pg_ctl", "-D", self.data / "db", "-o", self.options, "-l", self.data / "log", "-w", "start")

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self._ctl("pg_ctl", "-D", self.data / "db", "-m", "fast", "-o", self.options, "-l", self.data / "log", "-w", "restart")

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.binaries / "pg_ctl", "-D", self.data / "db", "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)

    def _ctl(self, program: str, *arguments) -> None:
        subprocess.run([*self.as_user, self.binaries / program, *arguments], check=True, capture_output=True)


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    return postgres_server.url
