"""Drivers: a log-odds waterfall from the base rate through each event to the forecast."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from georisk.plotting.style import (
    COLORS,
    format_date,
    format_percent,
    house_style,
    short_event_label,
    source_line,
    start_figure,
    tidy_axes,
)
from georisk.scoring import expit

__all__ = ["plot_drivers", "waterfall_table", "PROBABILITY_TICKS"]

PROBABILITY_TICKS = (0.01, 0.05, 0.20, 0.50, 0.80, 0.95, 0.99)
"""Probabilities marked on the secondary axis of the waterfall."""

_TERM_COLUMNS = ("scenario_id", "term", "term_type", "logodds_mean")


def _logit(p: Any) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _expit(x: Any) -> np.ndarray:
    return expit(np.asarray(x, dtype=float))


def _signed(x: float) -> str:
    """Signed log-odds with a true minus sign; tiny values keep their sign."""
    if abs(x) >= 0.01:
        text = f"{x:+.2f}"
    elif abs(x) >= 0.001:
        text = f"{x:+.3f}"
    else:
        text = ("+" if x >= 0 else "-") + "<0.001"
    return text.replace("-", "\u2212")


def _select(contributions: Any, scores: Any, scenario_id: str | None):
    if hasattr(contributions, "contributions"):
        scores = contributions.scores if scores is None else scores
        contributions = contributions.contributions
    if not isinstance(contributions, pd.DataFrame):
        raise TypeError(
            "contributions must be a ScoreRun or its contributions DataFrame. "
            f"Got {type(contributions).__name__}."
        )
    missing = [c for c in _TERM_COLUMNS if c not in contributions.columns]
    if missing:
        raise ValueError(
            f"the contributions table lacks column(s) {missing}. "
            f"Available: {list(contributions.columns)}."
        )
    ids = list(dict.fromkeys(contributions["scenario_id"]))
    if scenario_id is None:
        if len(ids) != 1:
            raise ValueError(
                f"the contributions cover {len(ids)} scenarios; pass scenario_id= one of {ids}."
            )
        scenario_id = ids[0]
    elif scenario_id not in ids:
        raise ValueError(f"scenario {scenario_id!r} is not in the contributions. Available: {ids}.")
    terms = contributions[contributions["scenario_id"] == scenario_id]
    row = None
    if isinstance(scores, pd.Series):
        row = scores
    elif isinstance(scores, pd.DataFrame) and "scenario_id" in scores.columns:
        match = scores[scores["scenario_id"] == scenario_id]
        row = match.iloc[0] if len(match) else None
    return scenario_id, terms, row


def waterfall_table(
    terms: pd.DataFrame, *, order: str = "date", max_events: int = 12
) -> pd.DataFrame:
    """Compute the steps of one scenario's log-odds waterfall (no drawing).

    Parameters
    ----------
    terms : pandas.DataFrame
        One scenario's rows of a contributions table: ``term``, ``term_type``
        (``base_rate``, ``event``, ``timing``), ``logodds_mean`` and, when available,
        ``logodds_q0.10``/``logodds_q0.90``, ``event_date``, ``kind``, ``direction``.
    order : {"date", "size"}, default "date"
        Events by date (then id), or by the size of their mean contribution.
    max_events : int, default 12
        More events than this are shown as the ``max_events - 1`` largest and one
        ``other`` step holding the rest (their means summed, no interval).

    Returns
    -------
    pandas.DataFrame
        One row per step from the top: ``step`` (``base_rate``, ``event``, ``other``,
        ``timing``), ``term``, ``start``, ``end`` (cumulative log-odds before and after),
        ``mean``, ``lo``, ``hi`` (80% interval of the step's end, NaN if unknown), ``kind``,
        ``direction``, ``event_date``; ``end`` of the last row is the forecast's mean
        log-odds.
    """
    if order not in {"date", "size"}:
        raise ValueError(f"order must be 'date' or 'size'. Got {order!r}.")
    if max_events < 1:
        raise ValueError(f"max_events must be >= 1. Got {max_events}.")
    base = terms[terms["term_type"] == "base_rate"]
    timing = terms[terms["term_type"] == "timing"]
    events = terms[terms["term_type"] == "event"].copy()
    if len(base) != 1 or len(timing) > 1:
        raise ValueError(
            "a scenario's contributions need exactly one base_rate row and at most one timing "
            f"row. Got {len(base)} and {len(timing)}."
        )
    events["_size"] = events["logodds_mean"].abs()
    if order == "size":
        events = events.sort_values("_size", ascending=False, kind="stable")
    elif "event_date" in events.columns:
        events = events.sort_values(["event_date", "term"], kind="stable")
    other = None
    if len(events) > max_events:
        keep = events.nlargest(max_events - 1, "_size").index
        other = events.loc[~events.index.isin(keep)]
        events = events.loc[events.index.isin(keep)]

    def interval(row: pd.Series) -> tuple[float, float]:
        lo, hi = row.get("logodds_q0.10", np.nan), row.get("logodds_q0.90", np.nan)
        return float(lo), float(hi)

    rows: list[dict[str, Any]] = []
    cum = 0.0

    def add(step: str, row: pd.Series | None, mean: float, lo: float, hi: float, term: str):
        nonlocal cum
        start = cum
        cum = start + mean
        rows.append(
            {
                "step": step,
                "term": term,
                "start": start,
                "end": cum,
                "mean": mean,
                "lo": start + lo,
                "hi": start + hi,
                "kind": None if row is None else row.get("kind"),
                "direction": None if row is None else row.get("direction"),
                "event_date": None if row is None else row.get("event_date"),
            }
        )

    b = base.iloc[0]
    add("base_rate", b, float(b["logodds_mean"]), *interval(b), "base_rate")
    for _, e in events.iterrows():
        add("event", e, float(e["logodds_mean"]), *interval(e), str(e["term"]))
    if other is not None:
        add("other", None, float(other["logodds_mean"].sum()), np.nan, np.nan,
            f"{len(other)} other events")  # fmt: skip
    if len(timing):
        t = timing.iloc[0]
        add("timing", t, float(t["logodds_mean"]), *interval(t), "timing")
    return pd.DataFrame(rows)


def plot_drivers(
    contributions: Any,
    *,
    scenario_id: str | None = None,
    scores: pd.DataFrame | pd.Series | None = None,
    order: str = "date",
    max_events: int = 12,
    title: str | None = None,
    subtitle: str | None = None,
    source: str | None = None,
    data_date: dt.date | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Waterfall of one scenario's log-odds: base rate, each event, timing, forecast.

    Horizontal bars, top to bottom: the base rate of the reference class (from 0), one step
    per event (green when it raises the log-odds, vermillion when it lowers them), the
    timing term (the passage of time and the horizon), and the forecast's total log-odds
    (from 0). Whiskers show each term's 80% interval at the end of its bar; the forecast's
    whisker is its 80% credible interval when ``scores`` are given. The top axis reads the
    log-odds as probabilities (1, 5, 20, 50, 80, 95, 99%).

    Parameters
    ----------
    contributions : ScoreRun or pandas.DataFrame
        :func:`georisk.scoring.score_run` output or its ``contributions`` table.
    scenario_id : str, optional
        The scenario (required when the table has several).
    scores : pandas.DataFrame or Series, optional
        Scores table or the scenario's row (taken from the ScoreRun when one is given):
        adds the forecast interval, the mean probability, the title and the as-of date.
    order : {"date", "size"}, default "date"
        Order of the event steps.
    max_events : int, default 12
        More events are summarised in one "other events" step.
    title, subtitle, source : str, optional
        Override the default texts.
    data_date : datetime.date, optional
        Newest ledger date, for the source line.
    ax : matplotlib.axes.Axes, optional
        Draw on this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids: ``driver-step`` (one bar each for the base rate, every event
        and the timing term), ``driver-total`` (the forecast bar), ``whisker`` (one
        LineCollection).
    """
    scenario_id, terms, row = _select(contributions, scores, scenario_id)
    table = waterfall_table(terms, order=order, max_events=max_events)
    n_rows = len(table) + 1
    height = 0.9 + 0.36 * n_rows
    total = float(table["end"].iloc[-1])
    final_lo = final_hi = np.nan
    if row is not None and "p_q0.10" in row.index:
        final_lo, final_hi = (float(v) for v in _logit([row["p_q0.10"], row["p_q0.90"]]))

    with house_style():
        canvas = start_figure(ax, height)
        fig, ax = canvas.fig, canvas.ax
        tidy_axes(ax, grid="x", left_spine=False)
        y_steps = np.arange(n_rows - 1, 0, -1, dtype=float)
        colors = []
        for step, mean in zip(table["step"], table["mean"], strict=True):
            if step == "base_rate":
                colors.append(COLORS["base_rate"])
            elif step == "timing":
                colors.append(COLORS["timing"])
            else:
                colors.append(COLORS["supports"] if mean >= 0 else COLORS["opposes"])
        steps = ax.barh(
            y_steps, table["mean"], left=table["start"], height=0.58, color=colors, zorder=3
        )
        for patch in steps.patches:
            patch.set_gid("driver-step")
        final = ax.barh([0.0], [total], height=0.58, color=COLORS["estimate"], zorder=3)
        final.patches[0].set_gid("driver-total")
        # connectors between consecutive bars
        ends = table["end"].to_numpy()
        for yi, x in zip(y_steps, ends, strict=True):
            ax.plot([x, x], [yi - 0.29, yi - 0.71], color="#8A8A8A", lw=0.7, ls=(0, (2, 2)),
                    zorder=2)  # fmt: skip
        w_lo = np.append(table["lo"].to_numpy(), final_lo)
        w_hi = np.append(table["hi"].to_numpy(), final_hi)
        w_y = np.append(y_steps, 0.0)
        ok = np.isfinite(w_lo) & np.isfinite(w_hi)
        whiskers = ax.hlines(w_y[ok], w_lo[ok], w_hi[ok], color="#1A1A1A", lw=1.0, zorder=4)
        whiskers.set_gid("whisker")
        ax.scatter(
            np.concatenate([w_lo[ok], w_hi[ok]]), np.concatenate([w_y[ok], w_y[ok]]),
            marker="|", s=30, color="#1A1A1A", linewidths=1.0, zorder=4,
        )  # fmt: skip
        ax.axvline(0.0, color="#7A7A7A", lw=0.8, zorder=2)

        # x range: everything visible, at least 2.5 log-odds wide, room for value labels
        xs = np.concatenate([[0.0, total], table["start"], ends, w_lo[ok], w_hi[ok]])
        lo, hi = float(np.min(xs)), float(np.max(xs))
        if hi - lo < 2.5:
            mid = (hi + lo) / 2
            lo, hi = mid - 1.25, mid + 1.25
        # reach out to the nearest probability tick on each side, so the top axis has ticks
        tick_x = _logit(PROBABILITY_TICKS)
        lo = float(tick_x[tick_x <= lo].max()) if (tick_x <= lo).any() else lo
        hi = float(tick_x[tick_x >= hi].min()) if (tick_x >= hi).any() else hi
        span = hi - lo
        ax.set_xlim(lo - 0.04 * span, hi + 0.18 * span)

        right_edge = np.nanmax(
            np.vstack([np.append(table["start"], 0.0), np.append(ends, total), w_hi]), axis=0
        )
        for yi, x, mean, step in zip(
            w_y, right_edge, np.append(table["mean"], total),
            [*table["step"], "total"], strict=True,
        ):  # fmt: skip
            text = _signed(mean)
            if step == "total":
                text = f"= {text}"
                if row is not None and "p_mean" in row.index:
                    text += f"  (mean {format_percent(float(row['p_mean']))})"
            ax.annotate(
                text, xy=(x, yi), xytext=(5, 0), textcoords="offset points", va="center",
                ha="left", fontsize=8.5,
                fontweight="bold" if step == "total" else "normal", color=COLORS["text"],
            )  # fmt: skip

        labels = []
        for r in table.itertuples(index=False):
            if r.step == "base_rate":
                cls = row.get("reference_class") if row is not None else None
                labels.append(
                    "Base rate" + (f"\n{str(cls).replace('_', ' ')}" if cls else " of the class")
                )
            elif r.step == "timing":
                labels.append("Timing\nelapsed time, horizon")
            elif r.step == "other":
                labels.append(str(r.term))
            else:
                bits = [str(r.kind).replace("_", " ")] if isinstance(r.kind, str) else []
                if r.event_date is not None and not pd.isna(r.event_date):
                    bits.append(format_date(r.event_date))
                labels.append(short_event_label(r.term) + ("\n" + ", ".join(bits) if bits else ""))
        labels.append("Forecast")
        ax.set_yticks(np.append(y_steps, 0.0), labels, fontsize=8.5)
        ax.tick_params(axis="y", length=0, pad=6)
        ax.get_yticklabels()[-1].set_fontweight("bold")
        ax.set_ylim(-0.6, n_rows - 0.4)
        ax.set_xlabel("Log-odds (contribution of each term; 0 = 50%)")

        top = ax.secondary_xaxis("top", functions=(_expit, _logit))
        x_lo, x_hi = ax.get_xlim()
        ticks = [p for p in PROBABILITY_TICKS if x_lo <= float(_logit(p)) <= x_hi]
        top.set_xticks(ticks, [f"{100 * p:g}%" for p in ticks])
        top.tick_params(axis="x", labelsize=8.5)
        top.set_xlabel("Probability", fontsize=8.5, color=COLORS["muted"])

        as_of = row.get("as_of") if row is not None else None
        if title is None:
            name = row.get("title") if row is not None else None
            title = f"What drives the forecast: {name or scenario_id}"
        if subtitle is None:
            when = f"As of {format_date(as_of)}. " if as_of is not None else ""
            subtitle = (
                f"{when}Log-odds from the class base rate through each event and the timing "
                "term to the forecast. Bars: mean contribution (green raises, vermillion "
                "lowers); whiskers: 80% intervals."
            )
        warning = None
        if row is not None and row.get("diagnostics") == "unconverged":
            warning = "UNCONVERGED FIT: these contributions come from a fit that failed its checks."
        if source is None:
            source = source_line(
                fit_id=row.get("fit_id") if row is not None else None,
                run_id=row.get("run_id") if row is not None else None,
                as_of=as_of,
                data_date=data_date,
            )
        fig = canvas.finish(title=title, subtitle=subtitle, source=source, warning=warning)
    return fig
