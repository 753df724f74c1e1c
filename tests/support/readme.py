"""The README's shell commands, as written, for the tests that run them.

Every fenced ``bash`` block of README.md outside its Set-up section is split into commands: a line
ending in a backslash continues on the next, and a ``#`` after a space, outside quotes, starts a
comment. ``tests/test_readme.py`` checks that each command is run by some test (or says why not);
the tests that run one take it from here with ``readme_command``, so a README edit reaches them.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
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


def readme_commands() -> list[str]:
    return commands_in(README.read_text())


def readme_command(start: str) -> str:
    """The README command ``start`` itself, else the one that starts with it, exactly as written."""
    commands = readme_commands()
    found = [command for command in commands if command == start] or [c for c in commands if c.startswith(start)]
    if len(found) != 1:
        raise AssertionError(f"expected one README command starting with {start!r}, found {found}")
    return found[0]
