r"""Score open scenarios from stored posterior draws: numpy only, no MCMC, no PyMC import.

Why this is exact
-----------------
The model's parameters :math:`\theta` (category base rates, evidence strengths, lags) are
fitted on the reference cases. An open scenario adds exactly one observation about them: its
own status at the as-of date, :math:`O_s` = "still open after :math:`a` years" (project) or
"no event yet in the elapsed part of the window" (window), with likelihood
:math:`L_s(\theta) = P(O_s \mid \theta, x_s)`. The posterior predictive probability is

.. math:: P(\text{yes} \mid O_s, \text{data})
          = \frac{\int P(\text{yes}, O_s \mid \theta, x_s)\, p(\theta \mid \text{data})\, d\theta}
                 {\int L_s(\theta)\, p(\theta \mid \text{data})\, d\theta}
          \approx \frac{\sum_d P(\text{yes}, O_s \mid \theta^{(d)})}{\sum_d L_s(\theta^{(d)})},

the ratio of averages over the stored draws :math:`\theta^{(d)}`. Equivalently, each draw's
conditional probability :math:`P^{(d)} = P(\text{yes} \mid O_s, \theta^{(d)})` is weighted
by :math:`w_d = L_s(\theta^{(d)})`: this is importance sampling with the exact likelihood
ratio of adding the scenario's own censored observation to the fit, so refitting with it
would estimate the same quantity. The only error left is Monte Carlo error. The weighted mean
is the forecast, weighted quantiles give the credible intervals, and the effective number of
draws :math:`(\sum w)^2/\sum w^2` is reported (``weight_ess``; a note when it is low).

Probability by the horizon
--------------------------
For a **project** scenario of category :math:`c`, announced :math:`a` years before the as-of
date, with horizon :math:`H` years after announcement and evidence design
:math:`x_{s}` (:mod:`georisk.evidence`):

.. math::

    \eta_s = \eta_c + \sum_e s_e w_e \beta_{k(e)}, \qquad \pi_s = \operatorname{logit}^{-1}\eta_s

    P_s = \frac{\pi_s\,(F(H) - F(a))}{(1 - \pi_s)\,R(a) + \pi_s\,S(a)}

— the probability that the event happens in :math:`(a, H]` given that the project is still
open at :math:`a` (neither done nor terminated): Bayes' rule on the two-type mixture model
of :mod:`georisk.model`, with :math:`F, S` the CDF and survival function of the lag to the
event and :math:`R` the survival function of the time to termination. For a **window**
scenario with remaining exposure :math:`L` years,
:math:`P_s = 1 - (1 - \operatorname{logit}^{-1}\eta_s)^L`.

Contributions that add up exactly
---------------------------------
Per draw, with :math:`P^0_s` the base-rate-only probability (same timing, no evidence) and
:math:`c_e = s_e w_e \beta_{k(e)}` the event's shift of :math:`\eta`, the log-odds of the
score split into

.. math:: \operatorname{logit} P_s = \underbrace{\eta_c}_{\text{base rate}}
          + \underbrace{(\operatorname{logit} P^0_s - \eta_c)}_{\text{timing}}
          + \sum_e \underbrace{c_e\,
            \frac{\operatorname{logit} P_s - \operatorname{logit} P^0_s}{\sum_{e'} c_{e'}}}
            _{\text{event } e}

The *timing* term converts "eventually" into "by the horizon, given still open" (or the
annual probability into the window's); it depends only on the base rate, the lag
distributions and the calendar. The events share the whole effect of the evidence on the
score's log-odds in proportion to their shifts of :math:`\eta`: since the score depends on
the evidence only through :math:`\eta`, this is the Aumann-Shapley (integrated-gradients)
attribution, the unique one that is additive, symmetric and exact for a function of one
linear index (Sundararajan, Taly & Yan 2017, "Axiomatic attribution for deep networks",
ICML). Where the events cancel, :math:`\sum c = 0`, the share is the local slope. The sum
holds draw by draw to floating-point precision, and the intervals of each term are
reported.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from georisk.model_data import (
    ScenarioEvidence,
    prior_parameters,
    scenario_evidence,
    scenario_reports,
)
from georisk.schemas import ScenarioStatus

__all__ = [
    "ICD203_BANDS",
    "QUANTILES",
    "SCORE_COLUMNS",
    "CONTRIBUTION_COLUMNS",
    "ScoreRun",
    "icd203_band",
    "lag_cdf",
    "lag_tails",
    "normal_cdf",
    "project_probability",
    "project_terms",
    "softplus",
    "weighted_summary",
    "window_probability",
    "window_terms",
    "logit",
    "expit",
    "summarise",
    "scenario_draws",
    "score_run",
    "score",
]

ICD203_BANDS: tuple[tuple[str, float, float], ...] = (
    ("almost no chance", 0.00, 0.05),
    ("very unlikely", 0.05, 0.20),
    ("unlikely", 0.20, 0.45),
    ("roughly even chance", 0.45, 0.55),
    ("likely", 0.55, 0.80),
    ("very likely", 0.80, 0.95),
    ("almost certain", 0.95, 1.00),
)
"""ICD 203 (US Intelligence Community Directive 203, 2015) expressions of likelihood."""

QUANTILES = (0.025, 0.10, 0.50, 0.90, 0.975)
QUANTILE_KEYS = ("q0.025", "q0.10", "q0.50", "q0.90", "q0.975")
LOW_ESS = 400.0
"""Below this many effective draws after weighting, a score carries a note."""

SCORE_COLUMNS = [
    "scenario_id", "title", "reference_class", "family", "as_of", "horizon", "p_mean",
    "p_median", "p_q0.025", "p_q0.10", "p_q0.90", "p_q0.975", "p_base_mean", "p_base_q0.10",
    "p_base_q0.90", "logodds_mean", "evidence_logodds_mean", "evidence_logodds_q0.10",
    "evidence_logodds_q0.90", "evidence_share", "icd203", "band_straddle", "n_events",
    "n_indicators", "top_drivers", "strengths", "weight_ess", "note", "fit_id", "diagnostics",
]  # fmt: skip
"""Columns of the scores table, in order."""

CONTRIBUTION_COLUMNS = [
    "scenario_id", "term", "term_type", "kind", "direction", "event_date", "indicator_ids",
    "confidence", "fading", "weight", "strength_source", "logodds_mean", "logodds_q0.025",
    "logodds_q0.10", "logodds_q0.90", "logodds_q0.975",
]  # fmt: skip
"""Columns of the contributions table, in order."""


def icd203_band(p: float) -> str:
    """Return the ICD 203 likelihood words for a probability.

    Bands are closed on the left: 0.20 is "unlikely", 0.55 "likely".

    Parameters
    ----------
    p : float
        Probability in [0, 1].

    Returns
    -------
    str
        One of the seven ICD 203 expressions.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability must lie in [0, 1]. Got {p}.")
    for words, lo, hi in ICD203_BANDS:
        if lo <= p < hi:
            return words
    return ICD203_BANDS[-1][0]


