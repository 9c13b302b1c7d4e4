"""Reusable test helpers: a small, valid workspace written from code.

``write_mini_workspace(root)`` writes a complete workspace that ``load_workspace(root,
today=TODAY)`` accepts: 2 sources, 5 indicators (one event reported twice, one indicator
without links), 2 scenarios (a ``project``-family one with ``announced`` and an
``export_route_disruption`` window), 4 reference cases (one ongoing), 2 reference
indicators, 3 references and the full set of required priors.

The numbers are plausible, not calibrated: the priors' elicitation inputs are not meant to
reproduce their parameters (that check belongs to the priors tests).
"""

from __future__ import annotations

import math
import textwrap
from datetime import date
from pathlib import Path

import yaml

from georisk.vocab import (
    INDICATOR_KINDS,
    INFO_CREDIBILITY,
    REFERENCE_CATEGORIES,
    SOURCE_RELIABILITY,
)

TODAY = date(2026, 11, 25)

PROJECT_SCENARIO = "uzb-npp-first-concrete"
WINDOW_SCENARIO = "cpc-export-disruption-2027"

SOURCES_CSV = """\
source_id,outlet,title,published,date_precision,url,reliability,note
src-001,Reuters,Russia to build small nuclear power plant in Uzbekistan,2024-05-28,day,https://example.org/reuters-uzb-npp,B,
src-002,Kursiv,"Kazakhstan picks Rosatom to lead nuclear consortium, CPC halts loading",2025-06-16,day,https://example.org/kursiv-kaz,C,"weekly digest, two stories"
"""  # noqa: E501

INDICATORS_CSV = """\
indicator_id,source_id,event_id,event_date,date_precision,actors,kind,credibility,summary,figure_amount,figure_unit,links,note
ind-001,src-001,ev-uzb-npp-deal,2024-05-27,day,RUS;UZB,project_announcement,2,Russia and Uzbekistan sign a deal to build a small nuclear power plant,,,uzb-npp-first-concrete:supports,
ind-002,src-002,ev-uzb-npp-deal,2024-05-27,day,RUS;UZB;Rosatom,project_announcement,1,"Rosatom confirms the Uzbek small nuclear plant agreement, six 55 MW units",330,MW,uzb-npp-first-concrete:supports,second report of the same event
ind-003,src-002,ev-kaz-rosatom-lead,2025-06-14,day,KAZ;Rosatom,alignment_with_russia,2,Kazakhstan names Rosatom leader of the consortium for its first nuclear plant,,,,
ind-004,src-002,ev-cpc-drone-2025,2025-02-17,day,RUS;KAZ;CPC,russian_pressure,2,Drone strike on a CPC pump station cuts Kazakh oil exports through Novorossiysk,1.5,Mt,cpc-export-disruption-2027:supports;uzb-npp-first-concrete:opposes,
ind-005,src-001,ev-uzb-eu-partnership,2024-03-01,month,UZB;EU,realignment_signal,3,Uzbekistan and the EU open talks on an enhanced partnership agreement,,,uzb-npp-first-concrete:opposes,
"""  # noqa: E501

REFERENCE_CASES_CSV = """\
case_id,name,category,region,announced,announced_precision,resolved,resolved_precision,last_observed,outcome,russia_involved,outcome_definition,source,verified,note
NPP-BY-OSTROVETS,Belarus NPP (Ostrovets),nuclear_plant_abroad,Eastern Europe,2011-10-11,day,2013-11-06,day,2013-11-06,materialised,yes,first safety-related concrete of unit 1,NEI Magazine (Nov 2013),yes,
NPP-VN-NINHTHUAN,Ninh Thuan 1 NPP,nuclear_plant_abroad,Southeast Asia,2010-10-31,day,2016-11-22,day,2016-11-22,not_materialised,TRUE,first safety-related concrete of unit 1,Reuters (22 Nov 2016),true,cancelled by the National Assembly
NPP-KZ-BALKHASH,Kazakhstan NPP (Ulken),nuclear_plant_abroad,Central Asia,2024-10-06,day,,,2026-10-01,ongoing,Yes,first safety-related concrete of unit 1,Kazinform (Oct 2024),no,referendum approved the plant
CPC-2022-DISRUPTION,CPC exports 2022,export_route_disruption,Black Sea,2022-01-01,year,2022-03-22,day,2022-03-22,materialised,yes,interruption of at least 7 days of CPC loadings,Reuters (Mar 2022),yes,storm damage to a mooring
"""  # noqa: E501

