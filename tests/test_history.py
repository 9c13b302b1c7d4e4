"""The history store: atomic runs, one writer, foreign files untouched, migrations, explain.

No MCMC here: a posterior with fixed random draws is saved under the fit id the workspace's
inputs give, so ``load_or_fit`` reuses it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import georisk.history as history
from georisk import MODEL_VERSION
from georisk.diagnostics import DiagnosticsReport
from georisk.errors import StoreBusyError, StoreError
from georisk.evidence import KINDS
from georisk.explain import (
    PARTS,
    TOLERANCE,
    RunLookupError,
    decompose_change,
    explain_change,
    term_changes,
)
from georisk.history import (
    SCHEMA_VERSION,
    HistoryStore,
    default_store_path,
    iter_dates,
    resolve_store_path,
    workspace_git_commit,
)
from georisk.model import SamplerConfig
from georisk.model_data import PROJECT_CATEGORIES, WINDOW_CATEGORIES
from georisk.posterior import Posterior, default_posterior_dir, fit_id_for, load_or_fit
from georisk.scoring import score_run
from georisk.workspace import load_workspace
from helpers import PROJECT_SCENARIO, TODAY, WINDOW_SCENARIO, write_mini_workspace

UNCONVERGED = DiagnosticsReport(
    converged=False,
    max_rhat=1.31,
    min_ess_bulk=12.0,
    min_ess_tail=9.0,
    divergences=7,
    problems=["R-hat of eta is 1.310 (must be <= 1.01).", "7 divergent transition(s) (must be 0)."],
)


def fixed_posterior(
    ws, *, converged: bool = True, seed: int = 0, n: int = 400, fit_id: str | None = None,
    config: SamplerConfig | None = None, strength_scale: float = 1.0,
) -> Posterior:  # fmt: skip
    """A posterior with fixed random draws, stored where ``load_or_fit`` looks for it."""
    config = config or SamplerConfig()
    rng = np.random.default_rng(seed)
    draws = {
        "eta": rng.normal(0.0, 0.6, (n, len(PROJECT_CATEGORIES))),
        "eta_window": rng.normal(-1.0, 0.5, (n, len(WINDOW_CATEGORIES))),
        "strength": strength_scale * np.abs(rng.normal(0.8, 0.3, (n, len(KINDS)))),
        "lag_log_median": rng.normal(np.log(5.0), 0.1, n),
        "lag_log_sd": np.abs(rng.normal(0.6, 0.05, n)),
        "term_log_median": rng.normal(np.log(4.0), 0.1, n),
        "term_log_sd": np.abs(rng.normal(0.6, 0.05, n)),
        "rho": rng.uniform(0.2, 0.8, n),
    }
    diagnostics = DiagnosticsReport(True, 1.002, 1500.0, 1400.0, 0) if converged else UNCONVERGED
    posterior = Posterior(
        fit_id=fit_id or fit_id_for(ws, config=config),
        draws=draws,
        diagnostics=diagnostics,
        meta={"sampler": config.as_dict(), "model_version": MODEL_VERSION},
    )
    posterior.save(default_posterior_dir(ws))
    return posterior


def install(root: Path, **kwargs) -> tuple:
    """Load the workspace at ``root`` and store a fixed posterior for it."""
    ws = load_workspace(root, today=TODAY)
    fixed_posterior(ws, **kwargs)
    return ws


@pytest.fixture
def ws(tmp_path: Path):
    return install(write_mini_workspace(tmp_path / "ws"))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "history.duckdb"


def scored(ws, as_of: dt.date = TODAY):
    posterior, fitted = load_or_fit(ws)
    assert not fitted
    return score_run(ws, posterior, as_of=as_of), posterior


def write(store_path: Path, ws, as_of: dt.date = TODAY, **kwargs) -> int:
    run, posterior = scored(ws, as_of)
    with HistoryStore(store_path) as store:
        return store.write_run(run, posterior, ws, **kwargs)


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def table_counts(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: con.execute(
                f"SELECT run_id, count(*) FROM {t} GROUP BY run_id ORDER BY run_id"
            ).fetchall()
            for t in ("runs", "scores", "contributions")
        }
    finally:
        con.close()


# --------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------


def test_write_run_stores_scores_and_contributions_exactly(ws, store_path: Path) -> None:
    run, posterior = scored(ws)
    with HistoryStore(store_path) as store:
        run_id = store.write_run(run, posterior, ws, note="first")
        assert run_id == 1
        assert store.schema_version == SCHEMA_VERSION
        runs = store.runs()
        scores = store.scores(run_id)
        contrib = store.contributions(run_id)
        latest = store.latest_scores()
        traj = store.trajectory(PROJECT_SCENARIO)
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["fit_id"] == run.fit_id and r["diagnostics_status"] == "converged"
    assert (
        r["as_of"].date() == TODAY and r["note"] == "first" and r["changed_inputs"] == "first run"
    )
    assert r["ledger_hash"] == ws.input_hash("ledger")
    assert r["reference_hash"] == ws.input_hash("reference")
    assert r["workspace_git_commit"] is None or len(r["workspace_git_commit"]) == 40
    assert r["refit"] is False or r["refit"] == False  # noqa: E712 - numpy bool
    assert r["n_scores"] == len(run.scores)
    src = run.scores.set_index("scenario_id")
    got = scores.set_index("scenario_id")
    pairs = {
        "p_mean": "p_mean",
        "p_q025": "p_q0.025",
        "p_q10": "p_q0.10",
        "p_q90": "p_q0.90",
        "p_q975": "p_q0.975",
        "p_median": "p_median",
        "p_base_mean": "p_base_mean",
        "logodds_mean": "logodds_mean",
    }
    for mine, theirs in pairs.items():
        np.testing.assert_array_equal(got.loc[src.index, mine].to_numpy(), src[theirs].to_numpy())
    bands = {"almost no chance", "very unlikely", "unlikely", "roughly even chance", "likely"}
    assert set(got["icd203"]) <= bands | {"very likely", "almost certain"}
    assert len(contrib) == len(run.contributions)
    for sid, group in contrib.groupby("scenario_id"):
        # the stored term means add up to the stored mean log-odds
        assert math.fsum(group["logodds_mean"]) == pytest.approx(
            got.loc[sid, "logodds_mean"], abs=1e-12
        )
        assert set(group["term_type"]) >= {"base_rate", "timing"}
    assert list(latest["scenario_id"]) == sorted(src.index)
    assert list(traj["run_id"]) == [1]


def test_second_run_on_unchanged_inputs_says_nothing_changed(
    ws, store_path: Path, tmp_path
) -> None:
    assert write(store_path, ws) == 1
    assert write(store_path, ws) == 2
    with HistoryStore(store_path, read_only=True) as store:
        runs = store.runs()
        prev = store.previous_scores(2)
    assert list(runs["changed_inputs"]) == ["first run", "nothing changed"]
    assert set(prev["prev_run_id"]) == {1}
    # an edited ledger is named
    ind = Path(ws.root) / "data/indicators.csv"
    ind.write_text(ind.read_text().replace("six 55 MW units", "six 55-MW units"))
    ws2 = install(ws.root)
    assert write(store_path, ws2) == 3
    with HistoryStore(store_path, read_only=True) as store:
        assert store.run(3)["changed_inputs"] == "ledger"


def test_same_inputs_and_seed_give_identical_scores_bit_for_bit(ws, store_path: Path) -> None:
    write(store_path, ws)
    write(store_path, ws)
    with HistoryStore(store_path, read_only=True) as store:
        a = store.scores(1).drop(columns="run_id")
        b = store.scores(2).drop(columns="run_id")
        ca = store.contributions(1).drop(columns="run_id")
        cb = store.contributions(2).drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(ca, cb, check_exact=True)
    assert a["p_mean"].to_numpy().tobytes() == b["p_mean"].to_numpy().tobytes()


def test_previous_and_latest_follow_the_as_of_order(ws, store_path: Path) -> None:
    write(store_path, ws, as_of=TODAY)  # run 1: today
    write(store_path, ws, as_of=TODAY - dt.timedelta(days=60))  # run 2: a backfilled date
    write(store_path, ws, as_of=TODAY + dt.timedelta(days=1))  # run 3: tomorrow
    with HistoryStore(store_path, read_only=True) as store:
        assert store.latest_run_id() == 3
        assert set(store.previous_scores(3)["prev_run_id"]) == {1}
        assert set(store.previous_scores(1)["prev_run_id"]) == {2}
        assert store.previous_scores(2).empty
        assert list(store.trajectory(WINDOW_SCENARIO)["run_id"]) == [2, 1, 3]
        assert store.run(2)["changed_inputs"] == "first run"


def test_unconverged_scores_are_stored_as_such(tmp_path: Path, store_path: Path) -> None:
    ws = install(write_mini_workspace(tmp_path / "ws"), converged=False)
    write(store_path, ws)
    with HistoryStore(store_path, read_only=True) as store:
        run = store.run(1)
        scores = store.scores(1)
    assert run["diagnostics_status"] == "unconverged"
    assert set(scores["diagnostics_status"]) == {"unconverged"}
    assert "R-hat of eta" in run["diagnostics_json"]


def test_store_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEORISK_HISTORY", raising=False)
    assert default_store_path(tmp_path) == tmp_path / ".georisk" / "history.duckdb"
    assert resolve_store_path(tmp_path) == default_store_path(tmp_path)
    monkeypatch.setenv("GEORISK_HISTORY", str(tmp_path / "env.duckdb"))
    assert resolve_store_path(tmp_path) == tmp_path / "env.duckdb"
    assert resolve_store_path(tmp_path, tmp_path / "opt.duckdb") == tmp_path / "opt.duckdb"


def test_git_commit_is_none_outside_a_repository(tmp_path: Path) -> None:
    assert workspace_git_commit(tmp_path) is None
    assert workspace_git_commit(tmp_path / "missing") is None


def test_iter_dates() -> None:
    d = dt.date
    assert list(iter_dates(d(2026, 1, 31), d(2026, 4, 15), "1m")) == [
        d(2026, 1, 31), d(2026, 2, 28), d(2026, 3, 31), d(2026, 4, 15)]  # fmt: skip
    assert list(iter_dates(d(2026, 1, 1), d(2026, 1, 21), "10d")) == [
        d(2026, 1, 1), d(2026, 1, 11), d(2026, 1, 21)]  # fmt: skip
    assert list(iter_dates(d(2026, 1, 1), d(2026, 1, 1), "1w")) == [d(2026, 1, 1)]
    with pytest.raises(ValueError, match="positive number followed by d, w, m or y"):
        list(iter_dates(d(2026, 1, 1), d(2026, 2, 1), "monthly"))
    with pytest.raises(ValueError, match="must start before it ends"):
        list(iter_dates(d(2026, 2, 1), d(2026, 1, 1), "1d"))


# --------------------------------------------------------------------------------------
# Reliability: atomic runs, one writer, readers, foreign files, migrations
# --------------------------------------------------------------------------------------

CHILD_SETUP = """
import datetime as dt, pathlib, sys, time
import georisk.history as h
from georisk.workspace import load_workspace
from georisk.posterior import load_or_fit
from georisk.scoring import score_run
ws = load_workspace(sys.argv[1], today=dt.date(2026, 11, 25))
post, fitted = load_or_fit(ws)
assert not fitted
run = score_run(ws, post, as_of=dt.date(2026, 11, 25))
store_path, marker = sys.argv[2], pathlib.Path(sys.argv[3])
"""

KILLED_MID_TRANSACTION = (
    CHILD_SETUP
    + """
