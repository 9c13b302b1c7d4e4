"""Command-line interface of georisk (``georisk --help``).

This module only parses options and calls the library; each command is one function.

Exit codes
----------
0
    Success.
1
    A fit did not converge (``georisk score``, ``memo``, ``figures``, ``backtest``...): the
    outputs are still written, marked UNCONVERGED.
2
    Invalid input: workspace problems (listed one per line as ``file:line [field]: message``),
    bad options or values, a foreign or corrupt history store.
3
    The history store is busy: another georisk process holds it.
4
    Alert: a scenario moved by at least ``--alert-threshold`` (``georisk score``).

Errors an analyst can cause (:class:`georisk.errors.GeoriskError`) are caught at the command
boundary and reported as a short message on stderr, never as a traceback.

Adding a command
----------------
Write one function decorated with ``@app.command()``; take the workspace with the shared
``WorkspaceArg`` / ``TodayOpt`` annotations, load it with :func:`open_workspace`, and wrap the
library calls in ``with user_errors():`` so that georisk errors become exit codes.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from georisk.errors import (
    DiagnosticsError,
    GeoriskError,
    StoreBusyError,
    WorkspaceError,
)
from georisk.workspace import Workspace, ledger_query, load_workspace

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "app",
    "main",
    "open_workspace",
    "user_errors",
    "exit_code_for",
    "EXIT_OK",
    "EXIT_UNCONVERGED",
    "EXIT_INVALID",
    "EXIT_STORE_BUSY",
]

EXIT_OK = 0
EXIT_UNCONVERGED = 1
EXIT_INVALID = 2
EXIT_STORE_BUSY = 3

app = typer.Typer(
    name="georisk",
    help="Calibrated, documented probabilities for geopolitical scenarios.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _parse_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"must be a date YYYY-MM-DD. Got {value!r}.") from None


WorkspaceArg = Annotated[
    Path,
    typer.Argument(
        help="Workspace directory (holds data/, scenarios/ and priors/).",
        show_default=True,
    ),
]
TodayOpt = Annotated[
    dt.date | None,
    typer.Option(
        "--today",
        parser=_parse_date,
        metavar="YYYY-MM-DD",
        help="Treat this date as today when checking for dates in the future "
        "(default: the system date).",
    ),
]


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def exit_code_for(exc: GeoriskError) -> int:
    """Exit code of a georisk error.

    Parameters
    ----------
    exc : GeoriskError
        The error caught at the command boundary.

    Returns
    -------
    int
        :data:`EXIT_UNCONVERGED` for a :class:`~georisk.errors.DiagnosticsError`,
        :data:`EXIT_STORE_BUSY` for a :class:`~georisk.errors.StoreBusyError`, else
        :data:`EXIT_INVALID`.
    """
    if isinstance(exc, DiagnosticsError):
        return EXIT_UNCONVERGED
    if isinstance(exc, StoreBusyError):
        return EXIT_STORE_BUSY
    return EXIT_INVALID


def _echo_problems(exc: WorkspaceError, *, err: bool) -> None:
    for problem in exc.problems:
        typer.echo(str(problem), err=err)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn georisk errors raised in the block into a short message and an exit code.

    A :class:`~georisk.errors.WorkspaceError` prints each problem on its own line; any other
    :class:`~georisk.errors.GeoriskError` prints its message. Both go to stderr and end the
    command with :func:`exit_code_for`. Other exceptions (bugs) propagate unchanged.

    Yields
    ------
    None
    """
    try:
        yield
    except WorkspaceError as exc:
        _echo_problems(exc, err=True)
        typer.echo(f"invalid workspace: {len(exc.problems)} problem(s).", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except GeoriskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None


def open_workspace(workspace: Path, today: dt.date | None = None) -> Workspace:
    """Load a workspace for a command, exiting with code 2 and the problems if invalid.

    Parameters
    ----------
    workspace : Path
        Workspace directory.
    today : date, optional
        Injected date for the future-date checks.

    Returns
    -------
    Workspace
        The loaded workspace.
    """
    with user_errors():
        return load_workspace(workspace, today=today)
    raise AssertionError("unreachable")  # pragma: no cover


def _summary(ws: Workspace) -> str:
    events = len({i.event_id for i in ws.indicators})
    return (
        f"valid: {len(ws.sources)} sources, {len(ws.indicators)} indicators "
        f"({events} events), {len(ws.scenarios)} scenarios, {len(ws.priors)} priors, "
        f"{len(ws.references)} references, {len(ws.reference_cases)} reference cases, "
        f"{len(ws.reference_indicators)} reference indicators."
    )


@app.command()
def validate(
    workspace: WorkspaceArg = Path("."),
    today: TodayOpt = None,
) -> None:
    """Check every file of a workspace and list all problems, one per line."""
    try:
        ws = load_workspace(workspace, today=today)
    except WorkspaceError as exc:
        _echo_problems(exc, err=False)
        typer.echo(f"invalid: {len(exc.problems)} problem(s) in {workspace}.", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except GeoriskError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code_for(exc)) from None
    typer.echo(_summary(ws))


@app.command()
def ledger(
    workspace: WorkspaceArg = Path("."),
    scenario: Annotated[
        str | None, typer.Option(help="Only indicators linked to this scenario id.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only indicators of this kind.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only indicators naming this actor (e.g. KAZ, Rosatom).")
    ] = None,
    since: Annotated[
        dt.date | None,
        typer.Option(parser=_parse_date, metavar="YYYY-MM-DD", help="Events on or after."),
    ] = None,
    until: Annotated[
        dt.date | None,
        typer.Option(parser=_parse_date, metavar="YYYY-MM-DD", help="Events on or before."),
    ] = None,
    as_csv: Annotated[
        bool,
        typer.Option("--csv", help="Write CSV to stdout (formula cells neutralised)."),
    ] = False,
    today: TodayOpt = None,
) -> None:
    """Show the evidence ledger, one row per indicator and linked scenario."""
    ws = open_workspace(workspace, today)
    try:
        df = ledger_query(ws, scenario=scenario, kind=kind, actor=actor, since=since, until=until)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_csv:
        from georisk.exports import to_safe_csv

        to_safe_csv(df, sys.stdout, date_format="%Y-%m-%d")
        return
    _print_ledger(df)


def _print_ledger(df: pd.DataFrame) -> None:
    if df.empty:
        _err().print("no indicators match.", markup=False)
        return
    table = Table(title=f"{len(df)} ledger row(s)", expand=True)
    for name, kwargs in (
        ("date", {"no_wrap": True}),
        ("indicator", {"no_wrap": True}),
        ("kind", {"ratio": 2, "overflow": "fold"}),
        ("scenario", {"ratio": 2, "overflow": "fold"}),
        ("dir", {"no_wrap": True}),
        ("actors", {"overflow": "fold", "max_width": 16}),
        ("grade", {"no_wrap": True}),
        ("summary", {"ratio": 5}),
    ):
        table.add_column(name, **kwargs)
    for row in df.itertuples(index=False):
        table.add_row(
            *(
                Text(str(v))
                for v in (
                    row.event_date.date().isoformat(),
                    row.indicator_id,
                    row.kind,
                    row.scenario_id or "-",
                    row.direction or "-",
                    row.actors,
                    f"{row.reliability}{row.credibility}",
                    row.summary,
                )
            )
        )
    _out().print(table)


@app.command()
def priors(
    workspace: WorkspaceArg = Path("."),
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write the table as CSV to stdout.")
    ] = False,
    docs: Annotated[
        Path | None,
        typer.Option(
            help="Regenerate <DOCS>/priors.md and its density figures from the priors.",
            metavar="DIR",
        ),
    ] = None,
    sensitivity: Annotated[
        bool,
        typer.Option(
            "--sensitivity",
            help="List the priors the current scores depend on most (what-if of each prior "
            "widened or shifted as documented, plus power-scaling); may refit.",
        ),
    ] = False,
    today: TodayOpt = None,
) -> None:
    """Show every documented prior: distribution, 90% interval, elicitation, references."""
    ws = open_workspace(workspace, today)
    if sensitivity:
        from georisk.cli_eval import print_sensitivity

        with user_errors():
            print_sensitivity(ws)
        return
    from georisk.priors import prior_table, write_priors_doc

    with user_errors():
        table = prior_table(ws.priors)
        if docs is not None:
            path = write_priors_doc(ws.priors, docs, references=ws.references)
            typer.echo(f"wrote {path}", err=True)
    if as_csv:
        from georisk.exports import to_safe_csv

        to_safe_csv(table, sys.stdout)
        return
    out = Table(title=f"Priors of {workspace} ({len(table)})", show_lines=False)
    for column in ("name", "distribution", "mean", "90% interval", "elicitation"):
        out.add_column(column, overflow="fold")
    for row in table.itertuples(index=False):
        interval = "" if row.q05 != row.q05 else f"{row.q05:.3g} to {row.q95:.3g}"
        unit = "" if row.scale in ("probability", "") else f" {row.scale}"
        out.add_row(
            Text(row.name),
            Text(row.distribution),
            Text(f"{row.mean:.3g}{unit}"),
            Text(interval),
            Text(row.elicitation),
        )
    _out().print(out)


# Commands that live in their own modules (one module per area) register themselves on
# ``app`` when imported here. Such modules must keep heavy imports (PyMC, ArviZ, matplotlib,
# DuckDB) inside their command functions so that ``georisk --help`` and a warm
# ``georisk score`` stay fast.
_COMMAND_MODULES: tuple[str, ...] = ("georisk.cli_score", "georisk.cli_memo", "georisk.cli_eval")
for _module in _COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    """Entry point of the ``georisk`` console script."""
    app()
