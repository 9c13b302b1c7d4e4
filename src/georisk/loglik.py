r"""Pointwise log-likelihood and log prior of posterior draws, in numpy (no PyMC).

PSIS-LOO (:func:`arviz_stats.loo`) needs the log-likelihood of every reference case under
every posterior draw; power-scaling sensitivity (:func:`arviz_stats.psense`) also needs the
log prior of every draw. The PyMC model (:func:`georisk.model.build_model`) only holds the
*summed* log-likelihood as ``pm.Potential`` terms, so both are recomputed here from the same
formulas, vectorised over draws. A test checks that the sum over cases equals the model's
``Potential`` terms to 1e-8.

Log-likelihood of one case
--------------------------
With :math:`\eta_i = \eta_{c(i)} + x_i^\top\beta`, :math:`\log\pi_i = -\log(1 + e^{-\eta_i})`,
:math:`\log(1-\pi_i) = -\log(1 + e^{\eta_i})`, and the lag to the event
:math:`\log T \sim N(\mu_T, \sigma_T)`, the time to termination
:math:`\log D \sim N(\mu_D, \sigma_D)` (:math:`\Phi` the standard normal CDF):

* event in :math:`[l_i, u_i]` years (``status`` 0):
  :math:`\log\pi_i + \log\bigl(\Phi(\tfrac{\log u_i - \mu_T}{\sigma_T})
  - \Phi(\tfrac{\log l_i - \mu_T}{\sigma_T})\bigr)`, with :math:`l_i` floored at
  :math:`10^{-6}` as in the model;
* terminated in :math:`[l_i, u_i]` (``status`` 1): the same with :math:`1 - \pi_i` and
  :math:`(\mu_D, \sigma_D)`;
* open at age :math:`a_i` (``status`` 2):
  :math:`\log\bigl((1-\pi_i)(1 - \Phi(\tfrac{\log a_i - \mu_D}{\sigma_D}))
  + \pi_i(1 - \Phi(\tfrac{\log a_i - \mu_T}{\sigma_T}))\bigr)`;
* window case with exposure :math:`L_i` and outcome :math:`y_i`:
  :math:`y_i\log(1 - (1-p)^{L_i}) + (1-y_i) L_i \log(1-p)`,
  :math:`p = \operatorname{logit}^{-1}\eta_{w(i)}`.

Log prior of one draw
---------------------
In the parameters the likelihood depends on: the pooled categories' :math:`\eta` given the
pooling share :math:`\rho` are jointly normal (the model's non-centred
:math:`u, z_c` integrated out),

.. math:: \eta \mid \rho \sim \mathcal N\bigl(m,\ S\,(\rho\,\mathbf 1\mathbf 1^\top +
          (1-\rho) I)\,S\bigr),\quad S = \operatorname{diag}(s),

evaluated in closed form (Sherman-Morrison); :math:`\rho` has its Beta prior; Beta base
rates are evaluated on the probability; window base rates, lags and strengths on their own
documented families (``scipy.stats``). The posterior marginal of these parameters is
proportional to this prior times the likelihood, so the terms are exactly what importance
reweighting and power-scaling need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from georisk.evidence import KINDS
from georisk.model_data import (
    DRAW_KEYS,
    PROJECT_CATEGORIES,
    WINDOW_CATEGORIES,
    CaseData,
    PriorParameters,
)

__all__ = [
    "LOGLIK_VAR",
    "project_loglik",
    "window_loglik",
    "pointwise_loglik",
    "case_ids",
    "pooled_base_rate_logpdf",
    "family_logpdf",
    "log_prior_terms",
    "draws_to_datatree",
]

_LOWER_FLOOR = 1e-6  # as in georisk.model.build_model

LOGLIK_VAR = "reference_cases"
"""Name of the pointwise log-likelihood variable in the ``log_likelihood`` group."""


def _log1pexp(x: np.ndarray) -> np.ndarray:
    r""":math:`\log(1 + e^x)` without overflow."""
    return np.logaddexp(0.0, x)


_SQRT2 = float(np.sqrt(2.0))
"""The constant of :func:`_log_ndtr`. PyTensor folds PyMC's ``pt.sqrt(2.0)`` in float32
(1.4142135381698608), which moves PyMC's normal log-CDF by about 1e-8 relative; the test
that compares with the model patches this constant to show the formulas agree exactly."""


def _log_ndtr(z: np.ndarray) -> np.ndarray:
    r"""Compute the standard normal log-CDF, written as PyMC's ``normal_lcdf``.

    .. math:: \log\Phi(z) = \begin{cases}
              \log\bigl(\tfrac12\operatorname{erfcx}(-z/\sqrt2)\bigr) - z^2/2 & z < -1 \\
              \log\bigl(1 - \tfrac12\operatorname{erfc}(z/\sqrt2)\bigr) & z \ge -1
              \end{cases}
    """
    from scipy.special import erfc, erfcx

    z = np.asarray(z, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        left = np.log(erfcx(-z / _SQRT2) / 2.0) - z**2 / 2.0
        right = np.log1p(-erfc(z / _SQRT2) / 2.0)
    return np.where(z < -1.0, left, right)


def _logdiffexp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\log(e^a - e^b)` for :math:`a \ge b`."""
    with np.errstate(divide="ignore"):
        return a + np.log(-np.expm1(b - a))


