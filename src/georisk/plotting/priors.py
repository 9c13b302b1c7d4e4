"""Priors: prior and posterior densities of the model's parameters, as small multiples."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES
from georisk.plotting.style import (
    COLORS,
    draw_header_block,
    format_date,
    header_height_in,
    house_style,
    new_figure,
    source_line,
    tidy_axes,
    wrap,
)
from georisk.scoring import expit

__all__ = ["plot_priors", "PriorPanel", "prior_panels", "density"]

_NCOLS = 4
_ROW_IN = 1.22
_GROUP_TITLES = {
    "base_rate": "Base rates by reference class (probability of the class event; window "
    "classes: per year)",
    "strength": "Evidence strengths by indicator kind (log-odds shift of one fully reliable "
    "event)",
    "timing": "Timing and pooling",
}


@dataclass(frozen=True)
class PriorPanel:
    """One panel: which draws, how to transform them, and how to label the panel."""

    group: str
    name: str
    key: str
    index: int | None
    transform: str
    unit: str

    def values(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the panel's draws on the displayed scale (flattened)."""
        x = np.asarray(draws[self.key], dtype=float)
        if self.index is not None:
            x = x.reshape(x.shape[0], -1)[:, self.index]
        x = x.reshape(-1)
        x = x[np.isfinite(x)]
        if self.transform == "expit":
            return expit(x)
        if self.transform == "exp":
            return np.exp(x)
        return x


def prior_panels(kinds: tuple[str, ...] | None = None) -> list[PriorPanel]:
    """List the panels of :func:`plot_priors`, in drawing order.

    Parameters
    ----------
    kinds : tuple of str, optional
        Indicator kinds in the order of the ``strength`` columns (default
        :data:`georisk.evidence.KINDS`).

    Returns
    -------
    list of PriorPanel
    """
    from georisk.evidence import KINDS

    kinds = tuple(kinds or KINDS)
    panels = [
        PriorPanel("base_rate", c.replace("_", " "), "eta", i, "expit", "probability")
        for i, c in enumerate(PROJECT_CATEGORIES)
    ]
    panels += [
        PriorPanel("base_rate", c.replace("_", " ") + " (per year)", "eta_window", i, "expit",
                   "probability per year")
        for i, c in enumerate(WINDOW_CATEGORIES)
    ]  # fmt: skip
    panels += [
        PriorPanel("strength", k.replace("_", " "), "strength", i, "identity", "log-odds")
        for i, k in enumerate(kinds)
    ]
    panels += [
        PriorPanel("timing", "median lag to the event", "lag_log_median", None, "exp", "years"),
        PriorPanel("timing", "median time to termination", "term_log_median", None, "exp",
                   "years"),
        PriorPanel("timing", "pooling share ρ", "rho", None, "identity", "share"),
    ]  # fmt: skip
    return panels