original = h._insert_frame
def slow(con, table, frame):
    original(con, table, frame)
    if table == "scores":  # half the rows are in: the scores, not yet the contributions
        marker.write_text("inside the transaction")
        time.sleep(300)
h._insert_frame = slow
with h.HistoryStore(store_path) as store:
    store.write_run(run, post, ws)
"""
)

HOLD_THE_STORE = (
    CHILD_SETUP
    + """
with h.HistoryStore(store_path) as store:
    marker.write_text("holding")
    time.sleep(float(sys.argv[4]))
    store.write_run(run, post, ws, note="holder")
"""
)

WRITE_MANY = (
    CHILD_SETUP
    + """
marker.write_text("started")
for i in range(int(sys.argv[4])):
    with h.HistoryStore(store_path, wait=60) as store:
        store.write_run(run, post, ws, note=sys.argv[5])
"""
)


def spawn(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """Wait for a child, close its pipe and return its stderr."""
    _, err = proc.communicate(timeout=timeout)
    return err.decode()


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {finish(proc)}")
        if time.monotonic() > deadline:
            proc.kill()
            finish(proc)
            raise AssertionError("child did not reach its marker in time")
        time.sleep(0.05)


def test_a_run_killed_mid_transaction_leaves_no_trace(ws, store_path: Path, tmp_path) -> None:
    write(store_path, ws, note="before the crash")
    before = table_counts(store_path)
    marker = tmp_path / "marker"
    child = spawn(KILLED_MID_TRANSACTION, ws.root, store_path, marker)
    wait_for(marker, child)
    os.kill(child.pid, signal.SIGKILL)
    finish(child)
    assert child.returncode == -signal.SIGKILL
    # the store opens (read-only and read-write), the earlier run is intact, no half run
    assert table_counts(store_path) == before
    with HistoryStore(store_path, read_only=True) as store:
        assert list(store.runs()["run_id"]) == [1]
        assert store.run(1)["note"] == "before the crash"
    assert write(store_path, ws, note="after the crash") == 2
    after = table_counts(store_path)
    assert after["runs"] == [(1, 1), (2, 1)]
    assert after["scores"] == [before["scores"][0], (2, before["scores"][0][1])]
    assert after["contributions"] == [
        before["contributions"][0],
        (2, before["contributions"][0][1]),
    ]


def test_a_second_writer_waits_or_fails_clearly(ws, store_path: Path, tmp_path) -> None:
    write(store_path, ws)
    marker = tmp_path / "marker"
    holder = spawn(HOLD_THE_STORE, ws.root, store_path, marker, 3.0)
    try:
        wait_for(marker, holder)
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match=r"is busy: process \d+ .*holds it.*--wait"):
            HistoryStore(store_path, wait=0.3)
        assert time.monotonic() - t0 < 3.0
        # a reader cannot read while the writer holds the file, and says why
        with pytest.raises(StoreBusyError, match="busy"):
            HistoryStore(store_path, read_only=True, wait=0.2)
        # waiting long enough works: the holder's run and ours both land
        run, posterior = scored(ws)
        with HistoryStore(store_path, wait=60) as store:
            run_id = store.write_run(run, posterior, ws, note="waited")
    finally:
        err = finish(holder)
    assert holder.returncode == 0, err
    with HistoryStore(store_path, read_only=True) as store:
        runs = store.runs()
    assert sorted(runs["note"].fillna("")) == ["", "holder", "waited"]
    assert run_id == 3 and list(runs["run_id"]) == [1, 2, 3]


def test_concurrent_writers_lose_no_run(ws, store_path: Path, tmp_path) -> None:
    write(store_path, ws)
    n = 4
    children = [
        spawn(WRITE_MANY, ws.root, store_path, tmp_path / f"m{i}", n, f"writer-{i}")
        for i in range(2)
    ]
    for child in children:
        err = finish(child, timeout=300)
        assert child.returncode == 0, err
    counts = table_counts(store_path)
    assert [r for r, _ in counts["runs"]] == list(range(1, 2 * n + 2))
    per_run_scores = {c for _, c in counts["scores"]}
    per_run_terms = {c for _, c in counts["contributions"]}
    assert len(per_run_scores) == 1 and len(per_run_terms) == 1
    with HistoryStore(store_path, read_only=True) as store:
        notes = store.runs()["note"].value_counts().to_dict()
    assert notes == {"writer-0": n, "writer-1": n}


def test_reader_waits_for_a_short_write(ws, store_path: Path, tmp_path) -> None:
    write(store_path, ws)
    marker = tmp_path / "marker"
    holder = spawn(HOLD_THE_STORE, ws.root, store_path, marker, 1.0)
    try:
        wait_for(marker, holder)
        with HistoryStore(store_path, read_only=True, wait=60) as store:
            assert len(store.trajectory(PROJECT_SCENARIO)) >= 1
    finally:
        finish(holder)


@pytest.mark.parametrize(
    "content",
    [
        b"scenario_id,p\nx,=1+1\n",
        b"",
        b"\x00" * 8 + b"DUCK" + b"\xff" * 5000,  # a DuckDB header over garbage
        os.urandom(4096),
    ],
    ids=["csv", "empty", "corrupt-duckdb", "random"],
)
@pytest.mark.parametrize("read_only", [False, True])
def test_foreign_or_corrupt_file_is_refused_and_untouched(
    tmp_path: Path, content: bytes, read_only: bool
) -> None:
    path = tmp_path / "history.duckdb"
    path.write_bytes(content)
    before = snapshot(path)
    with pytest.raises(StoreError, match="history store|not a georisk history store"):
        HistoryStore(path, read_only=read_only, wait=0.5)
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.duckdb"]


def test_foreign_duckdb_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE prices (day DATE, close DOUBLE)")
    con.execute("INSERT INTO prices VALUES ('2026-01-02', 71.5)")
    con.close()
    before = snapshot(path)
    for read_only in (False, True):
        with pytest.raises(
            StoreError, match="not a georisk history store.*without georisk's 'meta'"
        ):
            HistoryStore(path, read_only=read_only)
    assert snapshot(path) == before


def test_a_folder_or_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        HistoryStore(tmp_path)
    with pytest.raises(StoreError, match="no history store at .* run `georisk score` first"):
        HistoryStore(tmp_path / "none.duckdb", read_only=True)
    assert not (tmp_path / "none.duckdb").exists()


def test_newer_schema_is_refused_and_untouched(ws, store_path: Path) -> None:
    write(store_path, ws)
    con = duckdb.connect(str(store_path))
    con.execute("UPDATE meta SET schema_version = 99")
    con.close()
    before = snapshot(store_path)
    with pytest.raises(StoreError, match="schema version 99, written by a newer georisk"):
        HistoryStore(store_path)
    assert snapshot(store_path) == before


V0_DDL = [
    "CREATE TABLE meta (schema_version INTEGER, created_by VARCHAR, created_at TIMESTAMP)",
    """CREATE TABLE runs (run_id BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP,
       as_of DATE, fit_id VARCHAR, ledger_hash VARCHAR, scenarios_hash VARCHAR,
       priors_hash VARCHAR, georisk_version VARCHAR, model_version VARCHAR,
       diagnostics_status VARCHAR, diagnostics_json VARCHAR)""",
    """CREATE TABLE scores (run_id BIGINT, scenario_id VARCHAR, title VARCHAR, p_mean DOUBLE,
       p_median DOUBLE, p_q10 DOUBLE, p_q90 DOUBLE, p_base_mean DOUBLE, icd203 VARCHAR,
       diagnostics_status VARCHAR)""",
    """CREATE TABLE contributions (run_id BIGINT, scenario_id VARCHAR, term VARCHAR,
       kind VARCHAR, logodds_mean DOUBLE, logodds_q10 DOUBLE, logodds_q90 DOUBLE)""",
]


def make_v0_store(path: Path) -> None:
    """A history written by a georisk pre-release (schema 0), built by hand."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    for ddl in V0_DDL:
        con.execute(ddl)
    con.execute("INSERT INTO meta VALUES (0, 'georisk 0.0.9', '2026-01-01 00:00:00')")
    con.execute(
        "INSERT INTO runs VALUES (1, '2026-01-01 06:00:00', '2026-01-01 06:00:02', "
        "'2026-01-01', 'oldfit', 'l', 's', 'p', '0.0.9', '1', 'converged', '{}')"
    )
    con.execute(
        f"INSERT INTO scores VALUES (1, '{PROJECT_SCENARIO}', 'old title', 0.3, 0.29, 0.2, "
        "0.4, 0.25, 'unlikely', 'converged')"
    )
    con.execute(
        f"INSERT INTO contributions VALUES (1, '{PROJECT_SCENARIO}', 'base_rate', NULL, "
        "-1.0, -1.5, -0.5), "
        f"(1, '{PROJECT_SCENARIO}', 'ev-old', 'project_announcement', 0.2, 0.1, 0.3)"
    )
    con.close()


