r"""The georisk model in PyMC: base rates by reference class, evidence strengths, lags.

This is the only module that imports PyMC; scoring never does (see :mod:`georisk.scoring`).

The model
---------
**Project classes** (nuclear plants abroad, pipelines, rail, hydro, bilateral portfolios,
regional unions) use a *two-type mixture survival model* (a mixture-cure model with
competing terminations). An announced project of category :math:`c` eventually reaches its
category's event with probability :math:`\pi_i`, after a lag
:math:`T \sim \mathrm{LogNormal}(\mu_T, \sigma_T)` years; otherwise it is eventually
terminated, after :math:`D \sim \mathrm{LogNormal}(\mu_D, \sigma_D)` years:

.. math::

    \operatorname{logit} \pi_i = \eta_{c(i)} + \sum_k x_{ik} \beta_k

where :math:`x_{ik}` is the signed, reliability-weighted, faded evidence of kind :math:`k`
(:mod:`georisk.evidence`) and :math:`\beta_k > 0` the strength of that kind. With
:math:`F, S = 1 - F` the CDF and survival function of :math:`T` and :math:`G, R = 1 - G`
those of :math:`D`, a reference case contributes:

* event observed with lag in :math:`[l_i, u_i]` (interval-censored by date precision):
  :math:`\pi_i\,(F(u_i) - F(l_i))`;
* terminated (cancelled, denounced) after :math:`[l_i, u_i]` years:
  :math:`(1 - \pi_i)\,(G(u_i) - G(l_i))`;
* still open at age :math:`a_i` (right-censored, *not* a failure):
  :math:`(1 - \pi_i) R(a_i) + \pi_i S(a_i)`.

Without the termination times, open cases would be scored as if failed projects were never
cancelled, and early cancellations would bias :math:`\pi` down (a test shows it).

**Partial pooling.** Each category has a documented prior
:math:`\eta_c \sim \mathcal N(m_c, s_c^2)` (``base_rate.<category>``, a LogitNormal in
PreliZ). The categories share a standardised deviation:

.. math:: \eta_c = m_c + s_c\left(\sqrt{\rho}\, u + \sqrt{1-\rho}\, z_c\right),
          \quad u, z_c \sim \mathcal N(0, 1),\ \rho \sim \mathrm{Beta}

so each category's marginal prior is exactly its documented prior, and data from one
category inform the others through :math:`u` in proportion to the pooling share
:math:`\rho` (``pooling.rho``).

**Window classes** (export-route disruptions) have an annual event probability
:math:`p = \operatorname{logit}^{-1}\eta_w`, :math:`\eta_w = m_w + s_w z_w`; a window of
:math:`L` years sees at least one event with probability :math:`1 - (1 - p)^L`.

Evidence strengths are learned from the reference cases' indicator histories where they
exist; a kind with no reference events keeps its prior (the posterior equals the prior),
and every score says which is the case.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from georisk.evidence import KINDS
from georisk.model_data import (
    PROJECT_CATEGORIES,
    WINDOW_CATEGORIES,
    CaseData,
    PriorParameters,
    case_data,
    prior_parameters,
)

__all__ = [
    "SamplerConfig",
    "build_model",
    "build_base_rate_model",
    "fit_arrays",
    "fit",
    "prior_predictive_draws",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample. Defaults are the published-fit settings.

    Attributes
    ----------
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, number of chains.
    sampler : {"nutpie", "pymc"}
        NUTS implementation (nutpie measured faster here; see ``docs/model.md``).
    target_accept : float
        NUTS target acceptance rate.
    seed : int
        Random seed; same inputs and seed give the same draws.
    cores : int
        Chains run in parallel on this many cores.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    sampler: str = "nutpie"
    target_accept: float = 0.9
    seed: int = 20261125
    cores: int = 2

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view, stored with every fit."""
        return {
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "sampler": self.sampler,
            "target_accept": self.target_accept,
            "seed": self.seed,
            "cores": self.cores,
        }


def _prior_rv(pm, name: str, family: str, params: dict[str, float], **kwargs):
    """Create a PyMC random variable from a PreliZ-named family and its parameters."""
    families = {
        "Normal": ("mu", "sigma"),
        "Gamma": ("alpha", "beta"),
        "Beta": ("alpha", "beta"),
        "HalfNormal": ("sigma",),
        "LogNormal": ("mu", "sigma"),
        "Exponential": ("lam",),
    }
    if family not in families:
        raise ValueError(
            f"prior family {family!r} for {name!r} is not supported by the model; "
            f"use one of {sorted(families)}."
        )
    missing = [p for p in families[family] if p not in params]
    if missing:
        raise ValueError(f"prior {name!r} ({family}) lacks parameter(s) {missing}.")
    return getattr(pm, family)(name, **{p: params[p] for p in families[family]}, **kwargs)


