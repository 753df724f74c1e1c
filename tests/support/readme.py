"""The shell commands of the README and of every page in docs/, as written, for the tests that run them.

Every fenced ``bash`` block of those pages (the README's Set-up section aside) is split into commands: a
line ending in a backslash continues on the next, and a ``#`` after a space, outside quotes, starts a
comment. ``tests/project/test_readme.py`` checks that each command is run by some test (or says why not);
the tests that run one take it from here with ``readme_command``, so an edit of a page reaches them.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIPPED_SECTIONS = ("## Set-up",)


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands_in(markdown: str) -> list[str]:
    """The commands of every ``bash`` block in ``markdown`` outside SKIPPED_SECTIONS, in order, once each."""
    commands: list[str] = []
    section = ""
    in_block = False
    pending = ""
    for line in markdown.splitlines():
        if not in_block and line.startswith("## "):
            section = line
        if line.startswith("```"):
            in_block = line.strip() == "```bash" and not section.startswith(SKIPPED_SECTIONS)
            continue
        if not in_block:
            continue
        text = _strip_comment(line).strip()
        if text.endswith("\\"):
            pending += text[:-1].rstrip() + " "
            continue
        command, pending = (pending + text).strip(), ""
        if command and command not in commands:
            commands.append(command)
    return commands


def documented_pages() -> list[Path]:
    """The README and every page in docs/: what a user reads and copies commands from."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """Every command of every documented page, in page order, once each."""
    commands: list[str] = []
    for page in documented_pages():
        commands += [command for command in commands_in(page.read_text()) if command not in commands]
    return commands


def readme_command(start: str) -> str:
    """The README command ``start`` itself, else the one that starts with it, exactly as written."""
    commands = readme_commands()
    found = [command for command in commands if command == start] or [c for c in commands if c.startswith(start)]
    if len(found) != 1:
        raise AssertionError(f"expected one README command starting with {start!r}, found {found}")
    return found[0]
