"""Prior sensitivity: power-scaling on a toy case, importance reweighting, the what-if table."""

from __future__ import annotations

import numpy as np
import pytest

from georisk.evidence import KINDS, EvidenceWeights
from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES, CaseData, PriorParameters
from georisk.sensitivity import (
    perturbations,
    power_scaling,
    prior_name_of,
    psis_weights,
    sensitivity_ranking,
    what_if,
)
from georisk.workspace import load_workspace


def test_prior_names_of_parameters():
    assert prior_name_of("eta[pipeline]") == "base_rate.pipeline"
    assert prior_name_of("eta_window[export_route_disruption]") == (
        "base_rate.export_route_disruption"
    )
    assert prior_name_of("strength[financing_commitment]") == "strength.financing_commitment"
    assert prior_name_of("term_log_sd") == "lag.termination_log_sd"
    assert prior_name_of("rho") == "pooling.rho"


def test_psis_weights_reweight_a_normal_to_a_shifted_normal():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 20_000)
    log_ratio = -0.5 * (x - 0.3) ** 2 + 0.5 * x**2  # N(0.3, 1) / N(0, 1)
    w, k = psis_weights(log_ratio)
    assert w.sum() == pytest.approx(1.0)
    assert k < 0.5
    assert float(w @ x) == pytest.approx(0.3, abs=0.03)
    w0, k0 = psis_weights(np.zeros(100))
    assert k0 == 0.0 and np.allclose(w0, 0.01)
    # a much narrower target is out of reach of the draws: k says so
    _, k_bad = psis_weights(-0.5 * (x - 3.0) ** 2 / 0.01 + 0.5 * x**2)
    assert k_bad > 0.7


def test_perturbations_follow_the_documented_sensitivity(mini_workspace, today):
    ws = load_workspace(mini_workspace, today=today)
    changes, none = perturbations(ws.priors)
    labels = {(c.prior, c.change) for c in changes}
    unperturbable = {n.split(" ", 1)[0] for n in none if "cannot perturb" in n}
    for name, spec in ws.priors.items():
        if name in unperturbable:
            assert spec.distribution.family not in ("Normal", "LogitNormal", "Gamma", "Beta")
            continue
        if spec.distribution is not None:
            assert (name, "widen") in labels
        if spec.sensitivity.shift != 0:
            assert (name, "shift") in labels
        if spec.distribution is None and spec.sensitivity.shift == 0:
            assert name in none
    one = next(c for c in changes if c.change == "widen")
    assert one.specs[one.prior] != ws.priors[one.prior]
    assert all(one.specs[k] is ws.priors[k] for k in ws.priors if k != one.prior)


def test_what_if_by_reweighting_prior_draws(mini_workspace, today):
    """With prior draws as the 'posterior', reweighting gives the perturbed prior's answer."""
    import dataclasses

    from georisk.diagnostics import DiagnosticsReport
    from georisk.model import prior_predictive_draws
    from georisk.model_data import prior_parameters
    from georisk.posterior import Posterior
    from georisk.priors import perturb

    ws = load_workspace(mini_workspace, today=today)
    name = "base_rate.export_route_disruption"
    spec = ws.priors[name]
    # make the documented change a clear shift down
    ws = dataclasses.replace(
        ws, priors={**ws.priors,
                    name: spec.model_copy(update={"sensitivity": spec.sensitivity.model_copy(
                        update={"shift": -1.0})})},
    )  # fmt: skip
    draws = prior_predictive_draws(prior_parameters(ws.priors), 8000, np.random.default_rng(1))
    diag = DiagnosticsReport(True, 1.0, 4000.0, 4000.0, 0)
    post = Posterior("prior-draws", draws, diag, meta={"sampler": {"chains": 4}})
    res = what_if(ws, post, as_of=today, refit=False)
    t = res.table
    assert set(t["scenario_id"]) == {"uzb-npp-first-concrete", "cpc-export-disruption-2027"}
    row = t[(t["prior"] == name) & (t["change"] == "shift -1")
            & (t["scenario_id"] == "cpc-export-disruption-2027")].iloc[0]  # fmt: skip
    assert row["method"] == "reweighted" and row["pareto_k"] < 0.7
    # exact answer: the window probability under the shifted prior, by fresh prior draws
    shifted = {**ws.priors, name: perturb(ws.priors[name], widen=1.0, shift=-1.0)}
    fresh = prior_predictive_draws(prior_parameters(shifted), 200_000, np.random.default_rng(2))
    window = ws.scenarios["cpc-export-disruption-2027"]
    exposure = (window.horizon - window.window_start).days / 365.25
    p = 1 / (1 + np.exp(-fresh["eta_window"][:, 0]))
    exact = float(np.mean(1 - (1 - p) ** exposure))
    assert row["p_new"] == pytest.approx(exact, abs=0.015)
    assert row["delta"] < -0.02
    # the project scenario does not depend on the window base rate
    other = t[(t["prior"] == name) & (t["scenario_id"] == "uzb-npp-first-concrete")]
    assert other["delta"].abs().max() < 0.02
    ranking = sensitivity_ranking(t)
    assert list(ranking["max_abs_delta"]) == sorted(ranking["max_abs_delta"], reverse=True)