def build_model(data: CaseData, priors: PriorParameters):
    """Assemble the PyMC model (no sampling).

    Parameters
    ----------
    data : CaseData
        Reference cases as arrays.
    priors : PriorParameters
        Documented prior parameters.

    Returns
    -------
    pymc.Model
        Free variables ``u``, ``z``, ``rho`` (pooled categories), ``p_unpooled`` (Beta
        categories), ``z_window_<c>`` or ``p_window_<c>``, ``lag_log_median``,
        ``lag_log_sd``, ``term_log_median``, ``term_log_sd``, ``strength_<kind>``;
        deterministic ``eta`` (project categories),
        ``eta_window`` and ``strength``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    coords = {
        "category": list(PROJECT_CATEGORIES),
        "window_category": list(WINDOW_CATEGORIES),
        "kind": list(KINDS),
    }
    pooled = [i for i, c in enumerate(PROJECT_CATEGORIES) if priors.base_rate[c][0] != "Beta"]
    unpooled = [i for i, c in enumerate(PROJECT_CATEGORIES) if priors.base_rate[c][0] == "Beta"]
    with pm.Model(coords=coords) as model:
        eta = pt.zeros(len(PROJECT_CATEGORIES))
        if pooled:
            m = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][1] for i in pooled])
            s = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][2] for i in pooled])
            u = pm.Normal("u", 0.0, 1.0)
            z = pm.Normal("z", 0.0, 1.0, shape=len(pooled))
            rho = pm.Beta("rho", alpha=priors.rho[0], beta=priors.rho[1])
            eta = pt.set_subtensor(eta[pooled], m + s * (pt.sqrt(rho) * u + pt.sqrt(1.0 - rho) * z))
        if unpooled:
            a = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][1] for i in unpooled])
            b = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][2] for i in unpooled])
            p_unpooled = pm.Beta("p_unpooled", alpha=a, beta=b, shape=len(unpooled))
            eta = pt.set_subtensor(eta[unpooled], pt.log(p_unpooled) - pt.log1p(-p_unpooled))
        eta = pm.Deterministic("eta", eta, dims="category")
        eta_window = pt.zeros(len(WINDOW_CATEGORIES))
        for i, c in enumerate(WINDOW_CATEGORIES):
            family, p1, p2 = priors.base_rate[c]
            if family == "Beta":
                p_w = pm.Beta(f"p_window_{c}", alpha=p1, beta=p2)
                eta_window = pt.set_subtensor(eta_window[i], pt.log(p_w) - pt.log1p(-p_w))
            else:
                z_w = pm.Normal(f"z_window_{c}", 0.0, 1.0)
                eta_window = pt.set_subtensor(eta_window[i], p1 + p2 * z_w)
        eta_window = pm.Deterministic("eta_window", eta_window, dims="window_category")
        lag_mu = _prior_rv(pm, "lag_log_median", *priors.lag_log_median)
        lag_sd = _prior_rv(pm, "lag_log_sd", *priors.lag_log_sd)
        term_mu = _prior_rv(pm, "term_log_median", *priors.term_log_median)
        term_sd = _prior_rv(pm, "term_log_sd", *priors.term_log_sd)
        strengths = [_prior_rv(pm, f"strength_{k}", *priors.strength[k]) for k in KINDS]
        beta = pm.Deterministic("strength", pt.stack(strengths), dims="kind")

        if data.n_project:
            lin = eta[data.category] + pt.dot(data.x, beta)
            log_pi = -pm.math.log1pexp(-lin)
            log_1m_pi = -pm.math.log1pexp(lin)
            lag_dist = pm.Normal.dist(lag_mu, lag_sd)
            term_dist = pm.Normal.dist(term_mu, term_sd)

            def log_interval(dist, idx):
                lo = np.log(np.maximum(data.lag_lower[idx], 1e-6))
                hi = np.log(data.lag_upper[idx])
                return pm.math.logdiffexp(pm.logcdf(dist, hi), pm.logcdf(dist, lo))

            terms = []
            event = np.flatnonzero(data.status == 0)
            if event.size:
                terms.append(log_pi[event] + log_interval(lag_dist, event))
            terminated = np.flatnonzero(data.status == 1)
            if terminated.size:
                terms.append(log_1m_pi[terminated] + log_interval(term_dist, terminated))
            open_ = np.flatnonzero(data.status == 2)
            if open_.size:
                log_age = np.log(data.age[open_])
                terms.append(
                    pt.logaddexp(
                        log_1m_pi[open_] + pm.logccdf(term_dist, log_age),
                        log_pi[open_] + pm.logccdf(lag_dist, log_age),
                    )
                )
            pm.Potential("loglik_projects", pt.sum(pt.concatenate(terms)))
        if data.window_y.size:
            p = pm.math.sigmoid(eta_window[data.window_category])
            p_window = 1.0 - (1.0 - p) ** data.window_exposure
            pm.Potential(
                "loglik_windows",
                pt.sum(
                    data.window_y * pt.log(p_window) + (1 - data.window_y) * pt.log1p(-p_window)
                ),
            )
    return model


def build_base_rate_model(category: np.ndarray, priors: PriorParameters, y=None):
    r"""Build the pooled base-rate hierarchy alone, with observed Bernoulli outcomes.

    Every case is resolved (no censoring, no evidence), so case :math:`i` reaches its event
    with probability :math:`\operatorname{logit}^{-1}\eta_{c(i)}` and

    .. math:: \eta_c = m_c + s_c(\sqrt{\rho}\,u + \sqrt{1-\rho}\,z_c)

    exactly as in :func:`build_model`. It is written with an observed variable ``y`` so
    that simulation-based calibration (``simuk``) can simulate and condition on it.

    Parameters
    ----------
    category : ndarray of int
        Index into :data:`PROJECT_CATEGORIES` of each case.
    priors : PriorParameters
        Documented priors (LogitNormal base rates only).
    y : ndarray of int, optional
        Observed outcomes (0/1); prior predictive when omitted.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    m = np.array([priors.base_rate[c][1] for c in PROJECT_CATEGORIES])
    s = np.array([priors.base_rate[c][2] for c in PROJECT_CATEGORIES])
    with pm.Model(coords={"category": list(PROJECT_CATEGORIES)}) as model:
        u = pm.Normal("u", 0.0, 1.0)
        z = pm.Normal("z", 0.0, 1.0, dims="category")
        rho = pm.Beta("rho", alpha=priors.rho[0], beta=priors.rho[1])
        eta = pm.Deterministic(
            "eta", m + s * (pt.sqrt(rho) * u + pt.sqrt(1.0 - rho) * z), dims="category"
        )
        pm.Bernoulli("y", logit_p=eta[np.asarray(category)], observed=y)
    return model


