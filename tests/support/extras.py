"""What each optional install brings, and the markers of the tests that need it.

README command 1 (`pip install -e .`) installs no extra, and everything a newcomer runs in the first hour
must work there; the tests of what needs an extra carry its marker. In a venv without that extra they
are skipped with the reason (what is missing, what to install), never passed; in CI (``CI`` set) a test
that is selected and cannot run fails instead, as the PostgreSQL and MNIST tests do. No test module
imports an extra's package at import time, so `pytest -m first_hour` collects in a plain venv.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Extra:
    """An extra of pyproject.toml as the tests see it: modules to import, programs to run."""

    name: str
    modules: tuple[str, ...]
    programs: tuple[str, ...] = field(default=())

    def missing(self) -> list[str]:
        modules = [name for name in self.modules if importlib.util.find_spec(name) is None]
        programs = [name for name in self.programs if not _program(name)]
        return modules + programs


def _program(name: str) -> str | None:
    """The executable beside this interpreter (where `pip install` puts it), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


# Marker -> the extra its tests need (pyproject.toml's [project.optional-dependencies]).
EXTRAS = {
    "sweep": Extra("sweep", ("optuna", "optuna_dashboard", "psycopg2")),
    "team": Extra("team", ("psycopg2", "boto3", "dvc_s3", "flask_wtf"), ("weed",)),
    "test_tools": Extra("test", ("hypothesis",), ("check-jsonschema", "zizmor")),
}


def require(marker: str) -> None:
    """Skip the running test, with the reason, when the extra behind ``marker`` is not fully installed;
    in CI, fail it: there a selected test that cannot run is a broken install, not an option."""
    extra = EXTRAS[marker]
    missing = extra.missing()
    if not missing:
        return
    reason = f'needs the {extra.name} extra ({", ".join(missing)} missing): pip install -e ".[{extra.name}]"'
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test; it {reason}", pytrace=False)
    pytest.skip(reason)


def program(name: str) -> str:
    """The path of a program installed with the project (for an extra's, the test's marker has made sure
    that it is there)."""
    found = _program(name)
    assert found, f"{name} is not installed; is the test marked with the extra that brings it?"
    return found
