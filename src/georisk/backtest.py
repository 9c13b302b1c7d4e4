r"""Backtest of the model on its own reference cases: leave-one-out and leave-future-out.

Two questions, two designs
--------------------------
**Leave-one-out (LOO)**: would the model have predicted the outcome of a resolved case it had
not seen? The posterior without case :math:`i` is approximated by Pareto-smoothed importance
sampling of the full posterior (PSIS-LOO, Vehtari et al. 2017, 2024, via
:func:`arviz_stats.loo`) with weights :math:`w_s \propto 1/p(y_i \mid \theta_s)` on the case's
whole likelihood (:mod:`georisk.loglik`); where the Pareto shape :math:`\hat k` of those
weights exceeds the threshold (:attr:`BacktestConfig.k_threshold`, 0.7), the model is refitted
without the case instead. The forecast target is the case's *eventual outcome given that it
is resolved by the snapshot date* (the latest ``last_observed`` of the data; age :math:`A_i`):

.. math:: q_i(\theta) = \frac{\pi_i F(A_i)}{\pi_i F(A_i) + (1 - \pi_i) G(A_i)}

with :math:`F, G` the CDFs of the lag to the event and to termination
(:mod:`georisk.model`). Scoring only the resolved cases on :math:`\pi_i` alone would be
biased: recent cases are resolved early mostly when they fail fast. The evidence
:math:`x_i` is the case's indicator history up to just before its resolution, exactly as in
the fit, so LOO measures how well the model explains outcomes, not an ex-ante forecast.

**Leave-future-out (LFO)**: what would the model have said at a past date? For each cut date
:math:`c` the model is refitted on what was known at :math:`c`
(:func:`georisk.model_data.case_data` with ``as_of=c``) and every case open at :math:`c` is
forecast over a *fixed* window :math:`(c, H]`, :math:`H = c + h`
(:attr:`BacktestConfig.horizon_years`, 3 years):

.. math:: P_i = \frac{\pi_i(F(a_H) - F(a_c))}{(1-\pi_i)(1 - G(a_c)) + \pi_i(1 - F(a_c))}

(:func:`georisk.scoring.project_probability`, ages since announcement at :math:`c` and
:math:`H`, evidence known at :math:`c`); outcome 1 if the event happened by :math:`H`. A case
is scored only if its state at :math:`H` is known (resolved by :math:`H`, or last observed on
or after :math:`H`). The window is fixed *on purpose*: a horizon equal to each case's own
resolution date would leak the outcome (a case terminated one year after the cut would get a
one-year window, one that succeeded after eight years an eight-year window), inflating both
calibration and AUC. Window cases (export disruptions) ending in :math:`(c, H]` are forecast as
:math:`1 - (1-p)^L` over the part of the window after :math:`c`.

Forecasters compared
--------------------
``model``
    the full model (base rate, evidence, timing);
``category``
    the model's category base rate without evidence (:math:`x = 0`), same timing;
``pooled``
    one base rate for all, the Jeffreys-smoothed share :math:`(k + \tfrac12)/(n + 1)` of
    resolved training cases that materialised (no timing, no category);
``naive``
    a Beta-Binomial per category that counts open cases as failures (the censoring mistake,
    issue 4): :math:`(a_c + k_c)/(a_c + b_c + n_c)` over *all* training cases of the category,
    with :math:`(a_c, b_c)` the Beta matched to the category's documented prior (mean and
    variance).

Scores are the Brier score, log score, Brier skill score against ``pooled`` (and against
``category``: the value of the evidence), ROC AUC, each with a percentile bootstrap interval
over cases (:mod:`georisk.metrics`), and the reliability table. Forecasts of one case at
several cut dates are resampled as separate rows, so LFO intervals are slightly optimistic.

Speed
-----
Refits (one per cut date, one per high-:math:`\hat k` case) run in a pool of worker processes
(``ProcessPoolExecutor``, spawn start method, 2 workers, each fitting with ``cores=1``); each
process compiles the model once per data set (PyTensor's compile cache on disk is shared).
Refits use fewer draws than a published fit (:attr:`BacktestConfig.refit`): 2 chains x 1000
draws after 1000 tuning steps, with PyMC's NUTS.

References
----------
.. [1] Vehtari, A., Gelman, A., Gabry, J. (2017). Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC. Statistics and Computing 27(5), 1413-1432.
.. [2] Vehtari, A., Simpson, D., Gelman, A., Yao, Y., Gabry, J. (2024). Pareto smoothed
   importance sampling. JMLR 25(72).
.. [3] Bürkner, P.-C., Gabry, J., Vehtari, A. (2020). Approximate leave-future-out
   cross-validation for Bayesian time series models. J. Stat. Comput. Simul. 90(14).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from georisk import metrics
from georisk.evidence import period_midpoint
from georisk.model_data import (
    PROJECT_CATEGORIES,
    WINDOW_CATEGORIES,
    CaseData,
    PriorParameters,
    case_data,
    years_between,
)
from georisk.schemas import CaseOutcome
from georisk.vocab import REFERENCE_CATEGORIES

__all__ = [
    "DEFAULT_CUTS",
    "FORECASTERS",
    "BacktestConfig",
    "BacktestResult",
    "LooSummary",
    "beta_for_prior",
    "naive_rates",
    "pooled_rate",
    "drop_case",
    "resolved_outcome_probability",
    "lfo_test_cases",
    "score_forecasts",
    "run_backtest",
    "backtest",
    "json_records",
    "HORIZON_BINS",
    "TrackRecord",
    "track_record",
    "load_trajectories",
]

log = logging.getLogger(__name__)

DEFAULT_CUTS: tuple[dt.date, ...] = (
    dt.date(2012, 1, 1),
    dt.date(2015, 1, 1),
    dt.date(2018, 1, 1),
    dt.date(2021, 1, 1),
)
FORECASTERS: tuple[str, ...] = ("model", "category", "pooled", "naive")


def _default_refit():
    from georisk.model import SamplerConfig

    return SamplerConfig(draws=1000, tune=1000, chains=2, sampler="pymc", cores=1, seed=20261126)


@dataclass(frozen=True)
class BacktestConfig:
    r"""Settings of a backtest.

    Attributes
    ----------
    cuts : tuple of datetime.date
        Leave-future-out cut dates (default 2012, 2015, 2018, 2021, each 1 January).
    horizon_years : float
        Length :math:`h` of the forecast window after each cut (default 3).
    include_unverified : bool
        Also use (and score) unverified reference cases (default False, as the published fit).
    refit : SamplerConfig
        Sampler of every refit (default 2 chains x 1000 draws, 1000 tuning, PyMC NUTS, 1 core).
    k_threshold : float
        Pareto :math:`\hat k` above which a LOO case is refitted exactly (default 0.7).
    max_workers : int
        Worker processes for the refits (default 2; 0 runs them in this process).
    n_resamples : int
        Bootstrap replicates of every score interval (default 2000).
    level : float
        Interval coverage (default 0.95).
    bins : int
        Bins of the reliability tables (default 5: the reference set is small).
    seed : int
        Seed of the bootstrap.
    log_clip : float
        Forecasts are clipped to ``[log_clip, 1 - log_clip]`` for the log score only.
    loo, lfo : bool
        Which designs to run.
    """

    cuts: tuple[dt.date, ...] = DEFAULT_CUTS
    horizon_years: float = 3.0
    include_unverified: bool = False
    refit: Any = field(default_factory=_default_refit)
    k_threshold: float = 0.7
    max_workers: int = 2
    n_resamples: int = 2000
    level: float = 0.95
    bins: int = 5
    seed: int = 20261126
    log_clip: float = 1e-6
    loo: bool = True
    lfo: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON serialisable)."""
        return {
            "cuts": [c.isoformat() for c in self.cuts],
            "horizon_years": self.horizon_years,
            "include_unverified": self.include_unverified,
            "refit": self.refit.as_dict(),
            "k_threshold": self.k_threshold,
            "max_workers": self.max_workers,
            "n_resamples": self.n_resamples,
            "level": self.level,
            "bins": self.bins,
            "seed": self.seed,
            "log_clip": self.log_clip,
            "loo": self.loo,
            "lfo": self.lfo,
        }