def expit(x: np.ndarray) -> np.ndarray:
    """Logistic function :math:`1/(1+e^{-x})`, computed without overflow."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def logit(p: np.ndarray) -> np.ndarray:
    r"""Log-odds :math:`\log p - \log(1-p)`."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def lag_cdf(t: np.ndarray | float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    r"""CDF of the LogNormal lag, :math:`\Phi((\log t - \mu)/\sigma)`; 0 for :math:`t \le 0`.

    The first of :func:`lag_tails` (same parameters).
    """
    return lag_tails(t, mu, sd)[0]


def lag_tails(
    t: np.ndarray | float, mu: np.ndarray, sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""CDF and survival function of the LogNormal lag, each accurate in its own tail.

    The smaller of the two, :math:`\tfrac12\operatorname{erfc}(|z|/\sqrt2)` with
    :math:`z = (\log t - \mu)/\sigma`, is computed directly (relative accuracy of a few
    ulp however deep the tail); the larger, at least 1/2, as one minus it. Forming
    :math:`S = 1 - F` by subtraction instead would lose all relative precision once
    :math:`S < 10^{-16}`, which matters for old open projects, whose probability and
    status likelihood are ratios of such tails.

    Parameters
    ----------
    t : float or ndarray
        Time since announcement in years (broadcasts against ``mu``).
    mu, sd : ndarray
        Log-median and log-sd draws.

    Returns
    -------
    (ndarray, ndarray)
        :math:`F(t)` and :math:`S(t) = 1 - F(t)`; 0 and 1 for :math:`t \le 0`.
    """
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        z = (np.log(np.where(t > 0, t, 1.0)) - mu) / sd
    small = normal_cdf(-np.abs(z))
    lower = z < 0
    cdf = np.where(t > 0, np.where(lower, small, 1.0 - small), 0.0)
    sf = np.where(t > 0, np.where(lower, 1.0 - small, small), 1.0)
    return cdf, sf


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def normal_cdf(z: np.ndarray | float) -> np.ndarray:
    r"""Compute the standard normal CDF, :math:`\Phi(z) = \tfrac12 \operatorname{erfc}(-z/\sqrt2)`.

    Uses the C library's ``erfc`` element by element (accurate to a few ulp in both tails).
    It avoids importing :mod:`scipy.special`, which costs a warm ``georisk score`` a third of
    a second; for millions of values use :mod:`georisk.batch`.

    Parameters
    ----------
    z : float or ndarray
        Standard-normal quantiles.

    Returns
    -------
    ndarray
        Probabilities, same shape as ``z``.
    """
    z = np.asarray(z, dtype=float)
    return 0.5 * _ERFC(-z / math.sqrt(2.0)).astype(float)


