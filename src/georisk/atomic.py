"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic", "write_atomic_path"]


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` through a temporary file in the same folder and one rename.

    Parameters
    ----------
    path : path-like
        Target file; its folder is created if needed.
    data : bytes or callable
        The bytes to write, or a function that writes to the open binary file handle.

    Returns
    -------
    Path
        The target path.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)

    return write_atomic_path(path, write)


def write_atomic_path(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Like :func:`write_atomic` for writers that want a file *name* (e.g. ``to_parquet``).

    Parameters
    ----------
    path : path-like
        Target file; its folder is created if needed.
    write : callable
        Called with the temporary file's path; must write the whole file there.

    Returns
    -------
    Path
        The target path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
