"""Scheduled scoring with a history: ``georisk score``, ``history``, ``explain`` and ``export``.

``georisk score [WORKSPACE]`` validates the workspace, reuses the stored fit for the current
inputs (or fits, with a progress spinner on stderr), scores every open scenario, stores the
run in the history (:mod:`georisk.history`) and prints a table: probability with its 80%
and 95% intervals, ICD 203 words, base rate, change since the previous run and top drivers.
``--json`` prints one JSON document on stdout instead (logs go to stderr), so a scheduler
can append it to a log. ``--as-of-range START:END --every 1m`` backfills one run per date,
each seeing only the indicators known on its date (see ``docs/scheduling.md``).

``georisk history SCENARIO`` prints a scenario's trajectory (``--csv``, ``--json``);
``georisk explain SCENARIO [--since RUN|DATE]`` splits what moved its number into parts
that add up (:mod:`georisk.explain`); ``georisk export --out DIR`` writes the latest scores,
the history and the contributions as CSV (formula cells neutralised) and Parquet.

Exit codes
----------
0
    Success.
1
    Unconverged: a run used a fit that failed its convergence checks. The scores are still
    printed and stored, marked ``UNCONVERGED`` / ``unconverged`` everywhere. Takes precedence
    over 4.
2
    Invalid input: workspace problems (nothing is written to the store), bad options, an
    unknown scenario or run, or a store path holding a foreign or corrupt file (never
    modified).
3
    The history store is busy: another process kept it for longer than ``--wait`` seconds.
    Nothing was stored; retry later.
4
    Alert: with ``--alert-threshold X``, a scenario's mean probability moved by at least
    ``X`` (absolute, e.g. 0.05 = 5 percentage points) since its previous run. The run is
    stored; the JSON output lists the moves under ``alerts``.

Only ``score`` returns 1 and 4. Heavy libraries (pandas, DuckDB, PyMC) are imported inside
the commands; a warm ``score`` (stored fit) never imports PyMC or ArviZ.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from georisk.atomic import write_atomic_path
from georisk.cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STORE_BUSY,
    EXIT_UNCONVERGED,
    TodayOpt,
    WorkspaceArg,
    _parse_date,
    app,
    exit_code_for,
    open_workspace,
    user_errors,
)
from georisk.errors import GeoriskError, WorkspaceError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "EXIT_OK",
    "EXIT_UNCONVERGED",
    "EXIT_INVALID",
    "EXIT_STORE_BUSY",
    "EXIT_ALERT",
    "LARGE_MOVE",
    "score",
    "history",
    "explain",
    "export",
]

EXIT_ALERT = 4
LARGE_MOVE = 0.05
"""Default size of a move (absolute change of the mean probability) marked in the table."""
TOP_DRIVERS = 3

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="GEORISK_HISTORY",
        metavar="PATH",
        help="History store file (default: $GEORISK_HISTORY, else "
        "WORKSPACE/.georisk/history.duckdb).",
        show_default=False,
    ),
]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0.0,
        metavar="SECONDS",
        help="How long to wait for a store another process is using before giving up (exit 3).",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one line of JSON on stdout (messages go to stderr)."),
]


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _echo_json(payload: Any) -> None:
    from georisk.history import json_safe

    # one line per document: ``--json >> log`` gives a JSON Lines file
    typer.echo(json.dumps(json_safe(payload), allow_nan=False, ensure_ascii=False))


def _bad_option(message: str, *, as_json: bool = False) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if as_json:
        _echo_json({"ok": False, "exit_code": EXIT_INVALID, "error": message})
    return typer.Exit(EXIT_INVALID)


def _pct(p: float | None, digits: int = 1) -> str:
    if p is None or p != p:
        return "—"
    return f"{100 * p:.{digits}f}%"


def _interval(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None or lo != lo or hi != hi:
        return "—"
    return f"{100 * lo:.1f}–{100 * hi:.1f}"


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


# --------------------------------------------------------------------------------------
# georisk score
# --------------------------------------------------------------------------------------


def _posterior(ws, config, *, as_of, refit: bool, quiet: bool):
    """Reuse the stored fit or fit, with a spinner on stderr; return (posterior, fitted)."""
    from georisk.posterior import default_posterior_dir, fit_id_for, load_or_fit

    fid = fit_id_for(ws, config=config, as_of=as_of)
    stored = (default_posterior_dir(ws) / fid / "fit.json").exists()
    if stored and not refit:
        return load_or_fit(ws, config=config, as_of=as_of)
    why = "--refit" if refit else "no stored fit for these reference cases, priors and settings"
    what = f"fitting the model{f' as of {as_of}' if as_of else ''} ({why})"
    t0 = time.perf_counter()
    if quiet:
        result = load_or_fit(ws, config=config, as_of=as_of, refit=refit)
    else:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=_err(), transient=True) as progress:
            progress.add_task(
                f"{what}: {config.chains} chains x {config.tune + config.draws} steps", total=None
            )
            result = load_or_fit(ws, config=config, as_of=as_of, refit=refit)
        posterior = result[0]
        typer.echo(
            f"fitted {posterior.fit_id} in {time.perf_counter() - t0:.1f} s: "
            f"{posterior.diagnostics.status}",
            err=True,
        )
    return result


def _drivers(contributions: pd.DataFrame, scenario_id: str) -> list[dict[str, Any]]:
    if contributions.empty:
        return []
    c = contributions[
        (contributions["scenario_id"] == scenario_id) & (contributions["term_type"] == "event")
    ]
    c = c.reindex(c["logodds_mean"].abs().sort_values(ascending=False, kind="stable").index)
    out = []
    for row in c.head(TOP_DRIVERS).to_dict("records"):
        out.append(
            {
                "term": row["term"],
                "kind": row.get("kind"),
                "direction": row.get("direction"),
                "event_date": row.get("event_date"),
                "logodds_mean": row["logodds_mean"],
                "logodds_q10": row.get("logodds_q0.10"),
                "logodds_q90": row.get("logodds_q0.90"),
            }
        )
    return out


def _run_record(
    run,
    posterior,
    *,
    fitted: bool,
    prev: pd.DataFrame,
    run_id: int | None,
    stored: bool,
    changed_inputs: str,
    started: dt.datetime,
    finished: dt.datetime,
    seconds: float,
    alert_threshold: float | None,
) -> dict[str, Any]:
    """Everything about one run that the table and the JSON show."""
    diag = posterior.diagnostics
    unconverged = run.diagnostics_status != "converged"
    prev_by = {r["scenario_id"]: r for r in prev.to_dict("records")} if not prev.empty else {}
    large = alert_threshold if alert_threshold is not None else LARGE_MOVE
    scores, not_scored, alerts = [], [], []
    for row in run.scores.to_dict("records"):
        sid = row["scenario_id"]
        p_mean = _num(row.get("p_mean"))
        if p_mean is None:
            not_scored.append(
                {"scenario_id": sid, "title": row.get("title"), "note": row.get("note")}
            )
            continue
        before = prev_by.get(sid)
        delta = None if before is None else p_mean - float(before["prev_p_mean"])
        entry = {
            "scenario_id": sid,
            "title": row.get("title"),
            "p_mean": p_mean,
            "p_median": _num(row.get("p_median")),
            "p_q025": _num(row.get("p_q0.025")),
            "p_q10": _num(row.get("p_q0.10")),
            "p_q90": _num(row.get("p_q0.90")),
            "p_q975": _num(row.get("p_q0.975")),
            "p_base_mean": _num(row.get("p_base_mean")),
            "logodds_mean": _num(row.get("logodds_mean")),
            "evidence_logodds_mean": _num(row.get("evidence_logodds_mean")),
            "icd203": row.get("icd203"),
            "band_straddle": bool(row.get("band_straddle")),
            "n_events": row.get("n_events"),
            "horizon": row.get("horizon"),
            "diagnostics_status": run.diagnostics_status,
            "flag": "UNCONVERGED" if unconverged else None,
            "previous": None
            if before is None
            else {
                "run_id": int(before["prev_run_id"]),
                "as_of": before["prev_as_of"],
                "p_mean": float(before["prev_p_mean"]),
            },
            "delta_p": delta,
            "large_move": delta is not None and abs(delta) >= large,
            "top_drivers": _drivers(run.contributions, sid),
        }
        scores.append(entry)
        if alert_threshold is not None and delta is not None and abs(delta) >= alert_threshold:
            alerts.append(
                {
                    "as_of": run.as_of,
                    "run_id": run_id,
                    "scenario_id": sid,
                    "p_before": float(before["prev_p_mean"]),
                    "p_after": p_mean,
                    "delta_p": delta,
                    "previous_run_id": int(before["prev_run_id"]),
                    "threshold": alert_threshold,
                }
            )
    return {
        "run_id": run_id,
        "stored": stored,
        "as_of": run.as_of,
        "started_at": started,
        "finished_at": finished,
        "seconds": round(seconds, 3),
        "fit_id": run.fit_id,
        "refit": fitted,
        "fit": "refit" if fitted else "reused stored fit",
        "diagnostics": {"status": diag.status, **diag.as_dict()},
        "unconverged": unconverged,
        "changed_inputs": changed_inputs,
        "scores": scores,
        "not_scored": not_scored,
        "alerts": alerts,
    }


def _store_and_compare(store_path, run, posterior, ws, *, fitted, started, finished, note, wait):
    """Write the run (one short transaction) and read the previous scores; return them."""
    from georisk.history import HistoryStore

    with HistoryStore(store_path, wait=wait) as store:
        run_id = store.write_run(
            run, posterior, ws, started_at=started, finished_at=finished, refit=fitted, note=note
        )
        changed = store.run(run_id)["changed_inputs"]
        prev = store.previous_scores(run_id)
    return run_id, changed, prev


def _dry_compare(store_path, run, ws, *, wait):
    """Previous scores for a run that is not stored (``--no-store``); never writes."""
    import pandas as pd

    from georisk import MODEL_VERSION
    from georisk.history import HistoryStore, input_hashes

    if not Path(store_path).exists():
        return pd.DataFrame(), "not stored (--no-store); no history yet"
    try:
        with HistoryStore(store_path, read_only=True, wait=wait, migrate=False) as store:
            prev = store.previous_scores(as_of=run.as_of)
            changed = store.compare_inputs(
                as_of=run.as_of,
                hashes=input_hashes(ws),
                fit_id=run.fit_id,
                model_version=MODEL_VERSION,
            )
    except GeoriskError as exc:
        typer.echo(f"note: cannot compare with the history: {exc}", err=True)
        return pd.DataFrame(), "not stored (--no-store)"
    return prev, f"not stored (--no-store); {changed}"


def _dates(as_of, as_of_range, every, today, *, as_json) -> list[dt.date]:
    from georisk.history import iter_dates

    if as_of_range is None:
        if every is not None:
            raise _bad_option("--every needs --as-of-range START:END.", as_json=as_json)
        return [as_of or today]
    if as_of is not None:
        raise _bad_option("give either --as-of or --as-of-range, not both.", as_json=as_json)
    start_text, sep, end_text = as_of_range.partition(":")
    try:
        if not sep:
            raise ValueError("missing ':'")
        start = dt.date.fromisoformat(start_text.strip())
        end = dt.date.fromisoformat(end_text.strip())
        return list(iter_dates(start, end, every or "1m"))
    except ValueError as exc:
        raise _bad_option(
            f"--as-of-range must be START:END with dates YYYY-MM-DD and --every like 30d, "
            f"2w, 1m or 1y. Got {as_of_range!r} every {every or '1m'!r} ({exc}).",
            as_json=as_json,
        ) from None


@app.command()
def score(
    workspace: WorkspaceArg = Path("."),
    as_of: Annotated[
        dt.date | None,
        typer.Option(
            "--as-of",
            parser=_parse_date,
            metavar="YYYY-MM-DD",
            help="Score as of this date: only indicators known by then count (default: today).",
            show_default=False,
        ),
    ] = None,
    as_of_range: Annotated[
        str | None,
        typer.Option(
            "--as-of-range",
            metavar="START:END",
            help="Backfill: one run per date from START to END (END included), each with "
            "only what was known on its date.",
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            metavar="N[d|w|m|y]",
            help="Step of --as-of-range, e.g. 30d, 2w, 1m (default: 1m).",
            show_default=False,
        ),
    ] = None,
    refit_as_of: Annotated[
        bool,
        typer.Option(
            "--refit-as-of",
            help="With --as-of/--as-of-range: also refit on the reference cases known on "
            "each date (slow) instead of using the current fit.",
        ),
    ] = False,
    refit: Annotated[
        bool, typer.Option("--refit", help="Fit the model even if a stored fit matches.")
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Sampler seed (a different seed is a different fit: fitted once, then reused) "
            "(default: the published seed).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Dry run: score and print, store nothing.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No table or progress; only warnings, alerts and errors."
        ),
    ] = False,
    store: StoreOpt = None,
    wait: WaitOpt = 10.0,
    alert_threshold: Annotated[
        float | None,
        typer.Option(
            "--alert-threshold",
            min=0.0,
            max=1.0,
            metavar="X",
            help="Exit 4 and list an alert when a scenario's mean probability moved by at "
            "least X (e.g. 0.05) since its previous run.",
        ),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Free text stored with the run.")
    ] = None,
    today: TodayOpt = None,
) -> None:
    """Score every open scenario, store the run in the history and show what changed."""
    t_command = time.perf_counter()
    today_date = today or dt.date.today()
    dates = _dates(as_of, as_of_range, every, today_date, as_json=as_json)
    if refit_as_of and as_of is None and as_of_range is None:
        raise _bad_option("--refit-as-of needs --as-of or --as-of-range.", as_json=as_json)
    ws = _load_json_mode(workspace, today) if as_json else open_workspace(workspace, today)

    from georisk.history import check_store_path, resolve_store_path
    from georisk.model import SamplerConfig
    from georisk.scoring import score_run

    store_path = resolve_store_path(ws, store)
    config = SamplerConfig() if seed is None else SamplerConfig(seed=seed)
    backfill = len(dates) > 1
    if backfill and note is None:
        note = (
            f"backfill {dates[0]}:{dates[-1]} every {every or '1m'} "
            f"({'refit as of each date' if refit_as_of else 'current fit'})"
        )
    records: list[dict[str, Any]] = []
    try:
        if not no_store:
            check_store_path(store_path)
        current = None
        for k, date in enumerate(dates):
            started = _utcnow()
            t0 = time.perf_counter()
            if refit_as_of:
                posterior, fitted = _posterior(ws, config, as_of=date, refit=refit, quiet=quiet)
            else:
                if current is None:
                    current = _posterior(ws, config, as_of=None, refit=refit, quiet=quiet)
                posterior, fitted = current[0], current[1] and k == 0
            run = score_run(ws, posterior, as_of=date)
            finished = _utcnow()
            if no_store and quiet and not as_json and alert_threshold is None:
                # nothing shown and no alert to raise: the history is not needed (and not
                # opened: importing and opening DuckDB is a tenth of a warm run)
                import pandas as pd

                prev, changed = pd.DataFrame(), "not stored (--no-store); not compared (--quiet)"
                run_id = None
            elif no_store:
                prev, changed = _dry_compare(store_path, run, ws, wait=wait)
                run_id = None
            else:
                run_id, changed, prev = _store_and_compare(
                    store_path,
                    run,
                    posterior,
                    ws,
                    fitted=fitted,
                    started=started,
                    finished=finished,
                    note=note,
                    wait=wait,
                )
            records.append(
                _run_record(
                    run,
                    posterior,
                    fitted=fitted,
                    prev=prev,
                    run_id=run_id,
                    stored=not no_store,
                    changed_inputs=changed,
                    started=started,
                    finished=finished,
                    seconds=time.perf_counter() - t0,
                    alert_threshold=alert_threshold,
                )
            )
            if backfill and not quiet:
                typer.echo(
                    f"as of {date}: {'run ' + str(run_id) + ' stored' if run_id else 'scored'} "
                    f"({k + 1}/{len(dates)})",
                    err=True,
                )
    except WorkspaceError as exc:  # pragma: no cover - the workspace was validated above
        raise _fail(exc, as_json=as_json, records=records) from None
    except GeoriskError as exc:
        raise _fail(exc, as_json=as_json, records=records) from None

    alerts = [a for r in records for a in r["alerts"]]
    unconverged = any(r["unconverged"] for r in records)
    code = EXIT_UNCONVERGED if unconverged else (EXIT_ALERT if alerts else EXIT_OK)
    status = "unconverged" if unconverged else ("alert" if alerts else "ok")
    if as_json:
        _echo_json(
            {
                "ok": code == EXIT_OK,
                "exit_code": code,
                "status": status,
                "workspace": str(ws.root),
                "store": None if no_store else str(store_path),
                "georisk_version": _version(),
                "alert_threshold": alert_threshold,
                "seconds": round(time.perf_counter() - t_command, 3),
                "runs": records,
                "alerts": alerts,
            }
        )
    elif not quiet:
        _print_runs(records, store_path=None if no_store else store_path, threshold=alert_threshold)
    if unconverged and (as_json or quiet):
        for r in records:
            if r["unconverged"]:
                problems = "; ".join(r["diagnostics"].get("problems") or []) or "no details"
                typer.echo(
                    f"UNCONVERGED: as of {r['as_of']}, the fit {r['fit_id']} failed its "
                    f"convergence checks ({problems}); its scores are marked UNCONVERGED: do "
                    "not publish them.",
                    err=True,
                )
    for a in alerts:
        typer.echo(
            f"alert: {a['scenario_id']} moved {100 * a['delta_p']:+.1f} pp "
            f"({_pct(a['p_before'])} -> {_pct(a['p_after'])}) since run "
            f"{a['previous_run_id']} (threshold {100 * a['threshold']:.1f} pp)",
            err=True,
        )
    if code != EXIT_OK:
        raise typer.Exit(code)


def _version() -> str:
    from georisk import __version__

    return __version__


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _load_json_mode(workspace: Path, today):
    """Load the workspace; on problems, print them on stderr and a JSON error on stdout."""
    from georisk.workspace import load_workspace

    try:
        return load_workspace(workspace, today=today)
    except WorkspaceError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"invalid workspace: {len(exc.problems)} problem(s).", err=True)
        _echo_json(
            {
                "ok": False,
                "exit_code": EXIT_INVALID,
                "status": "invalid",
                "error": f"invalid workspace: {len(exc.problems)} problem(s)",
                "problems": [str(p) for p in exc.problems],
            }
        )
        raise typer.Exit(EXIT_INVALID) from None
    except GeoriskError as exc:
        raise _fail(exc, as_json=True, records=[]) from None


def _fail(exc: GeoriskError, *, as_json: bool, records: list[dict[str, Any]]) -> typer.Exit:
    code = exit_code_for(exc)
    typer.echo(f"error: {exc}", err=True)
    if records:
        stored = [r["run_id"] for r in records if r["run_id"] is not None]
        typer.echo(f"runs stored before the error: {stored or 'none'}.", err=True)
    if as_json:
        status = {EXIT_STORE_BUSY: "store_busy", EXIT_UNCONVERGED: "unconverged"}.get(code, "error")
        _echo_json(
            {"ok": False, "exit_code": code, "status": status, "error": str(exc), "runs": records}
        )
    return typer.Exit(code)


def _unconverged_panel(record: dict[str, Any]) -> Panel:
    problems = record["diagnostics"].get("problems") or ["(no details recorded)"]
    body = Text()
    body.append(
        f"The fit {record['fit_id']} failed its convergence checks (R-hat <= 1.01, bulk and "
        "tail ESS >= 400, no divergences). The scores below are marked UNCONVERGED: do not "
        "publish them. Refit with more draws or fix the model.\n",
        style="bold",
    )
    for p in problems:
        body.append(f"  - {p}\n")
    return Panel(body, title="UNCONVERGED", border_style="bold red", style="red")


def _delta_text(entry: dict[str, Any], threshold: float | None) -> Text:
    delta = entry["delta_p"]
    if delta is None:
        return Text("new", style="dim")
    text = Text(f"{100 * delta:+.1f}")
    if entry["large_move"]:
        text.stylize("bold red" if delta < 0 else "bold green")
        text.append(" ‼", style="bold")
    return text


def _run_header(record: dict[str, Any], store_path) -> Text:
    head = Text()
    head.append(f"as of {record['as_of']}", style="bold")
    head.append(f" · fit {record['fit_id']} ({record['fit']}) · diagnostics: ")
    if record["unconverged"]:
        head.append("UNCONVERGED", style="bold white on red")
    else:
        head.append(record["diagnostics"]["status"], style="green")
    head.append("\n")
    head.append(f"inputs: {record['changed_inputs']} · {record['seconds']:.2f} s\n")
    if record["stored"]:
        head.append(f"run {record['run_id']} stored in {store_path}")
    else:
        head.append("dry run: nothing stored")
    return head


def _score_table(record: dict[str, Any], threshold: float | None, *, drivers: bool) -> Table:
    from rich import box

    large = threshold if threshold is not None else LARGE_MOVE
    table = Table(
        title=f"{len(record['scores'])} scenario(s) scored",
        caption=f"P: posterior mean and 80% interval, in %; Δ: change since the previous run "
        f"in percentage points, ‼ = {100 * large:g} pp or more"
        + ("; drivers in log-odds." if drivers else "."),
        box=box.SIMPLE_HEAVY,
        padding=(0, 1),
        pad_edge=False,
        expand=True,
    )
    table.add_column("scenario", ratio=3, min_width=16, overflow="fold")
    table.add_column("P % [80%]", no_wrap=True)
    table.add_column("95%", no_wrap=True)
    table.add_column("ICD 203", ratio=2, min_width=16, overflow="fold")
    table.add_column("base %", no_wrap=True, justify="right")
    table.add_column("Δ pp", no_wrap=True, justify="right")
    if drivers:
        table.add_column("top drivers", ratio=4, overflow="fold")
    for e in record["scores"]:
        p_cell = Text(f"{100 * e['p_mean']:.1f} [{_interval(e['p_q10'], e['p_q90'])}]")
        if e["flag"]:
            p_cell.append("\nUNCONVERGED", style="bold white on red")
        icd = Text(str(e["icd203"]))
        if e["band_straddle"]:
            icd.append("\n⚠ spans bands", style="yellow")
        cells = [
            Text(e["scenario_id"]),
            p_cell,
            Text(_interval(e["p_q025"], e["p_q975"])),
            icd,
            Text(f"{100 * e['p_base_mean']:.1f}" if e["p_base_mean"] is not None else "—"),
            _delta_text(e, threshold),
        ]
        if drivers:
            cells.append(Text(_drivers_text(e, "\n")))
        table.add_row(*cells)
    for e in record["not_scored"]:
        cells = [Text(e["scenario_id"]), Text("—"), Text("—"), Text(str(e["note"])),
                 Text("—"), Text("—")] + ([Text("—")] if drivers else [])  # fmt: skip
        table.add_row(*cells)
    return table


def _drivers_text(entry: dict[str, Any], sep: str) -> str:
    return sep.join(f"{d['term']} {d['logodds_mean']:+.2f}" for d in entry["top_drivers"]) or "—"


def _print_runs(records: list[dict[str, Any]], *, store_path, threshold: float | None) -> None:
    out = _out()
    if len(records) > 1:
        summary = Table(title=f"backfill: {len(records)} run(s)", expand=False)
        for name in ("as of", "run", "fit", "diagnostics", "scored", "largest move"):
            summary.add_column(name, no_wrap=True)
        for r in records:
            moves = [e for e in r["scores"] if e["delta_p"] is not None]
            big = max(moves, key=lambda e: abs(e["delta_p"]), default=None)
            summary.add_row(
                str(r["as_of"]),
                str(r["run_id"] if r["run_id"] is not None else "—"),
                f"{r['fit_id']} ({r['fit']})",
                Text("UNCONVERGED", style="bold red") if r["unconverged"] else Text("converged"),
                str(len(r["scores"])),
                f"{big['scenario_id']} {100 * big['delta_p']:+.1f} pp" if big else "—",
            )
        out.print(summary)
        out.print("latest run of the backfill:", style="bold", markup=False)
    last = records[-1]
    out.print(_run_header(last, store_path))
    if last["unconverged"]:
        out.print(_unconverged_panel(last))
    wide = out.width >= 150
    out.print(_score_table(last, threshold, drivers=wide))
    if not wide and last["scores"]:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for e in last["scores"]:
            grid.add_row(Text(f"  {e['scenario_id']}"), Text(_drivers_text(e, ", ")))
        out.print("top drivers (log-odds):", style="bold", markup=False)
        out.print(grid)
    for r in records[:-1]:
        if r["unconverged"]:
            out.print(f"as of {r['as_of']}: UNCONVERGED fit {r['fit_id']}", style="bold red")


# --------------------------------------------------------------------------------------
# georisk history / explain / export
# --------------------------------------------------------------------------------------

ScenarioArg = Annotated[
    str, typer.Argument(help="Scenario id (e.g. kz-npp-first-concrete-by-2030).")
]


def _open_reader(workspace: Path, store: Path | None, wait: float):
    from georisk.history import HistoryStore, resolve_store_path

    return HistoryStore(resolve_store_path(workspace, store), read_only=True, wait=wait)


def _trajectory(store, scenario: str) -> pd.DataFrame:
    from georisk.explain import RunLookupError
    from georisk.schemas import suggest

    traj = store.trajectory(scenario)
    if traj.empty:
        known = store.scenario_ids()
        raise RunLookupError(
            f"no stored score for scenario {scenario!r}{suggest(scenario, known)}. Scenarios "
            f"in the history: {', '.join(known) if known else 'none yet (run `georisk score`)'}."
        )
    return traj


def _date_columns(df: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Date-only columns as ``datetime.date`` (ISO in CSV, date32 in Parquet)."""
    import pandas as pd

    df = df.copy()
    for name in names:
        if name in df.columns:
            col = pd.to_datetime(df[name])
            df[name] = pd.Series(
                [None if pd.isna(v) else v.date() for v in col], index=df.index, dtype=object
            )
    return df


