from __future__ import annotations

import csv
import dataclasses
import io
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from georisk.errors import GeoriskError, Problem, WorkspaceError
from georisk.schemas import CaseOutcome, Direction
from georisk.workspace import (
    INDICATOR_FRAME_COLUMNS,
    Workspace,
    ledger_query,
    load_workspace,
    required_prior_names,
)
from helpers import (
    PROJECT_SCENARIO,
    TODAY,
    WINDOW_SCENARIO,
    append_line,
    line_of,
    replace_in,
    write_mini_workspace,
)

IND = "data/indicators.csv"
SRC = "data/sources.csv"
CASES = "data/reference_cases.csv"
REFIND = "data/reference_indicators.csv"
REFS = "data/references.csv"
PROJ = f"scenarios/{PROJECT_SCENARIO}.yaml"
WIN = f"scenarios/{WINDOW_SCENARIO}.yaml"


def problems_of(root: Path, today: date = TODAY) -> list[Problem]:
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root, today=today)
    return info.value.problems


def the_problem(
    problems: list[Problem], file: str, line: int | None, field: str | None, *needles: str
) -> Problem:
    """The one problem at (file, line, field) whose message contains every needle."""
    hits = [
        p
        for p in problems
        if (p.file, p.line, p.field) == (file, line, field) and all(n in p.message for n in needles)
    ]
    listing = "\n".join(str(p) for p in problems)
    assert len(hits) == 1, f"expected one {file}:{line} [{field}] {needles}, got:\n{listing}"
    return hits[0]


# --------------------------------------------------------------------------------------
# The valid workspace
# --------------------------------------------------------------------------------------


