r"""Prior sensitivity: how much georisk's numbers depend on its priors.

Two complementary answers.

Power-scaling sensitivity
-------------------------
:func:`power_scaling` raises the prior (or the likelihood) to a power :math:`\alpha` close to
1, :math:`p_\alpha(\theta \mid y) \propto p(\theta)^\alpha p(y \mid \theta)`, and measures how
far each parameter's posterior moves per unit change of :math:`\log\alpha` (cumulative
Jensen-Shannon distance), with Pareto-smoothed importance weights instead of refits
(Kallioinen et al. 2024; ArviZ's :func:`arviz_stats.psense_summary`). Following the paper and
the ArviZ docstring, a **prior sensitivity above 0.05 means the prior is informative** for that
parameter; with a likelihood sensitivity also above 0.05 ArviZ calls it a potential
prior-data conflict, with a likelihood sensitivity below 0.05 a strong prior / weak likelihood
(expected for evidence kinds that no reference case carries: their posterior is the prior).
The log prior of each draw is computed in numpy from the documented priors
(:func:`georisk.loglik.log_prior_terms`) and the log-likelihood of each reference case with
:func:`georisk.loglik.pointwise_loglik`.

What-if table
-------------
:func:`what_if` recomputes every open scenario's probability when one documented prior is
*widened* or *shifted* as stated in its ``sensitivity`` field (:func:`georisk.priors.perturb`),
one change at a time:

* a random prior (base rate, pooling, lag, strength): the stored posterior draws are
  reweighted by the prior density ratio
  :math:`w_s \propto p_{new}(\theta_s)/p_{old}(\theta_s)`, Pareto-smoothed (PSIS); the
  reweighted mean of each scenario's per-draw probability is its new ``p_mean``. When the
  Pareto :math:`\hat k` of the weights exceeds 0.7 the estimate is unreliable and the model
  is refitted with the perturbed prior instead (in worker processes; its change is then
  measured against a refit of the unperturbed model with the same sampler settings, so that
  Monte Carlo noise of two different fits is not reported as sensitivity);
* a fixed value (half-life, reliability weight): it changes the evidence weights of the open
  scenarios *and* of the reference cases the strengths were learned from. The scenarios are
  rescored with the new weights and the draws reweighted by the likelihood ratio of the
  reference cases under the new weights (:math:`\hat k` and refit fallback as above). A fixed
  value whose documented shift is 0 has no what-if and is listed as such.

References
----------
.. [1] Kallioinen, N., Paananen, T., Bürkner, P.-C., Vehtari, A. (2024). Detecting and
   diagnosing prior and likelihood sensitivity with power-scaling. Statistics and Computing
   34, 57. https://doi.org/10.1007/s11222-023-10366-5
.. [2] Vehtari, A., Simpson, D., Gelman, A., Yao, Y., Gabry, J. (2024). Pareto smoothed
   importance sampling. JMLR 25(72).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from georisk.model_data import PROJECT_CATEGORIES, PriorParameters, case_data, prior_parameters

__all__ = [
    "PSENSE_THRESHOLD",
    "K_THRESHOLD",
    "PARAMETER_PRIORS",
    "prior_name_of",
    "power_scaling",
    "psis_weights",
    "Perturbation",
    "perturbations",
    "WhatIf",
    "what_if",
    "sensitivity_ranking",
]

log = logging.getLogger(__name__)

PSENSE_THRESHOLD = 0.05
"""Prior sensitivity above which a prior is informative (Kallioinen et al. 2024)."""

K_THRESHOLD = 0.7
"""Pareto :math:`\\hat k` above which importance reweighting is replaced by a refit."""

PARAMETER_PRIORS: Mapping[str, str] = {
    "lag_log_median": "lag.log_median",
    "lag_log_sd": "lag.log_sd",
    "term_log_median": "lag.termination_log_median",
    "term_log_sd": "lag.termination_log_sd",
    "rho": "pooling.rho",
}


def prior_name_of(parameter: str) -> str:
    """Name of the documented prior of a posterior parameter label.

    Parameters
    ----------
    parameter : str
        ArviZ label such as ``eta[pipeline]``, ``strength[financing_commitment]`` or
        ``lag_log_sd``.

    Returns
    -------
    str
        ``base_rate.pipeline``, ``strength.financing_commitment``, ``lag.log_sd`` ...
    """
    if "[" in parameter:
        var, coord = parameter.rstrip("]").split("[", 1)
        return f"base_rate.{coord}" if var in ("eta", "eta_window") else f"{var}.{coord}"
    return PARAMETER_PRIORS.get(parameter, parameter)


def power_scaling(
    posterior,
    data,
    priors: PriorParameters,
    *,
    threshold: float = PSENSE_THRESHOLD,
) -> pd.DataFrame:
    """Power-scaling prior and likelihood sensitivity of every model parameter.

    Parameters
    ----------
    posterior : Posterior
        Posterior draws (``posterior.meta["sampler"]["chains"]`` gives the chains).
    data : CaseData
        The reference cases it was fitted on.
    priors : PriorParameters
        The priors it was fitted with.
    threshold : float, default 0.05
        Sensitivity above which a prior (likelihood) counts as informative.

    Returns
    -------
    pandas.DataFrame
        One row per parameter: ``parameter`` (``eta[<category>]``, ``strength[<kind>]``,
        lags, ``rho``), ``prior`` (its documented prior), ``prior_sensitivity``,
        ``likelihood_sensitivity``, ``diagnosis`` (ArviZ's words, ``"✓"`` when neither
        applies) and ``prior_sensitive`` (bool), sorted by prior sensitivity.
    """
    from arviz_stats import psense_summary

    from georisk.loglik import case_ids, draws_to_datatree, log_prior_terms, pointwise_loglik

    chains = int(posterior.meta.get("sampler", {}).get("chains", 1))
    draws = posterior.draws
    tree = draws_to_datatree(
        draws,
        chains=chains,
        loglik=pointwise_loglik(data, draws),
        ids=case_ids(data),
        log_prior=log_prior_terms(priors, draws),
    )
    arviz_log = logging.getLogger("arviz_stats.psense")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # its advice is restated in our diagnosis column
    try:
        table = psense_summary(tree, threshold=threshold, round_to=6)
    finally:
        arviz_log.setLevel(level)
    out = pd.DataFrame(
        {
            "parameter": table.index.astype(str),
            "prior": [prior_name_of(p) for p in table.index.astype(str)],
            "prior_sensitivity": table["prior"].to_numpy(dtype=float),
            "likelihood_sensitivity": table["likelihood"].to_numpy(dtype=float),
            "diagnosis": table["diagnosis"].astype(str).to_numpy(),
        }
    )
    out["prior_sensitive"] = out["prior_sensitivity"] > threshold
    return out.sort_values("prior_sensitivity", ascending=False, ignore_index=True)


def psis_weights(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    r"""Pareto-smoothed importance weights of log density ratios.

    Parameters
    ----------
    log_ratio : ndarray, shape (D,)
        :math:`\log p_{new}(\theta_s) - \log p_{old}(\theta_s)` per draw.

    Returns
    -------
    (ndarray, float)
        Normalised weights (sum 1) and the Pareto shape :math:`\hat k` (ArviZ's
        ``psislw`` with relative efficiency 1).
    """
    import arviz_stats  # noqa: F401  (registers the .azstats accessor)
    import xarray as xr

    lr = np.asarray(log_ratio, dtype=float)
    if not np.all(np.isfinite(lr)):
        return np.full(lr.size, np.nan), math.inf
    if np.ptp(lr) < 1e-12:
        return np.full(lr.size, 1.0 / lr.size), 0.0
    # ArviZ's psislw takes a log-likelihood and weights by its negative (LOO); hence the sign
    da = xr.DataArray(-(lr - lr.max()), dims=["sample"])
    lw, k = da.azstats.psislw(r_eff=1.0, dim=["sample"])
    lw = np.asarray(lw.values, dtype=float)
    w = np.exp(lw - np.logaddexp.reduce(lw))
    return w, float(k)


@dataclass(frozen=True)
class Perturbation:
    """One what-if change of one documented prior.

    Attributes
    ----------
    prior : str
        Prior name (e.g. ``base_rate.pipeline``).
    change : str
        ``widen`` or ``shift``.
    amount : float
        The documented widening factor or shift.
    original, perturbed : str
        Readable forms of the prior before and after.
    specs : dict
        The workspace's prior specs with this one change.
    fixed : bool
        Whether the prior is a fixed value (no spread).
    """

    prior: str
    change: str
    amount: float
    original: str
    perturbed: str
    specs: dict
    fixed: bool

    @property
    def label(self) -> str:
        """``widen x2`` or ``shift -0.5``."""
        return f"widen x{self.amount:g}" if self.change == "widen" else f"shift {self.amount:+g}"


def perturbations(specs: Mapping[str, Any]) -> tuple[list[Perturbation], list[str]]:
    """All documented what-if changes of a workspace's priors, one prior at a time.

    Parameters
    ----------
    specs : mapping of str to PriorSpec
        The workspace's priors.

    Returns
    -------
    (list of Perturbation, list of str)
        The changes (a random prior gives ``widen`` and, when its shift is not 0,
        ``shift``; a fixed value gives ``shift`` when its shift is not 0), and the priors
        without any what-if (a family :func:`georisk.priors.perturb` cannot change is listed
        with the reason).
    """
    from georisk.errors import PriorSpecError
    from georisk.priors import describe_distribution, perturb

    out, none = [], []
    for name, spec in specs.items():
        fixed = spec.distribution is None
        changes = []
        if not fixed:
            changes.append(("widen", spec.sensitivity.widen, {"widen": spec.sensitivity.widen,
                                                              "shift": 0.0}))
        if spec.sensitivity.shift != 0.0:
            kwargs = {"shift": spec.sensitivity.shift} if fixed else {
                "widen": 1.0, "shift": spec.sensitivity.shift}
            changes.append(("shift", spec.sensitivity.shift, kwargs))
        if not changes:
            none.append(name)
        for change, amount, kwargs in changes:
            try:
                new = perturb(spec, **kwargs)
            except PriorSpecError as exc:
                none.append(f"{name} ({exc})")
                break
            out.append(
                Perturbation(
                    prior=name,
                    change=change,
                    amount=float(amount),
                    original=describe_distribution(spec),
                    perturbed=describe_distribution(new),
                    specs={**specs, name: new},
                    fixed=fixed,
                )
            )
    return out, none


@dataclass
class WhatIf:
    """Result of :func:`what_if`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per perturbation and scenario: ``prior``, ``change``, ``amount``,
        ``original``, ``perturbed``, ``method`` (``reweighted``, ``refit`` or
        ``not reliable``), ``pareto_k``, ``scenario_id``, ``p_mean`` (shipped),
        ``p_new``, ``delta``.
    ranking : pandas.DataFrame
        :func:`sensitivity_ranking` of ``table``.
    no_what_if : list of str
        Priors whose documentation states no change (fixed values with shift 0).
    refits : int
        Refits run.
    seconds : float
        Wall time.
    """

    table: pd.DataFrame
    ranking: pd.DataFrame
    no_what_if: list[str]
    refits: int
    seconds: float


def _component(name: str, priors: PriorParameters) -> str:
    """Key of :func:`georisk.loglik.log_prior_terms` that holds prior ``name``."""
    if name.startswith("base_rate."):
        category = name.split(".", 1)[1]
        if category in PROJECT_CATEGORIES and priors.base_rate[category][0] != "Beta":
            return "base_rate.pooled"
    return name


def _scenario_draws(ws, posterior, as_of: dt.date) -> dict[str, np.ndarray]:
    """Per-draw probability of every scenario :func:`georisk.scoring.score_run` scores."""
    from georisk.scoring import score_run

    with np.errstate(all="ignore"):  # extreme draws give infinite log-odds in the summary
        run = score_run(ws, posterior, as_of=as_of)
    return {sid: d["p"] for sid, d in run.draws.items()}


def what_if(
    ws,
    posterior,
    *,
    as_of: dt.date | None = None,
    refit: bool = True,
    refit_config=None,
    max_workers: int = 2,
    k_threshold: float = K_THRESHOLD,
    progress: Callable[[str], None] | None = None,
) -> WhatIf:
    r"""Each open scenario's probability under each documented prior change.

    Parameters
    ----------
    ws : Workspace
        The workspace (its priors' ``sensitivity`` fields define the changes).
    posterior : Posterior
        The published posterior (fitted with ``ws.priors``).
    as_of : datetime.date, optional
        Scoring date (default today).
    refit : bool, default True
        Refit when :math:`\hat k` > ``k_threshold``; otherwise such rows are marked
        ``not reliable`` and keep the reweighted value.
    refit_config : SamplerConfig, optional
        Sampler of refits (default: the backtest's, 2 chains x 1000 draws).
    max_workers : int, default 2
        Worker processes for refits.
    k_threshold : float, default 0.7
        Pareto :math:`\hat k` threshold.
    progress : callable, optional
        Called with a line of text as each step ends.

    Returns
    -------
    WhatIf
    """
    import time

    from georisk.backtest import _FitJob, _run_jobs
    from georisk.loglik import log_prior_terms, pointwise_loglik
    from georisk.posterior import Posterior

    t0 = time.perf_counter()
    as_of = as_of or dt.date.today()
    say = progress or (lambda _m: None)
    if refit_config is None:
        from georisk.backtest import _default_refit

        refit_config = _default_refit()
    include_unverified = bool(posterior.meta.get("include_unverified", False))
    fit_as_of = posterior.meta.get("as_of")
    fit_as_of = dt.date.fromisoformat(fit_as_of) if fit_as_of else None
    base_priors = prior_parameters(ws.priors)

    def data_for(params: PriorParameters):
        return case_data(
            ws.reference_cases, ws.reference_indicators, params.weights,
            include_unverified=include_unverified, as_of=fit_as_of,
        )

    data0 = data_for(base_priors)
    draws = posterior.draws
    base_p = _scenario_draws(ws, posterior, as_of)
    base_mean = {sid: float(p.mean()) for sid, p in base_p.items()}
    lp0 = log_prior_terms(base_priors, draws)
    ll0 = pointwise_loglik(data0, draws).sum(axis=1)
    changes, none = perturbations(ws.priors)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[Perturbation, PriorParameters, float, Any]] = []
    for ch in changes:
        params = prior_parameters(ch.specs)
        ws_new = dataclasses.replace(ws, priors=ch.specs)
        if ch.fixed:
            data_new = data_for(params)
            log_ratio = pointwise_loglik(data_new, draws).sum(axis=1) - ll0
            p_draws = _scenario_draws(ws_new, posterior, as_of)
        else:
            comp = _component(ch.prior, base_priors)
            if comp not in lp0:
                none.append(f"{ch.prior} (not used by the model)")
                continue
            log_ratio = log_prior_terms(params, draws)[comp] - lp0[comp]
            p_draws = base_p
            data_new = data0
        w, k = psis_weights(log_ratio)
        if k > k_threshold and refit:
            pending.append((ch, params, k, data_new))
            continue
        method = "reweighted" if k <= k_threshold else "not reliable"
        for sid, p in p_draws.items():
            p_new = float(w @ p) if np.all(np.isfinite(w)) else math.nan
            rows.append(_row(ch, method, k, sid, base_mean[sid], p_new))
    say(f"what-if: {len(changes)} change(s), {len(pending)} need a refit (k > {k_threshold})")
    n_refits = 0
    if pending:
        jobs = [_FitJob(("base",), data0, base_priors, refit_config)]
        for j, (_ch, params, _k, data_new) in enumerate(pending):
            jobs.append(_FitJob(("whatif", j), data_new, params, refit_config))
        results = _run_jobs(jobs, max_workers, say)
        n_refits = len(jobs)

        def as_posterior(d: dict[str, np.ndarray]) -> Posterior:
            return Posterior(fit_id="what-if", draws=d, diagnostics=posterior.diagnostics,
                             meta=posterior.meta)

        ref_p = _scenario_draws(ws, as_posterior(results[("base",)][0]), as_of)
        for j, (ch, _params, k, _data) in enumerate(pending):
            d_new, diag, _secs = results[("whatif", j)]
            ws_new = dataclasses.replace(ws, priors=ch.specs)
            new_p = _scenario_draws(ws_new, as_posterior(d_new), as_of)
            method = "refit" if diag.get("converged") else "refit (unconverged)"
            for sid in base_mean:
                delta = float(new_p[sid].mean() - ref_p[sid].mean())
                rows.append(_row(ch, method, k, sid, base_mean[sid], base_mean[sid] + delta))
    table = pd.DataFrame(rows)
    none = list(dict.fromkeys(none))
    return WhatIf(
        table=table,
        ranking=sensitivity_ranking(table),
        no_what_if=none,
        refits=n_refits,
        seconds=time.perf_counter() - t0,
    )


def _row(ch: Perturbation, method: str, k: float, sid: str, p0: float, p1: float) -> dict:
    return {
        "prior": ch.prior,
        "change": ch.label,
        "amount": ch.amount,
        "original": ch.original,
        "perturbed": ch.perturbed,
        "method": method,
        "pareto_k": k,
        "scenario_id": sid,
        "p_mean": p0,
        "p_new": p1,
        "delta": p1 - p0,
    }


def sensitivity_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Priors sorted by the largest change they cause in any open scenario's ``p_mean``.

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`WhatIf.table`.

    Returns
    -------
    pandas.DataFrame
        One row per prior: ``prior``, ``max_abs_delta``, ``change`` and ``scenario_id`` where
        it happens, ``delta`` (signed), ``p_mean`` and ``p_new`` there, ``methods`` used and
        the largest ``pareto_k``; sorted by ``max_abs_delta`` descending.
    """
    columns = ["prior", "max_abs_delta", "change", "scenario_id", "delta", "p_mean", "p_new",
               "methods", "max_pareto_k"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for prior, g in table.groupby("prior", sort=False):
        finite = g[np.isfinite(g["delta"])]
        top = finite.loc[finite["delta"].abs().idxmax()] if not finite.empty else g.iloc[0]
        rows.append(
            {
                "prior": prior,
                "max_abs_delta": float(abs(top["delta"])) if not finite.empty else math.nan,
                "change": top["change"],
                "scenario_id": top["scenario_id"],
                "delta": float(top["delta"]),
                "p_mean": float(top["p_mean"]),
                "p_new": float(top["p_new"]),
                "methods": ", ".join(sorted(set(g["method"]))),
                "max_pareto_k": float(g["pareto_k"].max()),
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("max_abs_delta", ascending=False, ignore_index=True)
