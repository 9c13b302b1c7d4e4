"""Calibration: a reliability diagram of forecasts against what happened."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from georisk.plotting.style import (
    COLORS,
    house_style,
    percent_formatter,
    source_line,
    start_figure,
    tidy_axes,
)

__all__ = ["plot_calibration", "reliability_table", "RELIABILITY_COLUMNS"]

log = logging.getLogger(__name__)

RELIABILITY_COLUMNS = (
    "bin_lower",
    "bin_upper",
    "n",
    "forecast_mean",
    "observed_rate",
    "observed_lower",
    "observed_upper",
)
"""Columns of a reliability table as :func:`plot_calibration` reads it."""


def _check_inputs(forecasts: Any, outcomes: Any) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(forecasts, dtype=float).reshape(-1)
    o = np.asarray(outcomes).reshape(-1)
    if f.size == 0:
        raise ValueError("forecasts must not be empty.")
    if f.shape != o.shape:
        raise ValueError(
            f"forecasts and outcomes must have the same length. Got {f.size} and {o.size}."
        )
    if not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise ValueError(
            "forecasts must be probabilities in [0, 1]. "
            f"Got values from {np.nanmin(f)} to {np.nanmax(f)}."
        )
    o = o.astype(float)
    if not np.all(np.isin(o, (0.0, 1.0))):
        bad = sorted(set(o[~np.isin(o, (0.0, 1.0))].tolist()))[:5]
        raise ValueError(f"outcomes must be 0/1 or booleans. Got {bad}.")
    return f, o


def reliability_table(
    forecasts: Any,
    outcomes: Any,
    *,
    bins: int | Sequence[float] = 10,
    interval: float = 0.90,
) -> pd.DataFrame:
    r"""Bin forecasts and compare each bin's mean forecast with its observed frequency.

    The interval of the observed frequency is the equal-tailed Jeffreys interval,
    :math:`\mathrm{Beta}(k + \tfrac12, n - k + \tfrac12)` quantiles for :math:`k` events
    in :math:`n` forecasts (Brown, Cai & DasGupta 2001, Statistical Science 16(2), 101-133),
    which behaves well for the small counts of a backtest.

    Parameters
    ----------
    forecasts : array-like
        Probabilities in [0, 1].
    outcomes : array-like
        0/1 (or boolean) outcomes, same length.
    bins : int or sequence of float, default 10
        Number of equal-width bins on [0, 1], or bin edges (increasing, from 0 to 1).
    interval : float, default 0.90
        Mass of the interval of each observed frequency.

    Returns
    -------
    pandas.DataFrame
        One row per bin: :data:`RELIABILITY_COLUMNS` plus ``events``; empty bins have
        ``n == 0`` and NaN rates.
    """
    from scipy.stats import beta

    f, o = _check_inputs(forecasts, outcomes)
    if not 0 < interval < 1:
        raise ValueError(f"interval must lie in (0, 1). Got {interval}.")
    if isinstance(bins, int | np.integer):
        if bins < 1:
            raise ValueError(f"bins must be >= 1. Got {bins}.")
        edges = np.linspace(0.0, 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bin edges must be increasing, at least two. Got {list(edges)}.")
        if edges[0] > 0 or edges[-1] < 1:
            raise ValueError(f"bin edges must cover [0, 1]. Got {edges[0]} to {edges[-1]}.")
    idx = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, edges.size - 2)
    rows = []
    alpha = (1 - interval) / 2
    for b in range(edges.size - 1):
        sel = idx == b
        n = int(sel.sum())
        k = int(o[sel].sum())
        if n:
            lo, hi = beta.ppf([alpha, 1 - alpha], k + 0.5, n - k + 0.5)
            lo = 0.0 if k == 0 else float(lo)
            hi = 1.0 if k == n else float(hi)
            rows.append((edges[b], edges[b + 1], n, k, float(f[sel].mean()), k / n, lo, hi))
        else:
            rows.append((edges[b], edges[b + 1], 0, 0, np.nan, np.nan, np.nan, np.nan))
    return pd.DataFrame(
        rows,
        columns=["bin_lower", "bin_upper", "n", "events", "forecast_mean", "observed_rate",
                 "observed_lower", "observed_upper"],
    )  # fmt: skip


_METRICS_NAMES = {
    "count": "n",
    "mean_forecast": "forecast_mean",
    "observed_frequency": "observed_rate",
    "ci_lower": "observed_lower",
    "ci_upper": "observed_upper",
}


def _table(forecasts: Any, outcomes: Any, bins: Any, interval: float) -> tuple[pd.DataFrame, str]:
    """Binned data and the name of its interval method.

    ``georisk.metrics.reliability_table`` (Wilson intervals) is used when that module
    exists; its columns are renamed to :data:`RELIABILITY_COLUMNS`. Otherwise, or if its
    output lacks a column, :func:`reliability_table` here (Jeffreys intervals).
    """
    try:
        metrics = importlib.import_module("georisk.metrics")
    except ImportError:
        metrics = None
    external = getattr(metrics, "reliability_table", None)
    if external is not None:
        table = external(forecasts, outcomes, bins, level=interval)
        if isinstance(table, pd.DataFrame):
            table = table.rename(columns=_METRICS_NAMES)
            if set(RELIABILITY_COLUMNS) <= set(table.columns):
                return table, "Wilson"
        log.info(
            "georisk.metrics.reliability_table returned columns %s; using the plotting helper",
            list(getattr(table, "columns", [])),
        )
    return reliability_table(forecasts, outcomes, bins=bins, interval=interval), "Jeffreys"


def plot_calibration(
    forecasts: Any,
    outcomes: Any,
    *,
    bins: int | Sequence[float] = 10,
    interval: float = 0.90,
    title: str | None = None,
    subtitle: str | None = None,
    source: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Reliability diagram: mean forecast against observed frequency, bin by bin.

    Each non-empty bin is a dot at (mean forecast, observed frequency), sized by its
    count and labelled ``n=``, with a vertical bar for the interval of the observed
    frequency; a perfectly calibrated forecaster sits on the dashed diagonal. A rug along
    the bottom shows every forecast, and on a new figure a side panel counts the forecasts
    per bin. The subtitle gives the Brier score.

    The binned data come from ``georisk.metrics.reliability_table`` (Wilson intervals)
    when that module exists, otherwise from :func:`reliability_table` here (Jeffreys
    intervals); the subtitle names the method.

    Parameters
    ----------
    forecasts : array-like
        Probabilities in [0, 1] (e.g. backtest or leave-one-out forecasts).
    outcomes : array-like
        0/1 outcomes of the same cases.
    bins : int or sequence of float, default 10
        Equal-width bin count or bin edges.
    interval : float, default 0.90
        Mass of the observed-frequency intervals.
    title, subtitle, source : str, optional
        Override the default texts.
    ax : matplotlib.axes.Axes, optional
        Draw on this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids: ``diagonal``, ``bins`` (one scatter, one point per non-empty
        bin), ``interval`` (one LineCollection), ``rug``, and on a new figure ``counts``
        (one bar per bin, in a side panel).
    """
    f, o = _check_inputs(forecasts, outcomes)
    table, method = _table(f, o, bins, interval)
    shown = table[table["n"] > 0]
    brier = float(np.mean((f - o) ** 2))
    with house_style():
        owned = ax is None
        canvas = start_figure(
            ax, 3.6, ncols=2 if owned else 1, width_ratios=(1.9, 1.0) if owned else None
        )
        fig, ax = canvas.fig, canvas.ax
        counts_ax = canvas.body.axes[1] if owned else None
        tidy_axes(ax, grid="both")
        (diag,) = ax.plot([0, 1], [0, 1], color="#7A7A7A", lw=1.0, ls=(0, (4, 3)), zorder=1)
        diag.set_gid("diagonal")
        bars = ax.vlines(
            shown["forecast_mean"], shown["observed_lower"], shown["observed_upper"],
            color=COLORS["estimate"], lw=1.4, zorder=2,
        )  # fmt: skip
        bars.set_gid("interval")
        n = shown["n"].to_numpy(dtype=float)
        sizes = 18 + 140 * np.sqrt(n / max(n.max(), 1.0))
        dots = ax.scatter(
            shown["forecast_mean"], shown["observed_rate"], s=sizes, color=COLORS["estimate"],
            edgecolor="white", linewidth=0.8, zorder=3,
        )  # fmt: skip
        dots.set_gid("bins")
        for r in shown.itertuples(index=False):
            low = r.observed_rate < 0.15
            ax.annotate(
                f"n={int(r.n)}", xy=(r.forecast_mean, r.observed_rate),
                xytext=(7, 3 if low else -2), textcoords="offset points", ha="left",
                va="bottom" if low else "top", fontsize=8, color=COLORS["muted"],
            )  # fmt: skip
        rug = ax.vlines(f, -0.035, -0.005, color=COLORS["text"], lw=0.6, alpha=0.5, zorder=2)
        rug.set_gid("rug")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.045, 1.02)
        ticks = np.linspace(0, 1, 6)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.xaxis.set_major_formatter(percent_formatter)
        ax.yaxis.set_major_formatter(percent_formatter)
        ax.set_xlabel("Forecast probability (mean in bin)")
        ax.set_ylabel("Observed frequency")
        if counts_ax is not None:
            tidy_axes(counts_ax, grid="y")
            widths = (table["bin_upper"] - table["bin_lower"]).to_numpy()
            counts = counts_ax.bar(
                table["bin_lower"], table["n"], width=widths * 0.9, align="edge",
                color=COLORS["interval"], zorder=2,
            )  # fmt: skip
            for patch in counts.patches:
                patch.set_gid("counts")
            counts_ax.set_xlim(0, 1)
            counts_ax.set_xticks([0, 0.5, 1])
            counts_ax.xaxis.set_major_formatter(percent_formatter)
            counts_ax.yaxis.get_major_locator().set_params(integer=True)
            counts_ax.set_xlabel("Forecast probability")
            counts_ax.set_title("Forecasts per bin", loc="left", fontsize=9)
        if subtitle is None:
            subtitle = (
                f"{f.size} forecasts, {int(o.sum())} events, {len(shown)} non-empty bins. "
                f"Brier score {brier:.3f}. Dots sized by count; bars: {interval:.0%} "
                f"{method} interval of the observed frequency; dashed: perfect calibration."
            )
        fig = canvas.finish(
            title=title or "Calibration: do forecasts match what happened?",
            subtitle=subtitle,
            source=source or source_line(),
        )
    return fig