@dataclass
class FitResult:
    """Raw output of :func:`fit_arrays`: the ArviZ DataTree and the draws scoring needs."""

    idata: Any
    draws: dict[str, np.ndarray]
    seconds_sampling: float
    seconds_total: float
    extra: dict[str, Any] = field(default_factory=dict)


def _flat(posterior, name: str) -> np.ndarray:
    arr = np.asarray(posterior[name].values)
    return arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])


def fit_arrays(
    data: CaseData,
    priors: PriorParameters,
    config: SamplerConfig = SamplerConfig(),
    *,
    progressbar: bool = False,
) -> FitResult:
    """Sample the model's posterior.

    Parameters
    ----------
    data : CaseData
        Reference cases.
    priors : PriorParameters
        Documented priors.
    config : SamplerConfig
        Sampler settings.
    progressbar : bool, default False
        Show the sampler's progress bar.

    Returns
    -------
    FitResult
    """
    import time

    import pymc as pm

    t0 = time.perf_counter()
    model = build_model(data, priors)
    kwargs: dict[str, Any] = {
        "draws": config.draws,
        "tune": config.tune,
        "chains": config.chains,
        "random_seed": config.seed,
        "progressbar": progressbar,
        "nuts_sampler": config.sampler,
        "target_accept": config.target_accept,
        "compute_convergence_checks": False,
    }
    if config.sampler == "pymc":
        kwargs["cores"] = config.cores
    with model:
        t1 = time.perf_counter()
        idata = pm.sample(**kwargs)
        t2 = time.perf_counter()
    posterior = idata["posterior"]
    draws = {
        "eta": _flat(posterior, "eta"),
        "eta_window": _flat(posterior, "eta_window"),
        "strength": _flat(posterior, "strength"),
        "lag_log_median": _flat(posterior, "lag_log_median"),
        "lag_log_sd": _flat(posterior, "lag_log_sd"),
        "term_log_median": _flat(posterior, "term_log_median"),
        "term_log_sd": _flat(posterior, "term_log_sd"),
    }
    n = draws["eta"].shape[0]
    draws["rho"] = _flat(posterior, "rho") if "rho" in posterior.data_vars else np.full(n, np.nan)
    return FitResult(
        idata=idata,
        draws=draws,
        seconds_sampling=t2 - t1,
        seconds_total=t2 - t0,
    )


