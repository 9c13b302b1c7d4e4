"""Memo and figures commands: ``georisk memo`` and ``georisk figures``.

``georisk memo SCENARIO [WORKSPACE] --out DIR`` writes ``memo.md``, a self-contained
``memo.html`` and the memo's figures for one open scenario (:mod:`georisk.memo`).
``georisk figures [WORKSPACE] --out DIR`` writes the scenario overview, one trajectory and
one drivers waterfall per open scenario, and the priors figure, each as PNG (300 dpi) and
SVG (:mod:`georisk.plotting`).

Both reuse the stored fit for the workspace's current inputs (fitting when there is none)
and read the history store when one exists (``--store``, ``$GEORISK_HISTORY`` or
``WORKSPACE/.georisk/history.duckdb``); without a stored trajectory they backfill one,
monthly, with the current fit.

Exit codes: 0 success; 1 the fit is unconverged (everything is still written, with an
UNCONVERGED warning at the top of the memo and under each figure title); 2 invalid input
(workspace problems, unknown or unscored scenario, bad options); 3 the history store is
busy. matplotlib, pandas and the model are imported inside the commands, so that
``georisk --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from georisk.cli import (
    EXIT_UNCONVERGED,
    TodayOpt,
    WorkspaceArg,
    _parse_date,
    app,
    open_workspace,
    user_errors,
)

__all__ = ["memo", "figures"]

OutOpt = Annotated[
    Path,
    typer.Option("--out", metavar="DIR", help="Folder to write into (created if needed)."),
]
AsOfOpt = Annotated[
    dt.date | None,
    typer.Option(
        "--as-of",
        parser=_parse_date,
        metavar="YYYY-MM-DD",
        help="Assess as of this date: only indicators known by then count [default: today].",
        show_default=False,
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="GEORISK_HISTORY",
        metavar="PATH",
        help="History store file (default: $GEORISK_HISTORY, else "
        "WORKSPACE/.georisk/history.duckdb, used when it exists).",
        show_default=False,
    ),
]
NoHistoryOpt = Annotated[
    bool,
    typer.Option("--no-history", help="Ignore any history store (backfill the trajectory)."),
]


def _posterior(ws: Any) -> Any:
    """Reuse the stored fit for the workspace's inputs, or fit (with a note on stderr)."""
    from georisk.model import SamplerConfig
    from georisk.posterior import default_posterior_dir, fit_id_for, load_or_fit

    fid = fit_id_for(ws, config=SamplerConfig())
    if not (default_posterior_dir(ws) / fid / "fit.json").exists():
        typer.echo(f"no stored fit {fid}: fitting the model (this takes a little while)...",
                   err=True)  # fmt: skip
    posterior, _ = load_or_fit(ws)
    return posterior


def _finish(posterior: Any, written: list[Path]) -> None:
    for path in written:
        typer.echo(str(path))
    if not posterior.converged:
        typer.echo(
            f"warning: fit {posterior.fit_id} is UNCONVERGED "
            f"({'; '.join(posterior.diagnostics.problems) or 'failed checks'}); the outputs "
            "say so at the top. Do not publish them.",
            err=True,
        )
        raise typer.Exit(EXIT_UNCONVERGED)


@app.command()
def memo(
    scenario: Annotated[
        str, typer.Argument(help="Scenario id (e.g. kz-npp-first-concrete-by-2030).")
    ],
    workspace: WorkspaceArg = Path("."),
    out: OutOpt = Path("memo"),
    as_of: AsOfOpt = None,
    store: StoreOpt = None,
    no_history: NoHistoryOpt = False,
    today: TodayOpt = None,
) -> None:
    """Write a risk memo (Markdown and self-contained HTML) for one open scenario."""
    from georisk.memo import write_memo

    ws = open_workspace(workspace, today)
    with user_errors():
        posterior = _posterior(ws)
        paths = write_memo(
            ws, posterior, scenario, out, as_of=as_of or today,
            history=False if no_history else store,
        )  # fmt: skip
    _finish(posterior, list(paths))


