"""``georisk score``, ``history``, ``explain`` and ``export``: exit codes, output, store safety."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

import georisk.cli_score as cli_score
from georisk.cli import app
from georisk.cli_score import EXIT_ALERT
from georisk.history import HistoryStore
from georisk.model import SamplerConfig
from georisk.posterior import fit_id_for
from georisk.workspace import load_workspace
from helpers import PROJECT_SCENARIO, TODAY, WINDOW_SCENARIO, replace_in, write_mini_workspace
from test_history import HOLD_THE_STORE, finish, install, snapshot, spawn, wait_for

ENV = {"COLUMNS": "120", "NO_COLOR": "1"}
DAY = ["--today", TODAY.isoformat()]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "scheduling.md"


@pytest.fixture(autouse=True)
def _no_env_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEORISK_HISTORY", raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=ENV)


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    root = write_mini_workspace(tmp_path / "ws")
    install(root)
    return root


def store_of(root: Path) -> Path:
    return root / ".georisk" / "history.duckdb"


def score(runner: CliRunner, root: Path, *args: str):
    return runner.invoke(app, ["score", str(root), *DAY, *args])


def score_json(runner: CliRunner, root: Path, *args: str) -> tuple[int, dict]:
    result = score(runner, root, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def n_runs(path: Path) -> int:
    with HistoryStore(path, read_only=True) as store:
        return len(store.runs())


# --------------------------------------------------------------------------------------
# georisk score
# --------------------------------------------------------------------------------------


def test_score_prints_the_table_and_stores_the_run(runner: CliRunner, ws_root: Path) -> None:
    result = score(runner, ws_root)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "as of 2026-11-25" in out and "(reused stored fit)" in out and "converged" in out
    assert "run 1 stored in" in out and "inputs: first run" in out
    for column in ("P % [80%]", "95%", "ICD 203", "base %", "Δ pp"):
        assert column in out
    assert PROJECT_SCENARIO in out and WINDOW_SCENARIO in out
    assert "top drivers" in out and "ev-uzb-npp-deal" in out
    assert "UNCONVERGED" not in out
    again = score(runner, ws_root)
    assert again.exit_code == 0, again.output
    assert "run 2 stored" in again.stdout and "inputs: nothing changed" in again.stdout
    assert "+0.0" in again.stdout
    assert n_runs(store_of(ws_root)) == 2


def test_score_json_has_what_a_scheduler_needs(runner: CliRunner, ws_root: Path) -> None:
    code, doc = score_json(runner, ws_root)
    assert code == 0
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["status"] == "ok"
    assert doc["store"] == str(store_of(ws_root)) and doc["alerts"] == []
    (run,) = doc["runs"]
    assert run["run_id"] == 1 and run["stored"] is True and run["as_of"] == "2026-11-25"
    assert run["refit"] is False and run["fit"] == "reused stored fit"
    assert run["diagnostics"]["status"] == "converged" and run["unconverged"] is False
    assert run["changed_inputs"] == "first run"
    first = {s["scenario_id"]: s for s in run["scores"]}
    assert set(first) == {PROJECT_SCENARIO, WINDOW_SCENARIO}
    s = first[PROJECT_SCENARIO]
    assert s["p_q025"] <= s["p_q10"] <= s["p_median"] <= s["p_q90"] <= s["p_q975"]
    assert 0 < s["p_mean"] < 1 and 0 < s["p_base_mean"] < 1
    assert s["icd203"] and isinstance(s["band_straddle"], bool)
    assert s["delta_p"] is None and s["previous"] is None and s["flag"] is None
    assert s["top_drivers"] and {"term", "kind", "logodds_mean"} <= set(s["top_drivers"][0])
    code, doc = score_json(runner, ws_root)
    (run,) = doc["runs"]
    assert run["changed_inputs"] == "nothing changed" and run["run_id"] == 2
    for s in run["scores"]:
        assert s["delta_p"] == 0.0 and s["previous"]["run_id"] == 1
        assert s["p_mean"] == first[s["scenario_id"]]["p_mean"]  # bit for bit


def test_unconverged_fit_exits_1_and_is_marked_everywhere(
    runner: CliRunner, tmp_path: Path
) -> None:
    root = write_mini_workspace(tmp_path / "ws")
    install(root, converged=False)
    result = score(runner, root)
    assert result.exit_code == 1, result.output
    assert result.stdout.count("UNCONVERGED") >= 3  # header, banner, every score
    assert "R-hat of eta is 1.310" in result.stdout and "do not publish" in result.stdout
    code, doc = score_json(runner, root)
    assert code == 1 and doc["status"] == "unconverged" and doc["exit_code"] == 1
    assert all(s["flag"] == "UNCONVERGED" for s in doc["runs"][0]["scores"])
    assert doc["runs"][0]["diagnostics"]["problems"]
    with HistoryStore(store_of(root), read_only=True) as store:
        assert set(store.runs()["diagnostics_status"]) == {"unconverged"}
        assert set(store.scores()["diagnostics_status"]) == {"unconverged"}
    # quiet: the warning still reaches stderr
    quiet = score(runner, root, "--quiet")
    assert quiet.exit_code == 1 and quiet.stdout == "" and "UNCONVERGED" in quiet.stderr


def test_alert_threshold_sets_exit_code_4(runner: CliRunner, ws_root: Path) -> None:
    code, _ = score_json(runner, ws_root, "--as-of", "2026-03-01")
    assert code == 0
    code, doc = score_json(runner, ws_root, "--alert-threshold", "0.0001")
    assert code == EXIT_ALERT == 4
    assert doc["status"] == "alert" and doc["exit_code"] == 4
    assert doc["alerts"] and doc["alerts"] == doc["runs"][0]["alerts"]
    alert = doc["alerts"][0]
    assert abs(alert["delta_p"]) >= 0.0001 and alert["previous_run_id"] == 1
    assert math.isclose(alert["p_after"] - alert["p_before"], alert["delta_p"])
    result = score(runner, ws_root, "--alert-threshold", "0.0001")
    assert result.exit_code == 0, result.output  # no move since the previous run
    result = score(runner, ws_root, "--as-of", "2026-09-01", "--alert-threshold", "0.0001")
    assert result.exit_code == 4 and "alert:" in result.stderr and "‼" in result.stdout
    result = score(runner, ws_root, "--as-of", "2026-09-01", "--alert-threshold", "0.9")
    assert result.exit_code == 0


def test_unconverged_takes_precedence_over_an_alert(runner: CliRunner, tmp_path: Path) -> None:
    root = write_mini_workspace(tmp_path / "ws")
    install(root, converged=False)
    score(runner, root, "--as-of", "2026-03-01")
    code, doc = score_json(runner, root, "--alert-threshold", "0.0001")
    assert code == 1 and doc["alerts"]


def test_invalid_workspace_exits_2_and_leaves_the_store_untouched(
    runner: CliRunner, ws_root: Path, tmp_path: Path
) -> None:
    assert score(runner, ws_root).exit_code == 0
    before = snapshot(store_of(ws_root))
    replace_in(ws_root / "data/indicators.csv", "alignment_with_russia", "alignment_with_rusia")
    result = score(runner, ws_root)
    assert result.exit_code == 2
    assert "alignment_with_rusia" in result.stderr and "invalid workspace" in result.stderr
    code, doc = score_json(runner, ws_root)
    assert code == 2 and doc["status"] == "invalid" and doc["problems"]
    assert snapshot(store_of(ws_root)) == before
    # a broken workspace without a store gets no store
    fresh = write_mini_workspace(tmp_path / "fresh")
    replace_in(fresh / "data/indicators.csv", "ind-005,src-001", "ind-005,src-404")
    assert score(runner, fresh).exit_code == 2
    assert not (fresh / ".georisk").exists()


def test_no_store_writes_nothing(runner: CliRunner, ws_root: Path) -> None:
    result = score(runner, ws_root, "--no-store")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing stored" in result.stdout
    assert not store_of(ws_root).exists()
    score(runner, ws_root)
    before = snapshot(store_of(ws_root))
    code, doc = score_json(runner, ws_root, "--no-store")
    assert code == 0 and doc["store"] is None
    assert doc["runs"][0]["run_id"] is None and doc["runs"][0]["stored"] is False
    assert doc["runs"][0]["scores"][0]["delta_p"] == 0.0  # compared with the stored run
    assert snapshot(store_of(ws_root)) == before


def test_store_option_and_environment_variable(
    runner: CliRunner, ws_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_env, by_option = tmp_path / "env" / "h.duckdb", tmp_path / "opt.duckdb"
    monkeypatch.setenv("GEORISK_HISTORY", str(by_env))
    assert score(runner, ws_root).exit_code == 0
    assert score(runner, ws_root, "--store", str(by_option)).exit_code == 0
    assert n_runs(by_env) == 1 and n_runs(by_option) == 1
    assert not store_of(ws_root).exists()


def test_foreign_file_at_the_store_path_exits_2_untouched(
    runner: CliRunner, ws_root: Path, tmp_path: Path
) -> None:
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("my notes, not a database\n")
    before = snapshot(foreign)
    result = score(runner, ws_root, "--store", str(foreign))
    assert result.exit_code == 2
    assert "not a georisk history store" in result.stderr and "never overwrites" in result.stderr
    assert snapshot(foreign) == before


def test_busy_store_exits_3_and_stores_nothing(
    runner: CliRunner, ws_root: Path, tmp_path: Path
) -> None:
    assert score(runner, ws_root).exit_code == 0
    marker = tmp_path / "marker"
    holder = spawn(HOLD_THE_STORE, ws_root, store_of(ws_root), marker, 4.0)
    try:
        wait_for(marker, holder)
        result = score(runner, ws_root, "--wait", "0.3")
        assert result.exit_code == 3, result.output
        assert "busy" in result.stderr and "--wait" in result.stderr
        code, doc = score_json(runner, ws_root, "--wait", "0.2")
        assert code == 3 and doc["status"] == "store_busy"
        # readers say why they cannot read
        hist = runner.invoke(app, ["history", PROJECT_SCENARIO, str(ws_root), "--wait", "0.2"])
        assert hist.exit_code == 3 and "busy" in hist.stderr
    finally:
        err = finish(holder)
    assert holder.returncode == 0, err
    assert n_runs(store_of(ws_root)) == 2  # the first run and the holder's, nothing else


CLI_RUN = """
import sys
from georisk.cli import app
app(sys.argv[1:])
"""


def test_two_score_commands_at_once_both_land(ws_root: Path) -> None:
    args = ["score", str(ws_root), *DAY, "--json", "--wait", "120"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLI_RUN), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        ids.append(json.loads(out)["runs"][0]["run_id"])
    assert sorted(ids) == [1, 2]
    with HistoryStore(store_of(ws_root), read_only=True) as store:
        assert list(store.runs()["changed_inputs"]) == ["first run", "nothing changed"]
        assert len(store.scores(1)) == len(store.scores(2))


def test_backfill_one_run_per_date(runner: CliRunner, ws_root: Path) -> None:
    code, doc = score_json(
        runner, ws_root, "--as-of-range", "2026-01-01:2026-11-25", "--every", "3m"
    )
    assert code == 0
    dates = [r["as_of"] for r in doc["runs"]]
    assert dates == ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01", "2026-11-25"]
    assert [r["run_id"] for r in doc["runs"]] == [1, 2, 3, 4, 5]
    assert all(PROJECT_SCENARIO in {s["scenario_id"] for s in r["scores"]} for r in doc["runs"])
    with HistoryStore(store_of(ws_root), read_only=True) as store:
        runs = store.runs()
        traj = store.trajectory(PROJECT_SCENARIO)
    assert (
        runs["note"].str.startswith("backfill 2026-01-01:2026-11-25 every 3m (current fit)").all()
    )
    assert len(traj) == 5 and traj["fit_id"].nunique() == 1
    text = score(runner, ws_root, "--as-of-range", "2026-10-01:2026-11-25", "--every", "30d")
    assert text.exit_code == 0 and "backfill: 3 run(s)" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--every", "1m"], "--every needs --as-of-range"),
        (["--as-of", "2026-01-01", "--as-of-range", "2026-01-01:2026-02-01"], "either --as-of"),
        (["--as-of-range", "2026-01-01"], "must be START:END"),
        (["--as-of-range", "2026-01-01:2026-02-01", "--every", "often"], "must be START:END"),
        (["--refit-as-of"], "--refit-as-of needs"),
    ],
)
def test_bad_options_exit_2(runner: CliRunner, ws_root: Path, args, message) -> None:
    result = score(runner, ws_root, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not store_of(ws_root).exists()


def test_seed_selects_its_own_fit(runner: CliRunner, ws_root: Path) -> None:
    ws = load_workspace(ws_root, today=TODAY)
    config = SamplerConfig(seed=5)
    install(ws_root, config=config, seed=5)
    code, doc = score_json(runner, ws_root, "--seed", "5")
    assert code == 0 and doc["runs"][0]["fit_id"] == fit_id_for(ws, config=config)
    code, doc2 = score_json(runner, ws_root)
    assert doc2["runs"][0]["fit_id"] == fit_id_for(ws, config=SamplerConfig())
    assert doc2["runs"][0]["changed_inputs"] == "fit"


def test_warm_score_does_not_import_pymc(ws_root: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from georisk.cli import app
        try:
            app(sys.argv[1:])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        heavy = sorted(m for m in ("pymc", "pytensor", "arviz", "nutpie") if m in sys.modules)
        print("HEAVY=" + ",".join(heavy), file=sys.stderr)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "score", str(ws_root), *DAY, "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr


def test_quiet_dry_run_leaves_the_history_closed(runner: CliRunner, ws_root: Path) -> None:
    # --no-store --quiet shows nothing that needs the history: DuckDB is not even imported
    # (a tenth of a warm run). An alert threshold needs the comparison: then it is made.
    assert score(runner, ws_root).exit_code == 0
    before = snapshot(store_of(ws_root))
    code = textwrap.dedent(
        """
        import sys
        from georisk.cli import app
        try:
            app(sys.argv[1:])
        except SystemExit as exc:
            print(f"EXIT={exc.code}", file=sys.stderr)
        print(f"DUCKDB={'duckdb' in sys.modules}", file=sys.stderr)
        """
    )

    def run(*extra: str) -> str:
        argv = [sys.executable, "-c", code, "score", str(ws_root), *DAY, "--no-store", *extra]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    quiet = run("--quiet")
    assert "EXIT=0" in quiet and "DUCKDB=False" in quiet
    alerting = run("--quiet", "--alert-threshold", "0.5")
    assert "EXIT=0" in alerting and "DUCKDB=True" in alerting
    assert snapshot(store_of(ws_root)) == before


def test_exit_codes_are_documented() -> None:
    doc = cli_score.__doc__ or ""
    for code in ("0", "1", "2", "3", "4"):
        assert f"\n{code}\n" in doc
    text = DOCS.read_text(encoding="utf-8")
    for needle in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "--alert-threshold", "crontab"):
        assert needle in text


# --------------------------------------------------------------------------------------
# georisk history / explain / export
# --------------------------------------------------------------------------------------


def test_history_table_csv_and_json(runner: CliRunner, ws_root: Path) -> None:
    score(runner, ws_root, "--as-of", "2026-06-01")
    score(runner, ws_root)
    result = runner.invoke(app, ["history", PROJECT_SCENARIO, str(ws_root)])
    assert result.exit_code == 0, result.output
    assert "2026-06-01" in result.stdout and "2026-11-25" in result.stdout
    assert "converged" in result.stdout
    as_csv = runner.invoke(app, ["history", PROJECT_SCENARIO, str(ws_root), "--csv"])
    rows = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert [r["run_id"] for r in rows] == ["1", "2"] and rows[0]["as_of"] == "2026-06-01"
    assert float(rows[1]["p_mean"]) > 0
    as_json = runner.invoke(app, ["history", PROJECT_SCENARIO, str(ws_root), "--json"])
    doc = json.loads(as_json.stdout)
    assert [r["run_id"] for r in doc["runs"]] == [1, 2]
    assert doc["runs"][1]["delta_p"] == pytest.approx(
        doc["runs"][1]["p_mean"] - doc["runs"][0]["p_mean"]
    )
    unknown = runner.invoke(app, ["history", "uzb-npp-first-concret", str(ws_root)])
    assert unknown.exit_code == 2 and "did you mean 'uzb-npp-first-concrete'" in unknown.stderr
    missing = runner.invoke(app, ["history", PROJECT_SCENARIO, str(ws_root / "nowhere")])
    assert missing.exit_code == 2 and "no history store" in missing.stderr


def test_explain_command_parts_add_up(runner: CliRunner, ws_root: Path) -> None:
    score(runner, ws_root, "--as-of", "2025-01-01")
    one = runner.invoke(app, ["explain", PROJECT_SCENARIO, str(ws_root)])
    assert one.exit_code == 2 and "nothing to compare" in one.stderr
    score(runner, ws_root, "--as-of", "2026-06-01")
    result = runner.invoke(app, ["explain", PROJECT_SCENARIO, str(ws_root)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run 1 (as of 2025-01-01) → run 2 (as of 2026-06-01)" in out and "same fit" in out
    assert "new indicators" in out and "ev-cpc-drone-2025" in out
    assert "passage of time" in out and "total" in out
    doc = json.loads(
        runner.invoke(app, ["explain", PROJECT_SCENARIO, str(ws_root), "--json"]).stdout
    )
    total = math.fsum(p["logodds_change"] for p in doc["parts"])
    assert abs(total - doc["logodds_change"]) <= 1e-9
    since = runner.invoke(app, ["explain", PROJECT_SCENARIO, str(ws_root), "--since", "2025-12-31"])
    assert since.exit_code == 0 and "run 1 (as of 2025-01-01)" in since.stdout
    bad = runner.invoke(app, ["explain", PROJECT_SCENARIO, str(ws_root), "--since", "yesterday"])
    assert bad.exit_code == 2 and "run id" in bad.stderr


def test_export_neutralises_formulas_and_keeps_numbers(runner: CliRunner, tmp_path: Path) -> None:
    root = write_mini_workspace(tmp_path / "ws")
    replace_in(
        root / f"scenarios/{PROJECT_SCENARIO}.yaml",
        "title: First concrete of the Uzbek small nuclear plant by 2028",
        'title: \'=HYPERLINK("http://evil.example","First concrete")\'',
    )
    install(root)
    assert score(runner, root, "--as-of", "2026-06-01").exit_code == 0
    assert score(runner, root).exit_code == 0
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{t}.{e}" for t in ("scores", "history", "contributions", "runs")
                           for e in ("csv", "parquet"))  # fmt: skip
    with open(out / "scores.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    titles = {r["scenario_id"]: r["title"] for r in rows}
    assert titles[PROJECT_SCENARIO].startswith("'=HYPERLINK(")
    assert {r["run_id"] for r in rows} == {"2"}  # the latest run
    with open(out / "contributions.csv", newline="", encoding="utf-8") as f:
        contrib = list(csv.DictReader(f))
    negatives = [r["logodds_mean"] for r in contrib if r["logodds_mean"].startswith("-")]
    assert negatives, "expected negative log-odds in the export"
    assert all(float(v) < 0 for v in negatives)  # numbers, not neutralised text
    assert not any(r["logodds_mean"].startswith("'") for r in contrib)
    history_csv = pd.read_csv(out / "history.csv")
    assert history_csv["logodds_mean"].dtype == float and (history_csv["logodds_mean"] < 0).any()
    assert len(history_csv) == 4 and sorted(history_csv["as_of"].unique()) == [
        "2026-06-01",
        "2026-11-25",
    ]
    parquet = pd.read_parquet(out / "history.parquet")
    assert len(parquet) == 4 and parquet["title"].str.startswith("=HYPERLINK").any()
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs["run_id"]) == [1, 2]
    all_runs = runner.invoke(app, ["export", str(root), "--out", str(out), "--all-runs"])
    assert all_runs.exit_code == 0
    assert set(pd.read_parquet(out / "contributions.parquet")["run_id"]) == {1, 2}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_export_of_a_foreign_store_is_refused(runner: CliRunner, ws_root: Path, tmp_path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    before = snapshot(path)
    result = runner.invoke(app, ["export", str(ws_root), "--out", str(tmp_path / "o"),
                                 "--store", str(path)])  # fmt: skip
    assert result.exit_code == 2 and "not a georisk history store" in result.stderr
    assert snapshot(path) == before and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_end_to_end_first_run_fits_second_reuses(runner: CliRunner, tmp_path: Path) -> None:
    root = write_mini_workspace(tmp_path / "ws")
    first = score(runner, root, "--json")
    doc = json.loads(first.stdout)
    run = doc["runs"][0]
    assert run["refit"] is True and run["fit"] == "refit"
    assert first.exit_code == (0 if run["diagnostics"]["converged"] else 1)
    second = score(runner, root, "--json")
    doc2 = json.loads(second.stdout)
    assert (
        doc2["runs"][0]["refit"] is False and doc2["runs"][0]["changed_inputs"] == "nothing changed"
    )
    for a, b in zip(run["scores"], doc2["runs"][0]["scores"], strict=True):
        assert a["p_mean"] == b["p_mean"]