def _log_interval(lo: np.ndarray, hi: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Log probability that a LogNormal(mu, sd) lag lies in [lo, hi] (draws x cases)."""
    log_lo = np.log(np.maximum(lo, _LOWER_FLOOR))
    log_hi = np.log(hi)
    mu, sd = mu[:, None], sd[:, None]
    return _logdiffexp(_log_ndtr((log_hi - mu) / sd), _log_ndtr((log_lo - mu) / sd))


def project_loglik(data: CaseData, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log-likelihood of each project reference case under each draw.

    Parameters
    ----------
    data : CaseData
        Reference cases (see :func:`georisk.model_data.case_data`).
    draws : mapping of str to ndarray
        Posterior (or prior) draws as stored by :class:`georisk.posterior.Posterior`:
        ``eta`` (D x categories), ``strength`` (D x kinds), ``lag_log_median``,
        ``lag_log_sd``, ``term_log_median``, ``term_log_sd`` (D).

    Returns
    -------
    ndarray, shape (D, n_project)
        One column per case in the order of ``data.case_ids``.
    """
    eta = np.asarray(draws["eta"], dtype=float)
    n_draws = eta.shape[0]
    out = np.empty((n_draws, data.n_project))
    if data.n_project == 0:
        return out
    beta = np.asarray(draws["strength"], dtype=float)
    lin = eta[:, data.category] + beta @ data.x.T
    log_pi = -_log1pexp(-lin)
    log_1m_pi = -_log1pexp(lin)
    mu_t = np.asarray(draws["lag_log_median"], dtype=float)
    sd_t = np.asarray(draws["lag_log_sd"], dtype=float)
    mu_d = np.asarray(draws["term_log_median"], dtype=float)
    sd_d = np.asarray(draws["term_log_sd"], dtype=float)
    ev = data.status == 0
    if ev.any():
        out[:, ev] = log_pi[:, ev] + _log_interval(
            data.lag_lower[ev], data.lag_upper[ev], mu_t, sd_t
        )
    term = data.status == 1
    if term.any():
        out[:, term] = log_1m_pi[:, term] + _log_interval(
            data.lag_lower[term], data.lag_upper[term], mu_d, sd_d
        )
    op = data.status == 2
    if op.any():
        log_age = np.log(data.age[op])
        surv_d = _log_ndtr(-(log_age - mu_d[:, None]) / sd_d[:, None])
        surv_t = _log_ndtr(-(log_age - mu_t[:, None]) / sd_t[:, None])
        out[:, op] = np.logaddexp(log_1m_pi[:, op] + surv_d, log_pi[:, op] + surv_t)
    return out


def window_loglik(data: CaseData, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log-likelihood of each window reference case under each draw.

    Parameters
    ----------
    data : CaseData
        Reference cases.
    draws : mapping of str to ndarray
        Draws with ``eta_window`` (D x window categories).

    Returns
    -------
    ndarray, shape (D, n_window)
        One column per case in the order of ``data.window_case_ids``.
    """
    eta_w = np.asarray(draws["eta_window"], dtype=float)
    if data.window_y.size == 0:
        return np.empty((eta_w.shape[0], 0))
    eta = eta_w[:, data.window_category]
    log_1m_p = -_log1pexp(eta)  # log(1 - p)
    log_none = data.window_exposure[None, :] * log_1m_p  # log P(no event in the window)
    with np.errstate(divide="ignore"):
        log_some = np.log(-np.expm1(log_none))
    y = data.window_y[None, :].astype(float)
    return np.where(y == 1.0, log_some, log_none)


def case_ids(data: CaseData) -> tuple[str, ...]:
    """Case ids in the column order of :func:`pointwise_loglik` (projects, then windows)."""
    return tuple(data.case_ids) + tuple(data.window_case_ids)


def pointwise_loglik(data: CaseData, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log-likelihood of every reference case (projects then windows) under each draw.

    Parameters
    ----------
    data : CaseData
        Reference cases.
    draws : mapping of str to ndarray
        Posterior draws (see :func:`project_loglik`).

    Returns
    -------
    ndarray, shape (D, n_project + n_window)
        Columns in the order of :func:`case_ids`; the row sums equal the model's
        ``loglik_projects + loglik_windows`` potentials.
    """
    return np.concatenate([project_loglik(data, draws), window_loglik(data, draws)], axis=1)


def pooled_base_rate_logpdf(
    eta: np.ndarray, rho: np.ndarray, m: np.ndarray, s: np.ndarray
) -> np.ndarray:
    r"""Log density of the pooled categories' :math:`\eta` given :math:`\rho`, per draw.

    .. math::

        \log p(\eta\mid\rho) = -\tfrac n2\log 2\pi - \textstyle\sum_c\log s_c
        - \tfrac12\bigl[(n-1)\log(1-\rho) + \log(1 + (n-1)\rho)\bigr]
        - \frac{\sum_c w_c^2 - \rho(\sum_c w_c)^2/(1 + (n-1)\rho)}{2(1-\rho)}

    with :math:`w_c = (\eta_c - m_c)/s_c`.

    Parameters
    ----------
    eta : ndarray, shape (D, n)
        Draws of the pooled categories' log-odds.
    rho : ndarray, shape (D,)
        Draws of the pooling share.
    m, s : ndarray, shape (n,)
        Prior means and standard deviations (logit scale), broadcastable to ``(D, n)``.

    Returns
    -------
    ndarray, shape (D,)
    """
    eta = np.asarray(eta, dtype=float)
    n = eta.shape[1]
    rho = np.asarray(rho, dtype=float)
    w = (eta - m) / s
    sum_w = w.sum(axis=1)
    sum_w2 = (w**2).sum(axis=1)
    denom = 1.0 + (n - 1) * rho
    quad = (sum_w2 - rho * sum_w**2 / denom) / (1.0 - rho)
    log_det = (n - 1) * np.log1p(-rho) + np.log(denom)
    log_s = np.broadcast_to(np.log(s), eta.shape).sum(axis=1)
    return -0.5 * n * np.log(2 * np.pi) - log_s - 0.5 * log_det - 0.5 * quad


def family_logpdf(family: str, params: Mapping[str, float], x: np.ndarray) -> np.ndarray:
    """Log density of a documented prior family (PreliZ parameter names) at ``x``.

    Parameters
    ----------
    family : {"Normal", "Gamma", "Beta", "HalfNormal", "LogNormal", "Exponential"}
        Family; Gamma is in the rate parametrisation (``alpha``, ``beta``).
    params : mapping
        Its parameters.
    x : ndarray
        Points.

    Returns
    -------
    ndarray
    """
    from scipy import stats

    x = np.asarray(x, dtype=float)
    if family == "Normal":
        return stats.norm.logpdf(x, params["mu"], params["sigma"])
    if family == "Gamma":
        return stats.gamma.logpdf(x, params["alpha"], scale=1.0 / params["beta"])
    if family == "Beta":
        return stats.beta.logpdf(x, params["alpha"], params["beta"])
    if family == "HalfNormal":
        return stats.halfnorm.logpdf(x, scale=params["sigma"])
    if family == "LogNormal":
        return stats.lognorm.logpdf(x, params["sigma"], scale=np.exp(params["mu"]))
    if family == "Exponential":
        return stats.expon.logpdf(x, scale=1.0 / params["lam"])
    raise ValueError(
        f"prior family {family!r} is not supported; use one of "
        "['Beta', 'Exponential', 'Gamma', 'HalfNormal', 'LogNormal', 'Normal']."
    )


def _expit(x: np.ndarray) -> np.ndarray:
    return np.exp(-_log1pexp(-x))


def log_prior_terms(
    priors: PriorParameters, draws: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    r"""Log prior density of each draw, split by documented prior.

    Parameters
    ----------
    priors : PriorParameters
        The documented priors.
    draws : mapping of str to ndarray
        Posterior draws (``eta``, ``eta_window``, ``strength``, lags, ``rho``).

    Returns
    -------
    dict of str to ndarray, shape (D,) each
        ``base_rate.pooled`` (the joint density of the pooled categories given
        :math:`\rho`), ``base_rate.<category>`` for each Beta (unpooled) project category
        and each window category, ``pooling.rho`` (only when some category is pooled),
        ``lag.log_median``, ``lag.log_sd``, ``lag.termination_log_median``,
        ``lag.termination_log_sd`` and ``strength.<kind>``. Their sum is the log prior.
    """
    eta = np.asarray(draws["eta"], dtype=float)
    out: dict[str, np.ndarray] = {}
    pooled = [i for i, c in enumerate(PROJECT_CATEGORIES) if priors.base_rate[c][0] != "Beta"]
    if pooled:
        m = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][1] for i in pooled])
        s = np.array([priors.base_rate[PROJECT_CATEGORIES[i]][2] for i in pooled])
        rho = np.asarray(draws["rho"], dtype=float)
        out["base_rate.pooled"] = pooled_base_rate_logpdf(eta[:, pooled], rho, m, s)
        a, b = priors.rho
        out["pooling.rho"] = family_logpdf("Beta", {"alpha": a, "beta": b}, rho)
    for i, c in enumerate(PROJECT_CATEGORIES):
        family, p1, p2 = priors.base_rate[c]
        if family == "Beta":
            out[f"base_rate.{c}"] = family_logpdf(
                "Beta", {"alpha": p1, "beta": p2}, _expit(eta[:, i])
            )
    eta_w = np.asarray(draws["eta_window"], dtype=float)
    for i, c in enumerate(WINDOW_CATEGORIES):
        family, p1, p2 = priors.base_rate[c]
        if family == "Beta":
            out[f"base_rate.{c}"] = family_logpdf(
                "Beta", {"alpha": p1, "beta": p2}, _expit(eta_w[:, i])
            )
        else:
            out[f"base_rate.{c}"] = family_logpdf("Normal", {"mu": p1, "sigma": p2}, eta_w[:, i])
    for name, key, spec in (
        ("lag.log_median", "lag_log_median", priors.lag_log_median),
        ("lag.log_sd", "lag_log_sd", priors.lag_log_sd),
        ("lag.termination_log_median", "term_log_median", priors.term_log_median),
        ("lag.termination_log_sd", "term_log_sd", priors.term_log_sd),
    ):
        out[name] = family_logpdf(spec[0], spec[1], np.asarray(draws[key], dtype=float))
    strength = np.asarray(draws["strength"], dtype=float)
    for j, kind in enumerate(KINDS):
        family, params = priors.strength[kind]
        out[f"strength.{kind}"] = family_logpdf(family, params, strength[:, j])
    return out