REFERENCE_INDICATORS_CSV = """\
indicator_id,case_id,event_id,event_date,date_precision,kind,direction,reliability,credibility,summary,citation
ri-001,NPP-BY-OSTROVETS,ev-by-loan,2011-11-25,day,financing_commitment,supports,B,2,Russia agrees a state loan of up to 10 billion USD for the plant,World Nuclear News (Nov 2011)
ri-002,NPP-VN-NINHTHUAN,ev-vn-delay,2014-01-16,day,delay_or_setback,opposes,B,2,Vietnam postpones construction start of Ninh Thuan 1 to 2020,Reuters (16 Jan 2014)
"""  # noqa: E501

REFERENCES_CSV = """\
ref_id,citation,url
iaea-pris,IAEA Power Reactor Information System (PRIS),https://pris.iaea.org
flyvbjerg-2014,"Flyvbjerg, B. (2014). What you should know about megaprojects and why. Project Management Journal 45(2)",
nato-ajp-2-1,NATO AJP-2.1 Allied Joint Doctrine for Intelligence Procedures,
"""  # noqa: E501

PROJECT_SCENARIO_YAML = """\
id: uzb-npp-first-concrete
title: First concrete of the Uzbek small nuclear plant by 2028
proposition: >-
  First safety-related concrete of the first unit of the Russian-built small nuclear power
  plant in Jizzakh region, Uzbekistan, is poured by the horizon.
resolution_criteria: >-
  Resolves yes when IAEA PRIS or Rosatom reports first safety-related concrete of unit 1
  on or before the horizon.
reference_class: nuclear_plant_abroad
announced: 2024-05-27
opened: 2026-01-15
horizon: 2028-12-31
tags: [nuclear, UZB, RUS]
"""

WINDOW_SCENARIO_YAML = """\
id: cpc-export-disruption-2027
title: CPC export route interrupted in 2027
proposition: >-
  Oil loadings at the CPC terminal near Novorossiysk are interrupted for at least 7 days
  in calendar year 2027.
resolution_criteria: >-
  Resolves yes when CPC, KazMunayGas or the Kazakh energy ministry report an interruption
  of at least 7 consecutive days in 2027.
reference_class: export_route_disruption
window_start: 2027-01-01
opened: 2026-02-01
horizon: 2027-12-31
"""

_KIND_SIGN = {
    "realignment_signal": -1.0,
    "russian_pressure": 1.0,
    "project_announcement": 1.0,
    "financing_commitment": 1.0,
    "implementation_milestone": 1.0,
    "delay_or_setback": -1.0,
    "alignment_with_russia": 1.0,
}
_RELIABILITY_WEIGHT = {"A": 1.0, "B": 0.85, "C": 0.7, "D": 0.5, "E": 0.3, "F": 0.5}
_CREDIBILITY_WEIGHT = {1: 1.0, 2: 0.85, 3: 0.65, 4: 0.4, 5: 0.2, 6: 0.5}


def _common(statement: str, method: str, inputs: dict[str, float] | None = None) -> dict:
    return {
        "rationale": (
            "Plausible test value chosen for the mini workspace; it only has to be well "
            "formed, not calibrated."
        ),
        "references": ["flyvbjerg-2014"],
        "elicitation": {
            "method": method,
            "inputs": inputs or {},
            "statement": statement,
            "date": date(2026, 11, 1),
            "by": "test-suite",
        },
        "review": {"reviewer": "reviewer-bot", "date": date(2026, 11, 10)},
    }


