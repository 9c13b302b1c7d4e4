"""Exact, analytic checks of the evidence weights and the scoring maths (no MCMC)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from georisk.diagnostics import DiagnosticsReport
from georisk.evidence import (
    KINDS,
    EvidenceWeights,
    Report,
    aggregate_events,
    event_confidence,
    fade,
    period_midpoint,
)
from georisk.model_data import (
    PROJECT_CATEGORIES,
    WINDOW_CATEGORIES,
    case_data,
    scenario_evidence,
)
from georisk.posterior import Posterior
from georisk.schemas import ReferenceCase, Scenario
from georisk.scoring import (
    expit,
    icd203_band,
    lag_cdf,
    logit,
    project_probability,
    project_terms,
    scenario_draws,
    weighted_summary,
    window_probability,
)

AS_OF = dt.date(2026, 11, 25)
LOG5 = float(np.log(5.0))
WEIGHTS = EvidenceWeights(
    reliability={"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.5},
    credibility={1: 1.0, 2: 0.8, 3: 0.6, 4: 0.3, 5: 0.1, 6: 0.5},
    half_life_days={k: (np.inf if k == "implementation_milestone" else 365.0) for k in KINDS},
)


def degenerate_posterior(
    *, eta=0.0, eta_window=0.0, strength=1.0, lag_mu=LOG5, lag_sd=0.5, n=4
) -> Posterior:
    """A posterior whose draws are all equal: scores become exact closed-form numbers."""
    strengths = np.broadcast_to(np.asarray(strength, dtype=float), (len(KINDS),))
    return Posterior(
        fit_id="degenerate",
        draws={
            "eta": np.full((n, len(PROJECT_CATEGORIES)), eta, dtype=float),
            "eta_window": np.full((n, len(WINDOW_CATEGORIES)), eta_window, dtype=float),
            "strength": np.tile(strengths, (n, 1)),
            "lag_log_median": np.full(n, lag_mu),
            "lag_log_sd": np.full(n, lag_sd),
            "term_log_median": np.full(n, np.log(4.0)),
            "term_log_sd": np.full(n, 0.6),
            "rho": np.full(n, 0.5),
        },
        diagnostics=DiagnosticsReport(True, 1.0, 4000.0, 4000.0, 0),
    )


def window_scenario(horizon=dt.date(2027, 11, 25)) -> Scenario:
    return Scenario(
        id="test-window",
        title="A test window scenario",
        proposition="Something happens at least once in the window.",
        resolution_criteria="Resolves yes if a qualifying event is reported by a wire service.",
        reference_class="export_route_disruption",
        window_start=AS_OF,
        opened=AS_OF,
        horizon=horizon,
    )


def project_scenario(announced=dt.date(2022, 11, 25), horizon=dt.date(2030, 12, 31)) -> Scenario:
    return Scenario(
        id="test-project",
        title="A test project scenario",
        proposition="The project reaches its event by the horizon.",
        resolution_criteria="Resolves yes if the operator announces the event before the horizon.",
        reference_class="bilateral_portfolio",
        announced=announced,
        opened=AS_OF,
        horizon=horizon,
    )


def report(event_id="e1", kind="financing_commitment", sign=1, date=AS_OF, reliability=0.8, n=1):
    return Report(
        indicator_id=f"{event_id}-r{n}",
        event_id=event_id,
        kind=kind,
        sign=sign,
        event_date=date,
        known_date=date,
        reliability=reliability,
    )


# --- evidence weights ------------------------------------------------------------------


def test_event_confidence_is_noisy_or():
    assert event_confidence([0.8]) == pytest.approx(0.8)
    assert event_confidence([0.8, 0.5]) == pytest.approx(1 - 0.2 * 0.5)
    assert event_confidence([]) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        event_confidence([1.2])


def test_fade_half_life_and_no_fading():
    assert fade(365.0, 365.0) == pytest.approx(0.5)
    assert fade(730.0, 365.0) == pytest.approx(0.25)
    assert fade(10_000.0, np.inf) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="negative age"):
        fade(-1.0, 365.0)


def test_period_end():
    from georisk.evidence import period_end

    assert period_end(dt.date(2024, 5, 1), "month") == dt.date(2024, 5, 31)
    assert period_end(dt.date(2024, 12, 1), "month") == dt.date(2024, 12, 31)
    assert period_end(dt.date(2024, 2, 1), "month") == dt.date(2024, 2, 29)
    assert period_end(dt.date(2024, 1, 1), "year") == dt.date(2024, 12, 31)
    assert period_end(dt.date(2024, 5, 27), "day") == dt.date(2024, 5, 27)


def test_period_midpoint():
    assert period_midpoint(dt.date(2024, 5, 1), "month") == dt.date(2024, 5, 15)
    assert period_midpoint(dt.date(2024, 1, 1), "year") == dt.date(2024, 7, 1)
    assert period_midpoint(dt.date(2024, 5, 27), "day") == dt.date(2024, 5, 27)


def test_reports_of_one_event_count_once():
    reports = [report(n=1), report(n=2)]
    (event,) = aggregate_events(reports, as_of=AS_OF, weights=WEIGHTS)
    assert event.indicator_ids == ("e1-r1", "e1-r2")
    assert event.confidence == pytest.approx(1 - 0.2**2)


def test_future_reports_are_ignored():
    later = AS_OF + dt.timedelta(days=1)
    events = aggregate_events([report(date=later)], as_of=AS_OF, weights=WEIGHTS)
    assert events == []


# --- closed-form probabilities ---------------------------------------------------------


def test_soft_evidence_equals_exact_bayes_by_hand():
    """One report, strength log(4), reliability 0.8, exposure one year, age 0.

    Posterior odds = prior odds x 4 ** 0.8 (a likelihood ratio of 4 tempered by the
    report's reliability), computed here by hand.
    """
    prior_p = 0.3
    posterior = degenerate_posterior(eta_window=np.log(prior_p / (1 - prior_p)), strength=np.log(4))
    ev = scenario_evidence(
        window_scenario(), [report(reliability=0.8)], as_of=AS_OF, weights=WEIGHTS
    )
    exposure = 365 / 365.25  # 2026-11-25 to 2027-11-25 in years of 365.25 days
    assert ev.exposure == pytest.approx(exposure, rel=1e-12)
    d = scenario_draws(ev, posterior)
    odds = prior_p / (1 - prior_p) * 4**0.8
    annual = odds / (1 + odds)
    assert d["p"][0] == pytest.approx(1 - (1 - annual) ** exposure, rel=1e-12)
    assert d["p_base"][0] == pytest.approx(1 - (1 - prior_p) ** exposure, rel=1e-12)


def test_project_probability_closed_form():
    pi, mu, sd, tmu, tsd, a, h = 0.6, np.log(5.0), 0.5, np.log(4.0), 0.7, 3.0, 8.0
    from math import erf, log, sqrt

    def cdf(t, m, s):
        return 0.5 * (1 + erf((log(t) - m) / (s * sqrt(2))))

    still_open = (1 - pi) * (1 - cdf(a, tmu, tsd)) + pi * (1 - cdf(a, mu, sd))
    expected = pi * (cdf(h, mu, sd) - cdf(a, mu, sd)) / still_open
    args = [np.array([v]) for v in (mu, sd, tmu, tsd)]
    got = project_probability(np.array([logit(pi)]), a, h, *args)
    assert got[0] == pytest.approx(expected, rel=1e-12)
    # long horizon, age 0: all of the eventual probability
    got = project_probability(np.array([logit(pi)]), 0.0, 1e6, *args)
    assert got[0] == pytest.approx(pi, rel=1e-9)


def test_score_conditions_on_the_scenario_still_being_open():
    """Two draws that disagree on the lag: the one under which 'still open after 8 years'
    is likely must count more. By hand, the posterior predictive is the ratio of averages
    sum(P(open at a and done by H)) / sum(P(open at a)), not the average of the ratios."""
    from math import erf, log, sqrt

    def cdf(t, m, s):
        return 0.5 * (1 + erf((log(t) - m) / (s * sqrt(2))))

    pi, a, h, tmu, tsd = 0.6, 8.0, 10.0, np.log(4.0), 0.6
    num, den = [], []
    for mu in (np.log(2.0), np.log(12.0)):  # fast draw, slow draw
        still_open = (1 - pi) * (1 - cdf(a, tmu, tsd)) + pi * (1 - cdf(a, mu, 0.4))
        num.append(pi * (cdf(h, mu, 0.4) - cdf(a, mu, 0.4)))
        den.append(still_open)
    expected = sum(num) / sum(den)
    args = [np.log([2.0, 12.0]), np.array([0.4, 0.4]), np.full(2, tmu), np.full(2, tsd)]
    n, d = project_terms(np.full(2, logit(pi)), a, h, *args)
    summary = weighted_summary(n / d, d)
    assert summary["mean"] == pytest.approx(expected, rel=1e-12)
    assert summary["mean"] != pytest.approx(np.mean(n / d), rel=1e-3)


def test_window_scenario_weights_draws_by_no_event_so_far():
    posterior = degenerate_posterior(n=2)
    posterior.draws["eta_window"] = np.array([[logit(0.1)], [logit(0.6)]])
    sc = window_scenario(horizon=dt.date(2027, 11, 25))
    later = AS_OF + dt.timedelta(days=180)
    ev = scenario_evidence(sc, [], as_of=later, weights=WEIGHTS)
    d = scenario_draws(ev, posterior)
    # proportional to the likelihood of no event so far, the largest scaled to 1
    np.testing.assert_allclose(d["weight"], [1.0, (0.4 / 0.9) ** ev.elapsed], rtol=1e-12)
    assert ev.elapsed == pytest.approx(180 / 365.25)


def test_window_weights_do_not_underflow_after_a_long_quiet_spell():
    # 40 quiet years with pi near 1: (1 - pi)^40 underflows float64 for every draw; the
    # scaled weights keep the ratios, and the score is still defined.
    posterior = degenerate_posterior(n=2)
    posterior.draws["eta_window"] = np.array([[30.0], [31.0]])
    sc = window_scenario(horizon=dt.date(2027, 11, 25))
    ev = scenario_evidence(sc, [], as_of=AS_OF, weights=WEIGHTS)
    ev = dataclasses.replace(ev, elapsed=40.0)
    d = scenario_draws(ev, posterior)
    softplus = np.logaddexp(0.0, [30.0, 31.0])
    np.testing.assert_allclose(d["weight"], np.exp(-40.0 * (softplus - softplus[0])), rtol=1e-9)
    assert np.isfinite(weighted_summary(d["p"], d["weight"])["mean"])


def test_window_probability_scales_with_exposure():
    p = 0.2
    assert window_probability(np.array([logit(p)]), 1.0)[0] == pytest.approx(p)
    assert window_probability(np.array([logit(p)]), 2.0)[0] == pytest.approx(1 - 0.8**2)
    assert window_probability(np.array([logit(p)]), 0.0)[0] == pytest.approx(0.0)


def test_lag_cdf_zero_before_announcement():
    assert lag_cdf(0.0, np.array([1.0]), np.array([0.5]))[0] == 0.0


def test_expit_logit_roundtrip_and_extremes():
    x = np.array([-800.0, -5.0, 0.0, 5.0, 800.0])
    p = expit(x)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(logit(expit(x[1:4])), x[1:4], rtol=1e-12)


def test_contributions_sum_exactly_draw_by_draw():
    rng = np.random.default_rng(0)
    n = 200
    posterior = degenerate_posterior(n=n)
    posterior.draws["eta"] = rng.normal(-0.5, 0.7, (n, len(PROJECT_CATEGORIES)))
    posterior.draws["strength"] = rng.gamma(2.0, 0.5, (n, len(KINDS)))
    posterior.draws["lag_log_median"] = rng.normal(1.6, 0.3, n)
    reports = [
        report("e1", "financing_commitment", 1, dt.date(2025, 1, 1)),
        report("e2", "russian_pressure", -1, dt.date(2026, 3, 1), reliability=0.5),
        report("e2", "russian_pressure", -1, dt.date(2026, 3, 2), reliability=0.6, n=2),
        report("e3", "implementation_milestone", 1, dt.date(2024, 6, 1)),
    ]
    ev = scenario_evidence(project_scenario(), reports, as_of=AS_OF, weights=WEIGHTS)
    d = scenario_draws(ev, posterior)
    assert d["terms"].shape == (2 + 3, n)
    np.testing.assert_allclose(d["terms"].sum(axis=0), d["logodds"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(expit(d["logodds"]), d["p"], rtol=1e-12)


# --- monotonicity ----------------------------------------------------------------------

reliabilities = st.floats(min_value=0.05, max_value=1.0)
ages = st.integers(min_value=0, max_value=3000)
kinds = st.sampled_from(KINDS)


def p_with(reports, scenario=None, as_of=AS_OF, **kw):
    scenario = scenario or project_scenario()
    ev = scenario_evidence(scenario, reports, as_of=as_of, weights=WEIGHTS)
    return float(scenario_draws(ev, degenerate_posterior(**kw))["p"][0])


@settings(max_examples=60, deadline=None)
@given(r=reliabilities, age=ages, kind=kinds, eta=st.floats(-4, 4))
def test_support_never_lowers_and_opposition_never_raises(r, age, kind, eta):
    date = AS_OF - dt.timedelta(days=age)
    base = p_with([], eta=eta)
    up = p_with([report(kind=kind, sign=1, date=date, reliability=r)], eta=eta)
    down = p_with([report(kind=kind, sign=-1, date=date, reliability=r)], eta=eta)
    assert up >= base >= down


@settings(max_examples=60, deadline=None)
@given(r1=reliabilities, r2=reliabilities, age=ages, kind=kinds)
def test_more_reliable_source_moves_at_least_as_far(r1, r2, age, kind):
    lo, hi = sorted((r1, r2))
    date = AS_OF - dt.timedelta(days=age)
    base = p_with([])
    move_lo = p_with([report(kind=kind, date=date, reliability=lo)]) - base
    move_hi = p_with([report(kind=kind, date=date, reliability=hi)]) - base
    assert move_hi >= move_lo - 1e-15


@settings(max_examples=60, deadline=None)
@given(a1=ages, a2=ages, r=reliabilities)
def test_older_fading_evidence_moves_less(a1, a2, r):
    young, old = sorted((a1, a2))
    base = p_with([])
    kind = "russian_pressure"  # fades (half-life 365 days here)

    def move(age):
        return (
            p_with([report(kind=kind, date=AS_OF - dt.timedelta(days=age), reliability=r)]) - base
        )

    assert move(old) <= move(young) + 1e-15


def test_milestones_do_not_fade():
    kind = "implementation_milestone"
    recent = p_with([report(kind=kind, date=AS_OF)])
    old = p_with([report(kind=kind, date=AS_OF - dt.timedelta(days=3000))])
    assert recent == pytest.approx(old, rel=1e-12)


@pytest.mark.parametrize("r", [0.2, 0.5, 0.8])
def test_duplicate_reports_move_less_than_distinct_events(r):
    base = p_with([])
    same_event = p_with([report("e1", reliability=r, n=1), report("e1", reliability=r, n=2)])
    two_events = p_with([report("e1", reliability=r), report("e2", reliability=r)])
    assert base < same_event < two_events


def test_indicator_after_as_of_has_no_effect():
    later = AS_OF + dt.timedelta(days=10)
    r = Report("late", "late", "financing_commitment", 1, later, later, 1.0)
    assert p_with([r]) == p_with([])
    assert p_with([r], as_of=later) > p_with([], as_of=later)


def test_nearer_horizon_lowers_project_probability():
    far = p_with([], scenario=project_scenario(horizon=dt.date(2032, 1, 1)))
    near = p_with([], scenario=project_scenario(horizon=dt.date(2027, 1, 1)))
    assert near < far


# --- ICD 203 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "words"),
    [
        (0.01, "almost no chance"),
        (0.05, "very unlikely"),
        (0.19, "very unlikely"),
        (0.2, "unlikely"),
        (0.5, "roughly even chance"),
        (0.55, "likely"),
        (0.9, "very likely"),
        (0.97, "almost certain"),
        (1.0, "almost certain"),
    ],
)
def test_icd203_bands(p, words):
    assert icd203_band(p) == words


def test_icd203_rejects_non_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        icd203_band(1.2)


# --- reference-case arrays -------------------------------------------------------------


def make_case(case_id, outcome, resolved=None, last=dt.date(2025, 1, 1), verified=True, **kw):
    return ReferenceCase(
        case_id=case_id,
        name=f"Case {case_id}",
        category=kw.get("category", "pipeline"),
        region="Central Asia",
        announced=kw.get("announced", dt.date(2010, 1, 1)),
        announced_precision="year",
        resolved=resolved,
        resolved_precision="year",
        last_observed=last,
        outcome=outcome,
        russia_involved=True,
        outcome_definition="first flows through the line",
        source="Test source (2025) 'A title'",
        verified=verified,
    )


def test_case_data_censoring_and_intervals():
    cases = [
        make_case("a", "materialised", dt.date(2014, 1, 1)),
        make_case("b", "not_materialised", dt.date(2016, 1, 1)),
        make_case("c", "ongoing", last=dt.date(2025, 7, 1)),
        make_case("d", "materialised", dt.date(2012, 1, 1), verified=False),
    ]
    data = case_data(cases, [], WEIGHTS)
    assert data.case_ids == ("a", "b", "c")
    np.testing.assert_array_equal(data.status, [0, 1, 2])
    # year precision at both ends: lag 4 +- 1 year
    assert data.lag_lower[0] == pytest.approx(3.0, abs=0.01)
    assert data.lag_upper[0] == pytest.approx(5.0, abs=0.01)
    assert data.age[2] == pytest.approx(15.0, abs=0.01)
    assert case_data(cases, [], WEIGHTS, include_unverified=True).n_project == 4


def test_case_data_as_of_censors_later_resolutions():
    cases = [make_case("a", "materialised", dt.date(2014, 1, 1))]
    data = case_data(cases, [], WEIGHTS, as_of=dt.date(2013, 1, 1))
    assert data.status.tolist() == [2]
    assert data.age[0] == pytest.approx(2.5, abs=0.01)
    assert case_data(cases, [], WEIGHTS, as_of=dt.date(2009, 6, 1)).n_project == 0


def test_normal_cdf_matches_scipy_in_both_tails():
    from scipy.special import ndtr

    from georisk.scoring import normal_cdf

    # down to Phi(-37) ~ 6e-300 (below that both underflow to subnormals)
    z = np.concatenate([np.linspace(-37, 8, 2001), [0.0, -1e-300, 1e-12]])
    np.testing.assert_allclose(normal_cdf(z), ndtr(z), rtol=1e-12, atol=0)
    assert normal_cdf(np.array([[0.0]])).shape == (1, 1)


def test_project_terms_keep_relative_precision_in_the_far_tails():
    # 1 - pi and the survival functions are formed directly, never as 1 - x: for an old
    # open project with a very high logit both are far below float64's epsilon, and the
    # probability and the status likelihood are ratios of them. Oracle: scipy.
    from scipy.special import expit as sp_expit
    from scipy.special import ndtr

    eta = np.array([38.0, 25.0, -30.0, 0.5])
    age, horizon = 60.0, 61.0
    mu, sd = np.full(4, np.log(3.0)), np.full(4, 0.4)
    tmu, tsd = np.full(4, np.log(5.0)), np.full(4, 0.3)
    num, den = project_terms(eta, age, horizon, mu, sd, tmu, tsd)
    s_a = ndtr(-(np.log(age) - mu) / sd)
    s_h = ndtr(-(np.log(horizon) - mu) / sd)
    r_a = ndtr(-(np.log(age) - tmu) / tsd)
    want_den = sp_expit(-eta) * r_a + sp_expit(eta) * s_a
    want_num = sp_expit(eta) * (s_a - s_h)
    assert np.all(want_den > 0) and np.all(want_den < 1e-10)  # far below 1 - epsilon
    np.testing.assert_allclose(den, want_den, rtol=1e-12)
    np.testing.assert_allclose(num, want_num, rtol=1e-9)
    # -log(1 - pi) without cancellation: at eta = 40, 1 - expit(eta) rounds to 0
    from georisk.scoring import softplus

    eta = np.array([40.0, 37.0, 0.0, -37.0, -800.0, 800.0])
    np.testing.assert_allclose(softplus(eta), np.logaddexp(0.0, eta), rtol=1e-15)
