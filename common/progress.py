"""Progress for a person at a terminal, plain log lines for a file or a pipe.

`tqdm(...)` takes tqdm's arguments. When stderr is a terminal it is tqdm's bar; otherwise (a
log file, a pipe, CI) a bar would redraw hundreds of times into the log, so it becomes a
`LogProgress`: one log line every `LOG_INTERVAL` seconds and one when it closes.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Iterable, Iterator

from tqdm import tqdm as _tqdm

log = logging.getLogger("progress")

LOG_INTERVAL = 30.0     # seconds between two lines of one progress in a log


class LogProgress:
    """The part of tqdm's interface the scripts use, written as log lines.

    A line every `interval` seconds while it runs, and a last one on `close` when `leave` (a
    training epoch's bar is not left: the epoch's own log line follows it).
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", leave: bool = True, interval: float = LOG_INTERVAL, **_: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.leave, self.interval = total, desc, unit, leave, interval
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._write()

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed and self.leave:
            self._write()
        self.closed = True

    def _write(self) -> None:
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n} {self.unit}"
        line = f"{self.desc}: {done}, {time.monotonic() - self.start:.0f} s"
        log.info("%s%s", line, f", {self.postfix}" if self.postfix else "")


def tqdm(iterable: Iterable | None = None, **kwargs: Any) -> Any:
    """tqdm's bar on a terminal, a `LogProgress` anywhere else (or nothing with `disable`)."""
    if kwargs.get("disable") or sys.stderr.isatty():
        return _tqdm(iterable, **kwargs)
    return LogProgress(iterable, **kwargs)
