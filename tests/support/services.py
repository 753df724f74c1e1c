"""Real services on 127.0.0.1 for the tests: a throwaway database in Debian's PostgreSQL 15 cluster.

Kept small on purpose: it starts the machine's cluster if it is down (and stops it again afterwards),
creates a role with a password and a database owned by it, and drops both at the end. Outside CI a
machine without PostgreSQL skips the tests that need it, with the reason; in CI it is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

PG_VERSION = "15"
PG_CLUSTER = "main"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI needs PostgreSQL {PG_VERSION}: {reason} (apt-get install postgresql-{PG_VERSION})")
    pytest.skip(f"PostgreSQL {PG_VERSION} not usable here: {reason}")


def _psql(sql: str) -> str:
    """Run SQL as the cluster's superuser (root runs psql as the postgres system user)."""
    result = subprocess.run(
        ["su", "postgres", "-c", "psql -v ON_ERROR_STOP=1 -qAt -p 5432 -f -"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout


def _cluster_online() -> bool:
    status = subprocess.run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "status"], capture_output=True, check=False)
    return status.returncode == 0


@contextlib.contextmanager
def _cluster() -> Iterator[None]:
    """The machine's cluster, online; stopped again afterwards if it was down."""
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir(f"/usr/lib/postgresql/{PG_VERSION}/bin"):
        _unavailable("pg_ctlcluster or /usr/lib/postgresql/15 not found")
    if os.geteuid() != 0:
        _unavailable("starting the cluster and creating a database needs root")
    started = False
    if not _cluster_online():
        subprocess.run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "start"], check=True, capture_output=True)
        started = True
    try:
        yield
    finally:
        if started:
            subprocess.run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "stop"], check=False, capture_output=True)


def _drop(name: str) -> None:
    with contextlib.suppress(RuntimeError):
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\nDROP ROLE IF EXISTS {name};\n")


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """Yield a SQLAlchemy URL to a new, empty database on 127.0.0.1; drop it (and its role) afterwards."""
    with _cluster():
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        password = secrets.token_hex(16)
        try:
            _psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}';\nCREATE DATABASE {name} OWNER {name};\n")
            yield f"postgresql+psycopg2://{name}:{password}@127.0.0.1:5432/{name}"
        finally:
            _drop(name)


@contextlib.contextmanager
def readme_database(command: str, name: str, password: str) -> Iterator[str]:
    """Run the README's shell ``command`` that creates role and database ``name`` (as written: it needs
    ``sudo``, which .ci/run installs), yield the URL to it on 127.0.0.1, and drop both afterwards. A role
    left by an interrupted run is dropped first, so the command meets the fresh cluster it expects."""
    if shutil.which("sudo") is None:
        _unavailable("the README's command needs sudo (apt-get install sudo)")
    with _cluster():
        _drop(name)
        try:
            result = subprocess.run(["bash", "-c", command], cwd="/", capture_output=True, text=True, check=False)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            assert result.stdout.split() == ["CREATE", "ROLE", "CREATE", "DATABASE"], result.stdout
            yield f"postgresql+psycopg2://{name}:{password}@127.0.0.1:5432/{name}"
        finally:
            _drop(name)
