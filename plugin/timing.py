"""Per-stage wall-clock times, for the benchmark (``bench/run.py``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextlib.contextmanager
    def lap(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.laps[name] = self.laps.get(name, 0.0) + time.perf_counter() - start


def lap(clock: Stopwatch | None, name: str) -> contextlib.AbstractContextManager:
    return clock.lap(name) if clock is not None else contextlib.nullcontext()
