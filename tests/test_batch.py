"""The batch scoring kernel (georisk.batch) against the exact float64 scoring path."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit as sp_expit
from scipy.special import ndtr

from georisk.batch import ABS_TOLERANCE, ESS_RTOL, WEIGHT_RTOL, BatchSummary, batch_inputs
from georisk.batch import batch_probabilities as _batch_probabilities
from georisk.evidence import KINDS, EvidenceWeights, Report
from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES, scenario_evidence
from georisk.schemas import Scenario
from georisk.scoring import (
    QUANTILE_KEYS,
    QUANTILES,
    project_probability,
    project_terms,
    weighted_summary,
    window_probability,
)

K = len(KINDS)
LAG_KEYS = ("lag_log_median", "lag_log_sd", "term_log_median", "term_log_sd")


def batch_probabilities(*args, **kwargs) -> BatchSummary:
    """The kernel under test: numba unless a test asks for the float64 path."""
    kwargs.setdefault("backend", "numba")
    return _batch_probabilities(*args, **kwargs)


def random_draws(rng: np.random.Generator, n_draws: int, *, wide: bool = False) -> dict:
    """Posterior-like draws; ``wide`` spreads every parameter over extreme values."""
    if wide:
        return {
            "eta": rng.uniform(-30, 30, (n_draws, len(PROJECT_CATEGORIES))),
            "eta_window": rng.uniform(-30, 30, (n_draws, len(WINDOW_CATEGORIES))),
            "strength": rng.uniform(0, 3, (n_draws, K)),
            "lag_log_median": rng.uniform(-1, 3.5, n_draws),
            "lag_log_sd": rng.uniform(0.15, 2.5, n_draws),
            "term_log_median": rng.uniform(-1, 3.5, n_draws),
            "term_log_sd": rng.uniform(0.15, 2.5, n_draws),
        }
    return {
        "eta": rng.normal(0.0, 1.5, (n_draws, len(PROJECT_CATEGORIES))),
        "eta_window": rng.normal(-1.5, 0.8, (n_draws, len(WINDOW_CATEGORIES))),
        "strength": rng.gamma(2.0, 0.4, (n_draws, K)),
        "lag_log_median": rng.normal(1.6, 0.25, n_draws),
        "lag_log_sd": rng.uniform(0.4, 1.0, n_draws),
        "term_log_median": rng.normal(2.0, 0.25, n_draws),
        "term_log_sd": rng.uniform(0.4, 1.0, n_draws),
    }


def random_scenarios(rng: np.random.Generator, n: int, *, wide: bool = False) -> dict:
    """Both families, ages 0 and horizon = age included."""
    win = rng.random(n) < 0.3
    age = rng.uniform(0, 20, n) if not wide else np.exp(rng.uniform(-7, 4.6, n))
    age[rng.random(n) < 0.1] = 0.0
    horizon = age + rng.uniform(0, 6, n)
    same = rng.random(n) < 0.1
    horizon[same] = age[same]  # horizon = age
    scale = 4.0 if wide else 1.5
    return {
        "category": np.where(
            win,
            rng.integers(0, len(WINDOW_CATEGORIES), n),
            rng.integers(0, len(PROJECT_CATEGORIES), n),
        ),
        "x": rng.uniform(-scale, scale, (n, K)) * (rng.random((n, K)) < 0.4),
        "is_window": win,
        "age": age,
        "horizon_age": horizon,
        "exposure": np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0, 3 if not wide else 30, n)),
        "elapsed": np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 3 if not wide else 30, n)),
    }


def eta_of(draws: dict, sc: dict, *, base: bool = False) -> np.ndarray:
    """(N, D) log-odds, float64."""
    cat, win = sc["category"], sc["is_window"]
    b = np.where(
        win[:, None],
        draws["eta_window"][:, np.minimum(cat, len(WINDOW_CATEGORIES) - 1)].T,
        draws["eta"][:, cat].T,
    )
    return b if base else b + sc["x"] @ draws["strength"].T


def reference_p(draws: dict, sc: dict, *, base: bool = False) -> np.ndarray:
    """The exact float64 scoring path, (N, D)."""
    return reference_pw(draws, sc, base=base)[0]


def reference_pw(draws: dict, sc: dict, *, base: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and status-likelihood weights of the float64 scoring path, (N, D) each.

    Projects: ``project_terms``' numerator / denominator, weighted by the denominator
    (still open at the age); windows: weighted by ``(1 - pi) ** elapsed``.
    """
    eta = eta_of(draws, sc, base=base)
    lag = [draws[k][None, :] for k in LAG_KEYS]
    win = np.asarray(sc["is_window"], bool)
    elapsed = np.asarray(sc.get("elapsed", np.zeros(win.size)), float)
    p = np.empty_like(eta)
    w = np.empty_like(eta)
    with np.errstate(all="ignore"):
        p[~win] = project_probability(
            eta[~win], sc["age"][~win, None], sc["horizon_age"][~win, None], *lag
        )
        w[~win] = project_terms(
            eta[~win], sc["age"][~win, None], sc["horizon_age"][~win, None], *lag
        )[1]
        p[win] = window_probability(eta[win], sc["exposure"][win, None])
        w[win] = np.exp(-elapsed[win, None] * np.logaddexp(0.0, eta[win]))  # (1 - pi)^elapsed
    return p, w


