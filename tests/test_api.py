"""The public API end to end on the mini workspace, with a stored hand-made posterior."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import georisk
from georisk.diagnostics import DiagnosticsReport
from georisk.model import SamplerConfig
from georisk.posterior import Posterior, default_posterior_dir, fit_id_for, load_or_fit
from helpers import PROJECT_SCENARIO, TODAY, WINDOW_SCENARIO
from test_model_math import degenerate_posterior


def stored_posterior(ws, *, converged=True, n=64, seed=0) -> Posterior:
    """Store a posterior with random draws under the fit id of the default configuration."""
    rng = np.random.default_rng(seed)
    post = degenerate_posterior(n=n)
    post.draws["eta"] = rng.normal(0.0, 0.5, post.draws["eta"].shape)
    post.draws["eta_window"] = rng.normal(-0.8, 0.4, post.draws["eta_window"].shape)
    post.draws["strength"] = rng.gamma(3.0, 0.3, post.draws["strength"].shape)
    post.fit_id = fit_id_for(ws, config=SamplerConfig())
    if not converged:
        post.diagnostics = DiagnosticsReport(False, 1.3, 12.0, 9.0, 3, ["R-hat of eta is 1.300"])
    post.save(default_posterior_dir(ws))
    return post


@pytest.fixture
def ws(mini_workspace):
    return georisk.load_workspace(mini_workspace, today=TODAY)


def test_stored_posterior_is_reused_without_fitting(ws):
    saved = stored_posterior(ws)
    loaded, fitted = load_or_fit(ws)
    assert not fitted
    assert loaded.fit_id == saved.fit_id
    for key, value in saved.draws.items():
        np.testing.assert_array_equal(loaded.draws[key], value)


def test_tampered_draws_are_refused(ws):
    saved = stored_posterior(ws)
    npz = default_posterior_dir(ws) / saved.fit_id / "draws.npz"
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(georisk.errors.StoreError, match="do not match"):
        load_or_fit(ws)


def test_score_table_has_everything_a_memo_needs(ws):
    post = stored_posterior(ws)
    scores = georisk.score(ws, post, as_of=TODAY)
    assert set(scores["scenario_id"]) == {PROJECT_SCENARIO, WINDOW_SCENARIO}
    row = scores.set_index("scenario_id").loc[PROJECT_SCENARIO]
    assert row["p_q0.025"] <= row["p_q0.10"] <= row["p_median"] <= row["p_q0.90"]
    assert row["p_q0.90"] <= row["p_q0.975"]
    assert 0.0 < row["p_mean"] < 1.0
    assert row["fit_id"] == post.fit_id and row["diagnostics"] == "converged"
    assert row["icd203"] == georisk.scoring.icd203_band(row["p_mean"])
    assert "learned" in row["strengths"] or "prior only" in row["strengths"]


def test_contributions_sum_to_the_score_for_every_scenario(ws):
    post = stored_posterior(ws)
    run = georisk.score_run(ws, post, as_of=TODAY)
    for sid, draws in run.draws.items():
        np.testing.assert_allclose(draws["terms"].sum(axis=0), draws["logodds"], atol=1e-12)
        table = run.contributions[run.contributions["scenario_id"] == sid]
        weighted = np.average(draws["logodds"], weights=draws["weight"])
        assert table["logodds_mean"].sum() == pytest.approx(weighted, abs=1e-12)


def test_same_inputs_give_identical_scores(ws):
    post = stored_posterior(ws)
    a = georisk.score(ws, post, as_of=TODAY)
    b = georisk.score(ws, load_or_fit(ws)[0], as_of=TODAY)
    assert a.equals(b)


def test_as_of_excludes_later_indicators(ws):
    post = stored_posterior(ws)
    before = georisk.score_run(ws, post, as_of=dt.date(2024, 5, 26))
    after = georisk.score_run(ws, post, as_of=dt.date(2024, 6, 30))
    events_before = set(before.contributions.query("term_type == 'event'")["term"])
    events_after = set(after.contributions.query("term_type == 'event'")["term"])
    assert "ev-uzb-npp-deal" not in events_before
    assert "ev-uzb-npp-deal" in events_after


def test_unconverged_fit_is_marked_on_every_row(ws):
    post = stored_posterior(ws, converged=False)
    scores = georisk.score(ws, post, as_of=TODAY)
    assert (scores["diagnostics"] == "unconverged").all()


def test_two_reports_of_one_event_count_as_one(ws):
    post = stored_posterior(ws)
    run = georisk.score_run(ws, post, as_of=TODAY)
    deal = run.contributions.query("term == 'ev-uzb-npp-deal'").iloc[0]
    assert deal["indicator_ids"] == "ind-001;ind-002"
    w = ws.priors
    r1 = w["weight.reliability.B"].value * w["weight.credibility.2"].value  # ind-001
    r2 = w["weight.reliability.C"].value * w["weight.credibility.1"].value  # ind-002
    assert deal["confidence"] == pytest.approx(1 - (1 - r1) * (1 - r2), rel=1e-12)


def test_prior_posterior_scores_every_scenario(ws):
    prior = georisk.prior_posterior(ws, draws=500, seed=1)
    assert prior.fit_id == "prior" and prior.n_draws == 500
    scores = georisk.score(ws, prior, as_of=TODAY)
    assert scores["p_mean"].between(0, 1).all()
    again = georisk.score(ws, georisk.prior_posterior(ws, draws=500, seed=1), as_of=TODAY)
    assert scores.equals(again)
