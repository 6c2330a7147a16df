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


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on loopback (as the postgres user when the tests run as root)."""
    binaries = _postgres_bin()
    data = Path(tempfile.mkdtemp(prefix="qa-lab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, binaries / "initdb", "-D", data / "db", "-U", "qa", "--auth=trust"], check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, binaries / "pg_ctl", "-D", data / "db", "-o", options, "-l", data / "log", "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://qa@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data / "db", "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
