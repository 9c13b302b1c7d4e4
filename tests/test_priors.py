"""Tests of georisk.priors and of the priors shipped in priors/*.yaml."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from georisk import priors as gp
from georisk.errors import PriorSpecError, WorkspaceError
from georisk.schemas import PriorSpec
from georisk.vocab import (
    INDICATOR_KINDS,
    INFO_CREDIBILITY,
    REFERENCE_CATEGORIES,
    SOURCE_RELIABILITY,
)

ROOT = Path(__file__).resolve().parents[1]
PRIOR_FILES = {
    "base_rates.yaml", "pooling.yaml", "lag.yaml", "strengths.yaml", "weights.yaml",
    "half_lives.yaml",
}  # fmt: skip


def _load_specs() -> dict[str, PriorSpec]:
    """Tiny stand-in for the workspace loader: yaml.safe_load -> PriorSpec(**entry)."""
    specs: dict[str, PriorSpec] = {}
    for path in sorted((ROOT / "priors").glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        for entry in data["priors"]:
            spec = PriorSpec(**entry)
            assert spec.name not in specs, f"prior {spec.name} defined twice ({path.name})"
            specs[spec.name] = spec
    return specs


SPECS = _load_specs()
RANDOM = sorted(n for n, s in SPECS.items() if s.distribution is not None)


def _with_params(spec: PriorSpec, **params: float) -> PriorSpec:
    data = spec.model_dump()
    data["distribution"]["params"] = {**data["distribution"]["params"], **params}
    return PriorSpec.model_validate(data)


def _with_elicitation(spec: PriorSpec, method: str, inputs: dict[str, float]) -> PriorSpec:
    data = spec.model_dump()
    data["elicitation"].update(method=method, inputs=inputs)
    return PriorSpec.model_validate(data)


# ---------------------------------------------------------------------------------- the YAML


def test_all_prior_files_present():
    assert {p.name for p in (ROOT / "priors").glob("*.yaml")} >= PRIOR_FILES


@pytest.mark.parametrize("name", sorted(SPECS))
def test_elicitation_reproduces_stored_parameters(name):
    gp.check_elicitation(SPECS[name])


def test_every_vocabulary_entry_has_its_prior():
    expected = {f"base_rate.{c}" for c in REFERENCE_CATEGORIES}
    expected |= {f"strength.{k}" for k in INDICATOR_KINDS}
    expected |= {f"half_life.{k}" for k in INDICATOR_KINDS}
    expected |= {f"weight.reliability.{g}" for g in SOURCE_RELIABILITY}
    expected |= {f"weight.credibility.{g}" for g in INFO_CREDIBILITY}
    expected |= {"pooling.rho", "lag.log_median", "lag.log_sd"}
    # read by georisk.model_data.prior_parameters (time to termination of failed projects)
    expected |= {"lag.termination_log_median", "lag.termination_log_sd"}
    missing = sorted(expected - set(SPECS))
    unknown = sorted(set(SPECS) - expected)
    assert not missing, f"priors missing: {missing}"
    assert not unknown, f"priors not used by the model: {unknown}"


def test_families_and_methods_as_documented():
    for name, spec in SPECS.items():
        prefix = name.split(".")[0]
        family = spec.distribution.family if spec.distribution else None
        expected = {
            "base_rate": "LogitNormal",
            "pooling": "Beta",
            "strength": "Gamma",
            "weight": None,
            "half_life": None,
        }.get(prefix, family)
        assert family == expected, name
        if family is not None:
            assert spec.elicitation.method == "maxent", name
    assert SPECS["lag.log_median"].distribution.family == "Normal"
    assert SPECS["lag.log_sd"].distribution.family == "Gamma"
    assert SPECS["lag.termination_log_median"].distribution.family == "Normal"
    assert all(SPECS[f"half_life.{k}"].unit == "days" for k in INDICATOR_KINDS)
    assert math.isinf(SPECS["half_life.implementation_milestone"].value)


def test_fixed_weights_values():
    rel = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.5}
    cred = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.3, 5: 0.1, 6: 0.5}
    for g, v in rel.items():
        assert SPECS[f"weight.reliability.{g}"].value == v
    for g, v in cred.items():
        assert SPECS[f"weight.credibility.{g}"].value == v


def test_base_rate_rationales_say_cases_are_data():
    for c in REFERENCE_CATEGORIES:
        assert "reference_cases.csv" in SPECS[f"base_rate.{c}"].rationale, c


def test_every_reference_key_resolves():
    refs = gp.read_references(ROOT / "data" / "references.csv")
    unknown = sorted(
        f"{s.name} -> {k}" for s in SPECS.values() for k in s.references if k not in refs
    )
    assert not unknown, f"unknown reference keys: {unknown}"


def test_read_references_reports_duplicates(tmp_path):
    path = tmp_path / "references.csv"
    path.write_text(
        "ref_id,citation,url\n"
        "a-1,A citation long enough,\n"
        "a-1,Another citation long enough,https://example.org\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceError, match=r"references.csv:3 \[ref_id\]: duplicate"):
        gp.read_references(path)


# ------------------------------------------------------------------------ elicitation checks


def test_wrong_parameters_raise_with_name_and_values():
    spec = _with_params(SPECS["base_rate.pipeline"], mu=0.5)
    with pytest.raises(
        PriorSpecError, match=r"'base_rate\.pipeline'.*mu stored 0\.5 vs re-elicited"
    ):
        gp.check_elicitation(spec)


def test_fixed_value_reelicits_to_itself():
    # A documented constant has nothing to re-run: its "elicitation" is the value itself.
    data = SPECS["half_life.project_announcement"].model_dump()
    spec = PriorSpec.model_validate({**data, "value": 400.0})
    assert gp.reelicit(spec) == {"value": 400.0}
    gp.check_elicitation(spec)


def test_maxent_inputs_out_of_support_raise_with_hint():
    spec = _with_elicitation(
        SPECS["base_rate.rail"], "maxent", {"lower": -2.0, "upper": 1.0, "mass": 0.9}
    )
    with pytest.raises(PriorSpecError, match=r"'base_rate\.rail'.*probabilities in \(0, 1\)"):
        gp.reelicit(spec)


def test_maxent_missing_input_raises():
    spec = _with_elicitation(SPECS["pooling.rho"], "maxent", {"lower": 0.1, "upper": 0.9})
    with pytest.raises(PriorSpecError, match=r"Missing: \['mass'\]"):
        gp.reelicit(spec)


def test_beta_counts_and_mean_ess_closed_forms():
    rho = SPECS["pooling.rho"]
    counts = _with_elicitation(rho, "beta_counts", {"k": 8, "n": 11})
    assert gp.reelicit(counts) == {"alpha": 9.0, "beta": 4.0}
    ess = _with_elicitation(rho, "beta_mean_ess", {"mean": 0.4, "ess": 6})
    assert gp.reelicit(ess) == pytest.approx({"alpha": 2.4, "beta": 3.6})
    good = _with_params(ess, alpha=2.4, beta=3.6)
    gp.check_elicitation(good)
    with pytest.raises(PriorSpecError, match="k <= n"):
        gp.reelicit(_with_elicitation(rho, "beta_counts", {"k": 5, "n": 3}))
    with pytest.raises(PriorSpecError, match="Beta distribution"):
        gp.reelicit(_with_elicitation(SPECS["lag.log_sd"], "beta_counts", {"k": 1, "n": 2}))


# ---------------------------------------------------------------------------------- perturb


def test_perturb_normal_and_logitnormal_move_mu_and_scale_sigma():
    for name in ("lag.log_median", "base_rate.hydro"):
        spec = SPECS[name]
        new = gp.perturb(spec, widen=2.0, shift=-0.5)
        p, q = spec.distribution.params, new.distribution.params
        assert q["mu"] == pytest.approx(p["mu"] - 0.5)
        assert q["sigma"] == pytest.approx(2.0 * p["sigma"])
    old, new = (
        gp.to_preliz(SPECS["lag.log_median"]),
        gp.to_preliz(gp.perturb(SPECS["lag.log_median"], widen=1.5, shift=0.3)),
    )
    assert new.std() == pytest.approx(1.5 * old.std())
    assert new.mean() == pytest.approx(old.mean() + 0.3)


def test_perturb_gamma_scales_mean_by_exp_shift_and_sd_by_widen():
    spec = SPECS["strength.implementation_milestone"]
    old = gp.to_preliz(spec)
    new = gp.to_preliz(gp.perturb(spec, widen=1.7, shift=-0.5))
    assert new.mean() == pytest.approx(old.mean() * math.exp(-0.5))
    assert new.std() == pytest.approx(old.std() * 1.7)


def test_perturb_beta_keeps_documented_mean_and_sd_ratio():
    spec = SPECS["pooling.rho"]
    a, b = spec.distribution.params["alpha"], spec.distribution.params["beta"]
    kappa, w, s = a + b, 1.5, 0.8
    old = gp.to_preliz(spec)
    new = gp.to_preliz(gp.perturb(spec, widen=w, shift=s))
    m = a / kappa
    expected_mean = 1 / (1 + math.exp(-(math.log(m / (1 - m)) + s)))
    assert new.mean() == pytest.approx(expected_mean)
    # the sd is what it would be for the old mean, scaled as documented ...
    unshifted = gp.to_preliz(gp.perturb(spec, widen=w, shift=0.0))
    assert unshifted.mean() == pytest.approx(old.mean())
    assert unshifted.std() / old.std() == pytest.approx(w * math.sqrt((kappa + 1) / (kappa + w**2)))
    # ... and the concentration is divided by widen squared.
    q = gp.perturb(spec, widen=w, shift=s).distribution.params
    assert q["alpha"] + q["beta"] == pytest.approx(kappa / w**2)


def test_perturb_defaults_come_from_sensitivity_and_mark_the_copy():
    spec = SPECS["base_rate.bilateral_portfolio"]
    new = gp.perturb(spec)
    assert new.distribution.params["mu"] == pytest.approx(
        spec.distribution.params["mu"] + spec.sensitivity.shift
    )
    assert new.distribution.params["sigma"] == pytest.approx(
        spec.distribution.params["sigma"] * spec.sensitivity.widen
    )
    assert new.name == spec.name
    assert "PERTURBED" in new.elicitation.statement
    with pytest.raises(PriorSpecError, match="bilateral_portfolio"):
        gp.check_elicitation(new)
    unchanged = gp.perturb(spec, widen=1.0, shift=0.0)
    assert unchanged.distribution == spec.distribution


def test_perturb_fixed_values():
    spec = SPECS["half_life.russian_pressure"]
    assert gp.perturb(spec).value == pytest.approx(180 * math.exp(spec.sensitivity.shift))
    assert gp.perturb(spec, shift=math.log(2)).value == pytest.approx(360)
    assert math.isinf(gp.perturb(SPECS["half_life.implementation_milestone"], shift=-1).value)
    with pytest.raises(PriorSpecError, match="no spread"):
        gp.perturb(spec, widen=2.0)


@pytest.mark.parametrize("widen", [0.0, -1.0, math.inf, math.nan])
def test_perturb_rejects_bad_widen(widen):
    with pytest.raises(PriorSpecError, match="widen must be"):
        gp.perturb(SPECS["lag.log_sd"], widen=widen)


# ------------------------------------------------------------------------- tables and docs


def test_prior_table_has_one_row_per_prior():
    table = gp.prior_table(SPECS)
    assert len(table) == len(SPECS)
    assert table["name"].tolist() == list(SPECS)
    row = table.set_index("name").loc["base_rate.nuclear_plant_abroad"]
    assert row["distribution"].startswith("LogitNormal(mu=0.448, sigma=0.897")
    assert row["scale"] == "probability"
    assert 0 < row["q05"] < row["mean"] < row["q95"] < 1
    fixed = table.set_index("name").loc["half_life.implementation_milestone"]
    assert np.isinf(fixed["mean"]) and np.isnan(fixed["q05"])
    assert fixed["distribution"] == "inf days (never fades)"


def test_prior_table_rejects_duplicates():
    spec = SPECS["lag.log_sd"]
    with pytest.raises(PriorSpecError, match="more than once"):
        gp.prior_table([spec, spec])


def test_to_preliz_rejects_fixed_value():
    with pytest.raises(PriorSpecError, match="fixed value"):
        gp.to_preliz(SPECS["weight.reliability.A"])


def test_write_priors_doc(tmp_path):
    refs = gp.read_references(ROOT / "data" / "references.csv")
    chosen = [
        SPECS[n] for n in ("base_rate.pipeline", "lag.log_median", "half_life.russian_pressure")
    ]
    path = gp.write_priors_doc(chosen, tmp_path, references=refs)
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "priors.md"
    assert "do not edit" in text.lower()
    assert "python -m georisk.priors docs/" in text
    for spec in chosen:
        assert f"### {spec.name}" in text
    assert refs["kazinform-2016-memoranda"].citation in text
    for name in ("base_rate.pipeline", "lag.log_median"):
        png = tmp_path / "figures" / "priors" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/priors/{name}.png" in text
    assert not (tmp_path / "figures" / "priors" / "half_life.russian_pressure.png").exists()
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


def test_write_priors_doc_rejects_unknown_reference(tmp_path):
    with pytest.raises(PriorSpecError, match="lag.log_sd -> nei-2013-ostrovets"):
        gp.write_priors_doc([SPECS["lag.log_sd"]], tmp_path, references={})


def test_importing_priors_does_not_import_preliz():
    code = "import sys, georisk.priors; sys.exit('preliz' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
