"""Real NUTS fits that could catch a wrong answer: conjugacy, censoring, recovery, the gate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from georisk.diagnostics import diagnose
from georisk.evidence import KINDS, EvidenceWeights
from georisk.model import SamplerConfig, fit_arrays
from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES, CaseData, PriorParameters

pytestmark = pytest.mark.slow

WEIGHTS = EvidenceWeights(
    reliability=dict.fromkeys("ABCDEF", 1.0),
    credibility=dict.fromkeys(range(1, 7), 1.0),
    half_life_days=dict.fromkeys(KINDS, np.inf),
)
FAST = SamplerConfig(draws=1000, tune=1000, chains=2, sampler="pymc", seed=11, cores=1)


def priors(base=None, strength=None) -> PriorParameters:
    base_rate = {c: ("LogitNormal", 0.0, 1.5) for c in PROJECT_CATEGORIES + WINDOW_CATEGORIES}
    base_rate.update(base or {})
    strengths = {k: ("Gamma", {"alpha": 2.0, "beta": 2.0}) for k in KINDS}
    strengths.update(strength or {})
    return PriorParameters(
        base_rate=base_rate,
        rho=(2.0, 2.0),
        lag_log_median=("Normal", {"mu": np.log(5.0), "sigma": 0.5}),
        lag_log_sd=("Gamma", {"alpha": 8.0, "beta": 10.0}),
        term_log_median=("Normal", {"mu": np.log(4.0), "sigma": 0.7}),
        term_log_sd=("Gamma", {"alpha": 8.0, "beta": 10.0}),
        strength=strengths,
        weights=WEIGHTS,
    )


def cases(category, status, lo=None, hi=None, age=None, x=None) -> CaseData:
    n = len(status)
    nan = np.full(n, np.nan)
    return CaseData(
        case_ids=tuple(f"c{i}" for i in range(n)),
        category=np.full(n, PROJECT_CATEGORIES.index(category))
        if isinstance(category, str)
        else np.asarray(category),
        status=np.asarray(status),
        lag_lower=nan if lo is None else np.asarray(lo, dtype=float),
        lag_upper=nan if hi is None else np.asarray(hi, dtype=float),
        age=nan if age is None else np.asarray(age, dtype=float),
        x=np.zeros((n, len(KINDS))) if x is None else np.asarray(x, dtype=float),
        window_case_ids=(),
        window_category=np.zeros(0, dtype=int),
        window_y=np.zeros(0, dtype=int),
        window_exposure=np.zeros(0),
    )


def test_conjugate_beta_binomial():
    """One category, no evidence, a Beta(2, 3) prior: posterior is Beta(2 + k, 3 + n - k)."""
    a, b, k, n = 2.0, 3.0, 7, 12
    status = [0] * k + [1] * (n - k)
    lo = [2.0] * k + [1.0] * (n - k)
    hi = [3.0] * k + [2.0] * (n - k)
    result = fit_arrays(
        cases("pipeline", status, lo, hi), priors({"pipeline": ("Beta", a, b)}), FAST
    )
    i = PROJECT_CATEGORIES.index("pipeline")
    p = 1.0 / (1.0 + np.exp(-result.draws["eta"][:, i]))
    exact = stats.beta(a + k, b + n - k)
    ess = float(diagnose(result.idata).min_ess_bulk)
    se = exact.std() / np.sqrt(ess)
    assert abs(p.mean() - exact.mean()) < 4 * se, (p.mean(), exact.mean(), se)
    assert p.std() == pytest.approx(exact.std(), rel=0.1)
    for q in (0.1, 0.5, 0.9):
        assert np.quantile(p, q) == pytest.approx(exact.ppf(q), abs=0.03)


def simulate_projects(rng, n, pi, lag_median, lag_sd, max_age, fail_median=3.0):
    """Announce ``n`` projects uniformly over ``max_age`` years before the cut-off.

    Successes reach the event after a LogNormal lag, failures are terminated after a
    LogNormal time: the model's own assumptions.
    """
    age = rng.uniform(0.5, max_age, n)
    success = rng.random(n) < pi
    lag = rng.lognormal(np.log(lag_median), lag_sd, n)
    fail_at = rng.lognormal(np.log(fail_median), 0.6, n)
    status = np.where(success, np.where(lag <= age, 0, 2), np.where(fail_at <= age, 1, 2))
    t = np.where(status == 0, lag, fail_at)
    lo = np.where(status < 2, np.floor(t), np.nan)
    hi = np.where(status < 2, np.floor(t) + 1.0, np.nan)
    return status, lo, hi, np.where(status == 2, age, np.nan)


def test_censoring_open_cases_are_not_failures():
    """Counting open cases as failures understates the rate; the model recovers it."""
    rng = np.random.default_rng(3)
    true_pi = 0.6
    status, lo, hi, age = simulate_projects(rng, 250, true_pi, 5.0, 0.4, 12.0)
    assert (status == 2).sum() > 40  # plenty of censoring in this example
    naive = (status == 0).mean()
    result = fit_arrays(cases("rail", status, lo, hi, age), priors(), FAST)
    i = PROJECT_CATEGORIES.index("rail")
    pi = 1.0 / (1.0 + np.exp(-result.draws["eta"][:, i]))
    lo94, hi94 = np.quantile(pi, [0.03, 0.97])
    assert lo94 <= true_pi <= hi94, (lo94, true_pi, hi94)
    assert naive < lo94, f"naive rate {naive:.2f} should sit below the model's interval"


def test_recovery_of_base_rates_and_strengths():
    """Simulated reference set with known base rates and evidence strengths."""
    rng = np.random.default_rng(7)
    truth_eta = {"pipeline": -0.4, "nuclear_plant_abroad": 0.8}
    truth_beta = {"implementation_milestone": 1.5, "delay_or_setback": 1.0}
    n = 400
    cats = rng.choice(list(truth_eta), n)
    x = np.zeros((n, len(KINDS)))
    mi, di = KINDS.index("implementation_milestone"), KINDS.index("delay_or_setback")
    x[:, mi] = (rng.random(n) < 0.4).astype(float)
    x[:, di] = -(rng.random(n) < 0.4).astype(float)
    eta = np.array([truth_eta[c] for c in cats]) + x[:, mi] * 1.5 + x[:, di] * 1.0
    pi = 1.0 / (1.0 + np.exp(-eta))
    age = rng.uniform(3.0, 25.0, n)
    success = rng.random(n) < pi
    lag = rng.lognormal(np.log(5.0), 0.5, n)
    fail_at = rng.lognormal(np.log(3.0), 0.6, n)
    status = np.where(success, np.where(lag <= age, 0, 2), np.where(fail_at <= age, 1, 2))
    t = np.where(status == 0, lag, fail_at)
    lo = np.where(status < 2, np.floor(t), np.nan)
    hi = np.where(status < 2, np.floor(t) + 1.0, np.nan)
    data = cases(
        [PROJECT_CATEGORIES.index(c) for c in cats],
        status,
        lo,
        hi,
        np.where(status == 2, age, np.nan),
        x,
    )
    result = fit_arrays(data, priors(), FAST)
    for c, true in truth_eta.items():
        draws = result.draws["eta"][:, PROJECT_CATEGORIES.index(c)]
        lo94, hi94 = np.quantile(draws, [0.03, 0.97])
        assert lo94 <= true <= hi94, f"eta[{c}]: truth {true} outside ({lo94:.2f}, {hi94:.2f})"
    for k, true in truth_beta.items():
        draws = result.draws["strength"][:, KINDS.index(k)]
        lo94, hi94 = np.quantile(draws, [0.03, 0.97])
        assert lo94 <= true <= hi94, f"strength[{k}]: truth {true} outside ({lo94:.2f}, {hi94:.2f})"
    for name, true in (("lag_log_median", np.log(5.0)), ("lag_log_sd", 0.5)):
        lo94, hi94 = np.quantile(result.draws[name], [0.03, 0.97])
        assert lo94 <= true <= hi94, f"{name}: truth {true:.2f} outside ({lo94:.2f}, {hi94:.2f})"


def test_gate_flags_an_unconverged_fit():
    """Twenty draws after ten tuning steps cannot reach ESS 400: the gate must say so."""
    status = [0, 1, 2, 0]
    bad = SamplerConfig(draws=20, tune=10, chains=2, sampler="pymc", seed=1, cores=1)
    result = fit_arrays(
        cases("hydro", status, [1, 2, np.nan, 3], [2, 3, np.nan, 4], [np.nan, np.nan, 5, np.nan]),
        priors(),
        bad,
    )
    report = diagnose(result.idata)
    assert not report.converged
    assert report.status == "unconverged"
    assert any("ESS" in p for p in report.problems)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_gate_flags_an_unidentified_model():
    """Two kinds that always occur together, with nearly flat strength priors.

    Only the sum of the two strengths is identified, and a Gamma(0.001, 0.001) prior is
    almost flat on the log scale, so each strength can drift towards zero (log towards
    minus infinity) without bound. The gate must report the fit as unconverged rather than
    let its scores through.
    """
    rng = np.random.default_rng(5)
    n = 60
    a, b = KINDS.index("financing_commitment"), KINDS.index("implementation_milestone")
    x = np.zeros((n, len(KINDS)))
    x[: n // 2, a] = x[: n // 2, b] = 1.0
    status = rng.choice([0, 1], n)
    t = rng.uniform(1.0, 8.0, n)
    flat = ("Gamma", {"alpha": 1e-3, "beta": 1e-3})  # nearly flat on the log scale
    result = fit_arrays(
        cases("pipeline", status, np.floor(t), np.floor(t) + 1.0, None, x),
        priors(strength={"financing_commitment": flat, "implementation_milestone": flat}),
        SamplerConfig(draws=500, tune=500, chains=2, sampler="pymc", seed=11, cores=1),
    )
    report = diagnose(result.idata)
    assert not report.converged, report
    assert any("strength" in p for p in report.problems), report.problems
