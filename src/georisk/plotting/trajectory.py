"""Trajectory: one scenario's probability over as-of dates, with the events that moved it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from georisk.plotting.style import (
    COLORS,
    format_date,
    format_percent,
    house_style,
    percent_formatter,
    short_event_label,
    source_line,
    start_figure,
    tidy_axes,
)

__all__ = ["plot_trajectory", "trajectory_frame", "place_labels"]

_ALIASES = {
    "p_q0.10": "p_q10",
    "p_q0.90": "p_q90",
    "p_q0.025": "p_q025",
    "p_q0.975": "p_q975",
    "diagnostics": "diagnostics_status",
}
_REQUIRED = ("as_of", "p_mean", "p_q10", "p_q90")
_LANES = (0.975, 0.895, 0.815)
_LABEL_PT = 8.0


def trajectory_frame(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Normalise a trajectory table: one row per as-of date, sorted, standard column names.

    Accepts the history store's columns (``p_q10``, ``p_q90``, ...) and the scoring
    table's (``p_q0.10``, ``p_q0.90``, ...). When several runs share an as-of date, the
    latest started one is kept.

    Parameters
    ----------
    trajectory : pandas.DataFrame
        Needs ``as_of``, ``p_mean`` and the 80% interval; optional ``p_base_mean``,
        ``run_id``, ``started_at``, ``diagnostics_status``.

    Returns
    -------
    pandas.DataFrame
        With ``as_of`` as ``datetime64``.
    """
    if not isinstance(trajectory, pd.DataFrame):
        raise TypeError(f"trajectory must be a DataFrame. Got {type(trajectory).__name__}.")
    frame = trajectory.rename(columns={k: v for k, v in _ALIASES.items() if v not in trajectory})
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the trajectory lacks column(s) {missing}. Available: {list(trajectory.columns)}."
        )
    frame = frame[frame["p_mean"].notna()].copy()
    if frame.empty:
        raise ValueError("the trajectory has no scored row to plot.")
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    order = ["as_of", "started_at"] if "started_at" in frame.columns else ["as_of"]
    frame = frame.sort_values(order, kind="stable").drop_duplicates("as_of", keep="last")
    return frame.reset_index(drop=True)


def _events_frame(events: Any, scenario_id: str | None) -> pd.DataFrame:
    frame = getattr(events, "contributions", events)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "events must be a contributions DataFrame (or ScoreRun). "
            f"Got {type(events).__name__}."
        )
    if "term_type" in frame.columns:
        frame = frame[frame["term_type"] == "event"]
    if scenario_id is not None and "scenario_id" in frame.columns:
        frame = frame[frame["scenario_id"] == scenario_id]
    if "event_id" not in frame.columns:
        if "term" not in frame.columns:
            raise ValueError(
                f"events need an 'event_id' or 'term' column. Available: {list(frame.columns)}."
            )
        frame = frame.assign(event_id=frame["term"])
    if "event_date" not in frame.columns:
        raise ValueError(f"events need an 'event_date' column. Available: {list(frame.columns)}.")
    frame = frame[frame["event_date"].notna()].copy()
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    # mark an event where it entered the scores when that is known (reports are often
    # published, hence counted, after the event itself)
    at = pd.to_datetime(frame["first_seen"]) if "first_seen" in frame.columns else None
    frame["_at"] = frame["event_date"] if at is None else at.fillna(frame["event_date"])
    return frame.drop_duplicates("event_id", keep="last").reset_index(drop=True)


