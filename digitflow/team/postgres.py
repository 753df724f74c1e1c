"""Debian's PostgreSQL cluster, administered as the ``postgres`` user: start it, create or drop the
stack's role and its two databases (MLflow's store and the auth store)."""

from __future__ import annotations

import os
import shutil
import subprocess

from digitflow.team.config import StackConfig, StackError


def pg_cluster() -> tuple[str, str, int, str]:
    """(version, cluster, port, status) of the first Debian PostgreSQL cluster."""
    if not shutil.which("pg_lsclusters"):
        raise StackError("PostgreSQL is not installed; install it with `sudo apt-get install -y postgresql`")
    lines = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split("\n")
    fields = [line.split() for line in lines if line.strip()]
    if not fields:
        raise StackError("no PostgreSQL cluster exists; create one with `sudo pg_createcluster 15 main`")
    version, cluster, port, status = fields[0][:4]
    return version, cluster, int(port), status


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return ["sudo", "-n", "-u", "postgres", *command]


def ensure_postgres(config: StackConfig) -> bool:
    """Start the cluster if it is down; return whether this call started it."""
    *_, status = pg_cluster()
    if status == "online":
        return False
    command = ["pg_ctlcluster", config.pg_version, config.pg_cluster, "start"]
    result = subprocess.run(command if os.geteuid() == 0 else ["sudo", "-n", *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"could not start PostgreSQL ({' '.join(command)}): {result.stderr.strip()}")
    return True


def stop_postgres(config: StackConfig) -> None:
    command = ["pg_ctlcluster", config.pg_version, config.pg_cluster, "stop"]
    subprocess.run(command if os.geteuid() == 0 else ["sudo", "-n", *command], capture_output=True, check=False)


def psql(config: StackConfig, sql: str) -> str:
    """Run SQL as the ``postgres`` superuser (root, or passwordless sudo) and return its output. The SQL goes
    through standard input, never the command line, where ``ps`` would show a role's password to every user."""
    command = [
        "psql",
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-p",
        str(config.pg_port),
        "-d",
        "postgres",
        "-f",
        "-",
    ]
    result = subprocess.run(_as_postgres(command), input=sql, capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        raise StackError(
            f"PostgreSQL refused `{sql.split()[0]} ...`: {result.stderr.strip()}\n"
            "The stack administers Debian's cluster as the `postgres` user: run it as root or with passwordless sudo."
        )
    return result.stdout.strip()


def ensure_databases(config: StackConfig) -> None:
    """Create (or re-password) the stack's role and its two databases: MLflow's store and the auth store."""
    role = config.pg_user
    exists = psql(config, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == "1"
    verb = "ALTER" if exists else "CREATE"
    psql(config, f"{verb} ROLE {role} WITH LOGIN PASSWORD '{config.pg_password}'")
    for database in (config.mlflow_db, config.auth_db):
        if psql(config, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
            psql(config, f"CREATE DATABASE {database} OWNER {role}")


def drop_databases(config: StackConfig) -> None:
    for database in (config.mlflow_db, config.auth_db):
        psql(config, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(config, f"DROP ROLE IF EXISTS {config.pg_user}")