def prior_predictive_draws(
    priors: PriorParameters, n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw the model's parameters from their priors, with numpy.

    Same layout as the posterior draws used for scoring; used to show prior-only scores and
    in simulation-based calibration.

    Parameters
    ----------
    priors : PriorParameters
        Documented priors.
    n : int
        Number of draws.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    dict of ndarray
    """
    rho = rng.beta(*priors.rho, size=n)
    u = rng.standard_normal(n)

    def base(category: str, shared: bool) -> np.ndarray:
        family, p1, p2 = priors.base_rate[category]
        if family == "Beta":
            p = rng.beta(p1, p2, n)
            return np.log(p) - np.log1p(-p)
        z = rng.standard_normal(n)
        if not shared:
            return p1 + p2 * z
        return p1 + p2 * (np.sqrt(rho) * u + np.sqrt(1 - rho) * z)

    eta = np.column_stack([base(c, True) for c in PROJECT_CATEGORIES])
    eta_window = np.column_stack([base(c, False) for c in WINDOW_CATEGORIES])

    def draw(family: str, params: dict[str, float]) -> np.ndarray:
        if family == "Normal":
            return rng.normal(params["mu"], params["sigma"], n)
        if family == "Gamma":
            return rng.gamma(params["alpha"], 1.0 / params["beta"], n)
        if family == "Beta":
            return rng.beta(params["alpha"], params["beta"], n)
        if family == "HalfNormal":
            return np.abs(rng.normal(0.0, params["sigma"], n))
        if family == "LogNormal":
            return rng.lognormal(params["mu"], params["sigma"], n)
        if family == "Exponential":
            return rng.exponential(1.0 / params["lam"], n)
        raise ValueError(f"unsupported prior family {family!r}")

    return {
        "eta": eta,
        "eta_window": eta_window,
        "strength": np.column_stack([draw(*priors.strength[k]) for k in KINDS]),
        "lag_log_median": draw(*priors.lag_log_median),
        "lag_log_sd": draw(*priors.lag_log_sd),
        "term_log_median": draw(*priors.term_log_median),
        "term_log_sd": draw(*priors.term_log_sd),
        "rho": rho,
    }


def fit(
    ws,
    *,
    config: SamplerConfig = SamplerConfig(),
    include_unverified: bool = False,
    as_of: dt.date | None = None,
    progressbar: bool = False,
):
    """Fit the model on a workspace's reference cases and check convergence.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    config : SamplerConfig, optional
        Sampler settings; the default is the published configuration.
    include_unverified : bool, default False
        Also use unverified reference cases (sensitivity runs only).
    as_of : datetime.date, optional
        Refit with only what was known at this date.
    progressbar : bool, default False
        Show the sampler's progress.

    Returns
    -------
    georisk.posterior.Posterior
        Draws, diagnostics and provenance. Check ``posterior.converged`` before publishing;
        scores computed from an unconverged posterior carry that status.
    """
    from georisk.diagnostics import diagnose
    from georisk.posterior import Posterior, fit_id_for

    priors = prior_parameters(ws.priors)
    data = case_data(
        ws.reference_cases,
        ws.reference_indicators,
        priors.weights,
        include_unverified=include_unverified,
        as_of=as_of,
    )
    result = fit_arrays(data, priors, config, progressbar=progressbar)
    report = diagnose(result.idata)
    fid = fit_id_for(ws, config=config, include_unverified=include_unverified, as_of=as_of)
    return Posterior.from_fit(
        result,
        data=data,
        diagnostics=report,
        fit_id=fid,
        config=config,
        include_unverified=include_unverified,
        as_of=as_of,
    )