def test_an_older_schema_is_migrated_in_one_transaction(ws, store_path: Path) -> None:
    make_v0_store(store_path)
    with HistoryStore(store_path) as store:
        assert store.migrated_from == 0
        assert store.schema_version == SCHEMA_VERSION
        old = store.run(1)
        assert old["fit_id"] == "oldfit" and old["reference_hash"] is None
        assert old["changed_inputs"] == "unknown (migrated from schema 0)"
        terms = store.contributions(1)
        assert list(terms["term_type"]) == ["base_rate", "event"]
        assert terms["weight"].isna().all()
        run, posterior = scored(ws)
        assert store.write_run(run, posterior, ws) == 2
        traj = store.trajectory(PROJECT_SCENARIO)
    assert list(traj["run_id"]) == [1, 2]
    assert traj["p_mean"].iloc[0] == 0.3 and math.isnan(traj["p_q025"].iloc[0])
    # a reader opens a migrated store like any other
    with HistoryStore(store_path, read_only=True) as store:
        assert len(store.runs()) == 2


def test_a_reader_migrates_an_old_store_too(store_path: Path) -> None:
    make_v0_store(store_path)
    with HistoryStore(store_path, read_only=True) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert list(store.trajectory(PROJECT_SCENARIO)["run_id"]) == [1]


