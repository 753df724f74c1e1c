"""The project's own import graph, read statically from the source, and each stage's code fingerprint.

A stage's code is the file of every project module it can import, transitively (imports inside
functions included), plus the package ``__init__`` files Python runs on the way. Stage ``code`` writes,
for each stage, the MD5 of each of those files to ``data/code/<stage>.json``, and each stage depends on
that one file in ``dvc.yaml``: an edit re-runs exactly the stages that can import what changed, as if
every module were listed as a dep of every stage that imports it.

Why one file, not the modules themselves: DVC re-reads and rewrites all of ``dvc.lock`` after every stage
it runs (with a pure-Python YAML parser that keeps comments), and listing every module of every stage
made it 1,349 lines: about 0.4 s more per stage DVC runs, as much as a warm stage's own work
(docs/benchmark.md).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PROJECT_PACKAGES = ("digitflow", "stages")
STAGES_PACKAGE = "stages"
# The hand-over of ``python -m stages.<name>`` to a warm stage server decides where a stage runs, not what
# it computes (warm and cold write the same bytes: tests/e2e/test_warm_server.py), so, like DVC's own code,
# it is not part of a stage's code: an edit there re-runs nothing, and what only the hand-over imports
# leaves with it.
HAND_OVER = "digitflow.core.warm.client"


def module_file(module: str, root: Path) -> Path | None:
    """``digitflow.core.io`` -> ``digitflow/core/io.py`` (or the package's ``__init__.py``), if it exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


@functools.cache
def direct_imports(module: str, root: Path) -> frozenset[str]:
    """Project modules that ``module`` names in any import statement, at any depth of its code (each
    file parsed once per process: stage ``code`` walks the graph once per stage)."""
    path = module_file(module, root)
    if path is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if is_project(alias.name)}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and is_project(node.module):
            found.add(node.module)
            # `from digitflow.core import paths`: the name is a module itself.
            found |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}", root)
            }
    return frozenset(name for name in found if module_file(name, root))


def with_packages(modules: Iterable[str]) -> set[str]:
    """The modules and every package above each (``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``): importing a
    module runs its packages' ``__init__`` first."""
    result = set()
    for module in modules:
        parts = module.split(".")
        result |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return result


@functools.cache
def closure(module: str, root: Path, skip: str | None = None) -> frozenset[str]:
    """Every project module that importing ``module`` can import, transitively, packages included; with
    ``skip``, as if nothing imported that module."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current == skip:
            continue
        for name in with_packages([current]):
            if name not in seen:
                seen.add(name)
                todo.extend(direct_imports(name, root) | with_packages([name]))
    return frozenset(seen)


def code_files(module: str, root: Path) -> list[str]:
    """The files (posix, relative to ``root``) of ``closure(module)`` less what only the hand-over
    imports, sorted: a stage's code."""
    files = {module_file(name, root) for name in closure(module, root, skip=HAND_OVER)}
    return sorted(path.relative_to(root).as_posix() for path in files if path is not None)


def stage_modules(root: Path) -> list[str]:
    """Every stage's module name (``train_torch``), from the files of the ``stages`` package."""
    return sorted(path.stem for path in (root / STAGES_PACKAGE).glob("*.py") if path.stem != "__init__")


def fingerprint(stage: str, root: Path) -> dict[str, str]:
    """File -> MD5 of its bytes, for every file of the stage's code: what ``data/code/<stage>.json`` holds."""
    return {
        name: hashlib.md5((root / name).read_bytes(), usedforsecurity=False).hexdigest()
        for name in code_files(f"{STAGES_PACKAGE}.{stage}", root)
    }