def oracle(p: np.ndarray, w: np.ndarray, levels=QUANTILES) -> dict[str, np.ndarray]:
    """Row by row :func:`georisk.scoring.weighted_summary`, the published definition."""
    n = p.shape[0]
    mean, ess, q = np.full(n, np.nan), np.full(n, np.nan), np.full((n, len(levels)), np.nan)
    for i in range(n):
        if np.isnan(p[i]).any() or not w[i].sum() > 0:
            continue
        s = weighted_summary(p[i], w[i])
        mean[i], ess[i] = s["mean"], s["ess"]
        if tuple(levels) == QUANTILES:
            q[i] = [s[k] for k in QUANTILE_KEYS]
        else:  # the same definition at other levels
            order = np.argsort(p[i], kind="stable")
            ws = w[i][order]
            q[i] = np.interp(levels, (np.cumsum(ws) - 0.5 * ws) / ws.sum(), p[i][order])
    return {"mean": mean, "q": q, "ess": ess}


def accurate_p(draws: dict, sc: dict) -> tuple[np.ndarray, np.ndarray]:
    """An independent float64 oracle (scipy's ``ndtr`` and ``expit``): the probability and
    the still-open probability (1 for windows), (N, D) each. Survival functions and
    expit(-eta) are computed directly, never as ``1 - x``."""
    eta = eta_of(draws, sc)
    win = sc["is_window"]

    def surv(t, mu, sd):
        with np.errstate(divide="ignore"):
            z = (np.log(np.where(t > 0, t, 1.0)) - mu) / sd
        return np.where(t > 0, ndtr(-z), 1.0)

    mu, sd, tmu, tsd = (draws[k][None, :] for k in LAG_KEYS)
    a, h = sc["age"][:, None], sc["horizon_age"][:, None]
    sa, sh, ra = surv(a, mu, sd), surv(h, mu, sd), surv(a, tmu, tsd)
    still_open = sp_expit(-eta) * ra + sp_expit(eta) * sa
    with np.errstate(all="ignore"):
        proj = sp_expit(eta) * (sa - sh) / still_open
    wind = -np.expm1(-sc["exposure"][:, None] * np.logaddexp(0.0, eta))
    return np.where(win[:, None], wind, proj), np.where(win[:, None], 1.0, still_open)


TINY_STILL_OPEN = 1e-37
"""Below float32's normal range the kernel's still-open probability underflows: NaN."""


def assert_summary_close(
    s: BatchSummary, ref: dict, tol: float = ABS_TOLERANCE, *, base: bool = False
) -> None:
    """Means and quantiles within ``tol`` absolute, effective draws within ESS_RTOL."""
    pre = "base_" if base else ""
    np.testing.assert_allclose(getattr(s, pre + "mean"), ref["mean"], rtol=0, atol=tol)
    np.testing.assert_allclose(getattr(s, pre + "quantiles"), ref["q"], rtol=0, atol=tol)
    np.testing.assert_allclose(getattr(s, pre + "ess"), ref["ess"], rtol=max(ESS_RTOL, tol), atol=0)


def summary_of(draws: dict, sc: dict, *, base: bool = False, levels=QUANTILES) -> dict:
    return oracle(*reference_pw(draws, sc, base=base), levels=levels)