def test_a_failed_migration_changes_nothing(store_path: Path, monkeypatch) -> None:
    make_v0_store(store_path)

    def broken(con) -> None:
        con.execute("ALTER TABLE runs ADD COLUMN reference_hash VARCHAR")
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setitem(history.MIGRATIONS, 0, ("broken", broken))
    with pytest.raises(
        StoreError, match="could not migrate .* schema 0 to 1: disk full.*Nothing was changed"
    ):
        HistoryStore(store_path)
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        assert con.execute("SELECT schema_version FROM meta").fetchone()[0] == 0
        columns = [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
    finally:
        con.close()
    assert "reference_hash" not in columns


def test_a_dry_run_reader_does_not_migrate(store_path: Path) -> None:
    make_v0_store(store_path)
    before = snapshot(store_path)
    with pytest.raises(StoreError, match="older schema version 0"):
        HistoryStore(store_path, read_only=True, migrate=False)
    assert snapshot(store_path) == before


# --------------------------------------------------------------------------------------
# Explain: the parts add up
# --------------------------------------------------------------------------------------


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["term", "term_type", "kind", "weight", "logodds_mean"])


def test_decompose_change_hand_computed() -> None:
    before = frame([
        ("base_rate", "base_rate", None, None, 0.1),
        ("ev-a", "event", "financing_commitment", 0.5, 0.25),   # strength 0.5
        ("ev-gone", "event", "delay_or_setback", -0.4, -0.1),
        ("timing", "timing", None, None, -1.0),
    ])  # fmt: skip
    after = frame([
        ("base_rate", "base_rate", None, None, 0.3),
        ("ev-a", "event", "financing_commitment", 0.4, 0.4),    # faded, strength 1.0
        ("ev-new", "event", "project_announcement", 0.9, 0.2),
        ("timing", "timing", None, None, -1.1),
    ])  # fmt: skip
    parts = decompose_change(before, after, before_fit_id="f1", after_fit_id="f2").set_index("part")
    assert list(parts.index) == [k for k, _ in PARTS]
    expect = {
        "refit_base_rate": 0.2,
        "scenario_base_rate": 0.0,
        "new_events": 0.2,
        "removed_events": 0.1,
        "weights": (0.4 - 0.5) * 0.5,
        "refit_strengths": 0.15 - (0.4 - 0.5) * 0.5,
        "timing": -0.1,
    }
    for key, value in expect.items():
        assert parts.loc[key, "logodds_change"] == pytest.approx(value, abs=1e-15), key
    total = 0.3 + 0.4 + 0.2 - 1.1 - (0.1 + 0.25 - 0.1 - 1.0)
    assert math.fsum(parts["logodds_change"]) == pytest.approx(total, abs=1e-15)
    assert math.fsum(parts["share"]) == pytest.approx(1.0)
    # the same two runs under one fit: no refit parts, the continuing change is all weight
    same = decompose_change(before, after, before_fit_id="f", after_fit_id="f").set_index("part")
    assert same.loc["refit_base_rate", "logodds_change"] == 0.0
    assert same.loc["refit_strengths", "logodds_change"] == 0.0
    assert same.loc["scenario_base_rate", "logodds_change"] == pytest.approx(0.2)
    assert same.loc["weights", "logodds_change"] == pytest.approx(0.15)
    terms = term_changes(before, after, before_fit_id="f1", after_fit_id="f2")
    assert dict(zip(terms["term"], terms["status"], strict=True)) == {
        "base_rate": "continuing", "ev-a": "continuing", "ev-new": "new",
        "ev-gone": "removed", "timing": "continuing"}  # fmt: skip
    keys = [k for k, _ in PARTS]
    np.testing.assert_allclose(terms[keys].sum(axis=1), terms["change"], atol=1e-15)


