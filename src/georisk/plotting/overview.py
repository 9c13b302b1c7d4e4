"""Scenario overview: every open scenario's probability with its credible intervals."""

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
    percent_formatter,
    source_line,
    start_figure,
    tidy_axes,
    wrap,
)
from georisk.scoring import ICD203_BANDS

__all__ = ["plot_overview", "OVERVIEW_COLUMNS"]

OVERVIEW_COLUMNS = (
    "scenario_id",
    "title",
    "p_mean",
    "p_q0.025",
    "p_q0.10",
    "p_q0.90",
    "p_q0.975",
    "p_base_mean",
)
"""Columns :func:`plot_overview` needs (as in :attr:`georisk.scoring.ScoreRun.scores`)."""

UNCONVERGED_WARNING = (
    "UNCONVERGED FIT: the model failed its convergence checks (R-hat, ESS or divergences); "
    "do not publish these numbers."
)


def _scores_frame(scores: Any) -> pd.DataFrame:
    frame = getattr(scores, "scores", scores)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"scores must be a ScoreRun or its scores DataFrame. Got {type(scores).__name__}."
        )
    missing = [c for c in OVERVIEW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the scores table lacks column(s) {missing}. Available: {list(frame.columns)}."
        )
    return frame


def _single(frame: pd.DataFrame, column: str) -> Any:
    if column not in frame.columns:
        return None
    values = frame[column].dropna().unique()
    return values[0] if len(values) == 1 else (list(values) or None)