# --- accuracy contract --------------------------------------------------------------------


def test_matches_reference_at_4000_draws():
    rng = np.random.default_rng(1)
    draws = random_draws(rng, 4000)
    sc = random_scenarios(rng, 300)
    s = batch_probabilities(draws, **sc, base=True)
    assert s.backend == "numba"
    assert s.quantiles.shape == (300, len(QUANTILES)) and s.levels == QUANTILES
    assert_summary_close(s, summary_of(draws, sc))
    assert_summary_close(s, summary_of(draws, sc, base=True), base=True)
    # the numpy backend reproduces the published definition to rounding
    ref = batch_probabilities(draws, **sc, base=True, backend="numpy")
    assert_summary_close(ref, summary_of(draws, sc), tol=1e-12)
    assert_summary_close(ref, summary_of(draws, sc, base=True), tol=1e-12, base=True)
    # and the weighting matters here: the unweighted mean is far off for some scenarios
    assert np.max(np.abs(s.mean - reference_p(draws, sc).mean(axis=1))) > 0.01


def test_equal_weights_give_the_plain_hazen_summaries():
    # Windows with nothing elapsed carry equal weights: the weighted definition reduces
    # to the plain mean and np.quantile's Hazen plotting position.
    rng = np.random.default_rng(13)
    draws = random_draws(rng, 1000)
    sc = random_scenarios(rng, 100)
    sc["is_window"] = np.ones(100, bool)
    sc["category"] = rng.integers(0, len(WINDOW_CATEGORIES), 100)
    sc["elapsed"] = np.zeros(100)
    p = reference_p(draws, sc)
    for backend in ("numba", "numpy"):
        s = batch_probabilities(draws, **sc, backend=backend)
        tol = ABS_TOLERANCE if backend == "numba" else 1e-12
        np.testing.assert_allclose(s.mean, p.mean(axis=1), rtol=0, atol=tol)
        hazen = np.quantile(p, QUANTILES, axis=1, method="hazen").T
        np.testing.assert_allclose(s.quantiles, hazen, rtol=0, atol=tol)
        np.testing.assert_allclose(s.ess, 1000.0, rtol=1e-9)


def test_conditioning_on_an_empty_elapsed_window_lowers_the_mean():
    # p = 1 - (1 - pi)^L rises with pi and the weight (1 - pi)^elapsed falls with it, so
    # (Chebyshev's sum inequality) the weighted mean is at most the unweighted one, and
    # it falls as more of the window passes without an event.
    rng = np.random.default_rng(14)
    draws = random_draws(rng, 2000)
    n = 6
    sc = {
        "category": np.zeros(n, int),
        "x": np.zeros((n, K)),
        "is_window": np.ones(n, bool),
        "age": np.zeros(n),
        "horizon_age": np.zeros(n),
        "exposure": np.ones(n),
        "elapsed": np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0]),
    }
    s = batch_probabilities(draws, **sc)
    assert np.all(np.diff(s.mean) < 0)
    assert np.all(np.diff(s.ess) < 0)  # and the draws count for less
    assert s.mean[-1] < reference_p(draws, sc)[0].mean() - 0.01
    assert_summary_close(s, summary_of(draws, sc))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_per_draw_error_over_extreme_inputs(seed):
    # One draw at a time: the mean *is* the probability, so this checks every draw.
    # Logits in [-30, 30] (and beyond with evidence), ages from 1e-3 to 100 years, 0,
    # horizon = age, lag z-scores far into both tails. NaN is allowed only where the
    # still-open probability leaves float32's range (the documented contract), and both
    # backends are checked against an independent scipy oracle.
    rng = np.random.default_rng(seed)
    worst = {"numba": 0.0, "numpy": 0.0}
    for _ in range(30):
        draws = random_draws(rng, 1, wide=True)
        sc = random_scenarios(rng, 300, wide=True)
        exact, still_open = (v[:, 0] for v in accurate_p(draws, sc))
        ok = np.isfinite(exact) & (np.abs(eta_of(draws, sc)[:, 0]) <= 30)
        for backend in worst:
            s = batch_probabilities(draws, **sc, levels=(0.5,), backend=backend)
            np.testing.assert_allclose(s.quantiles[:, 0], s.mean, rtol=1e-15, atol=0)
            in_range = ok & (still_open >= TINY_STILL_OPEN)
            assert np.all(np.isfinite(s.mean[in_range]))
            nan_where_finite = ok & ~np.isfinite(s.mean)
            assert np.all(still_open[nan_where_finite] < TINY_STILL_OPEN)
            good = ok & np.isfinite(s.mean)
            worst[backend] = max(worst[backend], float(np.max(np.abs(s.mean[good] - exact[good]))))
    assert worst["numba"] <= ABS_TOLERANCE / 4, worst
    assert worst["numpy"] <= 1e-12, worst