def test_explain_parts_add_up_across_time_new_events_and_a_refit(tmp_path: Path) -> None:
    root = write_mini_workspace(tmp_path / "ws")
    ws = install(root)
    store_path = tmp_path / "h.duckdb"
    # ind-004 (2025-02-17) is not known yet on 2025-01-01: a new event between the runs
    write(store_path, ws, as_of=dt.date(2025, 1, 1))
    write(store_path, ws, as_of=dt.date(2026, 6, 1))
    ex = explain_change(store_path, PROJECT_SCENARIO)
    assert (ex.before["run_id"], ex.after["run_id"]) == (1, 2) and not ex.refit
    parts = ex.parts.set_index("part")
    assert abs(math.fsum(ex.parts["logodds_change"]) - ex.total_logodds_change) <= TOLERANCE
    assert parts.loc["new_events", "n_terms"] == 1
    assert "ev-cpc-drone-2025" in parts.loc["new_events", "top_terms"]
    assert parts.loc["weights", "logodds_change"] != 0.0  # older events faded
    assert parts.loc["timing", "logodds_change"] != 0.0
    assert parts.loc["refit_base_rate", "logodds_change"] == 0.0
    assert parts.loc["refit_strengths", "logodds_change"] == 0.0
    # a refit: another posterior (the priors changed), same as-of date
    priors = root / "priors/weights.yaml"
    priors.write_text(priors.read_text() + "\n# reviewed again\n")
    ws2 = install(root, seed=7, strength_scale=1.5)
    write(store_path, ws2, as_of=dt.date(2026, 6, 1))
    ex = explain_change(store_path, PROJECT_SCENARIO, since=2)
    assert ex.refit and (ex.before["run_id"], ex.after["run_id"]) == (2, 3)
    parts = ex.parts.set_index("part")
    assert abs(math.fsum(ex.parts["logodds_change"]) - ex.total_logodds_change) <= TOLERANCE
    assert parts.loc["refit_base_rate", "logodds_change"] != 0.0
    assert parts.loc["refit_strengths", "logodds_change"] != 0.0
    assert parts.loc["new_events", "logodds_change"] == 0.0
    assert abs(parts.loc["weights", "logodds_change"]) < 1e-12  # same date: no fading
    # since a date, and the whole way from the first run
    ex = explain_change(store_path, PROJECT_SCENARIO, since="2025-06-30")
    assert (ex.before["run_id"], ex.after["run_id"]) == (1, 3)
    assert abs(math.fsum(ex.parts["logodds_change"]) - ex.total_logodds_change) <= TOLERANCE
    assert ex.as_dict()["parts"][0]["part"] == "refit_base_rate"


def test_explain_errors_are_clear(ws, store_path: Path) -> None:
    write(store_path, ws)
    with pytest.raises(RunLookupError, match="no score before run 1: nothing to compare"):
        explain_change(store_path, PROJECT_SCENARIO)
    with pytest.raises(RunLookupError, match="did you mean 'uzb-npp-first-concrete'"):
        explain_change(store_path, "uzb-npp-first-concret")
    write(store_path, ws)
    with pytest.raises(RunLookupError, match="run 7 has no score"):
        explain_change(store_path, PROJECT_SCENARIO, since=7)
    with pytest.raises(ValueError, match="run id .* or a date"):
        explain_change(store_path, PROJECT_SCENARIO, since="last week")
