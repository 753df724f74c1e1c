"""Progress output that suits where it is read.

In a terminal, one tqdm bar for the whole training (epochs, with the latest losses and accuracy in its
postfix) that redraws in place. Without one (CI logs, ``dvc queue logs``, a pipe), a bar's carriage
returns turn into unreadable lines, so the same progress becomes a few plain log lines instead: every
``every`` epochs and the last. Downloads follow the same rule: torchvision's per-file bar in a
terminal, nothing but the stage's own log lines otherwise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
from collections.abc import Iterator
from typing import TextIO

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Plain lines a whole training writes without a terminal, at most (plus the last epoch).
PLAIN_LINES = 5


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (standard error by default) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class EpochProgress:
    """Progress of a training run, one ``update`` per epoch (or of any count of ``unit``: files read).

    ``enabled=False`` shows nothing (tests, the benchmark). ``terminal`` defaults to whether standard
    error is a terminal.
    """

    def __init__(
        self,
        total: int,
        desc: str = "training",
        enabled: bool = True,
        terminal: bool | None = None,
        unit: str = "epoch",
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.unit = unit
        self.every = max(1, math.ceil(total / PLAIN_LINES))
        terminal = is_terminal() if terminal is None else terminal
        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=True) if enabled and terminal else None

    def update(self, epoch: int, **values: float) -> None:
        """Record that ``epoch`` (1-based) ended with ``values`` (losses, accuracies)."""
        shown = {name: f"{value:.4f}" for name, value in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)
        elif self.enabled and (epoch % self.every == 0 or epoch == self.total):
            details = ", ".join(f"{k} {v}" for k, v in shown.items())
            log.info("%s %d/%d%s", self.unit, epoch, self.total, f": {details}" if details else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def download_bars_only_in_a_terminal() -> Iterator[None]:
    """Keep torchvision's download bars (written to standard error) only where they redraw in place.

    torchvision gives no switch for its bar, so without a terminal its output is captured and dropped;
    the caller logs a plain line per step instead. Errors still arrive as exceptions.
    """
    if is_terminal():
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield
