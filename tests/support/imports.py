"""The project's own import graph, read statically from the source (every ``import``, those inside
functions included), for the layer rule and for the code deps of each stage in ``dvc.yaml``.

    python -m tests.support.imports           # print each stage's code deps
    python -m tests.support.imports --write   # rewrite the code deps in dvc.yaml (comments kept)

A stage's code deps are the files of every project module it can import, transitively, plus the
package ``__init__`` files Python runs on the way: change any of them and ``dvc repro`` re-runs the stage.
"""

from __future__ import annotations

import argparse
import ast
import functools
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("digitflow", "stages")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """``digitflow.core.io`` -> ``digitflow/core/io.py`` (or the package's ``__init__.py``), if it exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


def direct_imports(module: str, root: Path = ROOT) -> set[str]:
    """Project modules that ``module`` names in any import statement, at any depth of its code."""
    path = module_file(module, root)
    if path is None:
        return set()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if _is_project(alias.name)}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_project(node.module):
            found.add(node.module)
            # `from digitflow.core import paths`: the name is a module itself.
            found |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if module_file(f"{node.module}.{alias.name}", root)
            }
    return {name for name in found if module_file(name, root)}


def with_packages(modules: Iterable[str]) -> set[str]:
    """The modules and every package above each (``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``): importing a
    module runs its packages' ``__init__`` first."""
    result = set()
    for module in modules:
        parts = module.split(".")
        result |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return result


@functools.cache
def closure(module: str, root: Path = ROOT, skip: str | None = None) -> frozenset[str]:
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


def external_packages(module: str, root: Path = ROOT) -> set[str]:
    """Top-level packages outside the project that ``closure(module)`` imports anywhere in its code."""
    found = set()
    for name in closure(module, root):
        path = module_file(name, root)
        for node in ast.walk(ast.parse(path.read_text(), str(path))) if path else ():
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {package for package in found if package not in PROJECT_PACKAGES}


# The hand-over of ``python -m stages.<name>`` to a warm stage server decides where a stage runs, not what
# it computes (warm and cold write the same bytes: tests/e2e/test_warm_server.py), so, like DVC's own code,
# it is not a dep: an edit there re-runs nothing. What only the hand-over imports leaves the deps with it,
# and every stage's dvc.lock entry is that much shorter (DVC re-reads and rewrites all of dvc.lock after
# each stage it runs).
HAND_OVER = "digitflow.core.warm.client"


def code_deps(module: str, root: Path = ROOT) -> list[str]:
    """The files (posix, relative to the root) of ``closure(module)`` less what only the hand-over
    imports, sorted: a stage's code deps."""
    files = {module_file(name, root) for name in closure(module, root, skip=HAND_OVER)}
    return sorted(path.relative_to(root).as_posix() for path in files if path is not None)


def project_modules(root: Path = ROOT, package: str = "digitflow") -> list[str]:
    """Every module of ``package`` by its dotted name (packages by their own name)."""
    modules = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def stage_module(command: str) -> str | None:
    """``python -m stages.train_torch`` -> ``stages.train_torch``."""
    words = command.split()
    return words[2] if words[:2] == ["python", "-m"] and len(words) > 2 else None


def is_code(dep: str) -> bool:
    return dep.endswith(".py") and dep.split("/")[0] in PROJECT_PACKAGES


def write_dvc_deps(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[str]:
    """Replace each stage's code deps in ``dvc.yaml`` by ``code_deps`` of its module (data deps, their
    order and every comment kept); return the stages that changed."""
    from dvc.utils.serialize import modify_yaml

    changed = []
    with modify_yaml(dvc_yaml) as data:
        for name, stage in data["stages"].items():
            module = stage_module(stage["cmd"])
            if module is None:
                continue
            deps = stage.get("deps", [])
            data_deps = [dep for dep in deps if not (isinstance(dep, str) and is_code(dep))]
            wanted = data_deps + code_deps(module, dvc_yaml.parent)
            if list(deps) != wanted:
                deps.clear()
                deps.extend(wanted)
                changed.append(name)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = parser.parse_args()
    if args.write:
        print("updated:", ", ".join(write_dvc_deps()) or "nothing")
        return
    import yaml

    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        module = stage_module(stage["cmd"])
        if module:
            print(f"{name}: {' '.join(code_deps(module))}")


if __name__ == "__main__":
    main()