@dataclass
class LooSummary:
    r"""PSIS-LOO of the full model.

    Attributes
    ----------
    elpd, se, p_loo : float
        ArviZ's PSIS-LOO estimate of the expected log pointwise predictive density, its
        standard error and the effective number of parameters.
    elpd_exact_refits : float
        The same with the cases above ``k_threshold`` replaced by their exact refit value.
    n_cases, n_draws : int
        Cases and draws used.
    good_k : float
        ArviZ's threshold :math:`\min(1 - 1/\log_{10} S, 0.7)`.
    k_counts : dict
        Number of cases with :math:`\hat k \le` good_k, in (good_k, 1], and > 1.
    high_k_cases : list of str
        Cases refitted exactly.
    warnings : list of str
        Warnings raised by ArviZ (recorded rather than lost).
    """

    elpd: float
    se: float
    p_loo: float
    elpd_exact_refits: float
    n_cases: int
    n_draws: int
    good_k: float
    k_counts: dict[str, int]
    high_k_cases: list[str]
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view."""
        return dict(self.__dict__)


@dataclass
class BacktestResult:
    """Everything a backtest produced.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        One row per scored case and design: ``design`` (``loo``/``lfo``), ``cut``,
        ``horizon``, ``case_id``, ``category``, ``family``, ``outcome``, ``p_model``,
        ``p_category``, ``p_pooled``, ``p_naive``, ``pareto_k`` (LOO), ``exact_refit``.
    scores : pandas.DataFrame
        One row per design and forecaster (see :func:`score_forecasts`).
    reliability : dict
        ``(design, forecaster)`` -> reliability table (:func:`georisk.metrics.reliability_table`).
    per_cut : pandas.DataFrame
        LFO: training and test sizes and Brier scores per cut date.
    loo : LooSummary or None
        PSIS-LOO diagnostics.
    fits : pandas.DataFrame
        Every refit: job, seconds, diagnostics status.
    timings : dict
        Wall-clock seconds: ``main_fit``, ``refits``, ``total``; ``workers``.
    config : BacktestConfig
        The settings.
    """

    forecasts: pd.DataFrame
    scores: pd.DataFrame
    reliability: dict[tuple[str, str], pd.DataFrame]
    per_cut: pd.DataFrame
    loo: LooSummary | None
    fits: pd.DataFrame
    timings: dict[str, Any]
    config: BacktestConfig

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (dates as ISO strings)."""

        def frame(df: pd.DataFrame) -> list[dict[str, Any]]:
            return json_records(df)

        return {
            "config": self.config.as_dict(),
            "scores": frame(self.scores),
            "per_cut": frame(self.per_cut),
            "loo": self.loo.as_dict() if self.loo else None,
            "fits": frame(self.fits),
            "timings": self.timings,
            "reliability": {
                f"{d}/{f}": frame(t) for (d, f), t in self.reliability.items()
            },
            "forecasts": frame(self.forecasts),
        }


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Turn a frame into records with NaN as None and dates as ISO strings."""
    out = []
    for rec in df.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            elif isinstance(v, dt.date | pd.Timestamp):
                v = v.isoformat()[:10]
            elif isinstance(v, np.generic):
                v = v.item()
            clean[str(k)] = v
        out.append(clean)
    return out


# --------------------------------------------------------------------------------------------
# Simple forecasters
# --------------------------------------------------------------------------------------------


def beta_for_prior(family: str, p1: float, p2: float) -> tuple[float, float]:
    r"""Beta distribution with the mean and variance of a documented base-rate prior.

    A Beta prior is returned as is; a LogitNormal(:math:`\mu, \sigma`) is matched by its
    mean :math:`m` and variance :math:`v` (Gauss-Hermite quadrature, 64 nodes):
    :math:`a = m\kappa,\ b = (1 - m)\kappa,\ \kappa = m(1-m)/v - 1`.

    Parameters
    ----------
    family : {"LogitNormal", "Beta"}
        Family of the base-rate prior.
    p1, p2 : float
        Its parameters (``mu, sigma`` or ``alpha, beta``).

    Returns
    -------
    (float, float)
        :math:`(a, b)`.
    """
    if family == "Beta":
        return float(p1), float(p2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    weights = weights / weights.sum()
    p = 1.0 / (1.0 + np.exp(-(p1 + p2 * nodes)))
    mean = float(weights @ p)
    var = float(weights @ (p - mean) ** 2)
    kappa = mean * (1.0 - mean) / var - 1.0
    return mean * kappa, (1.0 - mean) * kappa


def naive_rates(data: CaseData, priors: PriorParameters) -> dict[str, float]:
    """Naive base rate per category: open cases counted as failures (closed form).

    Parameters
    ----------
    data : CaseData
        Training cases (status 0 counts as success; 1 and 2, open, as failures; window cases
        by their outcome).
    priors : PriorParameters
        Documented priors, turned into Beta priors by :func:`beta_for_prior`.

    Returns
    -------
    dict
        Category -> posterior mean :math:`(a + k)/(a + b + n)`.
    """
    out = {}
    for i, c in enumerate(PROJECT_CATEGORIES):
        a, b = beta_for_prior(*priors.base_rate[c])
        mask = data.category == i
        k, n = float(np.sum(data.status[mask] == 0)), float(mask.sum())
        out[c] = (a + k) / (a + b + n)
    for i, c in enumerate(WINDOW_CATEGORIES):
        a, b = beta_for_prior(*priors.base_rate[c])
        mask = data.window_category == i
        k, n = float(np.sum(data.window_y[mask])), float(mask.sum())
        out[c] = (a + k) / (a + b + n)
    return out


def pooled_rate(data: CaseData) -> float:
    r"""One base rate for all: Jeffreys-smoothed share of resolved cases that materialised.

    .. math:: \hat p = (k + \tfrac12)/(n + 1)

    over resolved project cases (status 0 or 1) and window cases.

    Parameters
    ----------
    data : CaseData
        Training cases.

    Returns
    -------
    float
    """
    resolved = data.status < 2
    k = float(np.sum(data.status == 0) + np.sum(data.window_y))
    n = float(resolved.sum() + data.window_y.size)
    return (k + 0.5) / (n + 1.0)


def drop_case(data: CaseData, index: int) -> CaseData:
    """Copy of ``data`` without one case (index into projects, then windows)."""
    n = data.n_project
    if index < n:
        keep = np.arange(n) != index
        return replace(
            data,
            case_ids=tuple(c for j, c in enumerate(data.case_ids) if j != index),
            category=data.category[keep],
            status=data.status[keep],
            lag_lower=data.lag_lower[keep],
            lag_upper=data.lag_upper[keep],
            age=data.age[keep],
            x=data.x[keep],
        )
    w = index - n
    keep = np.arange(data.window_y.size) != w
    return replace(
        data,
        window_case_ids=tuple(c for j, c in enumerate(data.window_case_ids) if j != w),
        window_category=data.window_category[keep],
        window_y=data.window_y[keep],
        window_exposure=data.window_exposure[keep],
    )


def resolved_outcome_probability(
    eta: np.ndarray, obs_age: np.ndarray, draws: Mapping[str, np.ndarray]
) -> np.ndarray:
    r"""Per-draw probability that a case resolved by age :math:`A` reached its event.

    .. math:: q = \frac{\pi F(A)}{\pi F(A) + (1-\pi) G(A)},
              \quad \pi = \operatorname{logit}^{-1}\eta

    Parameters
    ----------
    eta : ndarray, shape (D, n)
        Log-odds of eventual success per draw and case.
    obs_age : ndarray, shape (n,)
        Age (years since announcement) at the snapshot date.
    draws : mapping
        Lag draws (``lag_log_median``, ``lag_log_sd``, ``term_log_median``, ``term_log_sd``).

    Returns
    -------
    ndarray, shape (D, n)
    """
    from georisk.scoring import expit, lag_cdf

    pi = expit(eta)
    f = lag_cdf(obs_age[None, :], draws["lag_log_median"][:, None], draws["lag_log_sd"][:, None])
    g = lag_cdf(
        obs_age[None, :], draws["term_log_median"][:, None], draws["term_log_sd"][:, None]
    )
    num = pi * f
    den = num + (1.0 - pi) * g
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), pi)


def _window_probability(eta_w: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    from georisk.scoring import window_probability

    return window_probability(eta_w, exposure[None, :])


# --------------------------------------------------------------------------------------------
# Refits in worker processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FitJob:
    key: tuple
    data: CaseData
    priors: PriorParameters
    config: Any


def _run_fit_job(job: _FitJob) -> tuple[tuple, dict[str, np.ndarray], dict[str, Any], float]:
    """Fit one data set (runs in a worker process)."""
    import pymc  # noqa: F401  (pymc sets its logger's level on import: quieten it after)

    from georisk.diagnostics import diagnose
    from georisk.model import fit_arrays

    for name in ("pymc", "pytensor", "nutpie"):
        logging.getLogger(name).setLevel(logging.ERROR)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_arrays(job.data, job.priors, job.config)
        report = diagnose(result.idata)
    return job.key, result.draws, report.as_dict(), time.perf_counter() - t0


def _run_jobs(
    jobs: Sequence[_FitJob], max_workers: int, on_done: Callable[[str], None] | None = None
) -> dict[tuple, tuple[dict[str, np.ndarray], dict[str, Any], float]]:
    """Run fit jobs in a process pool (``max_workers`` > 0) or here, keyed by job key."""
    out: dict[tuple, tuple[dict[str, np.ndarray], dict[str, Any], float]] = {}
    if not jobs:
        return out
    if max_workers <= 0:
        for job in jobs:
            key, draws, diag, secs = _run_fit_job(job)
            out[key] = (draws, diag, secs)
            if on_done:
                on_done(f"refit {key} done in {secs:.1f} s")
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx) as pool:
        futures = [pool.submit(_run_fit_job, job) for job in jobs]
        for fut in as_completed(futures):
            key, draws, diag, secs = fut.result()
            out[key] = (draws, diag, secs)
            if on_done:
                on_done(f"refit {key} done in {secs:.1f} s")
    return out


# --------------------------------------------------------------------------------------------
# Leave-future-out test cases
# --------------------------------------------------------------------------------------------


def lfo_test_cases(
    cases: Iterable,
    indicators: Iterable,
    weights,
    *,
    cut: dt.date,
    horizon: dt.date,
    include_unverified: bool = False,
) -> list[dict[str, Any]]:
    """List the cases a leave-future-out fold scores, with what was known at the cut.

    A project case is scored when it was announced by ``cut``, not resolved by ``cut``, and
    its state at ``horizon`` is known (resolved by then, or last observed on or after it).
    A window case is scored when its window ends in ``(cut, horizon]`` and nothing had
    happened by ``cut``.

    Parameters
    ----------
    cases : iterable of ReferenceCase
        All reference cases.
    indicators : iterable of ReferenceIndicator
        Their indicator histories (only those known at ``cut`` count).
    weights : EvidenceWeights
        Evidence weights.
    cut, horizon : datetime.date
        Forecast date and end of the forecast window.
    include_unverified : bool, default False
        Also score unverified cases.

    Returns
    -------
    list of dict
        ``case_id``, ``category``, ``family``, ``category_index``, ``outcome`` (0/1),
        ``age`` and ``horizon_age`` (projects, years since announcement) or ``exposure``
        (windows, years), ``x`` (evidence design at ``cut``).
    """
    indicators = list(indicators)
    out: list[dict[str, Any]] = []
    for case in cases:
        if not case.verified and not include_unverified:
            continue
        family = REFERENCE_CATEGORIES[case.category]["family"]
        materialised = case.outcome == CaseOutcome.MATERIALISED
        if family == "window":
            end = case.last_observed
            if not (cut < end <= horizon):
                continue
            if materialised and case.resolved is not None and case.resolved <= cut:
                continue
            start = max(case.announced, cut)
            out.append(
                {
                    "case_id": case.case_id,
                    "category": case.category,
                    "family": "window",
                    "category_index": WINDOW_CATEGORIES.index(case.category),
                    "outcome": int(materialised),
                    "exposure": max(years_between(start, end), 1.0 / 365.25),
                    "age": math.nan,
                    "horizon_age": math.nan,
                }
            )
            continue
        if case.announced > cut:
            continue
        if case.resolved is not None and case.resolved <= cut:
            continue
        if case.last_observed < cut:
            continue  # not seen since before the cut: not known to be open at the cut
        known = (case.resolved is not None and case.resolved <= horizon) or (
            case.last_observed >= horizon
        )
        if not known:
            continue
        one = case_data([case], [i for i in indicators if i.case_id == case.case_id], weights,
                        include_unverified=True, as_of=cut)
        announced = period_midpoint(case.announced, case.announced_precision)
        out.append(
            {
                "case_id": case.case_id,
                "category": case.category,
                "family": "project",
                "category_index": PROJECT_CATEGORIES.index(case.category),
                "outcome": int(
                    materialised and case.resolved is not None and case.resolved <= horizon
                ),
                "age": float(one.age[0]),
                "horizon_age": max(years_between(announced, horizon), float(one.age[0])),
                "exposure": math.nan,
                "x": one.x[0],
            }
        )
    return out


def _lfo_forecasts(
    tests: list[dict[str, Any]],
    draws: Mapping[str, np.ndarray],
    train: CaseData,
    priors: PriorParameters,
) -> list[dict[str, Any]]:
    from georisk.scoring import project_terms, window_probability

    pooled = pooled_rate(train)
    naive = naive_rates(train, priors)
    rows = []
    for t in tests:
        if t["family"] == "project":
            base = draws["eta"][:, t["category_index"]]
            eta = base + draws["strength"] @ t["x"]
            timing = (
                t["age"],
                t["horizon_age"],
                draws["lag_log_median"],
                draws["lag_log_sd"],
                draws["term_log_median"],
                draws["term_log_sd"],
            )
            # Posterior predictive given the case is still open at the cut: the ratio of
            # averages, exactly as georisk.scoring publishes it.
            num, den = project_terms(eta, *timing)
            p_model = float(num.sum() / den.sum())
            num, den = project_terms(base, *timing)
            p_cat = float(num.sum() / den.sum())
        else:
            eta_w = draws["eta_window"][:, t["category_index"]]
            p_model = p_cat = float(np.mean(window_probability(eta_w, t["exposure"])))
        rows.append(
            {
                "case_id": t["case_id"],
                "category": t["category"],
                "family": t["family"],
                "outcome": t["outcome"],
                "p_model": p_model,
                "p_category": p_cat,
                "p_pooled": pooled,
                "p_naive": naive[t["category"]],
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# Leave-one-out
# --------------------------------------------------------------------------------------------


def _psis_loo(
    data: CaseData, draws: Mapping[str, np.ndarray], chains: int
) -> tuple[Any, np.ndarray, np.ndarray, list[str]]:
    """ArviZ PSIS-LOO; returns the ELPD object, log weights (D, n), k (n), warnings."""
    from arviz_stats import loo

    from georisk.loglik import LOGLIK_VAR, case_ids, draws_to_datatree, pointwise_loglik

    ll = pointwise_loglik(data, draws)
    tree = draws_to_datatree(draws, chains=chains, loglik=ll, ids=case_ids(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loo(tree, pointwise=True, var_name=LOGLIK_VAR)
    messages = [str(w.message) for w in caught]
    for m in messages:
        log.warning("ArviZ: %s", m)
    lw = np.asarray(result.log_weights.transpose("chain", "draw", "case").values)
    lw = lw.reshape(-1, lw.shape[-1])
    lw = lw - np.logaddexp.reduce(lw, axis=0, keepdims=True)
    k = np.asarray(result.pareto_k.values, dtype=float)
    return result, lw, k, messages


def _loo_case_forecasts(
    data: CaseData,
    draws: Mapping[str, np.ndarray],
    weights: np.ndarray | None,
    obs_age: np.ndarray,
    cols: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Model and category forecasts of cases ``cols`` (indices into projects then windows).

    ``weights`` (D, n_cases) are normalised importance weights, or None for plain means.
    """
    n = data.n_project
    n_draws = draws["eta"].shape[0]
    p_model = np.empty(cols.size)
    p_cat = np.empty(cols.size)
    for j, i in enumerate(cols):
        w = np.full(n_draws, 1.0 / n_draws) if weights is None else weights[:, i]
        if i < n:
            base = draws["eta"][:, data.category[i]]
            eta = base + draws["strength"] @ data.x[i]
            age = np.array([obs_age[i]])
            q = resolved_outcome_probability(eta[:, None], age, draws)[:, 0]
            q0 = resolved_outcome_probability(base[:, None], age, draws)[:, 0]
        else:
            wi = i - n
            eta_w = draws["eta_window"][:, data.window_category[wi]]
            q = q0 = _window_probability(eta_w[:, None], data.window_exposure[[wi]])[:, 0]
        p_model[j] = float(w @ q)
        p_cat[j] = float(w @ q0)
    return p_model, p_cat


def _loo_rows(
    data: CaseData,
    priors: PriorParameters,
    draws: Mapping[str, np.ndarray],
    chains: int,
    obs_age: np.ndarray,
    k_threshold: float,
) -> tuple[list[dict[str, Any]], Any, np.ndarray, list[str], np.ndarray]:
    """PSIS-LOO forecasts of every resolved case; returns rows, loo object, k, warnings, cols."""
    from georisk.loglik import case_ids

    result, lw, k, messages = _psis_loo(data, draws, chains)
    ids = case_ids(data)
    n = data.n_project
    resolved = np.concatenate([data.status < 2, np.ones(data.window_y.size, dtype=bool)])
    cols = np.flatnonzero(resolved)
    p_model, p_cat = _loo_case_forecasts(data, draws, np.exp(lw), obs_age, cols)
    rows = []
    for j, i in enumerate(cols):
        without = drop_case(data, int(i))
        if i < n:
            category = PROJECT_CATEGORIES[data.category[i]]
            outcome = int(data.status[i] == 0)
            family = "project"
        else:
            category = WINDOW_CATEGORIES[data.window_category[i - n]]
            outcome = int(data.window_y[i - n])
            family = "window"
        rows.append(
            {
                "case_id": ids[i],
                "category": category,
                "family": family,
                "outcome": outcome,
                "p_model": float(p_model[j]),
                "p_category": float(p_cat[j]),
                "p_pooled": pooled_rate(without),
                "p_naive": naive_rates(without, priors)[category],
                "pareto_k": float(k[i]),
                "exact_refit": bool(k[i] > k_threshold),
            }
        )
    return rows, result, k, messages, cols


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def score_forecasts(
    forecasts: pd.DataFrame,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    bins: int = 5,
    log_clip: float | None = 1e-6,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Score each forecaster of a forecast table with bootstrap intervals.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        Columns ``outcome`` and ``p_<forecaster>`` for each of :data:`FORECASTERS`.
    n_resamples, level, seed : int, float, int
        Bootstrap settings (:func:`georisk.metrics.bootstrap`); the same case resamples are
        used for every forecaster (same seed), so their intervals are comparable.
    bins : int, default 5
        Bins of the reliability tables.
    log_clip : float, optional
        Clip of the log score (:func:`georisk.metrics.log_score`).

    Returns
    -------
    (pandas.DataFrame, dict)
        Scores, one row per forecaster: ``forecaster``, ``n``, ``events``, ``brier``,
        ``brier_lo``, ``brier_hi``, ``log``, ``log_lo``, ``log_hi``, ``bss_pooled`` (skill
        against the pooled base rate) with ``_lo``/``_hi``, ``bss_category`` (against the
        category base rate: the value of the evidence) with interval, ``auc`` with interval,
        ``reliability``, ``resolution``, ``brier_diff_naive`` (Brier minus the naive
        model's; negative is better) with interval; and the reliability table of each
        forecaster.
    """
    y = forecasts["outcome"].to_numpy(dtype=float)
    ref_pooled = forecasts["p_pooled"].to_numpy(dtype=float)
    ref_cat = forecasts["p_category"].to_numpy(dtype=float)
    naive = forecasts["p_naive"].to_numpy(dtype=float)
    rows, tables = [], {}

    def boot(fn, *arrays) -> metrics.BootstrapResult:
        return metrics.bootstrap(
            fn, *arrays, n_resamples=n_resamples, level=level, rng=np.random.default_rng(seed)
        )

    for name in FORECASTERS:
        p = forecasts[f"p_{name}"].to_numpy(dtype=float)
        row: dict[str, Any] = {"forecaster": name, "n": int(y.size), "events": int(y.sum())}
        stats = {
            "brier": (lambda p_, y_: metrics.brier_score(p_, y_), (p, y)),
            "log": (lambda p_, y_: metrics.log_score(p_, y_, clip=log_clip), (p, y)),
            "bss_pooled": (
                lambda p_, y_, r_: metrics.brier_skill_score(p_, y_, r_),
                (p, y, ref_pooled),
            ),
            "bss_category": (
                lambda p_, y_, r_: metrics.brier_skill_score(p_, y_, r_),
                (p, y, ref_cat),
            ),
            "auc": (lambda p_, y_: metrics.roc_auc(p_, y_), (p, y)),
            "brier_diff_naive": (
                lambda p_, y_, q_: metrics.brier_score(p_, y_) - metrics.brier_score(q_, y_),
                (p, y, naive),
            ),
        }
        for stat, (fn, arrays) in stats.items():
            b = boot(fn, *arrays)
            row[stat], row[f"{stat}_lo"], row[f"{stat}_hi"] = b.estimate, b.lower, b.upper
        dec = metrics.brier_decomposition(p, y, bins=bins)
        row["reliability"] = dec.reliability
        row["resolution"] = dec.resolution
        rows.append(row)
        tables[name] = metrics.reliability_table(p, y, bins=bins, level=level)
    return pd.DataFrame(rows), tables


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def _obs_age(cases: Sequence, data: CaseData, snapshot: dt.date) -> np.ndarray:
    """Age at the snapshot date of every case of ``data`` (projects then windows)."""
    by_id = {c.case_id: c for c in cases}
    ages = []
    for cid in tuple(data.case_ids) + tuple(data.window_case_ids):
        c = by_id[cid]
        ages.append(years_between(period_midpoint(c.announced, c.announced_precision), snapshot))
    return np.asarray(ages, dtype=float)


def run_backtest(
    cases: Sequence,
    indicators: Sequence,
    priors: PriorParameters,
    *,
    config: BacktestConfig | None = None,
    posterior_draws: Mapping[str, np.ndarray] | None = None,
    chains: int | None = None,
    snapshot: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Run the LOO and LFO backtests on reference-case records.

    Parameters
    ----------
    cases : sequence of ReferenceCase
        All reference cases (unverified ones are used only with
        ``config.include_unverified``).
    indicators : sequence of ReferenceIndicator
        Their indicator histories.
    priors : PriorParameters
        Documented priors.
    config : BacktestConfig, optional
        Settings (defaults documented there).
    posterior_draws : mapping, optional
        Draws of the model fitted on all cases (e.g. the published posterior); fitted with
        ``config.refit`` in a worker when omitted.
    chains : int, optional
        Chains of ``posterior_draws`` (needed to split them for ArviZ).
    snapshot : datetime.date, optional
        Date the data describe (default: the latest ``last_observed``).
    progress : callable, optional
        Called with a line of text as each step ends.

    Returns
    -------
    BacktestResult
    """
    config = config or BacktestConfig()
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    cases = list(cases)
    indicators = list(indicators)
    snapshot = snapshot or max(c.last_observed for c in cases)
    data = case_data(
        cases, indicators, priors.weights, include_unverified=config.include_unverified
    )

    jobs: list[_FitJob] = []
    if config.lfo:
        for j, cut in enumerate(config.cuts):
            train = case_data(
                cases, indicators, priors.weights,
                include_unverified=config.include_unverified, as_of=cut,
            )
            seed_cfg = replace(config.refit, seed=config.refit.seed + 1 + j)
            jobs.append(_FitJob(("lfo", cut.isoformat()), train, priors, seed_cfg))
    fit_rows: list[dict[str, Any]] = []
    t_main = 0.0
    results: dict[tuple, tuple[dict[str, np.ndarray], dict[str, Any], float]] = {}
    if config.loo and posterior_draws is None:
        jobs.insert(0, _FitJob(("main",), data, priors, config.refit))
    t_refit0 = time.perf_counter()
    results.update(_run_jobs(jobs, config.max_workers, say))
    if config.loo and posterior_draws is None:
        main_draws, diag, secs = results.pop(("main",))
        fit_rows.append({"job": "main", "seconds": secs, "status": _status(diag)})
        posterior_draws, chains, t_main = main_draws, config.refit.chains, secs
    if config.loo and chains is None:
        raise ValueError("chains must be given with posterior_draws.")

    rows: list[dict[str, Any]] = []
    loo_summary = None
    refit_results: dict[tuple, tuple[dict[str, np.ndarray], dict[str, Any], float]] = {}
    if config.loo:
        assert posterior_draws is not None
        obs_age = _obs_age(cases, data, snapshot)
        loo_rows, loo_obj, k, messages, cols = _loo_rows(
            data, priors, posterior_draws, chains, obs_age, config.k_threshold
        )
        from georisk.loglik import case_ids, pointwise_loglik

        ids = case_ids(data)
        bad = [int(i) for i in np.flatnonzero(k > config.k_threshold)]
        say(
            f"PSIS-LOO done: {len(bad)} case(s) with Pareto k > {config.k_threshold} refitted "
            f"exactly: {', '.join(ids[i] for i in bad) or 'none'}"
        )
        refit_jobs = [
            _FitJob(("loo", int(i)), drop_case(data, i), priors,
                    replace(config.refit, seed=config.refit.seed + 100 + int(i)))
            for i in bad
        ]
        refit_results = _run_jobs(refit_jobs, config.max_workers, say)
        elpd_i = np.asarray(loo_obj.elpd_i.values, dtype=float).copy()
        for i in bad:
            d_i, diag, secs = refit_results[("loo", i)]
            fit_rows.append({"job": f"loo:{ids[i]}", "seconds": secs, "status": _status(diag)})
            row = next((r for r in loo_rows if r["case_id"] == ids[i]), None)
            if row is not None:  # a resolved (scored) case; open cases only enter the elpd
                pm_, pc_ = _loo_case_forecasts(data, d_i, None, obs_age, np.array([i]))
                row["p_model"], row["p_category"] = float(pm_[0]), float(pc_[0])
            ll_i = pointwise_loglik(data, d_i)[:, i]
            elpd_i[i] = float(np.logaddexp.reduce(ll_i) - np.log(ll_i.size))
        for r in loo_rows:
            r.update({"design": "loo", "cut": None, "horizon": None})
        rows.extend(loo_rows)
        good_k = float(loo_obj.good_k)
        loo_summary = LooSummary(
            elpd=float(loo_obj.elpd),
            se=float(loo_obj.se),
            p_loo=float(loo_obj.p),
            elpd_exact_refits=float(elpd_i.sum()),
            n_cases=int(k.size),
            n_draws=int(loo_obj.n_samples),
            good_k=good_k,
            k_counts={
                f"k <= {good_k:.2f} (good)": int(np.sum(k <= good_k)),
                f"{good_k:.2f} < k <= 1 (bad)": int(np.sum((k > good_k) & (k <= 1))),
                "k > 1 (very bad)": int(np.sum(k > 1)),
            },
            high_k_cases=[ids[i] for i in bad],
            warnings=messages,
        )

    per_cut = []
    if config.lfo:
        for cut in config.cuts:
            d_c, diag, secs = results[("lfo", cut.isoformat())]
            fit_rows.append({"job": f"lfo:{cut.isoformat()}", "seconds": secs,
                             "status": _status(diag)})
            horizon = _add_years(cut, config.horizon_years)
            train = next(j.data for j in jobs if j.key == ("lfo", cut.isoformat()))
            tests = lfo_test_cases(
                cases, indicators, priors.weights, cut=cut, horizon=horizon,
                include_unverified=config.include_unverified,
            )
            fold = _lfo_forecasts(tests, d_c, train, priors)
            for r in fold:
                r.update({"design": "lfo", "cut": cut, "horizon": horizon, "pareto_k": math.nan,
                          "exact_refit": False})
            rows.extend(fold)
            y = np.array([r["outcome"] for r in fold], dtype=float)
            entry: dict[str, Any] = {
                "cut": cut,
                "horizon": horizon,
                "train_resolved": int(np.sum(train.status < 2) + train.window_y.size),
                "train_open": int(np.sum(train.status == 2)),
                "scored": len(fold),
                "events": int(y.sum()),
            }
            for name in FORECASTERS:
                p = np.array([r[f"p_{name}"] for r in fold], dtype=float)
                entry[f"brier_{name}"] = metrics.brier_score(p, y) if len(fold) else math.nan
            per_cut.append(entry)
    t_refits = time.perf_counter() - t_refit0

    columns = ["design", "cut", "horizon", "case_id", "category", "family", "outcome",
               "p_model", "p_category", "p_pooled", "p_naive", "pareto_k", "exact_refit"]
    forecasts = pd.DataFrame(rows, columns=columns)
    score_rows, reliability = [], {}
    for design in ("loo", "lfo"):
        sub = forecasts[forecasts["design"] == design]
        if sub.empty:
            continue
        table, rel = score_forecasts(
            sub, n_resamples=config.n_resamples, level=config.level, seed=config.seed,
            bins=config.bins, log_clip=config.log_clip,
        )
        table.insert(0, "design", design)
        score_rows.append(table)
        for name, t in rel.items():
            reliability[(design, name)] = t
    scores = pd.concat(score_rows, ignore_index=True) if score_rows else pd.DataFrame()
    timings = {
        "main_fit": round(t_main, 2),
        "refits": round(t_refits, 2),
        "total": round(time.perf_counter() - t_start, 2),
        "workers": config.max_workers,
        "cpu_count": os.cpu_count() or 1,
    }
    return BacktestResult(
        forecasts=forecasts,
        scores=scores,
        reliability=reliability,
        per_cut=pd.DataFrame(per_cut),
        loo=loo_summary,
        fits=pd.DataFrame(fit_rows, columns=["job", "seconds", "status"]),
        timings=timings,
        config=config,
    )


def _status(diag: Mapping[str, Any]) -> str:
    return "converged" if diag.get("converged") else "unconverged"


def _add_years(date: dt.date, years: float) -> dt.date:
    return date + dt.timedelta(days=round(years * 365.25))


def backtest(
    ws,
    *,
    config: BacktestConfig | None = None,
    posterior=None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Backtest the model on a workspace's reference cases.

    LOO uses the published posterior (:func:`georisk.posterior.load_or_fit`: stored, or
    fitted and stored now); the LFO folds and the exact LOO refits are fitted in
    ``config.max_workers`` processes.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    config : BacktestConfig, optional
        Settings.
    posterior : Posterior, optional
        Posterior to use for LOO instead of the published one (must match
        ``config.include_unverified``).
    progress : callable, optional
        Called with a line of text as each step ends.

    Returns
    -------
    BacktestResult
    """
    from georisk.model_data import prior_parameters
    from georisk.posterior import load_or_fit

    config = config or BacktestConfig()
    priors = prior_parameters(ws.priors)
    draws, chains = None, None
    t0 = time.perf_counter()
    if config.loo:
        if posterior is None:
            posterior, fitted = load_or_fit(ws, include_unverified=config.include_unverified)
            if progress:
                progress(
                    f"published posterior {posterior.fit_id} "
                    f"{'fitted' if fitted else 'loaded'} in {time.perf_counter() - t0:.1f} s"
                )
        draws = posterior.draws
        chains = int(posterior.meta.get("sampler", {}).get("chains", 1))
    t_main = time.perf_counter() - t0
    result = run_backtest(
        ws.reference_cases,
        ws.reference_indicators,
        priors,
        config=config,
        posterior_draws=draws,
        chains=chains,
        progress=progress,
    )
    result.timings["main_fit"] = round(t_main, 2)
    result.timings["total"] = round(result.timings["total"] + t_main, 2)
    if posterior is not None:
        result.timings["posterior"] = posterior.fit_id
        result.timings["posterior_status"] = posterior.diagnostics.status
    return result


# --------------------------------------------------------------------------------------------
# Track record of the published scores
# --------------------------------------------------------------------------------------------

HORIZON_BINS: tuple[tuple[str, int, int], ...] = (
    ("0-90 days", 0, 90),
    ("91-365 days", 91, 365),
    ("1-2 years", 366, 730),
    ("over 2 years", 731, 10**6),
)
"""Lead-time buckets (days from the score's as-of date to the resolution date)."""

_DATE_COLUMNS = ("as_of", "date", "run_as_of")
_P_COLUMNS = ("p_mean", "mean", "probability", "p")
_RUN_COLUMNS = ("run_id", "run")


@dataclass
class TrackRecord:
    """Scores georisk published before each resolved scenario's resolution, scored.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        One row per stored score: ``scenario_id``, ``run_id``, ``as_of``, ``p_mean``,
        ``resolution_date``, ``outcome`` (1 yes, 0 no), ``lead_days``, ``horizon_bin``,
        ``brier``.
    per_scenario : pandas.DataFrame
        One row per resolved scenario: ``scenario_id``, ``resolved`` (yes/no), ``resolution_date``,
        ``n_scores``, ``first_as_of``, ``first_p``, ``last_as_of``, ``last_p``, ``mean_p``,
        ``brier`` (mean over its scores).
    by_horizon : pandas.DataFrame
        Calibration by lead time: ``horizon_bin``, ``n_scores``, ``n_scenarios``,
        ``mean_forecast``, ``observed_frequency``, ``brier``.
    brier : float
        Mean Brier score over all stored scores (NaN when there is none).
    brier_per_scenario : float
        Mean of the per-scenario Brier scores (each resolved scenario counts once).
    skipped : list of str
        Resolved scenarios not counted, with the reason.
    """

    forecasts: pd.DataFrame
    per_scenario: pd.DataFrame
    by_horizon: pd.DataFrame
    brier: float
    brier_per_scenario: float
    skipped: list[str]


def _pick(frame: pd.DataFrame, names: Sequence[str], what: str, required: bool = True):
    for n in names:
        if n in frame.columns:
            return n
    if required:
        raise ValueError(
            f"a score trajectory needs a {what} column (one of {list(names)}). "
            f"Got columns {list(frame.columns)}."
        )
    return None


def track_record(
    scenarios: Mapping[str, Any],
    trajectories: Mapping[str, pd.DataFrame],
    *,
    today: dt.date,
) -> TrackRecord:
    """Score every stored forecast of every resolved scenario made before its resolution.

    Only scenarios with status ``resolved-yes`` or ``resolved-no`` whose resolution date is
    on or before ``today`` count. A stored score counts when its as-of date is strictly
    before the resolution date (later scores knew the answer).

    Parameters
    ----------
    scenarios : mapping of str to Scenario
        The workspace's scenarios.
    trajectories : mapping of str to pandas.DataFrame
        Scenario id -> its stored scores (``HistoryStore.trajectory``): an as-of date column
        (``as_of``, ``date`` or ``run_as_of``), a probability column (``p_mean``, ``mean``,
        ``probability`` or ``p``) and optionally ``run_id``.
    today : datetime.date
        Date of the evaluation.

    Returns
    -------
    TrackRecord
    """
    from georisk.schemas import ScenarioStatus

    rows, skipped = [], []
    for sid in sorted(scenarios):
        sc = scenarios[sid]
        if sc.status not in (ScenarioStatus.RESOLVED_YES, ScenarioStatus.RESOLVED_NO):
            continue
        if sc.resolution is None or sc.resolution.date > today:
            skipped.append(f"{sid}: resolution date after {today.isoformat()}")
            continue
        traj = trajectories.get(sid)
        if traj is None or traj.empty:
            skipped.append(f"{sid}: no stored scores")
            continue
        dcol = _pick(traj, _DATE_COLUMNS, "date")
        pcol = _pick(traj, _P_COLUMNS, "probability")
        rcol = _pick(traj, _RUN_COLUMNS, "run id", required=False)
        outcome = int(sc.status == ScenarioStatus.RESOLVED_YES)
        res_date = sc.resolution.date
        n_before = 0
        for rec in traj.to_dict(orient="records"):
            as_of = pd.Timestamp(rec[dcol]).date()
            p = rec[pcol]
            if as_of >= res_date or p is None or not np.isfinite(float(p)):
                continue
            n_before += 1
            lead = (res_date - as_of).days
            rows.append(
                {
                    "scenario_id": sid,
                    "run_id": rec.get(rcol) if rcol else None,
                    "as_of": as_of,
                    "p_mean": float(p),
                    "resolution_date": res_date,
                    "outcome": outcome,
                    "lead_days": lead,
                    "horizon_bin": next(b for b, lo, hi in HORIZON_BINS if lo <= lead <= hi),
                    "brier": (float(p) - outcome) ** 2,
                }
            )
        if n_before == 0:
            skipped.append(f"{sid}: no score stored before its resolution date")
    columns = ["scenario_id", "run_id", "as_of", "p_mean", "resolution_date", "outcome",
               "lead_days", "horizon_bin", "brier"]
    fc = pd.DataFrame(rows, columns=columns).sort_values(["scenario_id", "as_of"],
                                                         ignore_index=True)
    per = []
    for sid, g in fc.groupby("scenario_id", sort=True):
        per.append(
            {
                "scenario_id": sid,
                "resolved": "yes" if g["outcome"].iloc[0] == 1 else "no",
                "resolution_date": g["resolution_date"].iloc[0],
                "n_scores": len(g),
                "first_as_of": g["as_of"].iloc[0],
                "first_p": float(g["p_mean"].iloc[0]),
                "last_as_of": g["as_of"].iloc[-1],
                "last_p": float(g["p_mean"].iloc[-1]),
                "mean_p": float(g["p_mean"].mean()),
                "brier": float(g["brier"].mean()),
            }
        )
    per_df = pd.DataFrame(per, columns=["scenario_id", "resolved", "resolution_date", "n_scores",
                                        "first_as_of", "first_p", "last_as_of", "last_p",
                                        "mean_p", "brier"])
    hz = []
    for name, _lo, _hi in HORIZON_BINS:
        g = fc[fc["horizon_bin"] == name]
        if g.empty:
            continue
        hz.append(
            {
                "horizon_bin": name,
                "n_scores": len(g),
                "n_scenarios": int(g["scenario_id"].nunique()),
                "mean_forecast": float(g["p_mean"].mean()),
                "observed_frequency": float(g["outcome"].mean()),
                "brier": float(g["brier"].mean()),
            }
        )
    return TrackRecord(
        forecasts=fc,
        per_scenario=per_df,
        by_horizon=pd.DataFrame(hz, columns=["horizon_bin", "n_scores", "n_scenarios",
                                             "mean_forecast", "observed_frequency", "brier"]),
        brier=float(fc["brier"].mean()) if len(fc) else math.nan,
        brier_per_scenario=float(per_df["brier"].mean()) if len(per_df) else math.nan,
        skipped=skipped,
    )


def load_trajectories(ws, store: Any = None) -> dict[str, pd.DataFrame]:
    """Read the stored score trajectory of every resolved scenario from the history store.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    store : path-like, optional
        History store (default: ``georisk.history``'s default for the workspace, else
        ``<workspace>/.georisk/history.duckdb``).

    Returns
    -------
    dict
        Scenario id -> ``HistoryStore(path).trajectory(scenario_id)``.

    Raises
    ------
    georisk.errors.StoreError
        When the history module is not installed or the store does not exist.
    """
    from pathlib import Path

    from georisk.errors import StoreError
    from georisk.schemas import ScenarioStatus

    try:
        from georisk import history
    except ImportError:
        raise StoreError(
            "the history store (georisk.history) is not available in this installation, so "
            "there is no track record yet; run `georisk score` on a version that stores runs."
        ) from None
    if store is None:
        default = getattr(history, "default_store_path", None)
        store = default(ws) if callable(default) else Path(ws.root) / ".georisk" / "history.duckdb"
    path = Path(store)
    if not path.exists():
        raise StoreError(
            f"no history store at {path}: nothing was scored yet, so there is no track record. "
            "Run `georisk score` (it stores every run), or pass --store PATH."
        )
    out = {}
    with history.HistoryStore(path, read_only=True) as hs:
        for sid, sc in ws.scenarios.items():
            if sc.status in (ScenarioStatus.RESOLVED_YES, ScenarioStatus.RESOLVED_NO):
                out[sid] = hs.trajectory(sid)
    return out