def test_special_cases_are_exact():
    rng = np.random.default_rng(6)
    draws = random_draws(rng, 500)
    n = 6
    sc = {
        "category": np.zeros(n, dtype=int),
        "x": np.zeros((n, K)),
        "is_window": np.array([False, False, False, False, True, True]),
        "age": np.array([0.0, 3.0, 0.0, 2.0, 0.0, 0.0]),
        "horizon_age": np.array([0.0, 3.0, 4.0, 30.0, 0.0, 0.0]),
        "exposure": np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
    }
    s = batch_probabilities(draws, **sc)
    assert np.all(s.mean[[0, 1, 4]] == 0.0)  # horizon = age, and no exposure: exactly 0
    assert np.all(s.quantiles[[0, 1, 4]] == 0.0)
    assert_summary_close(s, summary_of(draws, sc))
    assert np.all((s.quantiles >= 0) & (s.quantiles <= 1))
    assert np.all(np.diff(s.quantiles, axis=1) >= 0)


def test_extreme_logits():
    rng = np.random.default_rng(7)
    draws = random_draws(rng, 1000)
    for key, value in (("eta", 30.0), ("eta", -30.0), ("eta_window", 30.0), ("eta_window", -30)):
        d = dict(draws)
        d[key] = np.full_like(draws[key], value) + rng.normal(0, 0.1, draws[key].shape)
        sc = random_scenarios(rng, 80)
        sc["x"] = np.zeros_like(sc["x"])
        s = batch_probabilities(d, **sc, base=True)
        assert_summary_close(s, summary_of(d, sc))
        assert_summary_close(s, summary_of(d, sc, base=True), base=True)


def test_underflowing_denominator_gives_nan_like_the_reference():
    draws = {
        "eta": np.zeros((3, len(PROJECT_CATEGORIES))),
        "eta_window": np.zeros((3, len(WINDOW_CATEGORIES))),
        "strength": np.zeros((3, K)),
        "lag_log_median": np.zeros(3),
        "lag_log_sd": np.full(3, 0.1),
        "term_log_median": np.zeros(3),
        "term_log_sd": np.full(3, 0.1),
    }
    sc = {"category": [0, 0], "x": np.zeros((2, K)), "age": [1e6, 1.0], "horizon_age": [2e6, 2.0]}
    s = batch_probabilities(draws, **sc)
    ref = batch_probabilities(draws, **sc, backend="numpy")
    for out in (s, ref):
        assert np.isnan(out.mean[0]) and np.isnan(out.ess[0])
        assert np.all(np.isnan(out.quantiles[0]))
        assert np.all(np.isfinite(out.quantiles[1])) and np.isfinite(out.ess[1])


# --- conditioning: quantiles are backward stable in the weights ---------------------------

PER_DRAW_TOL = 2.5e-6
"""Documented bound on a draw's probability error in the numba backend."""


