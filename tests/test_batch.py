"""The batch scoring kernel (georisk.batch) against the exact float64 scoring path."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit as sp_expit
from scipy.special import ndtr

from georisk.batch import ABS_TOLERANCE, BatchSummary, batch_inputs
from georisk.batch import batch_probabilities as _batch_probabilities
from georisk.evidence import KINDS, EvidenceWeights, Report
from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES, scenario_evidence
from georisk.schemas import Scenario
from georisk.scoring import QUANTILES, project_probability, window_probability

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
    eta = eta_of(draws, sc, base=base)
    lag = [draws[k][None, :] for k in LAG_KEYS]
    win = sc["is_window"]
    p = np.empty_like(eta)
    with np.errstate(all="ignore"):
        p[~win] = project_probability(
            eta[~win], sc["age"][~win, None], sc["horizon_age"][~win, None], *lag
        )
        p[win] = window_probability(eta[win], sc["exposure"][win, None])
    return p


def accurate_p(draws: dict, sc: dict) -> np.ndarray:
    """An accurate float64 oracle everywhere: survival functions and expit(-eta) computed
    directly, never as ``1 - x`` (the scoring path loses accuracy in the far tails)."""
    eta = eta_of(draws, sc)
    win = sc["is_window"]

    def surv(t, mu, sd):
        with np.errstate(divide="ignore"):
            z = (np.log(np.where(t > 0, t, 1.0)) - mu) / sd
        return np.where(t > 0, ndtr(-z), 1.0)

    mu, sd, tmu, tsd = (draws[k][None, :] for k in LAG_KEYS)
    a, h = sc["age"][:, None], sc["horizon_age"][:, None]
    sa, sh, ra = surv(a, mu, sd), surv(h, mu, sd), surv(a, tmu, tsd)
    with np.errstate(all="ignore"):
        proj = sp_expit(eta) * (sa - sh) / (sp_expit(-eta) * ra + sp_expit(eta) * sa)
    wind = -np.expm1(-sc["exposure"][:, None] * np.logaddexp(0.0, eta))
    return np.where(win[:, None], wind, proj)


def assert_summary_close(s: BatchSummary, p: np.ndarray, tol: float = ABS_TOLERANCE) -> None:
    np.testing.assert_allclose(s.mean, p.mean(axis=1), rtol=0, atol=tol)
    q = np.quantile(p, s.levels, axis=1, method="linear").T
    np.testing.assert_allclose(s.quantiles, q, rtol=0, atol=tol)


# --- accuracy contract --------------------------------------------------------------------


def test_matches_reference_at_4000_draws():
    rng = np.random.default_rng(1)
    draws = random_draws(rng, 4000)
    sc = random_scenarios(rng, 300)
    s = batch_probabilities(draws, **sc, base=True)
    assert s.backend == "numba"
    assert s.quantiles.shape == (300, len(QUANTILES)) and s.levels == QUANTILES
    assert_summary_close(s, reference_p(draws, sc))
    np.testing.assert_allclose(
        s.base_mean, reference_p(draws, sc, base=True).mean(axis=1), rtol=0, atol=ABS_TOLERANCE
    )
    qb = np.quantile(reference_p(draws, sc, base=True), QUANTILES, axis=1).T
    np.testing.assert_allclose(s.base_quantiles, qb, rtol=0, atol=ABS_TOLERANCE)
    # the numpy backend *is* the reference
    ref = batch_probabilities(draws, **sc, base=True, backend="numpy")
    assert_summary_close(ref, reference_p(draws, sc), tol=1e-12)
    np.testing.assert_allclose(s.quantiles, ref.quantiles, rtol=0, atol=ABS_TOLERANCE)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_per_draw_error_over_extreme_inputs(seed):
    # One draw at a time: the mean *is* the probability, so this checks every draw.
    # Logits in [-30, 30] (and beyond with evidence), ages from 1e-3 to 100 years, 0,
    # horizon = age, lag z-scores far into both tails.
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(30):
        draws = random_draws(rng, 1, wide=True)
        sc = random_scenarios(rng, 300, wide=True)
        s = batch_probabilities(draws, **sc, levels=(0.5,))
        exact = accurate_p(draws, sc)[:, 0]
        ok = np.isfinite(exact) & (np.abs(eta_of(draws, sc)[:, 0]) <= 30)
        assert np.all(np.isfinite(s.mean[ok]))
        worst = max(worst, float(np.max(np.abs(s.mean[ok] - exact[ok]))))
        np.testing.assert_array_equal(s.quantiles[:, 0], s.mean)
    assert worst <= ABS_TOLERANCE / 4, worst


def test_agrees_with_scoring_path_where_it_is_accurate():
    # Where 1 - F(a) and 1 - expit(eta) keep their precision in float64 (|eta| <= 20,
    # survival terms >= 1e-9), the scoring path and the kernel agree.
    rng = np.random.default_rng(5)
    for _ in range(20):
        draws = random_draws(rng, 1, wide=True)
        sc = random_scenarios(rng, 300, wide=True)
        s = batch_probabilities(draws, **sc, levels=(0.5,))
        ref = reference_p(draws, sc)[:, 0]
        z = [
            (np.log(np.maximum(sc[t], 1e-300)) - draws[m][0]) / draws[v][0]
            for t, m, v in (
                ("age", "lag_log_median", "lag_log_sd"),
                ("age", "term_log_median", "term_log_sd"),
            )
        ]
        ok = np.abs(eta_of(draws, sc)[:, 0]) <= 20
        ok &= sc["is_window"] | (np.maximum(*z) <= 6.0)
        np.testing.assert_allclose(s.mean[ok], ref[ok], rtol=0, atol=ABS_TOLERANCE)


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
    assert_summary_close(s, reference_p(draws, sc))
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
        s = batch_probabilities(d, **sc)
        assert_summary_close(s, reference_p(d, sc))


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
    assert np.isnan(s.mean[0]) and np.all(np.isnan(s.quantiles[0]))
    assert np.isnan(ref.mean[0]) and np.all(np.isnan(ref.quantiles[0]))
    assert np.all(np.isfinite(s.quantiles[1]))


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
        for f in ("mean", "quantiles", "base_mean", "base_quantiles"):
            np.testing.assert_array_equal(getattr(first, f), getattr(other, f))
    np.testing.assert_array_equal(first.quantiles[perm], shuffled.quantiles)
    np.testing.assert_array_equal(first.mean[perm], shuffled.mean)
    np.testing.assert_array_equal(first.quantiles[17:18], alone.quantiles)


# --- quantile selection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["uniform", "skewed", "ties", "zeros", "outlier", "constant", "tiny", "two"]
)
def test_bucket_selection_is_exact(kind):
    from georisk import batch

    batch._numba_kernel()
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
    row = np.ascontiguousarray(rows[kind], dtype=np.float32)
    lo = np.floor((n - 1) * np.asarray(QUANTILES)).astype(np.int64)
    ranks = np.unique(np.r_[0, lo, lo + 1, n - 1])
    vals = np.empty(ranks.size, np.float32)
    buckets = 2048
    scratch = (
        np.empty(buckets, np.int32),
        np.empty(n, np.int32),
        np.empty(buckets, np.int32),
        np.empty((ranks.size, 4), np.int64),
        np.empty(n, np.float32),
    )
    counts, idx, slot, seg, gather = scratch
    assert batch._nb_select(row, ranks, vals, counts, idx, slot, seg, gather)
    np.testing.assert_array_equal(vals, np.sort(row)[ranks])
    row[3] = np.nan
    assert not batch._nb_select(row, ranks, vals, counts, idx, slot, seg, gather)


def test_any_levels_and_one_draw():
    rng = np.random.default_rng(10)
    draws = random_draws(rng, 1)
    sc = random_scenarios(rng, 20)
    s = batch_probabilities(draws, **sc, levels=(0.0, 0.3, 1.0))
    assert np.all(s.quantiles == s.mean[:, None])
    draws = random_draws(rng, 333)
    levels = (0.0, 0.01, 0.333, 0.5, 0.77, 1.0)
    s = batch_probabilities(draws, **sc, levels=levels)
    assert_summary_close(s, reference_p(draws, sc))
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
            window_start=as_of, horizon=dt.date(2027, 11, 25), **common,
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
    for i, ev in enumerate(evs):
        d = scenario_draws(ev, posterior)
        assert abs(s.mean[i] - d["p"].mean()) <= ABS_TOLERANCE
        assert abs(s.base_mean[i] - d["p_base"].mean()) <= ABS_TOLERANCE
        np.testing.assert_allclose(
            s.quantiles[i], np.quantile(d["p"], QUANTILES), rtol=0, atol=ABS_TOLERANCE
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
