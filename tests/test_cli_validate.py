from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import georisk.cli as cli
from georisk.cli import EXIT_INVALID, EXIT_STORE_BUSY, EXIT_UNCONVERGED, app
from georisk.errors import DiagnosticsError, GeoriskError, StoreBusyError, WorkspaceError
from georisk.exports import neutralise_formula, to_safe_csv
from georisk.workspace import load_workspace
from helpers import PROJECT_SCENARIO, TODAY, replace_in

ENV = {"COLUMNS": "120", "NO_COLOR": "1"}
TODAY_ARGS = ["--today", TODAY.isoformat()]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=ENV)


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "validate" in result.stdout and "ledger" in result.stdout


def test_exit_codes_are_documented() -> None:
    doc = cli.__doc__ or ""
    for code in ("0", "1", "2", "3"):
        assert f"\n{code}\n" in doc
    assert (cli.EXIT_OK, EXIT_UNCONVERGED, EXIT_INVALID, EXIT_STORE_BUSY) == (0, 1, 2, 3)


def test_validate_valid_workspace(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(app, ["validate", str(mini_workspace), *TODAY_ARGS])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid: 2 sources, 5 indicators (4 events), 2 scenarios")
    assert "38 priors" in result.stdout and "4 reference cases" in result.stdout
    assert result.stderr == ""


def test_validate_defaults_to_the_current_directory(
    runner: CliRunner, mini_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(mini_workspace)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output


def _break(ws: Path) -> None:
    replace_in(ws / "data/sources.csv", "https://example.org/reuters-uzb-npp,B", "x-url,B")
    replace_in(ws / "data/indicators.csv", "alignment_with_russia", "alignment_with_rusia")
    replace_in(ws / "data/indicators.csv", "ind-005,src-001", "ind-005,src-404")
    replace_in(ws / "data/reference_cases.csv", "2026-10-01,ongoing,Yes", "2026-10-01,ongoing,?")
    replace_in(ws / "scenarios/cpc-export-disruption-2027.yaml", "horizon: 2027-12-31",
               "horizon: 2025-12-31")  # fmt: skip
    (ws / f"scenarios/{PROJECT_SCENARIO}.yaml").write_text("id: [oops\n", encoding="utf-8")
    replace_in(ws / "priors/weights.yaml", "value: 0.85", "value: high")


def test_validate_lists_every_problem(runner: CliRunner, mini_workspace: Path) -> None:
    _break(mini_workspace)
    with pytest.raises(WorkspaceError) as info:
        load_workspace(mini_workspace, today=TODAY)
    expected = [str(p) for p in info.value.problems]
    assert len(expected) >= 7

    result = runner.invoke(app, ["validate", str(mini_workspace), *TODAY_ARGS])
    assert result.exit_code == EXIT_INVALID, result.output
    assert result.stdout.splitlines() == expected  # the full list, one problem per line
    assert f"{len(expected)} problem(s)" in result.stderr
    assert "[url]" in result.stdout  # rich markup did not eat the field names
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_validate_missing_directory(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code == EXIT_INVALID
    assert "does not exist" in result.stdout
    assert "Traceback" not in result.output


def test_bad_today_is_a_usage_error(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(app, ["validate", str(mini_workspace), "--today", "25/11/2026"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_ledger_table(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(
        app, ["ledger", str(mini_workspace), "--scenario", PROJECT_SCENARIO, *TODAY_ARGS]
    )
    assert result.exit_code == 0, result.output
    for ind in ("ind-001", "ind-002", "ind-004", "ind-005"):
        assert ind in result.stdout
    assert "ind-003" not in result.stdout  # not linked to the scenario
    assert all(len(line) <= 120 for line in result.stdout.splitlines())


def test_ledger_filters_and_no_match(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(
        app, ["ledger", str(mini_workspace), "--kind", "delay_or_setback", *TODAY_ARGS]
    )
    assert result.exit_code == 0, result.output
    assert "no indicators match" in result.stderr


def test_ledger_bad_filter_is_exit_2(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(
        app, ["ledger", str(mini_workspace), "--kind", "russian_presure", *TODAY_ARGS]
    )
    assert result.exit_code == EXIT_INVALID
    assert "did you mean 'russian_pressure'" in result.stderr
    assert "Traceback" not in result.output


def test_ledger_on_invalid_workspace(runner: CliRunner, mini_workspace: Path) -> None:
    _break(mini_workspace)
    result = runner.invoke(app, ["ledger", str(mini_workspace), *TODAY_ARGS])
    assert result.exit_code == EXIT_INVALID
    assert "data/indicators.csv:4 [kind]" in result.stderr
    assert result.stdout == ""


def test_ledger_csv_neutralises_formulas(runner: CliRunner, mini_workspace: Path) -> None:
    replace_in(
        mini_workspace / "data/indicators.csv",
        "Kazakhstan names Rosatom leader",
        '"=HYPERLINK(""http://evil.example"",""click"") Kazakhstan names Rosatom leader',
    )
    replace_in(
        mini_workspace / "data/indicators.csv", "first nuclear plant,,", 'first nuclear plant",,'
    )
    replace_in(
        mini_workspace / "data/indicators.csv", "Drone strike on", "-5% after a drone strike on"
    )
    result = runner.invoke(app, ["ledger", str(mini_workspace), "--csv", *TODAY_ARGS])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    summaries = {r["indicator_id"]: r["summary"] for r in rows}
    assert summaries["ind-003"].startswith("'=HYPERLINK(")
    assert summaries["ind-004"].startswith("'-5% after")
    assert summaries["ind-001"].startswith("Russia and Uzbekistan")
    assert not [cell for r in rows for cell in r.values() if cell and cell[0] in "=+-@\t\r"]
    assert {r["event_date"] for r in rows} >= {"2024-05-27", "2025-06-14"}
    unlinked = [r for r in rows if r["indicator_id"] == "ind-003"]
    assert unlinked[0]["scenario_id"] == ""


def test_ledger_csv_filtered(runner: CliRunner, mini_workspace: Path) -> None:
    result = runner.invoke(
        app,
        ["ledger", str(mini_workspace), "--csv", "--actor", "Rosatom", "--since", "2025-01-01",
         *TODAY_ARGS],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["indicator_id"] for r in rows] == ["ind-003"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GeoriskError("the store is on fire"), EXIT_INVALID),
        (StoreBusyError("another georisk holds the store"), EXIT_STORE_BUSY),
        (DiagnosticsError("R-hat 1.3"), EXIT_UNCONVERGED),
    ],
)
@pytest.mark.parametrize("command", ["validate", "ledger"])
def test_georisk_errors_never_give_a_traceback(
    runner: CliRunner,
    mini_workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: GeoriskError,
    code: int,
    command: str,
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(cli, "load_workspace", boom)
    result = runner.invoke(app, [command, str(mini_workspace)])
    assert result.exit_code == code, result.output
    assert str(error) in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_main_runs_the_app(monkeypatch: pytest.MonkeyPatch, mini_workspace: Path) -> None:
    monkeypatch.setattr(sys, "argv", ["georisk", "validate", str(mini_workspace), *TODAY_ARGS])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 0


# --------------------------------------------------------------------------------------
# exports
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["=1+1", "+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd", '=HYPERLINK("x")']
)
def test_neutralise_formula_prefixes_dangerous_strings(value: str) -> None:
    assert neutralise_formula(value) == "'" + value


@pytest.mark.parametrize("value", ["Kazakhstan", "", " =padded", "'=already", "a=b", "1-2"])
def test_neutralise_formula_leaves_safe_strings(value: str) -> None:
    assert neutralise_formula(value) == value


@pytest.mark.parametrize("value", [-3.5, 7, None, True, pd.Timestamp("2024-01-01")])
def test_neutralise_formula_leaves_non_strings(value: object) -> None:
    assert neutralise_formula(value) is value


def test_neutralise_formula_is_idempotent() -> None:
    once = neutralise_formula("=1+1")
    assert neutralise_formula(once) == once


def test_to_safe_csv() -> None:
    df = pd.DataFrame(
        {
            "text": ["=cmd", "fine", None],
            "number": [-1.5, 2.0, 3.0],
            "date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "=col": ["@x", "+y", "-z"],
        }
    )
    before = df.copy()
    text = to_safe_csv(df)
    assert text is not None
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["text", "number", "date", "'=col"]
    assert rows[1] == ["'=cmd", "-1.5", "2024-01-01", "'@x"]
    assert rows[2] == ["fine", "2.0", "2024-01-02", "'+y"]
    assert rows[3] == ["", "3.0", "2024-01-03", "'-z"]
    pd.testing.assert_frame_equal(df, before)  # the input is not modified


def test_to_safe_csv_writes_to_a_path(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    assert to_safe_csv(pd.DataFrame({"a": ["-x"]}), path) is None
    assert path.read_text(encoding="utf-8").splitlines() == ["a", "'-x"]