def quantile_band(p: np.ndarray, w: np.ndarray, levels, eps: float) -> tuple[np.ndarray, ...]:
    """Float64 weighted quantiles at ``levels -/+ 2 eps`` and at ``levels`` (one row).

    A relative error of at most ``eps`` in every weight moves the weighted mid-point CDF
    by at most ``2 eps``, so such a computation's quantile lies between the first two.
    """
    order = np.argsort(p, kind="stable")
    ws = w[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    lv = np.asarray(levels, dtype=float)
    return tuple(
        np.interp(np.clip(lv + shift, 0.0, 1.0), cdf, p[order])
        for shift in (-2 * eps, 2 * eps, 0.0)
    )


def assert_in_band(got: np.ndarray, p: np.ndarray, w: np.ndarray, levels, eps: float) -> None:
    lo, hi, _ = quantile_band(p, w, levels, eps)
    assert np.all(got >= lo - PER_DRAW_TOL) and np.all(got <= hi + PER_DRAW_TOL), (got, lo, hi)


def two_cluster_draws(n_draws: int) -> tuple[dict, dict]:
    """Draws alternating between two parameter sets of (almost) equal status likelihood,
    so that the weighted median falls in the gap between two very different probabilities:
    an ill-conditioned quantile (a stuck chain, or a two-mode posterior)."""
    from scipy.optimize import brentq

    age, horizon = 10.0, 12.0
    a = {"eta": -1.0, "lag_log_median": 1.6, "lag_log_sd": 0.5,
         "term_log_median": 2.0, "term_log_sd": 0.6}  # fmt: skip
    b = {"eta": 1.0, "lag_log_median": 1.9, "lag_log_sd": 0.8,
         "term_log_median": 2.2, "term_log_sd": 0.9}  # fmt: skip

    def still_open(params: dict) -> float:
        lag = [np.array([params[k]]) for k in LAG_KEYS]
        return float(project_terms(np.array([params["eta"]]), age, horizon, *lag)[1][0])

    target = still_open(a) * (1 + 2e-5)
    b["term_log_median"] = brentq(
        lambda m: still_open({**b, "term_log_median": m}) - target, 0.5, 4.0
    )
    pick = np.arange(n_draws) % 2 == 0
    draws = {k: np.where(pick, a[k], b[k]) for k in ("eta", *LAG_KEYS)}
    draws["eta"] = np.repeat(draws["eta"][:, None], len(PROJECT_CATEGORIES), axis=1)
    draws["eta_window"] = np.zeros((n_draws, len(WINDOW_CATEGORIES)))
    draws["strength"] = np.zeros((n_draws, K))
    sc = {
        "category": np.array([0]),
        "x": np.zeros((1, K)),
        "is_window": np.array([False]),
        "age": np.array([age]),
        "horizon_age": np.array([horizon]),
        "exposure": np.zeros(1),
    }
    return draws, sc


def test_quantiles_are_backward_stable_in_the_weights():
    # Random inputs of both families: within the band (and, as the accuracy test checks,
    # within 1e-5: these quantiles are well conditioned).
    rng = np.random.default_rng(15)
    draws = random_draws(rng, 4000)
    sc = random_scenarios(rng, 200)
    s = batch_probabilities(draws, **sc)
    p, w = reference_pw(draws, sc)
    for i in range(200):
        assert_in_band(s.quantiles[i], p[i], w[i], QUANTILES, WEIGHT_RTOL)
    # An ill-conditioned median: the float64 value moves by more than 1e-4 within the
    # band, so 1e-5 agreement cannot be asked of float32 weights; the band still holds.
    draws, sc = two_cluster_draws(10_000)
    s = batch_probabilities(draws, **sc)
    p, w = reference_pw(draws, sc)
    lo, hi, exact = quantile_band(p[0], w[0], QUANTILES, WEIGHT_RTOL)
    assert hi[2] - lo[2] > 1e-4
    assert_in_band(s.quantiles[0], p[0], w[0], QUANTILES, WEIGHT_RTOL)
    np.testing.assert_allclose(s.mean, oracle(p, w)["mean"], rtol=0, atol=ABS_TOLERANCE)


def window_weight_rtol(sc: dict, eta: np.ndarray) -> np.ndarray:
    """The documented bound on a window's relative weight error: its log-weight
    ``-elapsed * softplus(eta)`` is formed in float32."""
    return np.maximum(WEIGHT_RTOL, 1.2e-7 * sc["elapsed"] * (1 + 2 * np.abs(eta).max(axis=1)))


def test_long_quiet_windows_are_backward_stable_with_their_own_bound():
    # Up to 30 years elapsed and logits up to +-10: the window weights' relative error
    # grows with elapsed * |eta| (float32 logits); the band widens accordingly, and the
    # means and effective draws stay within their tolerances.
    rng = np.random.default_rng(17)
    for _ in range(3):
        draws = random_draws(rng, 2000)
        shape = draws["eta_window"].shape
        draws["eta_window"] = rng.uniform(-10, 10) + rng.normal(0, 1.5, shape)
        sc = random_scenarios(rng, 60)
        sc["is_window"] = np.ones(60, bool)
        sc["category"] = rng.integers(0, len(WINDOW_CATEGORIES), 60)
        sc["elapsed"] = rng.uniform(0, 30, 60)
        s = batch_probabilities(draws, **sc)
        p, w = reference_pw(draws, sc)
        eps = window_weight_rtol(sc, eta_of(draws, sc))
        for i in range(60):
            assert_in_band(s.quantiles[i], p[i], w[i], QUANTILES, eps[i])
        ref = oracle(p, w)
        np.testing.assert_allclose(s.mean, ref["mean"], rtol=0, atol=ABS_TOLERANCE)
        np.testing.assert_allclose(s.ess, ref["ess"], rtol=ESS_RTOL, atol=0)


def test_still_open_below_float32_range_gives_nan_not_a_wrong_number():
    # A project open for 200 times its lag's median: the still-open probability is
    # 1.5e-41, below float32's normal range. The kernel must say NaN (it once returned 1.0:
    # 1 / den overflowed and the clip hid it); the float64 path still has the answer.
    draws = {
        "eta": np.full((1, len(PROJECT_CATEGORIES)), 3.0),
        "eta_window": np.zeros((1, len(WINDOW_CATEGORIES))),
        "strength": np.zeros((1, K)),
        "lag_log_median": np.array([np.log(0.5)]),
        "lag_log_sd": np.array([0.4]),
        "term_log_median": np.array([np.log(0.5)]),
        "term_log_sd": np.array([0.4]),
    }
    sc = {
        "category": np.array([0]),
        "x": np.zeros((1, K)),
        "is_window": np.array([False]),
        "age": np.array([108.5]),
        "horizon_age": np.array([108.5 * 1.02]),
        "exposure": np.zeros(1),
    }
    exact, still_open = (v[0, 0] for v in accurate_p(draws, sc))
    assert still_open < 1e-40 and 0.4 < exact < 0.5
    assert np.isnan(batch_probabilities(draws, **sc).mean[0])
    ref = batch_probabilities(draws, **sc, backend="numpy")
    assert ref.mean[0] == pytest.approx(exact, rel=1e-9)


def test_numpy_backend_survives_tiny_weights():
    # Only ratios of weights matter: rows of weights near 1e-170 (sum of squares underflows)
    # give the same summaries as weights near 1.
    from georisk.batch import _weighted_rows

    rng = np.random.default_rng(19)
    p, w = rng.random((3, 500)), rng.random((3, 500))
    big = _weighted_rows(p, w, QUANTILES)
    tiny = _weighted_rows(p, w * 1e-170, QUANTILES)
    for a, b in zip(big, tiny, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.isfinite(tiny[2]).all()


def test_weighted_selection_with_rounded_weights_is_backward_stable():
    # The selection alone, on exact probabilities and weights rounded to float32 (relative
    # error 2**-24): light draws with very different probabilities around the median.
    from georisk import batch

    rng = np.random.default_rng(16)
    n = 33
    p64 = np.sort(rng.random(n))
    w64 = rng.random(n)
    w64[15:18] = [3e-8, 7e-7, 2e-8]  # the median falls among these
    w64[:15] *= 0.5 * w64[18:].sum() / w64[:15].sum()  # balance the two sides
    levels = (0.025, 0.1, 0.5, 0.9, 0.975)
    p32 = p64.astype(np.float32)
    p64 = p32.astype(float)  # exact in float32: only the weights are rounded
    w32 = w64.astype(np.float32)
    got = batch._weighted_quantiles_given(p32, w32, p64, w32.astype(float), levels, 0.0, 0.0)
    assert_in_band(got, p64, w64, levels, 2.0**-24)


# --- determinism ----------------------------------------------------------------------


def test_deterministic_and_independent_of_chunks_threads_and_order():
    rng = np.random.default_rng(8)
    draws = random_draws(rng, 997)  # odd: no lane-aligned shortcut
    sc = random_scenarios(rng, 250)
    sc["age"][:40] = 5.0  # runs of equal ages share their survival terms
    sc["horizon_age"] = np.maximum(sc["horizon_age"], sc["age"])
    first = batch_probabilities(draws, **sc, base=True)
    again = batch_probabilities(draws, **sc, base=True)
    one = batch_probabilities(draws, **sc, base=True, threads=1, chunk_rows=1)
    many = batch_probabilities(draws, **sc, base=True, threads=3, chunk_rows=7)
    perm = rng.permutation(250)
    shuffled = batch_probabilities(
        draws, **{k: np.asarray(v)[perm] for k, v in sc.items()}, base=True
    )
    alone = batch_probabilities(draws, **{k: np.asarray(v)[17:18] for k, v in sc.items()})
    for other in (again, one, many):
        for f in ("mean", "quantiles", "ess", "base_mean", "base_quantiles", "base_ess"):
            np.testing.assert_array_equal(getattr(first, f), getattr(other, f))
    np.testing.assert_array_equal(first.quantiles[perm], shuffled.quantiles)
    np.testing.assert_array_equal(first.mean[perm], shuffled.mean)
    np.testing.assert_array_equal(first.ess[perm], shuffled.ess)
    np.testing.assert_array_equal(first.quantiles[17:18], alone.quantiles)


# --- quantile selection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["uniform", "skewed", "ties", "zeros", "outlier", "constant", "tiny", "two"]
)
@pytest.mark.parametrize("weights", ["equal", "random", "some_zero", "dominant"])
def test_weighted_bucket_selection_is_exact(kind, weights):
    # The kernel's selection of the bracketing draws of each weighted quantile, on rows
    # whose float32 values are exact (error bound 0): it must reproduce np.interp on the
    # weighted mid-point CDF to rounding (the right pair of draws, the same interpolation),
    # whatever the ties, zeros and outliers.
    from georisk import batch

    rng = np.random.default_rng(9)
    n = 4000
    rows = {
        "uniform": rng.random(n),
        "skewed": sp_expit(rng.normal(-8, 3, n)),
        "ties": rng.integers(0, 5, n) / 4,
        "zeros": np.where(rng.random(n) < 0.5, 0.0, rng.random(n)),
        "outlier": np.r_[np.full(n - 1, 1e-6) + rng.random(n - 1) * 1e-9, 1.0],
        "constant": np.full(n, 0.25),
        "tiny": rng.random(n) * 1e-30,
        "two": np.r_[np.zeros(n // 2), np.ones(n // 2)],
    }
    ws = {
        "equal": np.ones(n),
        "random": rng.random(n),
        "some_zero": np.where(rng.random(n) < 0.3, 0.0, rng.random(n)),
        "dominant": np.r_[1e6, rng.random(n - 1) * 1e-3],
    }
    p32 = np.ascontiguousarray(rows[kind], dtype=np.float32)
    w32 = np.ascontiguousarray(ws[weights], dtype=np.float32)
    p64, w64 = p32.astype(float), w32.astype(float)
    levels = (0.0, 0.001, 0.025, 0.1, 0.333, 0.5, 0.9, 0.975, 0.999, 1.0)
    got = batch._weighted_quantiles_given(p32, w32, p64, w64, levels, 0.0, 0.0)
    want = oracle(p64[None], w64[None], levels)["q"][0]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


def test_any_levels_and_one_draw():
    rng = np.random.default_rng(10)
    draws = random_draws(rng, 1)
    sc = random_scenarios(rng, 20)
    s = batch_probabilities(draws, **sc, levels=(0.0, 0.3, 1.0))
    assert np.all(s.quantiles == s.mean[:, None]) and np.all(s.ess == 1.0)
    draws = random_draws(rng, 333)
    levels = (0.0, 0.01, 0.333, 0.5, 0.77, 1.0)
    s = batch_probabilities(draws, **sc, levels=levels)
    assert_summary_close(s, summary_of(draws, sc, levels=levels))
    np.testing.assert_array_equal(s.quantile(0.333), s.quantiles[:, 2])
    with pytest.raises(KeyError):
        s.quantile(0.4)
    with pytest.raises(ValueError, match="base=True"):
        s.quantile(0.5, base=True)


# --- inputs ---------------------------------------------------------------------------


def test_batch_inputs_from_scenario_evidence_match_scenario_draws():
    from georisk.diagnostics import DiagnosticsReport
    from georisk.posterior import Posterior
    from georisk.scoring import scenario_draws

    weights = EvidenceWeights(
        reliability={"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.5},
        credibility={1: 1.0, 2: 0.8, 3: 0.6, 4: 0.3, 5: 0.1, 6: 0.5},
        half_life_days={k: 365.0 for k in KINDS},
    )
    as_of = dt.date(2026, 11, 25)
    common = {
        "proposition": "Something happens.",
        "resolution_criteria": "Resolves yes if a wire service reports the event.",
        "opened": as_of,
    }
    scenarios = [
        Scenario(
            id="p1", title="A project", reference_class="bilateral_portfolio",
            announced=dt.date(2022, 11, 25), horizon=dt.date(2030, 12, 31), **common,
        ),
        Scenario(
            id="w1", title="A window", reference_class="export_route_disruption",
            window_start=dt.date(2025, 5, 25), horizon=dt.date(2027, 11, 25), **common,
        ),
    ]  # fmt: skip
    reports = [
        Report("e1-r1", "e1", "financing_commitment", 1, dt.date(2025, 1, 1),
               dt.date(2025, 1, 1), 0.8),
        Report("e2-r1", "e2", "russian_pressure", -1, dt.date(2026, 3, 1),
               dt.date(2026, 3, 1), 0.5),
    ]  # fmt: skip
    evs = [scenario_evidence(s, reports, as_of=as_of, weights=weights) for s in scenarios]
    rng = np.random.default_rng(11)
    draws = random_draws(rng, 800)
    posterior = Posterior("t", {**draws, "rho": np.zeros(800)}, DiagnosticsReport(
        True, 1.0, 4000.0, 4000.0, 0))  # fmt: skip
    s = batch_probabilities(draws, **batch_inputs(evs), base=True)
    assert evs[1].elapsed > 1.0  # the window is conditioned on 18 months without an event
    for i, ev in enumerate(evs):
        d = scenario_draws(ev, posterior)
        full = weighted_summary(d["p"], d["weight"])
        only_base = weighted_summary(d["p_base"], d["weight_base"])
        assert abs(s.mean[i] - full["mean"]) <= ABS_TOLERANCE
        assert abs(s.base_mean[i] - only_base["mean"]) <= ABS_TOLERANCE
        assert s.ess[i] == pytest.approx(full["ess"], rel=ESS_RTOL)
        assert s.base_ess[i] == pytest.approx(only_base["ess"], rel=ESS_RTOL)
        np.testing.assert_allclose(
            s.quantiles[i], [full[k] for k in QUANTILE_KEYS], rtol=0, atol=ABS_TOLERANCE
        )


def test_input_validation():
    rng = np.random.default_rng(12)
    draws = random_draws(rng, 10)
    ok = {"category": [0], "x": np.zeros((1, K)), "age": [1.0], "horizon_age": [2.0]}
    with pytest.raises(ValueError, match="shape"):
        batch_probabilities(draws, **{**ok, "x": np.zeros((1, K + 1))})
    with pytest.raises(ValueError, match="horizon_age must be >= age"):
        batch_probabilities(draws, **{**ok, "horizon_age": [0.5]})
    with pytest.raises(ValueError, match="age is required"):
        batch_probabilities(draws, category=[0], x=np.zeros((1, K)))
    with pytest.raises(ValueError, match="exposure"):
        batch_probabilities(draws, category=[0], x=np.zeros((1, K)), is_window=[True])
    with pytest.raises(ValueError, match="category"):
        batch_probabilities(draws, **{**ok, "category": [len(PROJECT_CATEGORIES)]})
    with pytest.raises(ValueError, match="levels"):
        batch_probabilities(draws, **ok, levels=(1.5,))
    with pytest.raises(ValueError, match="backend"):
        batch_probabilities(draws, **ok, backend="cuda")
    small = _batch_probabilities(draws, **ok)  # auto: float64 when small and numba not loaded
    assert small.backend in ("numba", "numpy")
    with pytest.raises(ValueError, match="draws lack"):
        batch_probabilities({"eta": draws["eta"]}, **ok)
    empty = batch_probabilities(draws, category=[], x=np.zeros((0, K)))
    assert empty.mean.shape == (0,) and empty.quantiles.shape == (0, len(QUANTILES))


def test_importing_the_module_does_not_import_numba():
    code = (
        "import sys, georisk.batch, georisk.scoring; "
        "assert 'numba' not in sys.modules, 'numba imported'; "
        "assert 'pymc' not in sys.modules and 'pytensor' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