@app.command()
def figures(
    workspace: WorkspaceArg = Path("."),
    out: OutOpt = Path("figures"),
    as_of: AsOfOpt = None,
    store: StoreOpt = None,
    no_history: NoHistoryOpt = False,
    backfill_from: Annotated[
        dt.date | None,
        typer.Option(
            "--backfill-from",
            parser=_parse_date,
            metavar="YYYY-MM-DD",
            help="Start of the monthly backfill used for trajectories without a stored "
            "history [default: four years before the as-of date].",
            show_default=False,
        ),
    ] = None,
    today: TodayOpt = None,
) -> None:
    """Write the overview, a trajectory and drivers per open scenario, and the priors figure."""
    ws = open_workspace(workspace, today)
    with user_errors():
        posterior = _posterior(ws)
        written = _write_figures(
            ws, posterior, Path(out), as_of=as_of or today or dt.date.today(),
            store=None if no_history else store, use_history=not no_history,
            backfill_from=backfill_from,
        )  # fmt: skip
    _finish(posterior, written)


def _write_figures(
    ws: Any,
    posterior: Any,
    out: Path,
    *,
    as_of: dt.date,
    store: Path | None,
    use_history: bool,
    backfill_from: dt.date | None,
) -> list[Path]:
    """Draw and save every figure of ``georisk figures``; return the files written."""
    import numpy as np

    from georisk.memo import (
        backfill_dates,
        backfill_trajectories,
        ledger_date,
        peak_events,
        usable_trajectory,
    )
    from georisk.model import SamplerConfig, prior_predictive_draws
    from georisk.model_data import prior_parameters
    from georisk.plotting import (
        plot_drivers,
        plot_overview,
        plot_priors,
        plot_trajectory,
        save_figure,
    )
    from georisk.scoring import score_run

    run = score_run(ws, posterior, as_of=as_of)
    data_day = ledger_date(ws, as_of)
    written: list[Path] = []
    written += save_figure(plot_overview(run, data_date=data_day), out / "overview")
    scored = run.scores[run.scores["p_mean"].notna()] if len(run.scores) else run.scores
    ids = list(scored["scenario_id"]) if len(scored) else []

    stored: dict[str, tuple[Any, Any]] = {}
    if use_history and ids:
        from georisk.history import HistoryStore, resolve_store_path

        path = resolve_store_path(ws, store)
        if path.exists():
            with HistoryStore(path, read_only=True) as st:
                for sid in ids:
                    traj = st.trajectory(sid)
                    if usable_trajectory(traj):
                        stored[sid] = (traj, st.contributions(None, sid))
    missing = [sid for sid in ids if sid not in stored]
    backfill = contributions = None
    if missing:
        dates = backfill_dates(as_of, start=backfill_from)
        backfill, contributions = backfill_trajectories(
            ws, posterior, dates, scenario_ids=missing
        )
    for sid in ids:
        title = ws.scenarios[sid].title
        if sid in stored:
            traj, events = stored[sid]
        else:
            traj = backfill[backfill["scenario_id"] == sid]
            events = contributions[contributions["scenario_id"] == sid]
        fig = plot_trajectory(
            traj.assign(title=title), events=peak_events(events, traj), scenario_id=sid,
            data_date=data_day,
        )  # fmt: skip
        written += save_figure(fig, out / f"trajectory_{sid}")
        fig = plot_drivers(run, scenario_id=sid, data_date=data_day)
        written += save_figure(fig, out / f"drivers_{sid}")
    rng = np.random.default_rng(SamplerConfig().seed)
    prior = prior_predictive_draws(prior_parameters(ws.priors), posterior.n_draws, rng)
    written += save_figure(plot_priors(posterior, prior, as_of=as_of), out / "priors")
    return written
