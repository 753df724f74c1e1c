"""docs/threat_model.md names, for each actor, the tests that hold what it says: each must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "threat_model.md"


def test_every_test_the_threat_model_names_exists() -> None:
    text = PAGE.read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text)
    assert len(named) > 15
    missing = []
    current = None
    for path, name, continued in named:
        if path:
            current = ROOT / path
            if not current.is_file():
                missing.append(path)
                continue
        test = name or continued
        if test and (current is None or f"def {test}(" not in current.read_text()):
            missing.append(f"{current}::{test}")
    assert missing == []


def test_the_readme_and_the_team_page_link_it() -> None:
    assert "(docs/threat_model.md)" in (ROOT / "README.md").read_text()
    assert "(threat_model.md)" in (ROOT / "docs" / "team.md").read_text()