def place_labels(
    positions: np.ndarray, widths: np.ndarray, *, lanes: int = len(_LANES), gap: float = 0.01
) -> list[tuple[int, str] | None]:
    """Assign labels to horizontal lanes so that no two overlap (greedy, left to right).

    Lane 0 is the top one; lanes are filled from the bottom up, so leaders stay short. A
    label's leader line runs from its anchor down through the lanes below, so a label is
    never put where an earlier leader passes, nor above an earlier label its own leader
    would cross.

    Parameters
    ----------
    positions : ndarray
        Anchor x of each label in axes fraction (0 to 1), in the order to place them
        (most important first).
    widths : ndarray
        Estimated width of each label in axes fraction.
    lanes : int
        Number of lanes available.
    gap : float
        Minimum horizontal gap between labels (and leaders) in one lane.

    Returns
    -------
    list
        Per label, ``(lane, ha)`` with ``ha`` ``"left"`` (text starts at the anchor) or
        ``"right"`` (text ends at it, tried when the left side is blocked or would run past
        the edge), or None when no lane is free.
    """
    taken: list[list[tuple[float, float]]] = [[] for _ in range(lanes)]

    def free(lane: int, lo: float, hi: float) -> bool:
        return all(hi + gap <= a or lo >= b + gap for a, b in taken[lane])

    out: list[tuple[int, str] | None] = []
    for x, w in zip(positions, widths, strict=True):
        sides = [("left", x, x + w), ("right", x - w, x)]
        sides = [side for side in sides if side[1] >= 0.0 and side[2] <= 1.0] or sides[1:]
        placed = None
        for lane in reversed(range(lanes)):  # lowest lane first: shortest leader
            if not all(free(k, x, x) for k in range(lane + 1, lanes)):
                continue
            for ha, lo, hi in sides:
                if free(lane, lo, hi):
                    taken[lane].append((lo, hi))
                    for k in range(lane + 1, lanes):
                        taken[k].append((x, x))
                    placed = (lane, ha)
                    break
            if placed:
                break
        out.append(placed)
    return out


