"""Convergence checks applied to every fit (ArviZ's R-hat, ESS and the sampler's divergences).

Thresholds follow Vehtari et al. (2021), "Rank-normalization, folding, and localization: an
improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2), 667-718,
doi:10.1214/20-BA1221: R-hat at most 1.01 and bulk and tail ESS of at least 400 (100 per chain
for four chains); and no divergent transitions (Betancourt 2017, arXiv:1701.02434).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from georisk.model_data import DRAW_KEYS

__all__ = ["RHAT_MAX", "ESS_MIN", "DiagnosticsReport", "diagnose", "check_arrays"]

RHAT_MAX = 1.01
ESS_MIN = 400.0
CHECKED_VARS = DRAW_KEYS


@dataclass(frozen=True)
class DiagnosticsReport:
    """Result of the convergence checks of one fit.

    Attributes
    ----------
    converged : bool
        True when every check passed.
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over all checked parameters.
    divergences : int
        Number of divergent transitions after tuning.
    problems : list of str
        One readable line per failed check, naming the parameter.
    """

    converged: bool
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"converged"`` or ``"unconverged"``."""
        return "converged" if self.converged else "unconverged"

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiagnosticsReport:
        """Inverse of :meth:`as_dict`."""
        return cls(**d)


def check_arrays(
    rhat: dict[str, np.ndarray],
    ess_bulk: dict[str, np.ndarray],
    ess_tail: dict[str, np.ndarray],
    divergences: int,
    *,
    rhat_max: float = RHAT_MAX,
    ess_min: float = ESS_MIN,
) -> DiagnosticsReport:
    """Apply the thresholds to precomputed diagnostics (pure function).

    Parameters
    ----------
    rhat, ess_bulk, ess_tail : dict of ndarray
        Parameter name -> values (any shape).
    divergences : int
        Divergent transitions.
    rhat_max : float, default 1.01
        Largest acceptable R-hat.
    ess_min : float, default 400
        Smallest acceptable bulk and tail ESS.

    Returns
    -------
    DiagnosticsReport
    """
    problems = []
    worst_rhat, worst_bulk, worst_tail = 1.0, np.inf, np.inf
    for name in rhat:
        r = np.atleast_1d(np.asarray(rhat[name], dtype=float))
        b = np.atleast_1d(np.asarray(ess_bulk[name], dtype=float))
        t = np.atleast_1d(np.asarray(ess_tail[name], dtype=float))
        r_max = float(np.nanmax(r)) if np.any(np.isfinite(r)) else np.inf
        if not np.all(np.isfinite(r)):
            r_max = np.inf
        worst_rhat = max(worst_rhat, r_max)
        worst_bulk = min(worst_bulk, float(np.nanmin(b)) if b.size else np.inf)
        worst_tail = min(worst_tail, float(np.nanmin(t)) if t.size else np.inf)
        if r_max > rhat_max:
            problems.append(f"R-hat of {name} is {r_max:.3f} (must be <= {rhat_max}).")
        if np.nanmin(b) < ess_min or not np.all(np.isfinite(b)):
            problems.append(f"bulk ESS of {name} is {np.nanmin(b):.0f} (must be >= {ess_min:.0f}).")
        if np.nanmin(t) < ess_min or not np.all(np.isfinite(t)):
            problems.append(f"tail ESS of {name} is {np.nanmin(t):.0f} (must be >= {ess_min:.0f}).")
    if divergences > 0:
        problems.append(f"{divergences} divergent transition(s) (must be 0).")
    return DiagnosticsReport(
        converged=not problems,
        max_rhat=worst_rhat,
        min_ess_bulk=worst_bulk,
        min_ess_tail=worst_tail,
        divergences=int(divergences),
        problems=problems,
    )


def diagnose(idata, *, var_names: tuple[str, ...] = CHECKED_VARS) -> DiagnosticsReport:
    """Check a fit's convergence with ArviZ.

    Parameters
    ----------
    idata : xarray.DataTree
        The fit, with ``posterior`` and ``sample_stats`` groups.
    var_names : tuple of str
        Parameters checked (all the model's parameters by default).

    Returns
    -------
    DiagnosticsReport
    """
    import arviz as az

    posterior = idata["posterior"]
    names = [v for v in var_names if v in posterior.data_vars]
    rhat = az.rhat(idata, var_names=names)
    bulk = az.ess(idata, var_names=names, method="bulk")
    tail = az.ess(idata, var_names=names, method="tail")
    divergences = 0
    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"].data_vars:
        divergences = int(np.asarray(idata["sample_stats"]["diverging"].values).sum())
    return check_arrays(
        {n: rhat[n].values for n in names},
        {n: bulk[n].values for n in names},
        {n: tail[n].values for n in names},
        divergences,
    )
