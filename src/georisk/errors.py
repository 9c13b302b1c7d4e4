"""Exceptions raised by georisk. Every error an analyst can cause is a ``GeoriskError``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GeoriskError",
    "Problem",
    "WorkspaceError",
    "PriorSpecError",
    "NotFittedError",
    "DiagnosticsError",
    "StoreError",
    "StoreBusyError",
]


class GeoriskError(Exception):
    """Base class of every error georisk raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a workspace file.

    Attributes
    ----------
    file : str
        Path of the file, relative to the workspace root.
    line : int or None
        1-based line of the file (for a CSV: the physical line, header = line 1).
    field : str or None
        Column or key the problem is about.
    message : str
        What is wrong and, where possible, how to fix it.
    """

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" [{self.field}]" if self.field else ""
        return f"{where}{field}: {self.message}"


class WorkspaceError(GeoriskError):
    """A workspace failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field or ""))
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the workspace:\n{lines}")


class PriorSpecError(GeoriskError):
    """A prior's specification is inconsistent (e.g. its elicitation does not reproduce it)."""


class NotFittedError(GeoriskError):
    """A posterior was needed but none was fitted or stored; call ``georisk.fit`` first."""


class DiagnosticsError(GeoriskError):
    """A fit failed its convergence checks and the caller asked for strict behaviour."""


class StoreError(GeoriskError):
    """The history store cannot be opened or written (corrupt or foreign file, bad schema)."""


class StoreBusyError(StoreError):
    """Another georisk process holds the history store."""