@app.command()
def history(
    scenario: ScenarioArg,
    workspace: WorkspaceArg = Path("."),
    store: StoreOpt = None,
    wait: WaitOpt = 10.0,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write CSV to stdout (formula cells neutralised).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a scenario's trajectory: one row per stored run."""
    with user_errors(), _open_reader(workspace, store, wait) as st:
        traj = _trajectory(st, scenario)
    traj = _date_columns(traj, ("as_of",))
    prev = traj["p_mean"].shift(1)
    traj["delta_p"] = traj["p_mean"] - prev
    if as_csv:
        from georisk.exports import to_safe_csv

        to_safe_csv(traj, sys.stdout)
        return
    if as_json:
        _echo_json({"scenario_id": scenario, "runs": traj.to_dict("records")})
        return
    title = str(traj["title"].dropna().iloc[-1]) if traj["title"].notna().any() else scenario
    out = _out()
    wide = out.width >= 110
    from rich import box

    table = Table(
        title=f"{scenario}: {title}",
        caption="P and intervals in %, Δ in percentage points since the run before."
        + ("" if wide else " Full fit ids and run times: --csv or --json."),
        box=box.SIMPLE_HEAVY,
        padding=(0, 1),
        pad_edge=False,
    )
    columns = ["run", "ran at (UTC)", "as of", "P", "80%", "base", "Δ", "fit", "status"]
    if not wide:
        columns.remove("ran at (UTC)")
    for name in columns:
        table.add_column(
            name, no_wrap=True, justify="right" if name in ("P", "base", "Δ") else "left"
        )
    for row in traj.to_dict("records"):
        status = str(row["diagnostics_status"])
        delta = _num(row["delta_p"])
        p_mean = _num(row["p_mean"])
        fit = str(row["fit_id"]) if wide else str(row["fit_id"])[:8]
        cells = {
            "run": str(row["run_id"]),
            "ran at (UTC)": row["started_at"].strftime("%Y-%m-%d %H:%M"),
            "as of": str(row["as_of"]),
            "P": f"{100 * p_mean:.1f}" if p_mean is not None else Text("—", style="dim"),
            "80%": _interval(_num(row["p_q10"]), _num(row["p_q90"])),
            "base": f"{100 * _num(row['p_base_mean']):.1f}" if p_mean is not None else "—",
            "Δ": "—" if delta is None else f"{100 * delta:+.1f}",
            "fit": fit + (" (refit)" if row.get("refit") is True else ""),
            "status": Text("UNCONVERGED", style="bold white on red")
            if status == "unconverged"
            else Text(status if p_mean is not None else str(row.get("note") or "not scored")),
        }
        table.add_row(*(cells[c] for c in columns))
    out.print(table)


@app.command()
def explain(
    scenario: ScenarioArg,
    workspace: WorkspaceArg = Path("."),
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="RUN|DATE",
            help="Earlier run: a run id, or a date (the last run as of that date) "
            "(default: the run before --run).",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="RUN|DATE",
            help="Later run (default: the latest run that scored the scenario).",
            show_default=False,
        ),
    ] = None,
    terms: Annotated[
        int, typer.Option("--terms", min=0, help="Show this many largest term changes.")
    ] = 8,
    store: StoreOpt = None,
    wait: WaitOpt = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Explain what moved a scenario's probability between two runs (parts add up)."""
    from georisk.explain import explain_change

    try:
        with user_errors(), _open_reader(workspace, store, wait) as st:
            ex = explain_change(st, scenario, since, until=run)
    except ValueError as exc:
        raise _bad_option(str(exc)) from None
    if as_json:
        _echo_json(ex.as_dict())
        return
    b, a = ex.before, ex.after
    head = Text()
    head.append(f"{scenario}", style="bold")
    head.append(
        f": run {b['run_id']} (as of {b['as_of']}) → run {a['run_id']} (as of {a['as_of']})"
        f"{' · refit ' + b['fit_id'] + ' → ' + a['fit_id'] if ex.refit else ' · same fit'}\n"
    )
    head.append(
        f"P (mean) {_pct(b['p_mean'])} → {_pct(a['p_mean'])} ({100 * ex.p_change:+.1f} pp); "
        f"mean log-odds {b['logodds_mean']:+.3f} → {a['logodds_mean']:+.3f} "
        f"({ex.total_logodds_change:+.3f})"
    )
    out = _out()
    out.print(head)
    for r in (b, a):
        if r["diagnostics_status"] != "converged":
            out.print(f"run {r['run_id']} used an UNCONVERGED fit.", style="bold red")
    table = Table(title="what moved the number (log-odds; parts add up to the total)")
    table.add_column("part", ratio=4, overflow="fold")
    table.add_column("Δ log-odds", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("largest terms", ratio=4, overflow="fold")
    for row in ex.parts.to_dict("records"):
        if row["n_terms"] == 0 and row["logodds_change"] == 0.0:
            continue
        share = row["share"]
        table.add_row(
            row["label"],
            f"{row['logodds_change']:+.4f}",
            "—" if share != share else f"{100 * share:.0f}%",
            row["top_terms"],
        )
    table.add_row(Text("total", style="bold"), f"{ex.total_logodds_change:+.4f}", "100%", "")
    out.print(table)
    if (ex.parts["logodds_change"] == 0.0).all():
        out.print("nothing moved: the two runs have the same terms and values.", markup=False)
    if terms:
        detail = Table(title=f"largest term changes (top {terms})")
        for name in ("term", "kind", "status", "before", "after", "Δ"):
            detail.add_column(name, overflow="fold")
        for row in ex.terms.head(terms).to_dict("records"):
            detail.add_row(
                row["term"],
                row["kind"] if isinstance(row["kind"], str) else row["term_type"],
                row["status"],
                "—" if row["logodds_before"] != row["logodds_before"]
                else f"{row['logodds_before']:+.3f}",
                "—" if row["logodds_after"] != row["logodds_after"]
                else f"{row['logodds_after']:+.3f}",
                f"{row['change']:+.4f}",
            )  # fmt: skip
        out.print(detail)


@app.command()
def export(
    workspace: WorkspaceArg = Path("."),
    out: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="Folder to write into (created if needed)."),
    ] = ...,  # type: ignore[assignment]
    all_runs: Annotated[
        bool,
        typer.Option("--all-runs", help="Contributions of every run, not just the latest."),
    ] = False,
    store: StoreOpt = None,
    wait: WaitOpt = 10.0,
) -> None:
    """Write scores (latest run), history and contributions as CSV and Parquet."""
    from georisk.exports import to_safe_csv

    with user_errors(), _open_reader(workspace, store, wait) as st:
        latest = st.latest_run_id()
        tables = {
            "scores": st.latest_scores(),
            "history": st.history(),
            "contributions": st.contributions(None if all_runs else (latest or -1)),
            "runs": st.runs(),
        }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _bad_option(f"cannot create the folder {out}: {exc}") from None
    written = []
    for name, df in tables.items():
        df = _date_columns(df, ("as_of", "event_date"))
        written.append(write_atomic_path(out / f"{name}.csv", lambda p, df=df: to_safe_csv(df, p)))
        written.append(
            write_atomic_path(
                out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False)
            )
        )
    for path, (name, df) in zip(written[::2], tables.items(), strict=True):
        typer.echo(f"{name}: {len(df)} row(s) -> {path} (+ .parquet)")
