"""Scoring rules against reference libraries, hand-worked cases and their own identities."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import properscoring as ps
import pytest
import scoringrules as sr
from typer.testing import CliRunner

from georisk.cli import app
from georisk.metrics import (
    bootstrap,
    brier_decomposition,
    brier_score,
    brier_skill_score,
    check_forecasts,
    evaluate,
    log_score,
    read_forecast_csv,
    reliability_table,
    roc_auc,
    score_table,
    wilson_interval,
)


@pytest.fixture(params=[0, 1, 7, 42])
def random_table(request):
    rng = np.random.default_rng(request.param)
    n = int(rng.integers(20, 400))
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    return p, y


# -- hand-worked cases ------------------------------------------------------------------------


def test_brier_hand_worked():
    # (0.8 - 1)^2 = 0.04, (0.3 - 0)^2 = 0.09, mean 0.065
    assert brier_score([0.8, 0.3], [1, 0]) == pytest.approx(0.065, abs=1e-15)


def test_log_hand_worked():
    # -(log 0.8 + log 0.7) / 2
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert log_score([0.8, 0.3], [1, 0]) == pytest.approx(expected, abs=1e-15)
    assert log_score([0.5, 0.5], [1, 0]) == pytest.approx(math.log(2), abs=1e-15)


def test_brier_skill_hand_worked():
    # climatology 0.5 on [1, 0] has Brier 0.25; 1 - 0.065/0.25 = 0.74
    assert brier_skill_score([0.8, 0.3], [1, 0], 0.5) == pytest.approx(0.74, abs=1e-12)
    assert brier_skill_score([0.8, 0.3], [1, 0]) == pytest.approx(0.74, abs=1e-12)
    assert math.isnan(brier_skill_score([0.8, 0.3], [1, 0], [1.0, 0.0]))


def test_auc_hand_worked():
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5], [1, 0, 1]) == 0.5  # all ties
    # pairs (e, n): (0.6, 0.6) tie -> 1/2, (0.6, 0.2) -> 1, (0.9, 0.6) -> 1, (0.9, 0.2) -> 1
    assert roc_auc([0.6, 0.9, 0.6, 0.2], [1, 1, 0, 0]) == pytest.approx(3.5 / 4)
    assert math.isnan(roc_auc([0.2, 0.3], [1, 1]))


# -- against reference libraries --------------------------------------------------------------


def test_brier_equals_scoringrules_and_properscoring(random_table):
    p, y = random_table
    ours = brier_score(p, y)
    assert ours == pytest.approx(float(np.mean(sr.brier_score(obs=y, fct=p))), abs=1e-12)
    assert ours == pytest.approx(float(np.mean(ps.brier_score(y, p))), abs=1e-12)


def test_log_score_equals_scoringrules(random_table):
    p, y = random_table
    p = np.clip(p, 1e-9, 1 - 1e-9)
    ref = float(np.mean(sr.log_score(obs=y, fct=p)))
    assert log_score(p, y) == pytest.approx(ref, rel=1e-9)


def test_auc_equals_brute_force_pair_count(random_table):
    p, y = random_table
    p = np.round(p, 1)  # many ties
    pos, neg = p[y == 1], p[y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg))
    assert roc_auc(p, y) == pytest.approx(wins / (pos.size * neg.size), abs=1e-12)


# -- decomposition -----------------------------------------------------------------------------


def test_decomposition_identity_is_exact(random_table):
    p, y = random_table
    for bins in (10, 5, [0, 0.1, 0.5, 0.9, 1.0]):
        d = brier_decomposition(p, y, bins=bins)
        assert d.brier == pytest.approx(brier_score(p, y), abs=1e-15)
        total = d.reliability - d.resolution + d.uncertainty + d.within_bin
        assert total == pytest.approx(d.brier, abs=1e-12)
        # Stephenson et al. (2008): the residual is the two within-bin terms
        assert d.within_bin == pytest.approx(
            d.within_bin_variance + d.within_bin_covariance, abs=1e-12
        )
        assert d.uncertainty == pytest.approx(y.mean() * (1 - y.mean()))


def test_decomposition_without_residual_when_forecasts_take_bin_values():
    rng = np.random.default_rng(5)
    p = rng.choice([0.05, 0.25, 0.55, 0.85], 300)  # one value per 10-bin
    y = (rng.random(300) < p).astype(int)
    for bins in (10, None):
        d = brier_decomposition(p, y, bins=bins)
        assert abs(d.within_bin) < 1e-14
        assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier, abs=1e-14)


def test_decomposition_of_a_perfect_forecaster():
    d = brier_decomposition([1.0, 0.0, 1.0], [1, 0, 1], bins=None)
    assert d.brier == 0 and d.reliability == 0
    assert d.resolution == pytest.approx(d.uncertainty)


# -- reliability table and intervals -----------------------------------------------------------


def test_reliability_table_counts_and_bins():
    p = [0.0, 0.05, 0.15, 0.95, 1.0, 1.0]
    y = [0, 0, 1, 1, 1, 0]
    t = reliability_table(p, y, bins=10)
    assert list(t.columns) == [
        "bin", "bin_lower", "bin_upper", "count", "events", "mean_forecast",
        "observed_frequency", "ci_lower", "ci_upper",
    ]  # fmt: skip
    assert t["count"].sum() == 6
    assert t.loc[0, "count"] == 2 and t.loc[1, "count"] == 1 and t.loc[9, "count"] == 3
    assert t.loc[9, "observed_frequency"] == pytest.approx(2 / 3)
    assert t.loc[9, "mean_forecast"] == pytest.approx((0.95 + 2) / 3)
    assert np.isnan(t.loc[4, "mean_forecast"]) and t.loc[4, "count"] == 0
    assert (t["ci_lower"].dropna() <= t["observed_frequency"].dropna()).all()


def test_wilson_interval_known_values():
    # Wilson 95% for 5/10: centre 0.5, half-width z*sqrt(.025+z^2/400)/(1+z^2/10)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2365931, abs=1e-6)
    assert hi == pytest.approx(0.7634069, abs=1e-6)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611251, abs=1e-6)
    lo, hi = wilson_interval(np.array([3]), np.array([0]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])


def test_wilson_coverage_by_simulation():
    rng = np.random.default_rng(11)
    n, true = 30, 0.2
    k = rng.binomial(n, true, 4000)
    lo, hi = wilson_interval(k, np.full(k.size, n), 0.9)
    cover = np.mean((lo <= true) & (true <= hi))
    assert 0.86 <= cover <= 0.95


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_covers_the_estimate(random_table):
    p, y = random_table
    a = bootstrap(brier_score, p, y, n_resamples=300, rng=np.random.default_rng(3))
    b = bootstrap(brier_score, p, y, n_resamples=300, rng=np.random.default_rng(3))
    assert a == b
    assert a.lower <= a.estimate <= a.upper
    assert a.n_valid == 300
    # the bootstrap se of a mean is close to its analytic standard error
    se = np.std((p - y) ** 2, ddof=1) / np.sqrt(p.size)
    assert a.se == pytest.approx(se, rel=0.25)


def test_bootstrap_drops_undefined_replicates():
    p = np.array([0.9, 0.1, 0.2, 0.3])
    y = np.array([1, 0, 0, 0])
    res = bootstrap(roc_auc, p, y, n_resamples=200, rng=np.random.default_rng(0))
    assert res.n_valid < 200  # resamples without the one event have no AUC
    assert res.estimate == 1.0


def test_score_table_has_every_score():
    rng = np.random.default_rng(2)
    p = rng.random(100)
    y = (rng.random(100) < p).astype(int)
    t = score_table(p, y, reference=0.5, n_resamples=100, rng=np.random.default_rng(0))
    assert set(t["score"]) == {
        "n", "base_rate", "brier", "log", "bss", "auc", "reliability", "resolution",
        "uncertainty",
    }  # fmt: skip
    row = t.set_index("score").loc["bss"]
    assert row["lower"] <= row["estimate"] <= row["upper"]


# -- errors ------------------------------------------------------------------------------------


def test_invalid_inputs_name_the_positions():
    with pytest.raises(ValueError, match=r"position\(s\) 1"):
        brier_score([0.2, 1.2], [0, 1])
    with pytest.raises(ValueError, match="outcomes must be 0 or 1"):
        brier_score([0.2, 0.3], [0, 2])
    with pytest.raises(ValueError, match="same length"):
        check_forecasts([0.2], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        brier_score([np.nan], [1])


def test_log_score_refuses_certain_and_wrong_unless_clipped():
    with pytest.raises(ValueError, match=r"infinite log score\) at position\(s\) 0"):
        log_score([0.0, 0.5], [1, 0])
    assert log_score([1.0, 0.0], [1, 0]) == 0.0  # certain and right is fine
    clipped = log_score([0.0, 0.5], [1, 0], clip=1e-6)
    assert clipped == pytest.approx((-math.log(1e-6) + math.log(2)) / 2)
    with pytest.raises(ValueError, match="clip"):
        log_score([0.3], [1], clip=0.7)


# -- CSV and CLI -------------------------------------------------------------------------------


def test_read_forecast_csv_lists_every_problem(tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("p,y\n0.8,1\nabc,0\n1.5,1\n0.2,yes\n,0\n0.4,3\n")
    table, problems = read_forecast_csv(f)
    assert table.empty
    text = [str(p) for p in problems]
    assert text == [
        f"{f}:3 [p]: not a number: 'abc'.",
        f"{f}:4 [p]: must be a probability in [0, 1]. Got 1.5.",
        f"{f}:6 [p]: missing value.",
        f"{f}:7 [y]: outcome must be 0 or 1. Got '3'.",
    ]


def test_read_forecast_csv_missing_columns(tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("prob,outcome\n0.8,1\n")
    _, problems = read_forecast_csv(f, group_col="who")
    assert [p.field for p in problems] == ["p", "y", "who"]
    assert all(p.line == 1 for p in problems)


def test_evaluate_by_group(tmp_path):
    f = tmp_path / "f.csv"
    rng = np.random.default_rng(0)
    p = rng.random(60)
    pd.DataFrame({"p": p, "y": (rng.random(60) < p).astype(int),
                  "g": ["a", "b"] * 30}).to_csv(f, index=False)  # fmt: skip
    table, problems = read_forecast_csv(f, group_col="g")
    assert not problems
    out = evaluate(table, n_resamples=50)
    assert set(out["groups"]) == {"a", "b"}
    brier = {r["score"]: r["estimate"] for r in out["overall"]}["brier"]
    assert brier == pytest.approx(brier_score(table["p"], table["y"]))


def test_cli_evaluate_exit_codes_and_json(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("p,y\n0.5,1\n2,1\nx,0\n")
    res = runner.invoke(app, ["evaluate", str(bad)])
    assert res.exit_code == 2, res.output
    assert ":3 [p]" in res.output and ":4 [p]" in res.output and "2 problem(s)" in res.output
    good = tmp_path / "good.csv"
    good.write_text("prob,hit\n0.8,1\n0.3,0\n0.6,1\n0.1,0\n")
    res = runner.invoke(
        app,
        ["evaluate", str(good), "--forecast-col", "prob", "--outcome-col", "hit", "--json",
         "--resamples", "20"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    scores = {r["score"]: r["estimate"] for r in data["overall"]}
    assert scores["brier"] == pytest.approx((0.04 + 0.09 + 0.16 + 0.01) / 4)
    assert scores["auc"] == 1.0
    res = runner.invoke(app, ["evaluate", str(good), "--forecast-col", "prob",
                              "--outcome-col", "hit", "--resamples", "20"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Brier" in res.output and "Murphy decomposition" in res.output