def plot_trajectory(
    trajectory: pd.DataFrame,
    *,
    events: Any = None,
    scenario_id: str | None = None,
    label: str = "event",
    max_labels: int = 6,
    show_base_rate: bool = True,
    title: str | None = None,
    subtitle: str | None = None,
    source: str | None = None,
    data_date: dt.date | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Line chart of one scenario's mean probability over as-of dates, with its 80% band.

    Events that bear on the scenario are marked on the line at their dates (▲ supports,
    ▼ opposes); the ``max_labels`` with the largest effect (``|logodds_mean|`` when given)
    are labelled in up to three lanes at the top, so labels do not overlap; the others keep
    their marker. Runs from unconverged fits are crossed out and named in a warning line.

    Parameters
    ----------
    trajectory : pandas.DataFrame
        One scenario's history (:meth:`georisk.history.HistoryStore.trajectory`) or a
        backfill (:func:`georisk.memo.backfill_trajectories`): ``as_of``, ``p_mean``,
        ``p_q10``/``p_q0.10``, ``p_q90``/``p_q0.90``; optional ``p_base_mean``, ``run_id``,
        ``started_at``, ``diagnostics_status``, ``fit_id``, ``title``, ``scenario_id``.
    events : pandas.DataFrame or ScoreRun, optional
        Events to mark: a contributions table (rows with ``term_type == "event"`` are used)
        or any table with ``event_date`` and ``event_id`` (or ``term``); optional
        ``direction``, ``kind``, ``logodds_mean`` and ``first_seen`` (the as-of date from
        which the event counted, see :func:`georisk.memo.peak_events`; the marker goes
        there, else at ``event_date``). Only events inside the plotted date range are
        drawn.
    scenario_id : str, optional
        Filter ``events`` to this scenario (default: the trajectory's ``scenario_id``).
    label : {"event", "kind"}, default "event"
        Label events by their short id or by their kind.
    max_labels : int, default 6
        Most labels drawn.
    show_base_rate : bool, default True
        Draw the base rate (``p_base_mean``) as a dashed line.
    title, subtitle, source : str, optional
        Override the default texts.
    data_date : datetime.date, optional
        Newest ledger date, for the source line.
    ax : matplotlib.axes.Axes, optional
        Draw on this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids: ``band80``, ``mean``, ``base_rate``, ``event`` (one scatter per
        direction), ``event-label`` (one per label), ``unconverged``.
    """
    if label not in {"event", "kind"}:
        raise ValueError(f"label must be 'event' or 'kind'. Got {label!r}.")
    if max_labels < 0:
        raise ValueError(f"max_labels must be >= 0. Got {max_labels}.")
    frame = trajectory_frame(trajectory)
    if scenario_id is None and "scenario_id" in frame.columns:
        ids = frame["scenario_id"].dropna().unique()
        scenario_id = str(ids[0]) if len(ids) == 1 else None
    ev = _events_frame(events, scenario_id) if events is not None else None
    dates = frame["as_of"].to_numpy()
    x0, x1 = dates[0], dates[-1]
    if ev is not None:
        # events inside the plotted range; one already counted in the first point, from
        # before the range, did not move the line shown
        before = (ev["event_date"] < x0) & (ev["_at"] <= x0)
        ev = ev[(ev["_at"] >= x0) & (ev["_at"] <= x1) & ~before]

    with house_style():
        canvas = start_figure(ax, 2.8)
        fig, ax = canvas.fig, canvas.ax
        tidy_axes(ax, grid="y")
        color = COLORS["estimate"]
        band = ax.fill_between(
            dates, frame["p_q10"], frame["p_q90"], color=color, alpha=0.18, lw=0, zorder=1
        )
        band.set_gid("band80")
        (line,) = ax.plot(
            dates, frame["p_mean"], color=color, lw=1.8, zorder=3,
            marker="o" if len(frame) <= 60 else None, ms=2.8,
        )  # fmt: skip
        line.set_gid("mean")
        top_value = float(frame["p_q90"].max())
        if show_base_rate and "p_base_mean" in frame.columns and frame["p_base_mean"].notna().any():
            (base,) = ax.plot(
                dates, frame["p_base_mean"], color=COLORS["base_rate"], lw=1.0, ls=(0, (4, 3)),
                zorder=2,
            )  # fmt: skip
            base.set_gid("base_rate")
            top_value = max(top_value, float(frame["p_base_mean"].max()))
            below = float(frame["p_base_mean"].iloc[-1]) <= float(frame["p_mean"].iloc[-1])
            ax.annotate(
                "base rate", xy=(dates[-1], float(frame["p_base_mean"].iloc[-1])),
                xytext=(4, -8 if below else 8), textcoords="offset points", va="center",
                ha="left", fontsize=8, color=COLORS["muted"],
            )  # fmt: skip
        ax.annotate(
            format_percent(float(frame["p_mean"].iloc[-1])),
            xy=(dates[-1], float(frame["p_mean"].iloc[-1])), xytext=(4, 0),
            textcoords="offset points", va="center", ha="left", fontsize=8.5,
            fontweight="bold", color=color,
        )  # fmt: skip

        warning = None
        if "diagnostics_status" in frame.columns:
            bad = frame["diagnostics_status"].astype(str) == "unconverged"
            if bad.any():
                cross = ax.scatter(
                    dates[bad.to_numpy()], frame.loc[bad, "p_mean"], marker="x", s=36,
                    color=COLORS["warning"], zorder=6, linewidth=1.4,
                )  # fmt: skip
                cross.set_gid("unconverged")
                latest = " including the latest" if bool(bad.iloc[-1]) else ""
                warning = (
                    f"UNCONVERGED FIT: {int(bad.sum())} of {len(frame)} run(s){latest} came "
                    "from a fit that failed its convergence checks (×)."
                )

        n_events = 0 if ev is None else len(ev)
        unlabelled = 0
        if ev is not None and n_events:
            span = (x1 - x0) / np.timedelta64(1, "D") or 1.0
            ev = ev.sort_values("_at", kind="stable")
            ev_dates = ev["_at"].to_numpy()
            day = np.timedelta64(1, "D")
            p_at = np.interp(
                (ev_dates - x0) / day, (dates - x0) / day, frame["p_mean"].to_numpy()
            )
            signs = (
                np.where(ev["direction"].astype(str) == "opposes", -1, 1)
                if "direction" in ev.columns
                else np.ones(len(ev), dtype=int)
            )
            for sign, marker, key in ((1, "^", "supports"), (-1, "v", "opposes")):
                sel = signs == sign
                if sel.any():
                    sc = ax.scatter(
                        ev_dates[sel], p_at[sel], marker=marker, s=42, color=COLORS[key],
                        edgecolor="white", linewidth=0.6, zorder=5,
                    )  # fmt: skip
                    sc.set_gid("event")
            if "logodds_mean" in ev.columns:
                size = ev["logodds_mean"].abs().to_numpy()
            else:
                size = np.zeros(len(ev))
            if label == "kind" and "kind" in ev.columns:
                texts = [str(k).replace("_", " ") for k in ev["kind"]]
            else:
                texts = [short_event_label(e) for e in ev["event_id"]]
            # one label per marker date: the largest event there, "+k" for the others
            groups: dict[Any, list[int]] = {}
            for i in np.argsort(-size, kind="stable"):
                groups.setdefault(ev_dates[i], []).append(int(i))
            heads = {}
            for members in groups.values():
                heads[members[0]] = len(members) - 1
                if len(members) > 1:
                    texts[members[0]] += f" (+{len(members) - 1})"
            ranked = [i for i in np.argsort(-size, kind="stable") if i in heads]
            chosen = np.asarray(ranked[:max_labels], dtype=int)  # largest effect placed first
            axes_pt = ax.get_window_extent().width / fig.dpi * 72.0
            xs = ((ev_dates[chosen] - x0) / day) / span
            widths = np.array([0.6 * _LABEL_PT * len(texts[i]) / axes_pt for i in chosen])
            placement = place_labels(xs, widths)
            unlabelled = n_events - sum(
                1 + heads[i] for i, p in zip(chosen, placement, strict=True) if p is not None
            )
            for i, where in zip(chosen, placement, strict=True):
                if where is None:
                    continue
                lane, ha = where
                art = ax.annotate(
                    texts[i],
                    xy=(ev_dates[i], p_at[i]),
                    xytext=(ev_dates[i], _LANES[lane]),
                    textcoords=("data", "axes fraction"),
                    ha=ha,
                    va="top",
                    fontsize=_LABEL_PT,
                    color=COLORS["supports" if signs[i] > 0 else "opposes"],
                    arrowprops={
                        "arrowstyle": "-",
                        "color": "#9A9A9A",
                        "lw": 0.6,
                        "shrinkA": 0,
                        "shrinkB": 4,
                        "relpos": (0.0 if ha == "left" else 1.0, 0.0),
                    },
                    zorder=4,
                )
                art.set_gid("event-label")

        headroom = 0.70 if n_events else 0.9
        ax.set_ylim(0.0, min(1.0, max(top_value / headroom, 0.02)))
        ax.yaxis.set_major_formatter(percent_formatter)
        ax.set_ylabel("Probability by the horizon")
        if len(frame) > 1:
            pad = (x1 - x0) * 0.02
            ax.set_xlim(x0 - pad, x1 + pad)
        locator = AutoDateLocator(minticks=4, maxticks=9)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
        ax.set_xlabel("As-of date")

        if title is None:
            if "title" in frame.columns and frame["title"].notna().any():
                title = str(frame["title"].dropna().iloc[-1])
            else:
                title = f"Trajectory of {scenario_id}" if scenario_id else "Scenario trajectory"
        if subtitle is None:
            first, last = format_date(frame["as_of"].iloc[0]), format_date(frame["as_of"].iloc[-1])
            subtitle = (
                f"As of {last}. Mean (line) and 80% credible interval (band) at each as-of "
                f"date since {first}"
            )
            subtitle += "; dashed: base rate" if show_base_rate and "p_base_mean" in frame else ""
            if n_events:
                subtitle += "; events: ▲ supports, ▼ opposes" + (
                    f" ({unlabelled} unlabelled)" if unlabelled else ""
                )
            subtitle += "."
            if "run_id" in frame.columns and (frame["run_id"].astype(str) == "backfill").all():
                subtitle += " Backfill: today's fit, with only what was known at each date."
        if source is None:
            source = source_line(
                run_id=frame["run_id"].iloc[-1] if "run_id" in frame.columns else None,
                fit_id=frame["fit_id"].dropna().unique() if "fit_id" in frame.columns else None,
                as_of=frame["as_of"].iloc[-1],
                data_date=data_date,
            )
        fig = canvas.finish(title=title, subtitle=subtitle, source=source, warning=warning)
    return fig
