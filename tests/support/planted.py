"""What an attacker plants in place of a model: a pickle that runs a program when it is unpickled.

Its payload creates a witness file, so a test can show that loading refused it *before* anything ran."""

from __future__ import annotations

import pickle
from pathlib import Path


class _Payload:
    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self) -> tuple:
        return (__import__("os").system, (f"touch {self.witness}",))


def planted_pickle(path: Path, witness: Path | None = None) -> tuple[Path, Path]:
    """Write the malicious pickle at ``path``; return it and the file its payload would create."""
    witness = witness or path.parent / "PLANTED_CODE_RAN"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(witness), protocol=4))
    return path, witness
