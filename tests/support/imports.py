"""The project's own import graph as the tests read it: ``digitflow/core/code_graph.py`` (which stage
``code`` runs) with this checkout as the root, plus what only the tests ask of it (the third-party
packages a module can import, every module of a package).

    python -m tests.support.imports           # print each stage's code
"""

from __future__ import annotations

import ast
from pathlib import Path

from digitflow.core import code_graph
from digitflow.core.code_graph import HAND_OVER, PROJECT_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["HAND_OVER", "ROOT"]


def module_file(module: str, root: Path = ROOT) -> Path | None:
    return code_graph.module_file(module, root)


def direct_imports(module: str, root: Path = ROOT) -> frozenset[str]:
    return code_graph.direct_imports(module, root)


def closure(module: str, root: Path = ROOT, skip: str | None = None) -> frozenset[str]:
    return code_graph.closure(module, root, skip)


def code_files(module: str, root: Path = ROOT) -> list[str]:
    return code_graph.code_files(module, root)


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


def main() -> None:
    import yaml

    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        module = stage_module(stage["cmd"])
        if module:
            print(f"{name}: {' '.join(code_files(module))}")


if __name__ == "__main__":
    main()