@pytest.mark.slow
def test_power_scaling_flags_a_strong_prior_and_not_a_weak_one():
    """Toy case: 60 resolved cases in each of two categories; a very strong Beta(300, 300)
    prior on one, a flat Beta(1, 1) on the other. Only the strong one is prior-sensitive."""
    from georisk.diagnostics import diagnose
    from georisk.model import SamplerConfig, fit_arrays
    from georisk.posterior import Posterior

    weights = EvidenceWeights(
        reliability=dict.fromkeys("ABCDEF", 1.0),
        credibility=dict.fromkeys(range(1, 7), 1.0),
        half_life_days=dict.fromkeys(KINDS, np.inf),
    )
    base = {c: ("Beta", 2.0, 2.0) for c in PROJECT_CATEGORIES}
    base.update({"pipeline": ("Beta", 300.0, 300.0), "rail": ("Beta", 1.0, 1.0)})
    base.update({c: ("LogitNormal", 0.0, 1.5) for c in WINDOW_CATEGORIES})
    priors = PriorParameters(
        base_rate=base,
        rho=(2.0, 2.0),
        lag_log_median=("Normal", {"mu": np.log(5.0), "sigma": 0.5}),
        lag_log_sd=("Gamma", {"alpha": 8.0, "beta": 10.0}),
        term_log_median=("Normal", {"mu": np.log(3.0), "sigma": 0.7}),
        term_log_sd=("Gamma", {"alpha": 8.0, "beta": 10.0}),
        strength={k: ("Gamma", {"alpha": 2.0, "beta": 2.0}) for k in KINDS},
        weights=weights,
    )
    rng = np.random.default_rng(3)
    n = 120
    cat = np.repeat([PROJECT_CATEGORIES.index("pipeline"), PROJECT_CATEGORIES.index("rail")], 60)
    status = (rng.random(n) < 0.25).astype(int)  # 25% reach the event: 0; else terminated: 1
    status = 1 - status
    lo = rng.uniform(1.0, 6.0, n)
    data = CaseData(
        case_ids=tuple(f"c{i}" for i in range(n)), category=cat, status=status,
        lag_lower=lo, lag_upper=lo + 1.0, age=np.full(n, np.nan),
        x=np.zeros((n, len(KINDS))), window_case_ids=(), window_category=np.zeros(0, int),
        window_y=np.zeros(0, int), window_exposure=np.zeros(0),
    )  # fmt: skip
    cfg = SamplerConfig(draws=1000, tune=800, chains=2, sampler="pymc", cores=1, seed=4)
    result = fit_arrays(data, priors, cfg)
    post = Posterior("toy", result.draws, diagnose(result.idata), meta={"sampler": {"chains": 2}})
    table = power_scaling(post, data, priors).set_index("parameter")
    strong, weak = table.loc["eta[pipeline]"], table.loc["eta[rail]"]
    assert strong["prior_sensitivity"] > 0.05, table
    assert strong["prior_sensitive"]
    assert weak["prior_sensitivity"] < 0.05, table
    assert weak["likelihood_sensitivity"] > 0.05
    assert strong["prior"] == "base_rate.pipeline"


def test_cli_sensitivity_lists_priors_by_impact(mini_workspace, today, monkeypatch):
    import json

    from typer.testing import CliRunner

    import georisk.posterior as gp
    from georisk.cli import app
    from georisk.diagnostics import DiagnosticsReport
    from georisk.model import prior_predictive_draws
    from georisk.model_data import prior_parameters
    from georisk.posterior import Posterior

    ws = load_workspace(mini_workspace, today=today)
    draws = prior_predictive_draws(prior_parameters(ws.priors), 2000, np.random.default_rng(0))
    post = Posterior("prior-draws", draws, DiagnosticsReport(True, 1.0, 4e3, 4e3, 0),
                     meta={"sampler": {"chains": 2}})  # fmt: skip
    monkeypatch.setattr(gp, "load_or_fit", lambda ws, **kw: (post, False))
    args = ["sensitivity", str(mini_workspace), "--today", today.isoformat(), "--no-refit",
            "--no-psense", "--as-of", today.isoformat()]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "max abs change" in res.output and "base_rate." in res.output
    res = CliRunner().invoke(app, [*args, "--json", "--top", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    assert len(data["ranking"]) == 3
    deltas = [r["max_abs_delta"] for r in data["ranking"]]
    assert deltas == sorted(deltas, reverse=True)