def project_probability(
    eta: np.ndarray,
    age: np.ndarray | float,
    horizon_age: np.ndarray | float,
    mu,
    sd,
    term_mu,
    term_sd,
) -> np.ndarray:
    r"""Probability that a project reaches its event in (age, horizon], given still open.

    .. math:: P = \frac{\pi (F(H) - F(a))}{(1-\pi) (1 - G(a)) + \pi (1 - F(a))}

    Parameters
    ----------
    eta : ndarray
        Log-odds of eventual implementation (any shape broadcasting with the others).
    age, horizon_age : float or ndarray
        Years since announcement at the as-of date and at the horizon.
    mu, sd : ndarray
        Draws of the lag-to-event distribution (log-median, log-sd).
    term_mu, term_sd : ndarray
        Draws of the time-to-termination distribution.

    Returns
    -------
    ndarray
        Probabilities in [0, 1].
    """
    numerator, still_open = project_terms(eta, age, horizon_age, mu, sd, term_mu, term_sd)
    return numerator / still_open


def project_terms(
    eta: np.ndarray,
    age: np.ndarray | float,
    horizon_age: np.ndarray | float,
    mu,
    sd,
    term_mu,
    term_sd,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Joint probabilities behind :func:`project_probability`.

    Returns the probability of "still open at :math:`a` and done by :math:`H`",
    :math:`\pi (F(H) - F(a))`, and of "still open at :math:`a`",
    :math:`(1-\pi)(1-G(a)) + \pi(1-F(a))`. The second is the likelihood of the scenario's
    own censored status given the parameters: the weight of a draw in the posterior
    predictive (see :func:`scenario_draws`).

    Parameters
    ----------
    eta, age, horizon_age, mu, sd, term_mu, term_sd
        As in :func:`project_probability`.

    Returns
    -------
    (ndarray, ndarray)
        Numerator and still-open probability.
    """
    return _terms_given_timing(eta, *_timing_terms(age, horizon_age, mu, sd, term_mu, term_sd))


def _timing_terms(age, horizon_age, mu, sd, term_mu, term_sd) -> tuple[np.ndarray, ...]:
    """Compute the parts of :func:`project_terms` that do not depend on the logit.

    Returns :math:`F(H) - F(a)` (formed from whichever tails are small, so that it never
    cancels ``1 - tiny``), :math:`S(a)` and :math:`R(a) = 1 - G(a)`.
    """
    f_a, s_a = lag_tails(age, mu, sd)
    f_h, s_h = lag_tails(horizon_age, mu, sd)
    r_a = lag_tails(age, term_mu, term_sd)[1]
    gap = np.where(f_h <= 0.5, f_h - f_a, s_a - s_h)
    return gap, s_a, r_a


def _terms_given_timing(
    eta: np.ndarray, gap: np.ndarray, s_a: np.ndarray, r_a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Combine the logit with the timing terms (:func:`_timing_terms`): :func:`project_terms`."""
    pi, one_minus_pi = expit(eta), expit(-np.asarray(eta, dtype=float))
    return pi * gap, one_minus_pi * r_a + pi * s_a


def window_probability(eta: np.ndarray, exposure: np.ndarray | float) -> np.ndarray:
    r"""Probability of at least one event in ``exposure`` years, :math:`1-(1-p)^L`."""
    return _window_probability_given_softplus(softplus(eta), exposure)


def _window_probability_given_softplus(minus_log_1m_pi: np.ndarray, exposure) -> np.ndarray:
    return -np.expm1(-np.asarray(exposure, dtype=float) * minus_log_1m_pi)


def window_terms(
    eta: np.ndarray, exposure: np.ndarray | float, elapsed: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    r"""Probability of a window scenario and the weight of each draw (last axis).

    Returns :func:`window_probability` and the likelihood of the scenario's own status,
    no event in the ``elapsed`` years already past, :math:`(1 - p)^{\ell}`, scaled along
    the last axis (the draws) so that the largest is 1: only ratios matter, and a long
    quiet spell with :math:`p` near 1 cannot underflow every weight to 0.

    Parameters
    ----------
    eta : ndarray, shape (..., draws)
        Log-odds of the yearly event probability.
    exposure, elapsed : float or ndarray
        Remaining and elapsed window lengths in years (broadcast against ``eta``).

    Returns
    -------
    (ndarray, ndarray)
        Probability and scaled weight, each shaped like ``eta``.
    """
    minus_log_1m_pi = softplus(eta)
    log_w = -np.asarray(elapsed, dtype=float) * minus_log_1m_pi
    weight = np.exp(log_w - np.max(log_w, axis=-1, keepdims=True))
    return _window_probability_given_softplus(minus_log_1m_pi, exposure), weight


def softplus(eta: np.ndarray) -> np.ndarray:
    r"""Compute the softplus :math:`\log(1 + e^{\eta}) = -\log(1 - \operatorname{expit}(\eta))`.

    As :math:`\max(\eta, 0) + \operatorname{log1p}(e^{-|\eta|})`: no overflow, and no
    cancellation in :math:`1 - \operatorname{expit}(\eta)` for large :math:`\eta`.
    """
    eta = np.asarray(eta, dtype=float)
    return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))


def summarise(p: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and quantiles (:data:`QUANTILES`) of probability draws along the last axis.

    Parameters
    ----------
    p : ndarray, shape (..., draws)
        Probability draws.

    Returns
    -------
    dict
        ``mean`` and ``q0.025`` ... ``q0.975`` arrays of shape ``p.shape[:-1]``.
    """
    q = np.quantile(p, QUANTILES, axis=-1)
    out = {"mean": p.mean(axis=-1)}
    for level, values in zip(QUANTILES, q, strict=True):
        out[f"q{level}"] = values
    return out


@dataclass
class ScoreRun:
    """Scores of every open scenario at one as-of date, with their contributions.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per open scenario (see :func:`score` for the columns).
    contributions : pandas.DataFrame
        One row per scenario and term (``base_rate``, each event, ``timing``) with the
        term's log-odds mean and intervals; the terms add up to the score's log-odds.
    draws : dict
        Scenario id -> dict of per-draw arrays: ``p``, ``p_base``, ``logodds``, and
        ``terms`` (terms x draws) in the order of the contributions table.
    as_of : datetime.date
        The assessment date.
    fit_id : str
        The posterior used.
    diagnostics_status : str
        ``converged`` or ``unconverged``: carried by every row.
    """

    scores: pd.DataFrame
    contributions: pd.DataFrame
    draws: dict[str, dict[str, np.ndarray]] = field(repr=False)
    as_of: dt.date
    fit_id: str
    diagnostics_status: str


def scenario_draws(ev: ScenarioEvidence, posterior) -> dict[str, np.ndarray]:
    """Per-draw probability, base-rate-only probability and log-odds terms of one scenario.

    Parameters
    ----------
    ev : ScenarioEvidence
        The scenario's timing and weighted events.
    posterior : Posterior
        Posterior (or prior) draws.

    Returns
    -------
    dict of ndarray
        ``p``, ``p_base``, ``logodds``, ``eta`` (draws); ``terms`` (terms x draws: base
        rate, timing, then each event), with ``terms.sum(0) == logodds``; ``weight`` and
        ``weight_base``: the likelihood of the scenario's own status at the as-of date (still
        open; no event yet in the elapsed part of a window) under each draw, with and
        without the evidence (for windows scaled so that the largest is 1: only ratios
        matter). Summaries weight the draws by them (see the module docstring).
    """
    d = posterior.draws
    beta = d["strength"]  # (D, K)
    if ev.family == "project":
        base = d["eta"][:, ev.category_index]
    else:
        base = d["eta_window"][:, ev.category_index]
    x = ev.x  # (E, K)
    event_eta = x @ beta.T if len(ev.events) else np.zeros((0, base.shape[0]))
    shift = event_eta.sum(axis=0)
    eta = base + shift

    if ev.family == "project":
        # the timing terms depend on the draws, not on the logit: computed once
        timing_terms = _timing_terms(
            ev.age,
            ev.horizon_age,
            d["lag_log_median"],
            d["lag_log_sd"],
            d["term_log_median"],
            d["term_log_sd"],
        )

        def prob_and_weight(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            numerator, still_open = _terms_given_timing(e, *timing_terms)
            return numerator / still_open, still_open
    else:

        def prob_and_weight(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return window_terms(e, ev.exposure, ev.elapsed)

    def prob(e: np.ndarray) -> np.ndarray:
        return prob_and_weight(e)[0]

    (p, weight), (p_base, weight_base) = prob_and_weight(eta), prob_and_weight(base)
    logodds, logodds_base = _safe_logit(p), _safe_logit(p_base)
    # Aumann-Shapley (integrated-gradients) attribution: logit P depends on the evidence only
    # through the linear index eta, so each event gets its share c_e / sum(c) of the total
    # evidence effect logit P - logit P_base. Where the events cancel (sum(c) = 0), the
    # share is the local slope d logit P / d eta.
    small = np.abs(shift) < 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(small, 1.0, (logodds - logodds_base) / np.where(small, 1.0, shift))
    if np.any(small) and len(ev.events):
        h = 1e-5
        slope = (_safe_logit(prob(eta + h)) - _safe_logit(prob(eta - h))) / (2 * h)
        scale = np.where(small, slope, scale)
    event_terms = event_eta * scale
    timing = logodds_base - base
    terms = np.vstack([base[None, :], timing[None, :], event_terms])
    # Close the sum to floating-point precision (the events' shares are exact in real
    # arithmetic; this removes the last-bit rounding of the division above).
    terms[-1 if len(ev.events) else 1] += logodds - terms.sum(axis=0)
    return {
        "p": p,
        "p_base": p_base,
        "logodds": logodds,
        "eta": eta,
        "terms": terms,
        "weight": weight,
        "weight_base": weight_base,
    }


def _safe_logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities clipped to the open unit interval of float64."""
    info = np.finfo(float)
    return logit(np.clip(p, info.tiny, 1.0 - info.epsneg))


def weighted_summary(values: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    r"""Weighted mean and quantiles (:data:`QUANTILES`) of one quantity's draws.

    The quantiles interpolate the weighted empirical CDF at the mid-points of each draw's
    weight, :math:`\hat F(v_{(i)}) = (\sum_{j \le i} w_{(j)} - w_{(i)}/2) / \sum_j w_j`;
    with equal weights this is the Hazen plotting position.

    Parameters
    ----------
    values : ndarray, shape (draws,)
        Draws of the quantity.
    weights : ndarray, shape (draws,), optional
        Non-negative draw weights (equal when omitted).

    Returns
    -------
    dict
        ``mean``, ``q0.025``, ``q0.10``, ``q0.50``, ``q0.90``, ``q0.975`` and ``ess``, the
        effective number of draws :math:`(\sum w)^2 / \sum w^2`.
    """
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("draw weights must be finite, non-negative, with a positive sum.")
    w = w / w.max()  # only ratios matter; no underflow of the sums of w or w**2
    total = float(w.sum())
    order = np.argsort(v, kind="stable")
    vs, ws = v[order], w[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / total
    q = np.interp(QUANTILES, cdf, vs)
    out = {"mean": float(np.dot(w, v) / total)}
    for key, value in zip(QUANTILE_KEYS, q, strict=True):
        out[key] = float(value)
    out["ess"] = total**2 / float(np.dot(w, w))
    return out


def score_run(ws, posterior, *, as_of: dt.date | None = None) -> ScoreRun:
    """Score every open scenario of a workspace from a posterior.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    posterior : georisk.posterior.Posterior
        Fitted (or stored) posterior draws.
    as_of : datetime.date, optional
        Only indicators known on or before this date count (default: today).

    Returns
    -------
    ScoreRun
    """
    as_of = as_of or dt.date.today()
    priors = prior_parameters(ws.priors)
    reports = scenario_reports(ws, priors.weights)
    status = posterior.diagnostics.status
    rows, contrib_rows, all_draws = [], [], {}
    for sid in sorted(ws.scenarios):
        scenario = ws.scenarios[sid]
        if scenario.status != ScenarioStatus.OPEN:
            continue
        if scenario.family == "project" and scenario.announced and as_of < scenario.announced:
            continue  # the project did not exist yet: nothing to score
        if as_of >= scenario.horizon:
            rows.append(
                {
                    "scenario_id": sid,
                    "title": scenario.title,
                    "note": "horizon reached: awaiting resolution, not scored",
                    "as_of": as_of,
                    "fit_id": posterior.fit_id,
                    "diagnostics": status,
                }
            )
            continue
        ev = scenario_evidence(scenario, reports.get(sid, []), as_of=as_of, weights=priors.weights)
        dr = scenario_draws(ev, posterior)
        all_draws[sid] = dr
        p, p_base, w = dr["p"], dr["p_base"], dr["weight"]
        sp, sb = weighted_summary(p, w), weighted_summary(p_base, dr["weight_base"])
        evidence_shift = dr["logodds"] - _safe_logit(p_base)
        shift = weighted_summary(evidence_shift, w)
        base_lo = abs(weighted_summary(_safe_logit(p_base), dr["weight_base"])["mean"])
        evidence_share = abs(shift["mean"]) / (base_lo + abs(shift["mean"]) + 1e-12)
        band = icd203_band(sp["mean"])
        straddle = icd203_band(sp["q0.10"]) != icd203_band(sp["q0.90"])
        term_names = ["base_rate", "timing"] + [e.event_id for e in ev.events]
        for i, name in enumerate(term_names):
            iv = weighted_summary(dr["terms"][i], w)
            event = ev.events[i - 2] if i >= 2 else None
            contrib_rows.append(
                {
                    "scenario_id": sid,
                    "term": name,
                    "term_type": "event" if event else name,
                    "kind": event.kind if event else None,
                    "direction": ("supports" if event.sign > 0 else "opposes") if event else None,
                    "event_date": event.event_date if event else None,
                    "indicator_ids": ";".join(event.indicator_ids) if event else None,
                    "confidence": event.confidence if event else None,
                    "fading": event.fading if event else None,
                    "weight": event.weight if event else None,
                    "strength_source": posterior.strength_source(event.kind) if event else None,
                    "logodds_mean": iv["mean"],
                    "logodds_q0.025": iv["q0.025"],
                    "logodds_q0.10": iv["q0.10"],
                    "logodds_q0.90": iv["q0.90"],
                    "logodds_q0.975": iv["q0.975"],
                }
            )
        drivers = sorted(
            (c for c in contrib_rows[-len(term_names) :] if c["term_type"] == "event"),
            key=lambda c: -abs(c["logodds_mean"]),
        )
        kinds_used = sorted({e.kind for e in ev.events})
        rows.append(
            {
                "scenario_id": sid,
                "title": scenario.title,
                "reference_class": scenario.reference_class,
                "family": ev.family,
                "as_of": as_of,
                "horizon": scenario.horizon,
                "p_mean": sp["mean"],
                "p_median": sp["q0.50"],
                "p_q0.025": sp["q0.025"],
                "p_q0.10": sp["q0.10"],
                "p_q0.90": sp["q0.90"],
                "p_q0.975": sp["q0.975"],
                "p_base_mean": sb["mean"],
                "p_base_q0.10": sb["q0.10"],
                "p_base_q0.90": sb["q0.90"],
                "logodds_mean": weighted_summary(dr["logodds"], w)["mean"],
                "evidence_logodds_mean": shift["mean"],
                "evidence_logodds_q0.10": shift["q0.10"],
                "evidence_logodds_q0.90": shift["q0.90"],
                "evidence_share": evidence_share,
                "icd203": band,
                "band_straddle": straddle,
                "n_events": len(ev.events),
                "n_indicators": sum(len(e.indicator_ids) for e in ev.events),
                "top_drivers": "; ".join(
                    f"{c['term']} ({c['logodds_mean']:+.2f})" for c in drivers[:3]
                ),
                "strengths": "; ".join(f"{k}: {posterior.strength_source(k)}" for k in kinds_used),
                "weight_ess": sp["ess"],
                "note": (
                    ""
                    if sp["ess"] >= LOW_ESS
                    else f"only {sp['ess']:.0f} effective draws after conditioning on the "
                    "scenario's status: intervals are rough"
                ),
                "fit_id": posterior.fit_id,
                "diagnostics": status,
            }
        )
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    contributions = pd.DataFrame(contrib_rows, columns=CONTRIBUTION_COLUMNS)
    return ScoreRun(
        scores=scores,
        contributions=contributions,
        draws=all_draws,
        as_of=as_of,
        fit_id=posterior.fit_id,
        diagnostics_status=status,
    )


def score(ws, posterior, *, as_of: dt.date | None = None) -> pd.DataFrame:
    """Score every open scenario; a tidy DataFrame, one row per scenario.

    Columns: ``scenario_id, title, reference_class, family, as_of, horizon, p_mean,
    p_median, p_q0.025, p_q0.10, p_q0.90, p_q0.975`` (95% and 80% credible intervals),
    ``p_base_mean`` (base rate only, same timing), ``evidence_logodds_mean`` (how far the
    evidence moved the log-odds) and ``evidence_share`` (its share of the total log-odds
    distance from even odds), ``icd203`` (words for ``p_mean``) and ``band_straddle`` (the
    80% interval spans two ICD 203 bands), ``n_events``, ``top_drivers``, ``strengths``
    (learned or prior-only), ``fit_id`` and ``diagnostics`` (``converged`` or
    ``unconverged``). Use :func:`score_run` for contributions and draws.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    posterior : georisk.posterior.Posterior
        Posterior draws.
    as_of : datetime.date, optional
        Assessment date (default today).

    Returns
    -------
    pandas.DataFrame
    """
    return score_run(ws, posterior, as_of=as_of).scores