def test_mini_workspace_loads(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    assert isinstance(ws, Workspace)
    assert ws.root == mini_workspace.resolve()
    assert list(ws.sources) == ["src-001", "src-002"]
    assert [i.indicator_id for i in ws.indicators] == [f"ind-00{k}" for k in range(1, 6)]
    assert set(ws.scenarios) == {PROJECT_SCENARIO, WINDOW_SCENARIO}
    assert ws.scenarios[PROJECT_SCENARIO].family == "project"
    assert ws.scenarios[WINDOW_SCENARIO].family == "window"
    assert set(ws.priors) == set(required_prior_names())
    assert set(ws.references) == {"iaea-pris", "flyvbjerg-2014", "nato-ajp-2-1"}
    assert len(ws.reference_cases) == 4
    assert len(ws.reference_indicators) == 2


def test_cells_are_converted(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    ind2 = ws.indicators[1]
    assert ind2.actors == ("RUS", "UZB", "Rosatom")
    assert ind2.figure is not None and ind2.figure.amount == 330 and ind2.figure.unit == "MW"
    assert ind2.note == "second report of the same event"
    assert ws.indicators[0].figure is None and ws.indicators[0].note == ""
    ind4 = ws.indicators[3]
    assert [(lk.scenario_id, lk.direction) for lk in ind4.links] == [
        (WINDOW_SCENARIO, Direction.SUPPORTS),
        (PROJECT_SCENARIO, Direction.OPPOSES),
    ]
    assert ws.indicators[2].links == ()
    assert ws.sources["src-002"].note == "weekly digest, two stories"
    cases = {c.case_id: c for c in ws.reference_cases}
    ongoing = cases["NPP-KZ-BALKHASH"]
    assert ongoing.outcome == CaseOutcome.ONGOING and ongoing.resolved is None
    assert ongoing.russia_involved is True and ongoing.verified is False  # "Yes" / "no"
    assert cases["NPP-VN-NINHTHUAN"].russia_involved is True  # "TRUE"


def test_workspace_is_frozen(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ws.root = Path("/elsewhere")  # type: ignore[misc]


def test_file_hashes_cover_every_file_read(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    assert set(ws.file_hashes) == {
        SRC,
        IND,
        CASES,
        REFIND,
        REFS,
        PROJ,
        WIN,
        "priors/base_rates.yaml",
        "priors/evidence.yaml",
        "priors/weights.yaml",
        "priors/model.yaml",
    }
    assert all(len(h) == 64 for h in ws.file_hashes.values())


def test_input_hash_is_stable_and_group_specific(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    again = load_workspace(mini_workspace, today=TODAY)
    groups = ("ledger", "scenarios", "priors", "reference")
    before = {g: ws.input_hash(g) for g in groups}
    assert before == {g: again.input_hash(g) for g in groups}
    assert len(set(before.values())) == 4
    assert ws.input_hash() == ws.input_hash(*groups)
    assert ws.input_hash("ledger", "priors") == ws.input_hash("priors", "ledger")

    replace_in(mini_workspace / IND, "six 55 MW units", "six 55-MW units")
    changed = load_workspace(mini_workspace, today=TODAY)
    assert changed.input_hash("ledger") != before["ledger"]
    for g in ("scenarios", "priors", "reference"):
        assert changed.input_hash(g) == before[g]

    replace_in(mini_workspace / REFS, "PRIS)", "PRIS) database")
    assert load_workspace(mini_workspace, today=TODAY).input_hash("priors") != before["priors"]


def test_input_hash_rejects_unknown_group(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    with pytest.raises(ValueError, match="did you mean 'ledger'"):
        ws.input_hash("ledgr")


def test_indicators_frame_is_tidy(mini_workspace: Path) -> None:
    df = load_workspace(mini_workspace, today=TODAY).indicators_frame()
    assert tuple(df.columns) == INDICATOR_FRAME_COLUMNS
    assert len(df) == 6  # ind-004 has two links, ind-003 none
    unlinked = df[df["indicator_id"] == "ind-003"]
    assert len(unlinked) == 1
    assert unlinked["scenario_id"].iloc[0] is None and unlinked["direction"].iloc[0] is None
    two = df[df["indicator_id"] == "ind-004"]
    assert set(two["scenario_id"]) == {PROJECT_SCENARIO, WINDOW_SCENARIO}
    row = df[df["indicator_id"] == "ind-002"].iloc[0]
    assert row["actors"] == "RUS;UZB;Rosatom"
    assert row["reliability"] == "C" and row["outlet"] == "Kursiv"
    assert row["credibility"] == 1
    assert row["event_date"] == pd.Timestamp("2024-05-27")
    assert row["published"] == pd.Timestamp("2025-06-16")
    assert pd.api.types.is_datetime64_any_dtype(df["event_date"])


def test_reference_cases_frame(mini_workspace: Path) -> None:
    df = load_workspace(mini_workspace, today=TODAY).reference_cases_frame()
    assert len(df) == 4
    assert {"case_id", "category", "outcome", "family", "n_indicators"} <= set(df.columns)
    by_id = df.set_index("case_id")
    assert pd.isna(by_id.loc["NPP-KZ-BALKHASH", "resolved"])
    assert by_id.loc["NPP-KZ-BALKHASH", "outcome"] == "ongoing"
    assert by_id.loc["CPC-2022-DISRUPTION", "family"] == "window"
    assert by_id.loc["NPP-BY-OSTROVETS", "n_indicators"] == 1


def test_ledger_query_filters(mini_workspace: Path) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    proj = ledger_query(ws, scenario=PROJECT_SCENARIO)
    assert list(proj["indicator_id"]) == ["ind-005", "ind-001", "ind-002", "ind-004"]
    assert set(ledger_query(ws, kind="project_announcement")["indicator_id"]) == {
        "ind-001",
        "ind-002",
    }
    assert set(ledger_query(ws, actor="rosatom")["indicator_id"]) == {"ind-002", "ind-003"}
    assert set(ledger_query(ws, actor="kaz")["indicator_id"]) == {"ind-003", "ind-004"}
    window = ledger_query(ws, since="2024-05-27", until=date(2025, 2, 17))
    assert set(window["indicator_id"]) == {"ind-001", "ind-002", "ind-004"}
    assert ledger_query(ws, scenario=WINDOW_SCENARIO, kind="delay_or_setback").empty


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scenario": "uzb-npp-first-concret"}, "did you mean 'uzb-npp-first-concrete'"),
        ({"kind": "russian_presure"}, "did you mean 'russian_pressure'"),
        ({"actor": "XYZ"}, "actor"),
        ({"since": "2025-13-01"}, "since"),
        ({"since": "2025-01-02", "until": "2025-01-01"}, "after 'until'"),
    ],
)
def test_ledger_query_rejects_bad_filters(mini_workspace: Path, kwargs: dict, match: str) -> None:
    ws = load_workspace(mini_workspace, today=TODAY)
    with pytest.raises(ValueError, match=match):
        ledger_query(ws, **kwargs)


def test_today_defaults_to_the_system_date(mini_workspace: Path) -> None:
    # Every date of the mini workspace is before 2026-11-25, so it is valid today too.
    assert load_workspace(mini_workspace).sources
    problems_of(mini_workspace, today=date(2024, 1, 1))  # and invalid in the past


# --------------------------------------------------------------------------------------
# One planted problem at a time
# --------------------------------------------------------------------------------------


def test_missing_field(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        "Kazakhstan names Rosatom leader of the consortium for its first nuclear plant",
        "",
    )
    p = the_problem(problems_of(mini_workspace), IND, 4, "summary", "required")
    assert "empty" in p.message


def test_missing_field_in_sources(mini_workspace: Path) -> None:
    replace_in(mini_workspace / SRC, "src-001,Reuters,", "src-001,,")
    the_problem(problems_of(mini_workspace), SRC, 2, "outlet", "required")


def test_unknown_kind_with_did_you_mean(mini_workspace: Path) -> None:
    replace_in(mini_workspace / IND, "alignment_with_russia", "alignment_with_rusia")
    p = the_problem(problems_of(mini_workspace), IND, 4, "kind")
    assert "did you mean 'alignment_with_russia'?" in p.message
    assert "alignment_with_rusia" in p.message


@pytest.mark.parametrize(
    ("bad", "needle"),
    [("2024-03", "YYYY-MM-DD"), ("01/03/2024", "YYYY-MM-DD"), ("2024-02-30", "calendar date")],
)
def test_unparseable_date(mini_workspace: Path, bad: str, needle: str) -> None:
    replace_in(mini_workspace / IND, "2024-03-01,month", f"{bad},month")
    p = the_problem(problems_of(mini_workspace), IND, 6, "event_date", needle)
    assert bad in p.message


def test_dangling_source_reference(mini_workspace: Path) -> None:
    replace_in(mini_workspace / IND, "ind-003,src-002", "ind-003,src-020")
    p = the_problem(problems_of(mini_workspace), IND, 4, "source_id", "unknown source")
    assert "src-020" in p.message and SRC in p.message


def test_unknown_scenario_in_links(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        "agreement,,,uzb-npp-first-concrete:opposes",
        "agreement,,,uzb-npp-first-concret:opposes",
    )
    p = the_problem(problems_of(mini_workspace), IND, 6, "links", "unknown scenario")
    assert f"did you mean '{PROJECT_SCENARIO}'" in p.message


def test_malformed_link(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND, "agreement,,,uzb-npp-first-concrete:opposes", "agreement,,,opposes"
    )
    the_problem(problems_of(mini_workspace), IND, 6, "links", "scenario_id:direction")


def test_direction_must_be_supports_or_opposes(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        "agreement,,,uzb-npp-first-concrete:opposes",
        "agreement,,,uzb-npp-first-concrete:against",
    )
    p = the_problem(problems_of(mini_workspace), IND, 6, "links", "'supports' or 'opposes'")
    assert "against" in p.message


def test_direction_typo_gets_a_suggestion(mini_workspace: Path) -> None:
    replace_in(mini_workspace / REFIND, ",opposes,", ",oppose,")
    p = the_problem(problems_of(mini_workspace), REFIND, 3, "direction")
    assert "did you mean 'opposes'" in p.message


def test_duplicate_indicator_id_names_both_lines(mini_workspace: Path) -> None:
    line = append_line(
        mini_workspace / IND,
        "ind-001,src-001,ev-other,2024-05-01,day,UZB,project_announcement,2,"
        "Another announcement with a recycled id,,,,",
    )
    assert line == 7
    p = the_problem(problems_of(mini_workspace), IND, 7, "indicator_id", "duplicate")
    assert "ind-001" in p.message and "line 2" in p.message


@pytest.mark.parametrize(
    ("rel", "first_line", "id_column"),
    [
        (SRC, 2, "source_id"),
        (CASES, 2, "case_id"),
        (REFIND, 2, "indicator_id"),
        (REFS, 2, "ref_id"),
    ],
)
def test_duplicate_ids_in_every_table(
    mini_workspace: Path, rel: str, first_line: int, id_column: str
) -> None:
    path = mini_workspace / rel
    row = path.read_text(encoding="utf-8").splitlines()[first_line - 1]
    line = append_line(path, row)
    p = the_problem(problems_of(mini_workspace), rel, line, id_column, "duplicate")
    assert f"line {first_line}" in p.message


def test_duplicate_scenario_id(mini_workspace: Path) -> None:
    shutil.copy(mini_workspace / PROJ, mini_workspace / "scenarios/copy.yaml")
    problems = problems_of(mini_workspace)
    the_problem(problems, "scenarios/copy.yaml", 1, "id", "rename the file")
    p = the_problem(problems, "scenarios/copy.yaml", 1, "id", "duplicate")
    assert f"{PROJ}:1" in p.message


def test_duplicate_prior_name_across_files(mini_workspace: Path) -> None:
    model = yaml.safe_load((mini_workspace / "priors/model.yaml").read_text(encoding="utf-8"))
    extra = {"priors": [model["priors"][0]]}
    (mini_workspace / "priors/zz_extra.yaml").write_text(yaml.safe_dump(extra), encoding="utf-8")
    p = the_problem(problems_of(mini_workspace), "priors/zz_extra.yaml", 2, "name", "duplicate")
    assert "pooling.rho" in p.message
    assert f"priors/model.yaml:{line_of(mini_workspace / 'priors/model.yaml', 'pooling.rho')}" in (
        p.message
    )


def test_scenario_file_name_must_match_id(mini_workspace: Path) -> None:
    (mini_workspace / PROJ).rename(mini_workspace / "scenarios/uzb-npp.yaml")
    p = the_problem(problems_of(mini_workspace), "scenarios/uzb-npp.yaml", 1, "id")
    assert f"{PROJECT_SCENARIO}.yaml" in p.message


def test_yaml_not_a_mapping(mini_workspace: Path) -> None:
    (mini_workspace / WIN).write_text("- id: x\n- title: y\n", encoding="utf-8")
    p = the_problem(problems_of(mini_workspace), WIN, 1, None, "mapping")
    assert "list" in p.message


def test_yaml_syntax_error_has_its_line(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "opened: 2026-02-01", "opened: [2026-02-01")
    problems = problems_of(mini_workspace)
    hits = [p for p in problems if p.file == WIN and "YAML syntax error" in p.message]
    assert len(hits) == 1, problems
    assert hits[0].line in (
        line_of(mini_workspace / WIN, "opened"),
        line_of(mini_workspace / WIN, "horizon"),
    )


def test_yaml_tab_indentation_is_a_syntax_error(mini_workspace: Path) -> None:
    replace_in(mini_workspace / PROJ, "tags: [nuclear, UZB, RUS]", "tags:\n\t- nuclear")
    problems = problems_of(mini_workspace)
    assert any(p.file == PROJ and p.line is not None and "YAML" in p.message for p in problems)


def test_yaml_unknown_key_with_did_you_mean(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "window_start:", "window_strat:")
    line = line_of(mini_workspace / WIN, "window_strat")
    p = the_problem(problems_of(mini_workspace), WIN, line, "window_strat", "unknown key")
    assert "did you mean 'window_start'" in p.message


def test_yaml_nested_error_points_at_the_key(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/model.yaml"
    replace_in(path, "method: maxent", "method: max-ent")
    line = line_of(path, "max-ent")
    p = the_problem(problems_of(mini_workspace), "priors/model.yaml", line, "elicitation.method")
    assert "did you mean 'maxent'" in p.message


def test_yaml_duplicate_key(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "opened: 2026-02-01", "opened: 2026-02-01\nopened: 2026-02-02")
    the_problem(
        problems_of(mini_workspace),
        WIN,
        line_of(mini_workspace / WIN, "opened") + 1,
        "opened",
        "duplicate key",
    )


def test_yaml_is_loaded_safely(mini_workspace: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    replace_in(
        mini_workspace / WIN,
        "window_start: 2027-01-01",
        f"window_start: !!python/object/apply:os.system ['touch {marker}']",
    )
    p = the_problem(
        problems_of(mini_workspace),
        WIN,
        line_of(mini_workspace / WIN, "window_start"),
        None,
        "YAML",
    )
    assert "constructor" in p.message
    assert not marker.exists()


def test_non_utf8_file(mini_workspace: Path) -> None:
    path = mini_workspace / SRC
    data = path.read_bytes().replace(b"Kursiv", "Kürsiv".encode("latin-1"))
    path.write_bytes(data)
    offset = data.index(b"\xfc")
    p = the_problem(problems_of(mini_workspace), SRC, 3, None, "UTF-8")
    assert f"byte offset {offset}" in p.message and "0xfc" in p.message


def test_byte_order_mark_is_tolerated(mini_workspace: Path) -> None:
    path = mini_workspace / SRC
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    load_workspace(mini_workspace, today=TODAY)


@pytest.mark.parametrize(
    ("rel", "old", "new", "field"),
    [
        (SRC, "2024-05-28,day", "2026-12-01,day", "published"),
        (
            IND,
            "ind-005,src-001,ev-uzb-eu-partnership,2024-03-01",
            "ind-005,src-001,ev-uzb-eu-partnership,2026-12-01",
            "event_date",
        ),
        (CASES, "2026-10-01,ongoing", "2027-01-01,ongoing", "last_observed"),
        (REFIND, "ev-vn-delay,2014-01-16", "ev-vn-delay,2027-01-16", "event_date"),
    ],
)
def test_date_after_today_in_csv(
    mini_workspace: Path, rel: str, old: str, new: str, field: str
) -> None:
    replace_in(mini_workspace / rel, old, new)
    problems = problems_of(mini_workspace)
    hits = [p for p in problems if p.file == rel and p.field == field and "future" in p.message]
    assert len(hits) == 1, problems
    assert "2026-11-25" in hits[0].message


def test_scenario_opened_after_today(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "opened: 2026-02-01", "opened: 2026-12-01")
    line = line_of(mini_workspace / WIN, "opened")
    p = the_problem(problems_of(mini_workspace), WIN, line, "opened", "future")
    assert "2026-12-01" in p.message


def test_horizon_may_be_in_the_future(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "horizon: 2027-12-31", "horizon: 2040-12-31")
    load_workspace(mini_workspace, today=TODAY)


def test_horizon_before_opening(mini_workspace: Path) -> None:
    replace_in(mini_workspace / WIN, "horizon: 2027-12-31", "horizon: 2025-12-31")
    line = line_of(mini_workspace / WIN, "horizon")
    p = the_problem(problems_of(mini_workspace), WIN, line, "horizon")
    assert "must be after" in p.message


@pytest.mark.parametrize("actor", ["Kaz", "XXX", "KAZ1"])
def test_malformed_actor_code(mini_workspace: Path, actor: str) -> None:
    replace_in(
        mini_workspace / IND, "2025-06-14,day,KAZ;Rosatom", f"2025-06-14,day,{actor};Rosatom"
    )
    p = the_problem(problems_of(mini_workspace), IND, 4, "actors", "actor")
    assert actor in p.message


def test_missing_prior(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/model.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["priors"] = [e for e in data["priors"] if e["name"] != "lag.log_sd"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    p = the_problem(problems_of(mini_workspace), "priors/", None, "name", "lag.log_sd")
    assert "missing" in p.message


def test_no_priors_at_all_is_one_problem(mini_workspace: Path) -> None:
    for path in (mini_workspace / "priors").glob("*.yaml"):
        path.unlink()
    problems = problems_of(mini_workspace)
    assert [p for p in problems if p.file == "priors/"] == [
        the_problem(problems, "priors/", None, "name", "all 38 required priors")
    ]


def test_event_with_inconsistent_kinds(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        "RUS;UZB;Rosatom,project_announcement",
        "RUS;UZB;Rosatom,financing_commitment",
    )
    p = the_problem(problems_of(mini_workspace), IND, 3, "kind", "ev-uzb-npp-deal")
    assert "line 2" in p.message and "project_announcement" in p.message


def test_event_with_inconsistent_directions(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        'units",330,MW,uzb-npp-first-concrete:supports',
        'units",330,MW,uzb-npp-first-concrete:opposes',
    )
    p = the_problem(problems_of(mini_workspace), IND, 3, "links", "ev-uzb-npp-deal")
    assert "line 2" in p.message and PROJECT_SCENARIO in p.message


def test_indicator_after_its_source(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND, "ev-kaz-rosatom-lead,2025-06-14", "ev-kaz-rosatom-lead,2025-06-20"
    )
    p = the_problem(problems_of(mini_workspace), IND, 4, "event_date", "publication date")
    assert "src-002" in p.message and f"{SRC}:3" in p.message


def test_indicator_after_a_month_precision_source_is_fine(mini_workspace: Path) -> None:
    replace_in(mini_workspace / SRC, "2025-06-16,day", "2025-06-01,month")
    load_workspace(mini_workspace, today=TODAY)


def test_reference_indicator_on_resolution_date(mini_workspace: Path) -> None:
    replace_in(mini_workspace / REFIND, "ev-by-loan,2011-11-25", "ev-by-loan,2013-11-06")
    p = the_problem(problems_of(mini_workspace), REFIND, 2, "event_date", "resolved")
    assert "NPP-BY-OSTROVETS" in p.message


def test_reference_indicator_after_last_observed(mini_workspace: Path) -> None:
    line = append_line(
        mini_workspace / REFIND,
        "ri-003,NPP-KZ-BALKHASH,ev-kz-site,2026-11-01,day,implementation_milestone,supports,B,2,"
        "Site survey works start at Ulken on Lake Balkhash,Kazinform (Nov 2026)",
    )
    the_problem(problems_of(mini_workspace), REFIND, line, "event_date", "last observed")


def test_reference_indicator_unknown_case(mini_workspace: Path) -> None:
    replace_in(mini_workspace / REFIND, "ri-002,NPP-VN-NINHTHUAN", "ri-002,NPP-VN-NINH")
    p = the_problem(problems_of(mini_workspace), REFIND, 3, "case_id", "unknown case")
    assert "did you mean 'NPP-VN-NINHTHUAN'" in p.message


def test_prior_unknown_reference(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/model.yaml"
    replace_in(path, "- flyvbjerg-2014", "- flyvbjerg-2041")
    line = line_of(path, "flyvbjerg-2041")
    p = the_problem(
        problems_of(mini_workspace), "priors/model.yaml", line, "references", "unknown reference"
    )
    assert "did you mean 'flyvbjerg-2014'" in p.message


def test_prior_entry_error_points_at_its_line(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/model.yaml"
    replace_in(path, "  parameter: rho\n", "")
    line = line_of(path, "name: pooling.rho")
    the_problem(problems_of(mini_workspace), "priors/model.yaml", line, "parameter", "required")


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("- a\n- b\n", None, "mapping"),
        ("prior:\n- name: x\n", "prior", "did you mean 'priors'"),
        ("priors: {name: x}\n", "priors", "list"),
        ("priors:\n- just a string\n", "priors.0", "mapping"),
    ],
)
def test_malformed_priors_file(
    mini_workspace: Path, text: str, field: str | None, needle: str
) -> None:
    (mini_workspace / "priors/bad.yaml").write_text(text, encoding="utf-8")
    problems = problems_of(mini_workspace)
    hits = [
        p
        for p in problems
        if p.file == "priors/bad.yaml" and p.field == field and needle in p.message
    ]
    assert len(hits) == 1, problems


def test_non_finite_prior_number(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/model.yaml"
    replace_in(path, "alpha: 2.0", "alpha: .nan")
    p = the_problem(
        problems_of(mini_workspace),
        "priors/model.yaml",
        line_of(path, ".nan"),
        "distribution.params.alpha",
        "finite",
    )
    assert "nan" in p.message


def test_missing_required_file(mini_workspace: Path) -> None:
    (mini_workspace / REFS).unlink()
    problems = problems_of(mini_workspace)
    the_problem(problems, REFS, None, None, "missing")
    # priors citing references are not blamed for the missing file
    assert not [p for p in problems if p.field == "references"]


def test_missing_directory(mini_workspace: Path) -> None:
    shutil.rmtree(mini_workspace / "scenarios")
    problems = problems_of(mini_workspace)
    the_problem(problems, "scenarios/", None, None, "missing")
    assert not [p for p in problems if p.field == "links"]


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_csv_file(mini_workspace: Path, content: str) -> None:
    (mini_workspace / SRC).write_text(content, encoding="utf-8")
    problems = problems_of(mini_workspace)
    the_problem(problems, SRC, None, None, "empty")
    assert not [p for p in problems if p.field == "source_id"]  # no cascade of unknown sources


def test_empty_yaml_file(mini_workspace: Path) -> None:
    (mini_workspace / WIN).write_text("# nothing yet\n", encoding="utf-8")
    the_problem(problems_of(mini_workspace), WIN, None, None, "empty")


def test_missing_and_unexpected_columns(mini_workspace: Path) -> None:
    replace_in(mini_workspace / IND, ",summary,", ",sumary,")
    problems = problems_of(mini_workspace)
    p = the_problem(problems, IND, 1, "sumary", "unexpected column")
    assert "did you mean 'summary'" in p.message
    the_problem(problems, IND, 1, "summary", "required column")
    assert not [q for q in problems if q.field == "summary" and q.line != 1]


def test_optional_columns_may_be_left_out(mini_workspace: Path) -> None:
    path = mini_workspace / REFS
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:2] for r in rows])
    path.write_text(out.getvalue(), encoding="utf-8")
    ws = load_workspace(mini_workspace, today=TODAY)
    assert all(r.url is None for r in ws.references.values())


def test_row_with_extra_cells(mini_workspace: Path) -> None:
    line = append_line(
        mini_workspace / SRC,
        "src-003,Eurasianet,Uzbekistan, Russia and the bomb,2025-01-01,day,,B,",
    )
    p = the_problem(problems_of(mini_workspace), SRC, line, None, "9 cells")
    assert "double quotes" in p.message


def test_malformed_csv_quote(mini_workspace: Path) -> None:
    line = append_line(
        mini_workspace / SRC,
        'src-003,Eurasianet,"Uzbekistan says "no" to the bomb",2025-01-01,day,,B,',
    )
    the_problem(problems_of(mini_workspace), SRC, line, None, "malformed CSV")


def test_multiline_cell_reports_its_first_line(mini_workspace: Path) -> None:
    path = mini_workspace / SRC
    text = path.read_text(encoding="utf-8")
    text += 'src-003,Eurasianet,"A title\nover two lines",2025-01-01,day,,Z,\n'
    path.write_text(text, encoding="utf-8")
    the_problem(problems_of(mini_workspace), SRC, 4, "reliability", "'Z'")


def test_bad_boolean(mini_workspace: Path) -> None:
    replace_in(mini_workspace / CASES, "2026-10-01,ongoing,Yes", "2026-10-01,ongoing,maybe")
    p = the_problem(problems_of(mini_workspace), CASES, 4, "russia_involved", "true, false")
    assert "maybe" in p.message


def test_figure_needs_amount_and_unit(mini_workspace: Path) -> None:
    replace_in(mini_workspace / IND, ",330,MW,", ",330,,")
    the_problem(problems_of(mini_workspace), IND, 3, "figure_unit", "both or neither")


def test_figure_amount_must_be_a_number(mini_workspace: Path) -> None:
    replace_in(mini_workspace / IND, ",330,MW,", ",lots,MW,")
    the_problem(problems_of(mini_workspace), IND, 3, "figure_amount", "number")


def test_model_level_error_in_csv(mini_workspace: Path) -> None:
    replace_in(mini_workspace / CASES, "2022-01-01,year,2022-03-22", "2022-01-01,year,2021-03-22")
    the_problem(problems_of(mini_workspace), CASES, 5, "resolved", "before announced")


def test_workspace_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        load_workspace(tmp_path / "nope", today=TODAY)


def test_invalid_workspace_error_is_a_georisk_error(mini_workspace: Path) -> None:
    (mini_workspace / SRC).unlink()
    with pytest.raises(GeoriskError):
        load_workspace(mini_workspace, today=TODAY)


# --------------------------------------------------------------------------------------
# Many problems at once
# --------------------------------------------------------------------------------------


def test_all_problems_are_reported_at_once(mini_workspace: Path) -> None:
    ws = mini_workspace
    replace_in(
        ws / SRC,
        "2024-05-28,day,https://example.org/reuters-uzb-npp,B",
        "2024-05-28,day,https://example.org/reuters-uzb-npp,G",
    )  # 1 grade
    replace_in(ws / IND, "alignment_with_russia", "alignment_with_rusia")  # 2 kind
    replace_in(ws / IND, "ind-005,src-001", "ind-005,src-404")  # 3 source
    replace_in(ws / CASES, "2026-10-01,ongoing,Yes", "2026-10-01,ongoing,perhaps")  # 4 bool
    replace_in(ws / REFIND, "ri-002,NPP-VN-NINHTHUAN", "ri-002,NPP-XX")  # 5 case
    replace_in(
        ws / REFS,
        "nato-ajp-2-1,NATO AJP-2.1 Allied Joint Doctrine for Intelligence Procedures",
        "nato-ajp-2-1,AJP-2.1",
    )  # 6 citation
    replace_in(ws / WIN, "horizon: 2027-12-31", "horizon: 2025-12-31")  # 7 horizon
    (ws / PROJ).write_text("id: [unclosed\n", encoding="utf-8")  # 8 syntax
    replace_in(ws / "priors/weights.yaml", "value: 0.85", "value: high")  # 9 prior

    problems = problems_of(ws)
    expected = [
        (SRC, 2, "reliability"),
        (IND, 4, "kind"),
        (IND, 6, "source_id"),
        (CASES, 4, "russia_involved"),
        (REFIND, 3, "case_id"),
        (REFS, 4, "citation"),
        (WIN, line_of(ws / WIN, "horizon"), "horizon"),
        (PROJ, 2, None),
        ("priors/weights.yaml", line_of(ws / "priors/weights.yaml", "value: high"), "value"),
    ]
    found = {(p.file, p.line, p.field) for p in problems}
    missing = [e for e in expected if e not in found]
    assert not missing, "\n".join(str(p) for p in problems)
    # the broken scenario file is not blamed again through the indicators linking to it
    assert not [p for p in problems if p.field == "links"]
    assert "problem(s) in the workspace" in str(WorkspaceError(problems))


# --------------------------------------------------------------------------------------
# Property: mangled rows never crash the loader
# --------------------------------------------------------------------------------------

_cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""',
            ",",
            ";",
            ":",
            "\n",
            "\r",
            "\x00",
            "=1+1",
            "src-001",
            "ind-001",
            "2024-05-27",
            "2024-13-45",
            "day",
            "KAZ",
            "kaz",
            "project_announcement",
            "2",
            "7",
            "nan",
            "1e999",
            f"{PROJECT_SCENARIO}:supports",
            f"{PROJECT_SCENARIO}:maybe",
            "é",
            "\ufeff",
        ]
    ),
)
_row = st.lists(_cell, min_size=0, max_size=16).map(",".join)
_raw = st.one_of(_row, st.text(max_size=200))


@pytest.fixture(scope="module")
def pristine_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mini_workspace(tmp_path_factory.mktemp("pristine"))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(_raw, min_size=1, max_size=4), keep_header=st.booleans())
def test_mangled_indicator_rows_never_crash(
    pristine_workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[str],
    keep_header: bool,
) -> None:
    root = tmp_path_factory.mktemp("mangled")
    shutil.copytree(pristine_workspace, root, dirs_exist_ok=True)
    path = root / IND
    original = path.read_text(encoding="utf-8")
    text = original if keep_header else ""
    path.write_text(text + "\n".join(rows) + "\n", encoding="utf-8")
    try:
        ws = load_workspace(root, today=TODAY)
    except WorkspaceError as exc:
        assert exc.problems
        assert all(isinstance(p, Problem) and p.file for p in exc.problems)
    else:
        assert isinstance(ws, Workspace)
        ws.indicators_frame()


def test_invalid_row_still_gets_its_references_checked(mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / IND,
        "ind-005,src-001,ev-uzb-eu-partnership,2024-03-01,month,UZB;EU,realignment_signal",
        "ind-005,src-404,ev-uzb-eu-partnership,2024-03-01,month,UZB;EU,realignment_signl",
    )
    replace_in(
        mini_workspace / IND,
        "agreement,,,uzb-npp-first-concrete:opposes",
        "agreement,,,uzb-npp:opposes",
    )
    problems = problems_of(mini_workspace)
    the_problem(problems, IND, 6, "kind", "did you mean 'realignment_signal'")
    the_problem(problems, IND, 6, "source_id", "src-404")
    the_problem(problems, IND, 6, "links", "uzb-npp")


def test_infinite_half_life_is_allowed(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/evidence.yaml"
    replace_in(path, "value: 365.0", "value: .inf")
    ws = load_workspace(mini_workspace, today=TODAY)
    assert ws.priors["half_life.implementation_milestone"].value == float("inf")


def test_infinite_weight_is_rejected(mini_workspace: Path) -> None:
    path = mini_workspace / "priors/weights.yaml"
    replace_in(path, "value: 0.85", "value: .inf")
    p = the_problem(
        problems_of(mini_workspace), "priors/weights.yaml", line_of(path, ".inf"), "value"
    )
    assert "finite" in p.message


def test_reference_event_directions_are_per_case(mini_workspace: Path) -> None:
    path = mini_workspace / REFIND
    # the same event may support one case and oppose another ...
    append_line(
        path,
        "ri-003,NPP-VN-NINHTHUAN,ev-by-loan,2011-11-25,day,financing_commitment,opposes,B,2,"
        "Russian loan to Belarus read in Hanoi as crowding out its own loan,Reuters (Dec 2011)",
    )
    load_workspace(mini_workspace, today=TODAY)
    # ... but not both support and oppose the same case
    line = append_line(
        path,
        "ri-004,NPP-BY-OSTROVETS,ev-by-loan,2011-11-25,day,financing_commitment,opposes,B,2,"
        "Russian state loan for the plant said to come with tough terms,Reuters (Dec 2011)",
    )
    p = the_problem(problems_of(mini_workspace), REFIND, line, "direction", "ev-by-loan")
    assert "case 'NPP-BY-OSTROVETS'" in p.message and "line 2" in p.message


def test_non_utf8_yaml_file(mini_workspace: Path) -> None:
    path = mini_workspace / WIN
    path.write_bytes(path.read_bytes().replace(b"Novorossiysk", b"Novorossi\xffsk"))
    p = the_problem(problems_of(mini_workspace), WIN, line_of_bytes(path, b"\xff"), None, "UTF-8")
    assert "0xff" in p.message


def line_of_bytes(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    return data.count(b"\n", 0, data.index(needle)) + 1
