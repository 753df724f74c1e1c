"""The layer rule of ``digitflow`` (its package docstring draws it): a module imports from its own
subpackage and from layers before it, never from a later layer or a peer."""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import ROOT, direct_imports, project_modules

# Subpackage -> rank; a module may import a lower rank, or its own subpackage. Peers share a rank.
RANKS = {
    "core": 0,
    "data": 1,
    "models": 2,
    "evaluation": 3,
    "tracking": 4,
    "reporting": 5,
    "sweep": 5,
    "team": 5,
    "cli": 6,
    "__main__": 7,  # `python -m digitflow`: the command line, nothing else
}


def layer(module: str) -> str | None:
    """``digitflow.tracking.runs`` -> ``tracking``; ``None`` for the top package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "digitflow" else None


def layer_violations(root: Path = ROOT) -> list[str]:
    """One line per import that breaks the rule: ``importer -> imported (layer -> layer)``."""
    problems = []
    for module in project_modules(root):
        own = layer(module)
        if own is None:
            continue
        if own not in RANKS:
            problems.append(f"{module}: subpackage {own!r} has no place in the layer rule (tests/support/layers.py)")
            continue
        for imported in sorted(direct_imports(module, root)):
            other = layer(imported)
            if other is None or other == own:
                continue
            if other not in RANKS or RANKS[other] >= RANKS[own]:
                problems.append(f"{module} -> {imported} ({own} may not import {other})")
    return problems
