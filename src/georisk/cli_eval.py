"""Evaluation commands: evaluate, backtest, track-record, sensitivity, validation-report.

Registered on :data:`georisk.cli.app` when :mod:`georisk.cli` imports this module. Heavy
libraries (PyMC, ArviZ, matplotlib) are imported inside the commands only, so that
``georisk --help`` and a warm ``georisk score`` stay fast.

Exit codes follow :mod:`georisk.cli`: 0 success, 1 a fit in the run did not converge,
2 invalid input (every problem of an input file is listed, one per line, with its line
number).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from georisk.cli import (
    EXIT_INVALID,
    EXIT_UNCONVERGED,
    TodayOpt,
    WorkspaceArg,
    app,
    open_workspace,
    user_errors,
)

if TYPE_CHECKING:
    import pandas as pd

    from georisk.backtest import BacktestResult, TrackRecord
    from georisk.sensitivity import WhatIf

__all__ = [
    "evaluate",
    "backtest_command",
    "track_record_command",
    "sensitivity_command",
    "validation_report",
    "print_sensitivity",
    "render_validation_report",
]

DEFAULT_REPORT = Path("docs") / "validation.md"


def _echo(text: str = "", *, err: bool = False) -> None:
    typer.echo(text, err=err)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.{digits}f}"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _ci(est: float, lo: float, hi: float, digits: int = 3) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(est, digits)
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in r) + " |")
    return "\n".join(out)


def _parse_cuts(value: str | None) -> tuple[dt.date, ...] | None:
    if not value:
        return None
    try:
        return tuple(dt.date.fromisoformat(v.strip()) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(
            f"cut dates must be YYYY-MM-DD separated by commas. Got {value!r}."
        ) from None


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


@app.command()
def evaluate(
    file: Annotated[Path, typer.Argument(help="CSV of forecasts and outcomes, one row a case.")],
    forecast_col: Annotated[str, typer.Option(help="Column of probabilities in [0, 1].")] = "p",
    outcome_col: Annotated[str, typer.Option(help="Column of outcomes, 0 or 1.")] = "y",
    group_col: Annotated[
        str | None, typer.Option(help="Also score each value of this column separately.")
    ] = None,
    reference_col: Annotated[
        str | None, typer.Option(help="Column of a reference forecast for the skill score.")
    ] = None,
    reference: Annotated[
        float | None,
        typer.Option(help="Constant reference forecast for the skill score "
                     "[default: the table's own frequency]."),
    ] = None,
    bins: Annotated[int, typer.Option(min=1, help="Bins of the reliability table.")] = 10,
    resamples: Annotated[int, typer.Option(min=0, help="Bootstrap replicates.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    log_clip: Annotated[
        float | None,
        typer.Option(help="Clip forecasts to [EPS, 1-EPS] for the log score instead of "
                     "failing on a certain-and-wrong forecast.", metavar="EPS"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Score any table of probability forecasts: Brier, log, skill, AUC, reliability."""
    from georisk.metrics import evaluate as run_evaluate
    from georisk.metrics import read_forecast_csv

    table, problems = read_forecast_csv(
        file, forecast_col=forecast_col, outcome_col=outcome_col, group_col=group_col,
        reference_col=reference_col,
    )
    if problems:
        for p in problems:
            _echo(str(p), err=True)
        _echo(f"invalid: {len(problems)} problem(s) in {file}.", err=True)
        raise typer.Exit(EXIT_INVALID)
    if reference is not None and not 0.0 <= reference <= 1.0:
        _echo(f"error: --reference must be a probability in [0, 1]. Got {reference}.", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        result = run_evaluate(
            table, reference=reference, bins=bins, n_resamples=resamples, seed=seed,
            log_clip=log_clip,
        )
    except ValueError as exc:
        _echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    result["file"] = str(file)
    result["n_resamples"] = resamples
    if as_json:
        _echo(_dumps(result))
        return
    _print_evaluation(result)


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        return _clean(obj.item())
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, default=_json_default, allow_nan=False)


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return v.item()
    return str(v)