def _split_chains(values: np.ndarray, chains: int) -> np.ndarray:
    n = values.shape[0]
    if chains < 1 or n % chains:
        raise ValueError(f"{n} draws cannot be split into {chains} chains of equal length.")
    return values.reshape(chains, n // chains, *values.shape[1:])


def draws_to_datatree(
    draws: Mapping[str, np.ndarray],
    *,
    chains: int,
    loglik: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    log_prior: Mapping[str, np.ndarray] | None = None,
):
    """Pack flat draws (and optionally their log-likelihood and log prior) as a DataTree.

    Parameters
    ----------
    draws : mapping of str to ndarray
        Flat draws (chains x draws concatenated, chain-major as stored by
        :class:`georisk.posterior.Posterior`).
    chains : int
        Number of chains, to restore the ``chain`` and ``draw`` dimensions.
    loglik : ndarray, shape (D, n_cases), optional
        Pointwise log-likelihood (:func:`pointwise_loglik`), stored as
        ``log_likelihood/reference_cases`` (:data:`LOGLIK_VAR`) with dimension ``case``.
    ids : sequence of str, optional
        Case ids (coordinate of ``case``); required with ``loglik``.
    log_prior : mapping of str to ndarray, optional
        :func:`log_prior_terms`, stored in the ``log_prior`` group.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``eta`` by ``category``, ``eta_window`` by
        ``window_category``, ``strength`` by ``kind``, the lags and ``rho`` when finite),
        and ``log_likelihood`` / ``log_prior`` when given.
    """
    from arviz_base import from_dict

    posterior: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {
        "eta": ["category"],
        "eta_window": ["window_category"],
        "strength": ["kind"],
        LOGLIK_VAR: ["case"],
    }
    coords: dict[str, list[str]] = {
        "category": list(PROJECT_CATEGORIES),
        "window_category": list(WINDOW_CATEGORIES),
        "kind": list(KINDS),
    }
    for key in DRAW_KEYS:
        values = np.asarray(draws[key], dtype=float)
        if key == "rho" and not np.all(np.isfinite(values)):
            continue
        posterior[key] = _split_chains(values, chains)
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior}
    if loglik is not None:
        if ids is None or len(ids) != loglik.shape[1]:
            raise ValueError("ids must name every column of loglik.")
        groups["log_likelihood"] = {LOGLIK_VAR: _split_chains(np.asarray(loglik), chains)}
        coords["case"] = list(ids)
    if log_prior is not None:
        groups["log_prior"] = {
            k: _split_chains(np.asarray(v), chains) for k, v in log_prior.items()
        }
    return from_dict(groups, dims=dims, coords=coords)