def mini_priors() -> dict[str, list[dict]]:
    """Prior entries of the mini workspace, by file name (without ``.yaml``)."""
    base_rates = [
        {
            "name": f"base_rate.{category}",
            "parameter": f"p_event[{category}]",
            "distribution": {"family": "Beta", "params": {"alpha": 2.0, "beta": 3.0}},
            **_common(
                f"90% sure the eventual rate for {category} lies in 0.1-0.7.",
                "maxent",
                {"lower": 0.1, "upper": 0.7, "mass": 0.9},
            ),
        }
        for category in REFERENCE_CATEGORIES
    ]
    evidence = []
    for kind in _KIND_SIGN:
        assert kind in INDICATOR_KINDS
        evidence.append(
            {
                "name": f"strength.{kind}",
                "parameter": f"beta[{kind}]",
                "distribution": {"family": "Gamma", "params": {"alpha": 2.5, "beta": 4.7}},
                **_common(
                    f"90% sure one fully reliable {kind} event moves the log-odds by 0.05 to "
                    "1.0 in the direction of its link.",
                    "maxent",
                    {"lower": 0.05, "upper": 1.0, "mass": 0.9},
                ),
            }
        )
        evidence.append(
            {
                "name": f"half_life.{kind}",
                "parameter": f"half_life[{kind}]",
                "value": 365.0 if kind == "implementation_milestone" else 180.0,
                "unit": "days",
                **_common(f"A {kind} report counts half after this many days.", "fixed"),
            }
        )
    weights = [
        {
            "name": f"weight.reliability.{grade}",
            "parameter": f"w_reliability[{grade}]",
            "value": _RELIABILITY_WEIGHT[grade],
            **_common(f"Weight of a report from a source graded {grade}.", "fixed"),
        }
        for grade in SOURCE_RELIABILITY
    ] + [
        {
            "name": f"weight.credibility.{cred}",
            "parameter": f"w_credibility[{cred}]",
            "value": _CREDIBILITY_WEIGHT[cred],
            **_common(f"Weight of a report of credibility {cred}.", "fixed"),
        }
        for cred in INFO_CREDIBILITY
    ]
    model = [
        {
            "name": "pooling.rho",
            "parameter": "rho",
            "distribution": {"family": "Beta", "params": {"alpha": 2.0, "beta": 5.0}},
            **_common(
                "90% sure the pooling share lies in 0.05-0.55.",
                "maxent",
                {"lower": 0.05, "upper": 0.55, "mass": 0.9},
            ),
        },
        {
            "name": "lag.log_median",
            "parameter": "lag_log_median",
            "distribution": {
                "family": "Normal",
                "params": {"mu": round(math.log(6.0), 3), "sigma": 0.5},
            },
            "unit": "log years",
            **_common(
                "90% sure the median lag is between 2.5 and 14 years.",
                "maxent",
                {"lower": 0.92, "upper": 2.64, "mass": 0.9},
            ),
        },
        {
            "name": "lag.log_sd",
            "parameter": "lag_log_sd",
            "distribution": {"family": "HalfNormal", "params": {"sigma": 0.8}},
            "unit": "log years",
            **_common(
                "90% sure the spread of log lags is below 1.3.",
                "maxent",
                {"lower": 0.0, "upper": 1.3, "mass": 0.9},
            ),
        },
        {
            "name": "lag.termination_log_median",
            "parameter": "term_log_median",
            "distribution": {"family": "Normal", "params": {"mu": 1.2, "sigma": 0.6}},
            "unit": "log years",
            **_common(
                "90% sure the median time to cancellation is between 1 and 9 years.",
                "maxent",
                {"lower": 0.0, "upper": 2.2, "mass": 0.9},
            ),
        },
        {
            "name": "lag.termination_log_sd",
            "parameter": "term_log_sd",
            "distribution": {"family": "HalfNormal", "params": {"sigma": 0.8}},
            "unit": "log years",
            **_common(
                "90% sure the spread of log times to cancellation is below 1.3.",
                "maxent",
                {"lower": 0.0, "upper": 1.3, "mass": 0.9},
            ),
        },
    ]
    return {"base_rates": base_rates, "evidence": evidence, "weights": weights, "model": model}


def write_mini_workspace(root: Path) -> Path:
    """Write the mini workspace under ``root`` (created if needed) and return ``root``.

    Parameters
    ----------
    root : Path
        Directory to write into.

    Returns
    -------
    Path
        ``root``.
    """
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "scenarios").mkdir(exist_ok=True)
    (root / "priors").mkdir(exist_ok=True)
    files = {
        "data/sources.csv": SOURCES_CSV,
        "data/indicators.csv": INDICATORS_CSV,
        "data/reference_cases.csv": REFERENCE_CASES_CSV,
        "data/reference_indicators.csv": REFERENCE_INDICATORS_CSV,
        "data/references.csv": REFERENCES_CSV,
        f"scenarios/{PROJECT_SCENARIO}.yaml": PROJECT_SCENARIO_YAML,
        f"scenarios/{WINDOW_SCENARIO}.yaml": WINDOW_SCENARIO_YAML,
    }
    for stem, entries in mini_priors().items():
        header = f"# Priors of the mini test workspace: {stem}.\n"
        files[f"priors/{stem}.yaml"] = header + yaml.safe_dump(
            {"priors": entries}, sort_keys=False, allow_unicode=True, width=88
        )
    for rel, text in files.items():
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not found in {path}")


def replace_in(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` by ``new`` in a text file, failing if ``old`` is absent."""
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    Path(path).write_text(text.replace(old, new, count), encoding="utf-8")


def append_line(path: Path, line: str) -> int:
    """Append one line to a text file and return its 1-based line number."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    text += line + "\n"
    Path(path).write_text(text, encoding="utf-8")
    return len(text.splitlines())