def _score_line(rows: list[dict[str, Any]]) -> dict[str, str]:
    by = {r["score"]: r for r in rows}
    return {
        "n": str(int(by["n"]["estimate"])),
        "base rate": _fmt(by["base_rate"]["estimate"]),
        "Brier": _ci(by["brier"]["estimate"], by["brier"]["lower"], by["brier"]["upper"]),
        "log": _ci(by["log"]["estimate"], by["log"]["lower"], by["log"]["upper"]),
        "BSS": _ci(by["bss"]["estimate"], by["bss"]["lower"], by["bss"]["upper"]),
        "AUC": _ci(by["auc"]["estimate"], by["auc"]["lower"], by["auc"]["upper"]),
    }


def _print_evaluation(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(
        title=f"Scores of {result['file']} (95% bootstrap intervals, "
        f"{result['n_resamples']} resamples; BSS against the {result['reference']})"
    )
    lines = {"all": _score_line(result["overall"])}
    for name, rows in result["groups"].items():
        lines[name] = _score_line(rows)
    table.add_column("group")
    for col in ("n", "base rate", "Brier", "log", "BSS", "AUC"):
        table.add_column(col, overflow="fold")
    for name, line in lines.items():
        table.add_row(name, *line.values())
    console.print(table)
    dec = result["decomposition"]
    console.print(
        f"Murphy decomposition ({dec['n_bins']} bins): reliability {dec['reliability']:.4f} - "
        f"resolution {dec['resolution']:.4f} + uncertainty {dec['uncertainty']:.4f} "
        f"+ within-bin {dec['within_bin']:.4f} = Brier {dec['brier']:.4f}",
        markup=False,
    )
    rel = Table(title="Reliability (Wilson 95% interval of the observed frequency)")
    for col in ("bin", "n", "mean forecast", "observed", "interval"):
        rel.add_column(col)
    for r in result["reliability"]:
        if r["count"] == 0:
            continue
        rel.add_row(
            f"[{r['bin_lower']:.2f}, {r['bin_upper']:.2f}{']' if r['bin_upper'] == 1 else ')'}",
            str(r["count"]),
            _fmt(r["mean_forecast"]),
            _fmt(r["observed_frequency"]),
            f"{r['ci_lower']:.3f} to {r['ci_upper']:.3f}",
        )
    console.print(rel)


# --------------------------------------------------------------------------------------------
# backtest
# --------------------------------------------------------------------------------------------


def _backtest_config(
    cuts: str | None, horizon_years: float, include_unverified: bool, draws: int, tune: int,
    workers: int, resamples: int,
):
    from dataclasses import replace

    from georisk.backtest import BacktestConfig

    base = BacktestConfig()
    return replace(
        base,
        cuts=_parse_cuts(cuts) or base.cuts,
        horizon_years=horizon_years,
        include_unverified=include_unverified,
        refit=replace(base.refit, draws=draws, tune=tune),
        max_workers=workers,
        n_resamples=resamples,
    )


CutsOpt = Annotated[
    str | None,
    typer.Option(help="Leave-future-out cut dates, comma-separated "
                 "[default: 2012-01-01,2015-01-01,2018-01-01,2021-01-01]."),
]
HorizonOpt = Annotated[
    float, typer.Option(min=0.1, help="Forecast window after each cut, in years.")
]
UnverifiedOpt = Annotated[
    bool, typer.Option(help="Also use and score unverified reference cases.")
]
DrawsOpt = Annotated[int, typer.Option(min=100, help="Draws per chain of each refit.")]
TuneOpt = Annotated[int, typer.Option(min=100, help="Tuning steps per chain of each refit.")]
WorkersOpt = Annotated[
    int, typer.Option(min=0, help="Worker processes for refits (0: in this process).")
]
ResamplesOpt = Annotated[int, typer.Option(min=0, help="Bootstrap replicates.")]


@app.command("backtest")
def backtest_command(
    workspace: WorkspaceArg = Path("."),
    cuts: CutsOpt = None,
    horizon_years: HorizonOpt = 3.0,
    include_unverified: UnverifiedOpt = False,
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    workers: WorkersOpt = 2,
    resamples: ResamplesOpt = 2000,
    forecasts_csv: Annotated[
        Path | None, typer.Option(help="Also write every backtest forecast to this CSV.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    today: TodayOpt = None,
) -> None:
    """Backtest the model on the resolved reference cases (PSIS-LOO and leave-future-out)."""
    ws = open_workspace(workspace, today)
    from georisk.backtest import backtest

    config = _backtest_config(cuts, horizon_years, include_unverified, draws, tune, workers,
                              resamples)
    with user_errors():
        result = backtest(ws, config=config, progress=lambda m: _echo(m, err=True))
    if forecasts_csv is not None:
        from georisk.exports import to_safe_csv

        with open(forecasts_csv, "w", newline="") as fh:
            to_safe_csv(result.forecasts, fh)
        _echo(f"wrote {forecasts_csv}", err=True)
    if as_json:
        _echo(_dumps(result.as_dict()))
    else:
        _echo(_backtest_markdown(result))
    if not _all_converged(result):
        _echo("error: a fit of the backtest did not converge (see the fits table); its scores "
              "are marked unconverged.", err=True)
        raise typer.Exit(EXIT_UNCONVERGED)


def _all_converged(result: BacktestResult) -> bool:
    status = result.timings.get("posterior_status", "converged")
    return status == "converged" and all(s == "converged" for s in result.fits["status"])


_FORECASTER_TEXT = {
    "model": "full model",
    "category": "category base rate (x = 0)",
    "pooled": "pooled base rate",
    "naive": "naive (open = failure)",
}


def _scores_table(scores: pd.DataFrame, design: str) -> str:
    sub = scores[scores["design"] == design]
    rows = []
    for r in sub.to_dict(orient="records"):
        rows.append([
            _FORECASTER_TEXT[r["forecaster"]],
            _ci(r["brier"], r["brier_lo"], r["brier_hi"]),
            _ci(r["log"], r["log_lo"], r["log_hi"]),
            _ci(r["bss_pooled"], r["bss_pooled_lo"], r["bss_pooled_hi"]),
            _ci(r["bss_category"], r["bss_category_lo"], r["bss_category_hi"]),
            _ci(r["auc"], r["auc_lo"], r["auc_hi"]),
            _ci(r["brier_diff_naive"], r["brier_diff_naive_lo"], r["brier_diff_naive_hi"]),
        ])
    n = int(sub["n"].iloc[0]) if len(sub) else 0
    events = int(sub["events"].iloc[0]) if len(sub) else 0
    head = f"{n} forecasts, {events} events; 95% bootstrap intervals over cases.\n\n"
    return head + _markdown_table(
        ["forecaster", "Brier", "log score", "BSS vs pooled", "BSS vs category",
         "ROC AUC", "Brier minus naive"],
        rows,
    )


def _reliability_md(table: pd.DataFrame) -> str:
    rows = []
    for r in table.to_dict(orient="records"):
        if r["count"] == 0:
            continue
        rows.append([
            f"[{r['bin_lower']:.1f}, {r['bin_upper']:.1f}{']' if r['bin_upper'] == 1 else ')'}",
            str(r["count"]), str(r["events"]), _fmt(r["mean_forecast"]),
            _fmt(r["observed_frequency"]), f"{r['ci_lower']:.2f} to {r['ci_upper']:.2f}",
        ])
    return _markdown_table(
        ["bin", "n", "events", "mean forecast", "observed", "Wilson 95%"], rows
    )


def _backtest_markdown(result: BacktestResult, *, level: int = 3) -> str:
    h = "#" * level
    cfg = result.config
    parts = []
    t = result.timings
    parts.append(
        f"Wall time {t['total']:.0f} s on {t['cpu_count']} core(s) with {t['workers']} "
        f"worker process(es): published posterior {t['main_fit']:.0f} s, refits "
        f"{t['refits']:.0f} s ({len(result.fits)} refit(s): {cfg.refit.chains} chains x "
        f"{cfg.refit.draws} draws after {cfg.refit.tune} tuning steps, "
        f"{cfg.refit.sampler} NUTS, 1 core each)."
    )
    if result.loo is not None:
        loo = result.loo
        parts.append(f"{h} Leave-one-out (PSIS-LOO)")
        parts.append(_scores_table(result.scores, "loo"))
        kc = "; ".join(f"{k}: {v}" for k, v in loo.k_counts.items())
        refits = ", ".join(loo.high_k_cases) or "none"
        parts.append(
            f"PSIS-LOO over all {loo.n_cases} reference cases (open ones included, through "
            f"their censored likelihood), {loo.n_draws} draws: elpd_loo = {loo.elpd:.2f} "
            f"(SE {loo.se:.2f}), p_loo = {loo.p_loo:.2f}; with the high-k cases replaced by "
            f"exact refits elpd = {loo.elpd_exact_refits:.2f}. Pareto k: {kc}. Refitted "
            f"exactly: {refits}."
        )
        if loo.warnings:
            parts.append("ArviZ warned: " + " ".join(sorted(set(loo.warnings))))
        parts.append(f"{h}# Reliability of the full model (LOO)")
        parts.append(_reliability_md(result.reliability[("loo", "model")]))
    if not result.per_cut.empty:
        parts.append(f"{h} Leave-future-out (cut dates, {cfg.horizon_years:g}-year windows)")
        parts.append(_scores_table(result.scores, "lfo"))
        rows = []
        for r in result.per_cut.to_dict(orient="records"):
            rows.append([
                _fmt(r["cut"]), _fmt(r["horizon"]), str(r["train_resolved"]),
                str(r["train_open"]), str(r["scored"]), str(r["events"]),
                _fmt(r["brier_model"]), _fmt(r["brier_category"]), _fmt(r["brier_pooled"]),
                _fmt(r["brier_naive"]),
            ])
        parts.append(
            _markdown_table(
                ["cut", "window end", "train resolved", "train open", "scored", "events",
                 "Brier model", "Brier category", "Brier pooled", "Brier naive"],
                rows,
            )
        )
        parts.append(f"{h}# Reliability of the full model (LFO)")
        parts.append(_reliability_md(result.reliability[("lfo", "model")]))
    fits = result.fits
    if not fits.empty:
        bad = fits[fits["status"] != "converged"]
        parts.append(
            f"Refits: {len(fits)}, {len(bad)} failed the convergence gate"
            + (f" ({', '.join(bad['job'])}); their scores are unconverged." if len(bad) else ".")
        )
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# track-record
# --------------------------------------------------------------------------------------------


@app.command("track-record")
def track_record_command(
    workspace: WorkspaceArg = Path("."),
    store: Annotated[
        Path | None,
        typer.Option(help="History store [default: the workspace's .georisk/history.duckdb]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    today: TodayOpt = None,
) -> None:
    """Score every published forecast of the resolved scenarios against what happened."""
    ws = open_workspace(workspace, today)
    from georisk.backtest import load_trajectories, track_record

    with user_errors():
        trajectories = load_trajectories(ws, store)
        record = track_record(ws.scenarios, trajectories, today=today or dt.date.today())
    if as_json:
        from georisk.backtest import json_records

        _echo(_dumps({
            "brier": record.brier, "brier_per_scenario": record.brier_per_scenario,
            "per_scenario": json_records(record.per_scenario),
            "by_horizon": json_records(record.by_horizon),
            "forecasts": json_records(record.forecasts), "skipped": record.skipped,
        }))
        return
    _echo(_track_record_markdown(record))


def _track_record_markdown(record: TrackRecord) -> str:
    if record.per_scenario.empty:
        text = (
            "No resolved scenario past its resolution date has a stored score yet: "
            "the track record starts when the first scored scenario is resolved "
            "(status resolved-yes or resolved-no with its resolution date)."
        )
        if record.skipped:
            text += "\n\nNot counted: " + "; ".join(record.skipped) + "."
        return text + "\n"
    parts = []
    for r in record.per_scenario.to_dict(orient="records"):
        g = record.forecasts[record.forecasts["scenario_id"] == r["scenario_id"]]
        said = ", ".join(f"{p:.0%} on {d.isoformat()}" for d, p in zip(g["as_of"], g["p_mean"],
                                                                      strict=True))
        parts.append(
            f"- **{r['scenario_id']}**: we said {said}; it resolved **{r['resolved']}** on "
            f"{r['resolution_date'].isoformat()} (Brier {r['brier']:.3f} over "
            f"{r['n_scores']} score(s))."
        )
    parts.append(
        f"\nBrier so far: {record.brier:.3f} over {len(record.forecasts)} stored score(s); "
        f"{record.brier_per_scenario:.3f} averaging per scenario "
        f"({len(record.per_scenario)} scenario(s))."
    )
    rows = [[r["horizon_bin"], str(r["n_scores"]), str(r["n_scenarios"]),
             _fmt(r["mean_forecast"]), _fmt(r["observed_frequency"]), _fmt(r["brier"])]
            for r in record.by_horizon.to_dict(orient="records")]
    parts.append("\nCalibration by lead time (days from the score to the resolution):\n")
    parts.append(_markdown_table(
        ["lead time", "scores", "scenarios", "mean forecast", "observed", "Brier"], rows))
    if record.skipped:
        parts.append("\nNot counted: " + "; ".join(record.skipped) + ".")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# sensitivity
# --------------------------------------------------------------------------------------------


def print_sensitivity(
    ws,
    *,
    top: int | None = None,
    refit: bool = True,
    as_of: dt.date | None = None,
    with_psense: bool = True,
    as_json: bool = False,
    workers: int = 2,
) -> WhatIf:
    """Print the priors the shipped scores depend on most (the body of ``georisk sensitivity``).

    ``georisk priors --sensitivity`` calls this too.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    top : int, optional
        Show only this many priors (default all).
    refit : bool, default True
        Refit when importance reweighting is unreliable (Pareto k > 0.7).
    as_of : datetime.date, optional
        Scoring date (default today).
    with_psense : bool, default True
        Also print the power-scaling sensitivity of every parameter.
    as_json : bool, default False
        Print JSON instead of tables.
    workers : int, default 2
        Worker processes for refits.

    Returns
    -------
    WhatIf
    """
    from georisk.model_data import case_data, prior_parameters
    from georisk.posterior import load_or_fit
    from georisk.sensitivity import power_scaling, what_if

    posterior, _ = load_or_fit(ws)
    result = what_if(ws, posterior, as_of=as_of, refit=refit, max_workers=workers,
                     progress=lambda m: _echo(m, err=True))
    ps = None
    if with_psense:
        priors = prior_parameters(ws.priors)
        data = case_data(ws.reference_cases, ws.reference_indicators, priors.weights)
        ps = power_scaling(posterior, data, priors)
    ranking = result.ranking if top is None else result.ranking.head(top)
    if as_json:
        from georisk.backtest import json_records

        _echo(_dumps({
            "fit_id": posterior.fit_id, "diagnostics": posterior.diagnostics.status,
            "ranking": json_records(ranking), "what_if": json_records(result.table),
            "power_scaling": json_records(ps) if ps is not None else None,
            "no_what_if": result.no_what_if, "refits": result.refits,
        }))
        return result
    _echo(_ranking_markdown(ranking, posterior))
    if ps is not None:
        _echo(_psense_markdown(ps))
    return result


def _ranking_markdown(ranking: pd.DataFrame, posterior=None) -> str:
    rows = [[r["prior"], f"{r['max_abs_delta']:.3f}", r["change"], r["scenario_id"],
             f"{r['p_mean']:.3f} -> {r['p_new']:.3f}", r["methods"], _fmt(r["max_pareto_k"], 2)]
            for r in ranking.to_dict(orient="records")]
    head = (
        "Priors the shipped scores depend on most: the largest change of any open scenario's "
        "p_mean when the prior is widened or shifted as documented "
        "(`sensitivity` in priors/*.yaml)"
    )
    if posterior is not None:
        head += f"; posterior {posterior.fit_id} ({posterior.diagnostics.status})"
    return head + ".\n\n" + _markdown_table(
        ["prior", "max abs change", "change", "scenario", "p_mean", "method", "max k"], rows
    )


def _psense_markdown(ps: pd.DataFrame) -> str:
    rows = [[r["parameter"], r["prior"], f"{r['prior_sensitivity']:.3f}",
             f"{r['likelihood_sensitivity']:.3f}", "yes" if r["prior_sensitive"] else "no",
             r["diagnosis"]] for r in ps.to_dict(orient="records")]
    head = (
        "Power-scaling sensitivity (ArviZ `psense_summary`, Kallioinen et al. 2024, "
        "doi:10.1007/s11222-023-10366-5): prior sensitivity above 0.05 means the prior is "
        "informative for that parameter.\n\n"
    )
    return head + _markdown_table(
        ["parameter", "prior", "prior sens.", "likelihood sens.", "prior-sensitive",
         "diagnosis"], rows)


@app.command("sensitivity")
def sensitivity_command(
    workspace: WorkspaceArg = Path("."),
    top: Annotated[int | None, typer.Option(min=1, help="Show only the N top priors.")] = None,
    refit: Annotated[
        bool, typer.Option(help="Refit where importance reweighting is unreliable (k > 0.7).")
    ] = True,
    psense: Annotated[
        bool, typer.Option(help="Also show power-scaling sensitivity per parameter.")
    ] = True,
    as_of: Annotated[
        str | None, typer.Option(help="Scoring date YYYY-MM-DD [default: today].")
    ] = None,
    workers: WorkersOpt = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    today: TodayOpt = None,
) -> None:
    """List the priors the shipped scores depend on most (what-if and power-scaling)."""
    ws = open_workspace(workspace, today)
    date = _parse_date(as_of) if as_of else (today or None)
    with user_errors():
        print_sensitivity(ws, top=top, refit=refit, as_of=date, with_psense=psense,
                          as_json=as_json, workers=workers)


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"must be a date YYYY-MM-DD. Got {value!r}.") from None


# --------------------------------------------------------------------------------------------
# validation-report
# --------------------------------------------------------------------------------------------


def _calibration_figure(forecasts, outcomes, path: Path, *, title: str, subtitle: str) -> str:
    """Save a reliability diagram; return a note on how it was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from georisk.plotting import plot_calibration
    except ImportError:
        plot_calibration = None
    if plot_calibration is not None:
        fig = plot_calibration(forecasts, outcomes, bins=5, interval=0.95, title=title,
                               subtitle=subtitle)
        fig.savefig(path, dpi=150)
        plt.close(fig)
        return "drawn with `georisk.plotting.plot_calibration`"
    from georisk.metrics import reliability_table

    t = reliability_table(forecasts, outcomes, bins=5)
    t = t[t["count"] > 0]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    ax.vlines(t["mean_forecast"], t["ci_lower"], t["ci_upper"], color="C0")
    ax.scatter(t["mean_forecast"], t["observed_frequency"], s=20 + 10 * t["count"], color="C0")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="forecast", ylabel="observed frequency",
           title=title)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return ("drawn with a minimal fallback: `georisk.plotting.plot_calibration` was not "
            "importable")


def render_validation_report(
    ws,
    *,
    out: Path,
    command: str,
    backtest_result: BacktestResult,
    what_if_result: WhatIf | None,
    psense_table: pd.DataFrame | None,
    track: TrackRecord | None,
    track_note: str,
    figure_notes: dict[str, str],
    seconds: float,
) -> str:
    """Assemble the Markdown of ``docs/validation.md`` from computed results.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    out : Path
        Where the report goes (figure links are relative to it).
    command : str
        The command that regenerates it.
    backtest_result : BacktestResult
        :func:`georisk.backtest.backtest` output.
    what_if_result : WhatIf, optional
        :func:`georisk.sensitivity.what_if` output.
    psense_table : pandas.DataFrame, optional
        :func:`georisk.sensitivity.power_scaling` output.
    track : TrackRecord, optional
        Track record (None when there is no store yet).
    track_note : str
        What to say when ``track`` is None.
    figure_notes : dict
        Figure path (relative to ``out``) -> how it was drawn.
    seconds : float
        Wall time of the whole report.

    Returns
    -------
    str
    """
    r = backtest_result
    cfg = r.config
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!-- GENERATED FILE: do not edit by hand. Regenerate with:\n"
        f"     {command}\n-->",
        "# Validation: backtest, calibration and prior sensitivity",
        f"*Generated by `{command}` on {now} in {seconds:.0f} s (2 cores). Every number below "
        "is recomputed by that command; edits by hand are overwritten.*",
        "## What is measured",
        "- **Leave-one-out (LOO)**: each resolved reference case is predicted by the model "
        "fitted without it (PSIS-LOO on the published posterior; exact refit where Pareto "
        f"k > {cfg.k_threshold}). Target: its eventual outcome given that it was resolved by the "
        "data's snapshot date; evidence up to just before its resolution, as in the fit. This "
        "measures how well the model explains outcomes, not an ex-ante forecast.",
        "- **Leave-future-out (LFO)**: at each cut date the model is refitted on what was known "
        f"then and forecasts whether each open case reaches its event within {cfg.horizon_years:g} "
        "years. The window is fixed, never the case's own resolution date (that would leak the "
        "outcome). This is the honest ex-ante test.",
        "- Forecasters: the **full model**; the **category base rate** (the model without "
        "evidence, same timing); the **pooled base rate** (one Jeffreys-smoothed rate for all, "
        "no timing); the **naive** Beta-Binomial per category that counts open cases as "
        "failures. BSS vs pooled is the skill over the simplest base rate; BSS vs category is "
        "the value of the evidence; 'Brier minus naive' < 0 means better than the naive model.",
        "- Scores: Brier, log score (natural log, forecasts clipped to "
        f"[{cfg.log_clip:g}, 1-{cfg.log_clip:g}]), Brier skill score, ROC AUC; 95% percentile "
        f"bootstrap intervals over cases ({cfg.n_resamples} resamples, seed {cfg.seed}). Code: "
        "`georisk.metrics`, `georisk.backtest`. A pooled rate's LOO AUC near 0 is an artefact: "
        "leaving an event out lowers the rate.",
        f"- Data: {'all' if cfg.include_unverified else 'verified'} reference cases of "
        f"`data/reference_cases.csv` ({len(ws.reference_cases)} rows in the file).",
        "## Backtest",
        _backtest_markdown(r, level=3),
    ]
    for rel, note in figure_notes.items():
        parts.append(f"![Reliability diagram]({rel})\n\n*{rel}: {note}.*")
    parts.append("## Prior sensitivity")
    if psense_table is not None:
        parts.append("### Power-scaling")
        parts.append(_psense_markdown(psense_table))
        n_sens = int(psense_table["prior_sensitive"].sum())
        parts.append(
            f"{n_sens} of {len(psense_table)} parameters are prior-sensitive. With "
            f"{int((r.forecasts['design'] == 'loo').sum())} resolved cases most priors are "
            "informative; kinds no reference case carries keep their prior by design."
        )
    if what_if_result is not None:
        parts.append("### What-if: documented prior changes")
        parts.append(_ranking_markdown(what_if_result.ranking))
        wi = what_if_result
        n_priors = 0 if wi.table.empty else wi.table["prior"].nunique()
        parts.append(
            f"{n_priors} priors perturbed ({wi.refits} refit(s), {wi.seconds:.0f} s). "
            "No what-if documented (shift 0 on a fixed value): "
            + (", ".join(wi.no_what_if) or "none") + "."
        )
    parts.append("## Track record")
    parts.append(_track_record_markdown(track) if track is not None else track_note)
    return "\n\n".join(parts).rstrip() + "\n"


@app.command("validation-report")
def validation_report(
    workspace: WorkspaceArg = Path("."),
    out: Annotated[Path, typer.Option(help="Where to write the report.")] = DEFAULT_REPORT,
    workers: WorkersOpt = 2,
    whatif_refit: Annotated[
        bool, typer.Option(help="Refit where what-if reweighting is unreliable (k > 0.7).")
    ] = True,
    include_unverified: UnverifiedOpt = False,
    today: TodayOpt = None,
) -> None:
    """Regenerate docs/validation.md: backtest, LOO, calibration figure, sensitivity."""
    t0 = time.perf_counter()
    ws = open_workspace(workspace, today)
    from georisk.backtest import backtest, load_trajectories, track_record
    from georisk.errors import StoreError
    from georisk.model_data import case_data, prior_parameters
    from georisk.posterior import load_or_fit
    from georisk.sensitivity import power_scaling, what_if

    say = lambda m: _echo(m, err=True)  # noqa: E731
    config = _backtest_config(None, 3.0, include_unverified, 1000, 1000, workers, 2000)
    with user_errors():
        posterior, _ = load_or_fit(ws, include_unverified=include_unverified)
        result = backtest(ws, config=config, posterior=posterior, progress=say)
        priors = prior_parameters(ws.priors)
        data = case_data(ws.reference_cases, ws.reference_indicators, priors.weights,
                         include_unverified=include_unverified)
        ps = power_scaling(posterior, data, priors)
        wi = what_if(ws, posterior, as_of=today, refit=whatif_refit, max_workers=workers,
                     progress=say)
    track, note = None, ""
    try:
        track = track_record(ws.scenarios, load_trajectories(ws),
                             today=today or dt.date.today())
    except StoreError as exc:
        note = f"No track record yet: {exc}"
    out = Path(out)
    fig_dir = out.parent / "figures"
    notes = {}
    for design, name, title in (
        ("lfo", "calibration.png", "Leave-future-out forecasts of the full model"),
        ("loo", "calibration_loo.png", "Leave-one-out forecasts of the full model"),
    ):
        sub = result.forecasts[result.forecasts["design"] == design]
        if sub.empty:
            continue
        path = fig_dir / name
        how = _calibration_figure(
            sub["p_model"].to_numpy(dtype=float), sub["outcome"].to_numpy(dtype=float), path,
            title=title, subtitle=f"{len(sub)} reference-case forecasts, 5 bins, Wilson 95%",
        )
        notes[str(path.relative_to(out.parent))] = how
    argv = " ".join(sys.argv[1:]) if sys.argv and "validation-report" in sys.argv else ""
    command = f"georisk {argv}" if argv else f"georisk validation-report {workspace} --out {out}"
    text = render_validation_report(
        ws, out=out, command=command, backtest_result=result, what_if_result=wi,
        psense_table=ps, track=track, track_note=note, figure_notes=notes,
        seconds=time.perf_counter() - t0,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    _echo(f"wrote {out}", err=True)
    if not _all_converged(result):
        _echo("error: a fit did not converge; the report says which.", err=True)
        raise typer.Exit(EXIT_UNCONVERGED)
