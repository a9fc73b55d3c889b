"""A progress bar for fits (tqdm, on stderr): iteration, loss and parameter values.

It appears only when a fit runs for more than ``delay`` seconds (1 by default), so
short fits print nothing extra; ``Progress(enabled=False)`` (``-q``) prints nothing.
Table rows and messages go through :meth:`Progress.write`, which keeps the bar below
them.
"""

from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    """``update(loss, values)`` once per iteration; ``write(line)``; ``close()``."""

    def __init__(self, total: int, *, enabled: bool = True, delay: float = 1.0, unit: str = "it",
                 desc: Optional[str] = None, out=None):
        self.bar = None
        self.out = out or sys.stdout
        self.delay, self.t0 = delay, time.monotonic()
        if enabled and total > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=total, delay=delay, unit=unit, desc=desc, file=sys.stderr, leave=False,
                            dynamic_ncols=True, mininterval=0.2)
        self._k = 0

    def update(self, loss: float, values: Optional[dict] = None) -> None:
        if self.bar is None:
            return
        self._k += 1
        if self._k % 16 == 1 or self._k == self.bar.total:  # the text costs more than the count
            text = f"loss {loss:.3e}"
            if values:
                text += " " + " ".join(f"{k}={v:.5g}" for k, v in values.items())
            self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(1)

    def write(self, line: str) -> None:
        # tqdm.write redraws the bar: before `delay` the bar is not shown yet, print plainly
        if self.bar is None or time.monotonic() - self.t0 < self.delay:
            print(line, file=self.out)
        else:
            self.bar.write(line, file=self.out)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
