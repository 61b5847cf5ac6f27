"""The progress line on a terminal: cases done, rate, ETA and cost so far (stderr, TTY only)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

BAR_WIDTH = 24
MIN_INTERVAL_SECONDS = 0.1


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def line(done: int, total: int, elapsed: float, cost_usd: float, note: str = "") -> str:
    """`  37/212 [####----]  17%  4.2 cases/s  ETA 0:41  $0.0312` (pure)."""
    share = done / total if total else 1.0
    filled = round(share * BAR_WIDTH)
    rate = done / elapsed if elapsed > 0 else 0.0
    left = total - done
    eta = "-:--" if left > 0 and rate <= 0 else clock(left / rate if left > 0 else 0)
    text = (
        f"{done:>{len(str(total))}}/{total} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
        f"{share:>4.0%}  {rate:.1f} cases/s  ETA {eta}  ${cost_usd:.4f}"
    )
    return f"{text}  {note}" if note else text


class Progress:
    """Redrawn at most every 0.1 s; silent when the stream is not a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._total = total
        self._done = 0
        self._cost = 0.0
        self._note = ""
        self._started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def case_done(self, cost_usd: float) -> None:
        with self._lock:
            self._done += 1
            self._cost += cost_usd
        self.draw(force=self._done == self._total)

    def message(self, text: str) -> None:
        """A line of its own above the progress line."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
        self._stream.write(text + "\n")
        self._stream.flush()
        self.draw(force=True)

    def note(self, text: str) -> None:
        self._note = text
        self.draw()

    def draw(self, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < MIN_INTERVAL_SECONDS:
            return
        self._drawn = now
        text = line(self._done, self._total, now - self._started, self._cost, self._note)
        self._stream.write("\r\x1b[K" + text)
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self.draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
