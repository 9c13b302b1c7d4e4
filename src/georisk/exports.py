"""Safe exports of georisk tables.

A CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as
a formula by spreadsheet programs (CSV or formula injection, OWASP). Ledger summaries and
notes are free text copied from the press, so every CSV georisk writes goes through
:func:`to_safe_csv`, which prefixes such cells with a single quote: the spreadsheet then shows
the text as written instead of evaluating it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from os import PathLike

    import pandas as pd

__all__ = ["FORMULA_PREFIXES", "neutralise_formula", "to_safe_csv"]

#: Leading characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula[T](value: T) -> T | str:
    """Prefix a string that a spreadsheet would evaluate as a formula with ``'``.

    Parameters
    ----------
    value : object
        A cell value. Only strings are changed; numbers, dates and missing values are
        returned as they are (a negative *number* is not a formula).

    Returns
    -------
    object
        ``"'" + value`` when ``value`` is a string starting with one of
        :data:`FORMULA_PREFIXES`, else ``value`` unchanged. Idempotent: a neutralised string
        starts with ``'`` and is left alone.

    Examples
    --------
    >>> neutralise_formula("=1+1")
    "'=1+1"
    >>> neutralise_formula("Kazakhstan signs")
    'Kazakhstan signs'
    >>> neutralise_formula(-3.5)
    -3.5
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_safe_csv(
    df: pd.DataFrame,
    path_or_buf: str | PathLike[str] | Any | None = None,
    **to_csv_kwargs: Any,
) -> str | None:
    """Write a DataFrame as CSV with every text cell passed through :func:`neutralise_formula`.

    Parameters
    ----------
    df : DataFrame
        Table to write; it is not modified.
    path_or_buf : str, path or file-like, optional
        Destination, as for :meth:`pandas.DataFrame.to_csv`. ``None`` returns the CSV text.
    **to_csv_kwargs
        Passed to :meth:`pandas.DataFrame.to_csv`; ``index`` defaults to ``False``.

    Returns
    -------
    str or None
        The CSV text when ``path_or_buf`` is ``None``, else ``None``.
    """
    safe = df.copy()
    for column in safe.columns:
        series = safe[column]
        if series.dtype.kind not in "biufcmM":  # text, object, categorical ...
            safe[column] = series.map(neutralise_formula)
    safe.columns = [neutralise_formula(str(c)) for c in safe.columns]
    if safe.index.dtype.kind not in "biufcmM":
        safe.index = safe.index.map(neutralise_formula)
    to_csv_kwargs.setdefault("index", False)
    return safe.to_csv(path_or_buf, **to_csv_kwargs)