def plot_overview(
    scores: Any,
    *,
    sort: str = "p_mean",
    title: str | None = None,
    subtitle: str | None = None,
    source: str | None = None,
    data_date: dt.date | None = None,
    label_width: int = 34,
    show_values: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Dot-and-interval chart of every open scenario's probability.

    One row per scored scenario, sorted: the mean probability (dot), its 80% (thick bar)
    and 95% (thin line) credible intervals, and the base rate of its reference class with
    the same timing but no evidence (open diamond). The probability axis runs from 0 to
    100% with the ICD 203 likelihood bands shaded in turn and named along the top. Rows
    without a score (horizon reached, awaiting resolution) are left out and counted in the
    subtitle. An unconverged fit puts a warning line under the title.

    Parameters
    ----------
    scores : ScoreRun or pandas.DataFrame
        :func:`georisk.scoring.score_run` output or its ``scores`` table; needs
        :data:`OVERVIEW_COLUMNS`, and uses ``as_of``, ``fit_id``, ``diagnostics`` and
        ``run_id`` when present.
    sort : {"p_mean", "p_base_mean", "title", "none"}, default "p_mean"
        Row order: highest value at the top, titles alphabetically, or as given.
    title, subtitle, source : str, optional
        Override the default texts.
    data_date : datetime.date, optional
        Newest ledger date, for the source line.
    label_width : int, default 34
        Scenario titles are wrapped at this many characters.
    show_values : bool, default True
        Print the mean probability at the right of each row.
    ax : matplotlib.axes.Axes, optional
        Draw on this axes instead of a new 6.5-inch-wide figure.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids for inspection: ``interval95`` and ``interval80`` (one
        LineCollection each, one segment per scenario), ``mean`` and ``base_rate``
        (scatter), ``icd-band`` (shaded spans).
    """
    frame = _scores_frame(scores)
    frame = frame[frame["p_mean"].notna()].copy()
    n_skipped = len(_scores_frame(scores)) - len(frame)
    if frame.empty:
        raise ValueError("no scored scenario to plot: every row lacks a probability.")
    sort_keys = {"p_mean", "p_base_mean", "title", "none"}
    if sort not in sort_keys:
        raise ValueError(f"sort must be one of {sorted(sort_keys)}. Got {sort!r}.")
    if sort == "title":
        frame = frame.sort_values("title", ascending=False, kind="stable")
    elif sort != "none":
        frame = frame.sort_values(sort, ascending=True, kind="stable")
    else:
        frame = frame.iloc[::-1]
    labels = [wrap(str(t), label_width) for t in frame["title"]]
    n_lines = sum(label.count("\n") + 1 for label in labels)
    height = 0.75 + 0.155 * n_lines + 0.13 * len(frame)

    as_of = _single(frame, "as_of")
    status = _single(frame, "diagnostics")
    unconverged = status == "unconverged" or (
        isinstance(status, list) and "unconverged" in status
    )
    with house_style():
        canvas = start_figure(ax, height)
        fig, ax = canvas.fig, canvas.ax
        tidy_axes(ax, left_spine=False)
        y = np.arange(len(frame), dtype=float)
        for i, (_words, lo, hi) in enumerate(ICD203_BANDS):
            if i % 2 == 0:
                span = ax.axvspan(lo, hi, color=COLORS["band"], lw=0, zorder=0)
                span.set_gid("icd-band")
        color = COLORS["estimate"]
        thin = ax.hlines(y, frame["p_q0.025"], frame["p_q0.975"], color=color, lw=1.2, zorder=2)
        thin.set_gid("interval95")
        thick = ax.hlines(y, frame["p_q0.10"], frame["p_q0.90"], color=color, lw=5.5, zorder=2)
        thick.set_capstyle("butt")
        thick.set_gid("interval80")
        mean = ax.scatter(
            frame["p_mean"], y, s=26, color="white", edgecolor=color, linewidth=1.4, zorder=5
        )
        mean.set_gid("mean")
        base = ax.scatter(
            frame["p_base_mean"], y, s=62, marker="D", facecolor="none",
            edgecolor=COLORS["base_rate"], linewidth=1.1, zorder=4,
        )  # fmt: skip
        base.set_gid("base_rate")
        if show_values:
            right = np.maximum(frame["p_q0.975"].to_numpy(), frame["p_base_mean"].to_numpy())
            for yi, x_end, p in zip(y, right, frame["p_mean"], strict=True):
                inside = x_end < 0.9
                ax.annotate(
                    format_percent(float(p)),
                    xy=(x_end if inside else 1.0, yi),
                    xytext=(5 if inside else -3, 0),
                    textcoords="offset points",
                    ha="left" if inside else "right",
                    va="center",
                    fontsize=8.5,
                    fontweight="bold",
                    color=color,
                )
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0, pad=6)
        ax.set_ylim(-0.6, len(frame) - 0.4)
        ax.set_xlim(0.0, 1.0)
        ax.set_xticks(np.linspace(0, 1, 11))
        ax.xaxis.set_major_formatter(percent_formatter)
        ax.set_xlabel("Probability that the scenario happens by its horizon")
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(lo + hi) / 2 for _, lo, hi in ICD203_BANDS],
            [words for words, _, _ in ICD203_BANDS],
            rotation=35,
            ha="left",
            rotation_mode="anchor",
            fontsize=8,
            color=COLORS["muted"],
        )
        top.tick_params(axis="x", length=0, pad=2)
        top.spines["top"].set_visible(False)

        if subtitle is None:
            when = f"As of {format_date(as_of)}. " if isinstance(as_of, dt.date | str) else ""
            subtitle = (
                f"{when}Dot: mean; thick bar: 80% and thin line: 95% credible interval; "
                "◇: base rate of the reference class (same timing, no evidence). "
                "Shading: ICD 203 likelihood bands."
            )
            if n_skipped:
                subtitle += f" {n_skipped} scenario(s) past their horizon not shown."
        if source is None:
            source = source_line(
                run_id=_single(frame, "run_id"),
                fit_id=_single(frame, "fit_id"),
                as_of=as_of if isinstance(as_of, dt.date | str) else None,
                data_date=data_date,
            )
        fig = canvas.finish(
            title=title or "Open scenarios: probability by the horizon",
            subtitle=subtitle,
            source=source,
            warning=UNCONVERGED_WARNING if unconverged else None,
        )
    return fig
