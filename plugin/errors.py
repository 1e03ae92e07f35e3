"""The one error type users see: it names the file and the problem."""

from __future__ import annotations

import os


class EraSplitError(Exception):
    """Bad input or an impossible request; printed as one line, never a traceback."""

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