def density(values: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Kernel density of draws on a grid, respecting (0, 1) and (0, inf) supports.

    Draws inside (0, 1) are smoothed on the logit scale, positive draws on the log scale,
    and the density is mapped back with its Jacobian, so no mass leaks past a bound.

    Parameters
    ----------
    values : ndarray
        Draws (at least two distinct values).
    grid : ndarray
        Points at which to evaluate the density.

    Returns
    -------
    ndarray or None
        Density at ``grid``; None when the draws are (nearly) constant.
    """
    from scipy.stats import gaussian_kde

    values = np.asarray(values, dtype=float)
    if values.size < 2 or np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())):
        return None
    if values.min() > 0 and values.max() < 1:
        fwd = lambda v: np.log(v) - np.log1p(-v)  # noqa: E731
        jac = lambda v: 1.0 / (v * (1.0 - v))  # noqa: E731
        inside = (grid > 0) & (grid < 1)
    elif values.min() > 0:
        fwd, jac = np.log, lambda v: 1.0 / v
        inside = grid > 0
    else:
        fwd, jac = (lambda v: v), (lambda v: np.ones_like(v))
        inside = np.ones_like(grid, dtype=bool)
    kde = gaussian_kde(fwd(values))
    out = np.zeros_like(grid, dtype=float)
    g = grid[inside]
    out[inside] = kde(fwd(g)) * jac(g)
    return out


def _draws_of(obj: Any, what: str) -> Mapping[str, np.ndarray]:
    """Draws as a mapping: a Posterior, a dict, or an ArviZ DataTree with a posterior group."""
    if hasattr(obj, "draws") and isinstance(obj.draws, Mapping):
        return obj.draws
    if isinstance(obj, Mapping) and "eta" in obj:
        return obj
    try:  # ArviZ DataTree / InferenceData-like: flatten chain and draw
        group = obj["posterior"] if what == "posterior" else obj["prior"]
        out = {}
        for name in ("eta", "eta_window", "strength", "lag_log_median", "term_log_median", "rho"):
            if name in group:
                arr = np.asarray(group[name].values)
                out[name] = arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])
        if out:
            return out
    except (KeyError, TypeError, AttributeError):
        pass
    raise TypeError(
        f"{what} must be a Posterior, a dict of draws (as from "
        "georisk.model.prior_predictive_draws) or an ArviZ DataTree with a "
        f"'{what}' group. Got {type(obj).__name__}."
    )


def _grid(prior: np.ndarray, post: np.ndarray, unit: str) -> np.ndarray:
    both = np.concatenate([prior, post]) if post.size else prior
    lo, hi = np.quantile(both, [0.005, 0.995])
    # keep the posterior's bulk in view even if the prior is much wider
    if post.size:
        p_lo, p_hi = np.quantile(post, [0.001, 0.999])
        lo, hi = min(lo, p_lo), max(hi, p_hi)
    pad = 0.06 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    lo, hi = lo - pad, hi + pad
    if unit.startswith("probability") or unit == "share":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    elif (both > 0).all():
        lo = max(lo, 0.0)
    return np.linspace(lo, hi, 400)


def plot_priors(
    posterior: Any,
    prior: Any,
    *,
    panels: list[PriorPanel] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    source: str | None = None,
    as_of: dt.date | None = None,
    fig: Figure | SubFigure | None = None,
) -> Figure:
    """Prior and posterior densities of the model's parameters, one small panel each.

    Three groups of panels: base rates per reference class on the probability scale,
    evidence strengths per indicator kind (log-odds), and timing (median lag to the event,
    median time to termination, in years) with the pooling share. In each panel the prior
    is a grey area and the posterior a blue line; a strength the reference cases could not
    inform (posterior equal to its prior) is marked "prior only".

    Parameters
    ----------
    posterior : Posterior, dict of ndarray or DataTree
        Posterior draws in the layout of :attr:`georisk.posterior.Posterior.draws`.
    prior : dict of ndarray or DataTree
        Prior draws in the same layout, e.g.
        ``georisk.model.prior_predictive_draws(prior_parameters(ws.priors), 4000, rng)``.
    panels : list of PriorPanel, optional
        Which parameters to show (default :func:`prior_panels`).
    title, subtitle, source : str, optional
        Override the default texts.
    as_of : datetime.date, optional
        Date shown in the subtitle (default: the fit's creation date when known).
    fig : Figure or SubFigure, optional
        Draw into this (empty) figure instead of a new 6.5-inch-wide one.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids: ``prior`` and ``posterior`` (one per panel, a filled area or
        line, or a vertical line for constant draws), ``panel`` on each data axes.
    """
    post_draws = _draws_of(posterior, "posterior")
    prior_draws = _draws_of(prior, "prior")
    meta = getattr(posterior, "meta", {}) or {}
    kinds = tuple(meta.get("kinds") or ()) or None
    panels = panels if panels is not None else prior_panels(kinds)
    panels = [p for p in panels if p.key in post_draws and p.key in prior_draws]
    if not panels:
        raise ValueError("no parameter is present in both the prior and the posterior draws.")
    groups = [g for g in ("base_rate", "strength", "timing") if any(p.group == g for p in panels)]
    rows = {g: -(-sum(p.group == g for p in panels) // _NCOLS) for g in groups}

    fit_id = getattr(posterior, "fit_id", None)
    diagnostics = getattr(posterior, "diagnostics", None)
    warning = None
    if diagnostics is not None and not getattr(diagnostics, "converged", True):
        warning = "UNCONVERGED FIT: the posterior densities come from a fit that failed its checks."
    if as_of is None and meta.get("created"):
        as_of = dt.date.fromisoformat(str(meta["created"])[:10])
    if title is None:
        title = "What the reference cases taught the model: priors and posteriors"
    if subtitle is None:
        when = f"As of {format_date(as_of)}. " if as_of is not None else ""
        n_cases = meta.get("n_project_cases")
        cases = (
            f" from {n_cases} project and {meta.get('n_window_cases', 0)} window reference cases"
            if n_cases is not None
            else ""
        )
        subtitle = (
            f"{when}Grey: prior density; blue: posterior density{cases}. A posterior on top "
            "of its prior means the data said little about that parameter."
        )
    if source is None:
        source = source_line(fit_id=fit_id, as_of=as_of)

    head_in = header_height_in(title=title, subtitle=subtitle, warning=warning)
    group_in = 0.26
    foot_in = 0.30
    heights = [head_in] + [group_in + _ROW_IN * rows[g] for g in groups] + [foot_in]
    with house_style():
        if fig is None:
            fig = new_figure(sum(heights))
        root = fig.get_figure(root=True)
        assert isinstance(root, Figure)
        subs = fig.subfigures(len(heights), 1, height_ratios=heights, hspace=0.0)
        draw_header_block(subs[0], title=title, subtitle=subtitle, warning=warning)
        src = subs[-1].text(
            0, 0.5, wrap(source, 120), transform=subs[-1].transSubfigure, ha="left",
            va="center", fontsize=8, color=COLORS["muted"],
        )  # fmt: skip
        src.set_gid("source")
        src.set_transform(
            subs[-1].transSubfigure + ScaledTranslation(6 / 72, 0, root.dpi_scale_trans)
        )
        legend_done = False
        for sub, group in zip(subs[1:-1], groups, strict=True):
            sub.suptitle(
                _GROUP_TITLES[group], x=0.01, ha="left", fontsize=9, fontweight="bold",
                color=COLORS["text"],
            )  # fmt: skip
            axes = sub.subplots(rows[group], _NCOLS, squeeze=False)
            group_panels = [p for p in panels if p.group == group]
            for ax, panel in zip(axes.flat, group_panels, strict=False):
                _draw_panel(ax, panel, prior_draws, post_draws, posterior)
            for ax in list(axes.flat)[len(group_panels):]:
                ax.set_axis_off()
                if not legend_done:
                    ax.legend(
                        handles=[
                            Patch(color=COLORS["prior"], alpha=0.45, label="prior"),
                            Line2D([], [], color=COLORS["posterior"], lw=1.6, label="posterior"),
                        ],
                        loc="center", fontsize=8.5,
                    )  # fmt: skip
                    legend_done = True
    return root


def _draw_panel(ax, panel: PriorPanel, prior_draws, post_draws, posterior) -> None:
    tidy_axes(ax, left_spine=False)
    ax.set_gid("panel")
    pr = panel.values(prior_draws)
    po = panel.values(post_draws)
    grid = _grid(pr, po, panel.unit)
    for values, role in ((pr, "prior"), (po, "posterior")):
        dens = density(values, grid)
        color = COLORS[role]
        if dens is None:
            art = ax.axvline(float(np.median(values)), color=color, lw=1.6)
        elif role == "prior":
            art = ax.fill_between(grid, dens, color=color, alpha=0.45, lw=0)
        else:
            (art,) = ax.plot(grid, dens, color=color, lw=1.6)
        art.set_gid(role)
    ax.set_yticks([])
    ax.set_ylim(bottom=0)
    ax.set_xlim(grid[0], grid[-1])
    ax.tick_params(axis="x", labelsize=8, length=2.5, pad=1.5)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_title(wrap(panel.name, 24), fontsize=8.5, loc="left", pad=2)
    ax.set_xlabel(panel.unit, fontsize=8, color=COLORS["muted"], labelpad=1)
    if panel.group == "strength" and hasattr(posterior, "strength_source"):
        kind = panel.name.replace(" ", "_")
        learned = not str(posterior.strength_source(kind)).startswith("prior only")
        ax.text(
            0.98, 0.95, "learned" if learned else "prior only", transform=ax.transAxes,
            ha="right", va="top", fontsize=8,
            color=COLORS["estimate"] if learned else COLORS["muted"],
        )  # fmt: skip
