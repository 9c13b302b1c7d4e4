"""Speed of the history store and of a warm ``georisk score``.

Measures, side by side in one process:

1. writing one run of 10,000 scenarios x 20 contribution terms with
   :meth:`georisk.history.HistoryStore.write_run` (frame conversion, insert, commit);
2. reading one scenario's history out of 1,000 runs (:meth:`HistoryStore.trajectory`, with
   and without opening the store) and explaining its last change
   (:func:`georisk.explain.explain_change`); the 1,000-run store is filled with SQL
   (``--scenarios`` scores and 20 terms per score and run) because only the read is timed;
3. a warm no-change ``georisk score`` on a copy of the shipped workspace (stored fit
   copied, history in the copy), against a bare ``python -c "import numpy, pandas"``.

Wall times depend on the machine's load, so the CPU time of the ``georisk score``
subprocesses and the 1-minute load average are recorded too. Usage::

    python benchmarks/bench_history.py [--scenarios 1000] [--repeat 5]

Results are printed and written to ``benchmarks/results/bench_history.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from georisk.diagnostics import DiagnosticsReport
from georisk.explain import explain_change
from georisk.history import HistoryStore
from georisk.posterior import Posterior
from georisk.scoring import ScoreRun

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def synthetic_run(n_scenarios: int, n_terms: int, seed: int = 0) -> ScoreRun:
    """A ScoreRun with ``n_scenarios`` scores and ``n_terms`` terms each (random numbers)."""
    rng = np.random.default_rng(seed)
    ids = [f"scn-{i:06d}" for i in range(n_scenarios)]
    p = rng.uniform(0.01, 0.99, n_scenarios)
    scores = pd.DataFrame(
        {
            "scenario_id": ids,
            "title": [f"Synthetic scenario {i}" for i in range(n_scenarios)],
            "p_mean": p,
            "p_median": p,
            "p_q0.025": p * 0.5,
            "p_q0.10": p * 0.7,
            "p_q0.90": np.minimum(p * 1.3, 1),
            "p_q0.975": np.minimum(p * 1.5, 1),
            "p_base_mean": p * 0.9,
            "logodds_mean": np.log(p / (1 - p)),
            "evidence_logodds_mean": rng.normal(0, 0.3, n_scenarios),
            "icd203": "unlikely",
            "band_straddle": rng.uniform(size=n_scenarios) < 0.5,
            "n_events": n_terms - 2,
            "note": "",
            "diagnostics": "converged",
        }
    )
    n = n_scenarios * n_terms
    term_index = np.tile(np.arange(n_terms), n_scenarios)
    terms = np.where(
        term_index == 0, "base_rate",
        np.where(term_index == n_terms - 1, "timing", np.char.add("ev-", term_index.astype(str))),
    )  # fmt: skip
    term_type = np.where(
        term_index == 0, "base_rate", np.where(term_index == n_terms - 1, "timing", "event")
    )
    value = rng.normal(0, 0.5, n)
    contributions = pd.DataFrame(
        {
            "scenario_id": np.repeat(ids, n_terms),
            "term": terms,
            "term_type": term_type,
            "kind": np.where(term_type == "event", "financing_commitment", None),
            "direction": np.where(term_type == "event", "supports", None),
            "event_date": [dt.date(2025, 1, 1) if t == "event" else None for t in term_type],
            "indicator_ids": np.where(term_type == "event", "ind-1;ind-2", None),
            "weight": np.where(term_type == "event", 0.8, np.nan),
            "logodds_mean": value,
            "logodds_q0.025": value - 1,
            "logodds_q0.10": value - 0.5,
            "logodds_q0.90": value + 0.5,
            "logodds_q0.975": value + 1,
        }
    )
    return ScoreRun(
        scores=scores,
        contributions=contributions,
        draws={},
        as_of=dt.date(2026, 11, 25),
        fit_id="bench",
        diagnostics_status="converged",
    )


def fake_posterior() -> Posterior:
    return Posterior(
        fit_id="bench",
        draws={},
        diagnostics=DiagnosticsReport(True, 1.0, 4000.0, 4000.0, 0),
        meta={"sampler": {"draws": 1000}, "model_version": "2"},
    )


HASHES = {g: "0" * 64 for g in ("ledger", "scenarios", "priors", "reference")}


def bench_write(tmp: Path, n_scenarios: int, n_terms: int, repeat: int) -> dict:
    run = synthetic_run(n_scenarios, n_terms)
    posterior = fake_posterior()
    path = tmp / "write.duckdb"
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        with HistoryStore(path) as store:
            store.write_run(run, posterior, hashes=HASHES, git_commit=None)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "cpu_seconds": cpu,
        "median_cpu_s": statistics.median(cpu),
        "scenarios": n_scenarios,
        "terms_per_scenario": n_terms,
        "rows": n_scenarios * (n_terms + 1) + 1,
        "seconds": times,
        "median_s": statistics.median(times),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }


def fill_history(path: Path, n_runs: int, n_scenarios: int, n_terms: int) -> float:
    """A store with ``n_runs`` runs, filled with SQL (the setup is not what is measured)."""
    t0 = time.perf_counter()
    with HistoryStore(path) as store:
        con = store.con
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"""INSERT INTO runs SELECT r, TIMESTAMP '2024-01-01' + INTERVAL (r) HOUR,
                TIMESTAMP '2024-01-01' + INTERVAL (r) HOUR, DATE '2024-01-01' + r::INTEGER, 'bench',
                'l', 's', 'p', 'r', NULL, '0.1.0', '2', 'converged', '{{}}', '{{}}', false,
                'nothing changed', NULL FROM range(1, {n_runs + 1}) t(r)"""
        )
        con.execute(
            f"""INSERT INTO scores SELECT r, 'scn-' || lpad(s::VARCHAR, 6, '0'), 'title',
                p, p, p * 0.5, p * 0.7, p * 1.1, p * 1.2, p * 0.9, ln(p / (1 - p)), 0.1,
                'unlikely', false, {n_terms - 2}, 'converged', NULL
                FROM (SELECT r, s, 0.05 + 0.9 * ((hash(r * 100003 + s) % 1000) / 1000.0) AS p
                      FROM range(1, {n_runs + 1}) a(r), range({n_scenarios}) b(s))"""
        )
        # terms: base_rate = logodds - sum of the others, so each run's terms add up
        con.execute(
            f"""INSERT INTO contributions
                SELECT s.run_id, s.scenario_id,
                  CASE WHEN k = 0 THEN 'base_rate' WHEN k = {n_terms - 1} THEN 'timing'
                       ELSE 'ev-' || k::VARCHAR END,
                  CASE WHEN k = 0 THEN 'base_rate' WHEN k = {n_terms - 1} THEN 'timing'
                       ELSE 'event' END,
                  CASE WHEN k BETWEEN 1 AND {n_terms - 2} THEN 'financing_commitment' END,
                  NULL, NULL, NULL,
                  CASE WHEN k BETWEEN 1 AND {n_terms - 2} THEN 0.5 END,
                  CASE WHEN k = 0 THEN s.logodds_mean - {n_terms - 1} * 0.01 ELSE 0.01 END,
                  NULL, NULL, NULL, NULL
                FROM scores s, range({n_terms}) t(k)"""
        )
        con.execute("COMMIT")
    return time.perf_counter() - t0


def bench_read(tmp: Path, n_runs: int, n_scenarios: int, n_terms: int, repeat: int) -> dict:
    path = tmp / "read.duckdb"
    setup = fill_history(path, n_runs, n_scenarios, n_terms)
    sid = f"scn-{n_scenarios // 2:06d}"
    open_and_read, query_only, explain, cpu = [], [], [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        with HistoryStore(path, read_only=True) as store:
            traj = store.trajectory(sid)
            t1 = time.perf_counter()
            store.trajectory(sid)
            t2 = time.perf_counter()
            c1 = time.process_time()
            ex = explain_change(store, sid)
            t3 = time.perf_counter()
        cpu.append(c1 - c0)
        open_and_read.append(t1 - t0)
        query_only.append(t2 - t1)
        explain.append(t3 - t2)
    assert len(traj) == n_runs and ex.after["run_id"] == n_runs
    return {
        "runs": n_runs,
        "scenarios_per_run": n_scenarios,
        "terms_per_scenario": n_terms,
        "score_rows": n_runs * n_scenarios,
        "contribution_rows": n_runs * n_scenarios * n_terms,
        "setup_s": round(setup, 2),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "open_and_trajectory_s": open_and_read,
        "trajectory_query_s": query_only,
        "explain_s": explain,
        "median_open_and_trajectory_s": statistics.median(open_and_read),
        "median_open_and_trajectory_cpu_s": statistics.median(cpu),
        "median_trajectory_query_s": statistics.median(query_only),
        "median_explain_s": statistics.median(explain),
    }


def _timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 4):
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr}")
    return wall, cpu, proc.returncode


def bench_warm_score(tmp: Path, repeat: int) -> dict:
    ws = tmp / "workspace"
    for name in ("data", "scenarios", "priors"):
        shutil.copytree(ROOT / name, ws / name)
    posteriors = ROOT / ".georisk" / "posteriors"
    if posteriors.exists():
        shutil.copytree(posteriors, ws / ".georisk" / "posteriors")
    georisk = shutil.which("georisk", path=str(Path(sys.executable).parent)) or "georisk"
    cmd = [georisk, "score", str(ws), "--quiet"]
    first_wall, first_cpu, _ = _timed(cmd)  # fits if no stored fit matches (~15 s)
    warm = [_timed(cmd) for _ in range(repeat)]
    bare = [_timed([sys.executable, "-c", "import numpy, pandas"]) for _ in range(repeat)]
    json_run = subprocess.run([*cmd[:-1], "--json"], capture_output=True, text=True)
    doc = json.loads(json_run.stdout)
    return {
        "first_run_wall_s": round(first_wall, 2),
        "first_run_cpu_s": round(first_cpu, 2),
        "warm_wall_s": [round(w, 3) for w, _, _ in warm],
        "warm_cpu_s": [round(c, 3) for _, c, _ in warm],
        "median_warm_wall_s": round(statistics.median(w for w, _, _ in warm), 3),
        "median_warm_cpu_s": round(statistics.median(c for _, c, _ in warm), 3),
        "bare_numpy_pandas_wall_s": [round(w, 3) for w, _, _ in bare],
        "median_bare_wall_s": round(statistics.median(w for w, _, _ in bare), 3),
        "median_bare_cpu_s": round(statistics.median(c for _, c, _ in bare), 3),
        "warm_changed_inputs": doc["runs"][0]["changed_inputs"],
        "warm_fit": doc["runs"][0]["fit"],
        "target_wall_s": 3.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-scenarios", type=int, default=10_000)
    parser.add_argument("--terms", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--scenarios", type=int, default=1_000, help="per run, for the read")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-score", action="store_true", help="skip the georisk score part")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="georisk-bench-") as tmp:
        tmp = Path(tmp)
        write = bench_write(tmp, args.write_scenarios, args.terms, args.repeat)
        print(
            f"write_run: {write['scenarios']:,} scenarios x {write['terms_per_scenario']} terms "
            f"({write['rows']:,} rows): median {write['median_s']:.3f} s wall, "
            f"{write['median_cpu_s']:.3f} s CPU "
            f"(runs: {', '.join(f'{t:.3f}' for t in write['seconds'])})"
        )
        read = bench_read(tmp, args.runs, args.scenarios, args.terms, args.repeat)
        print(
            f"trajectory of 1 scenario out of {read['runs']:,} runs "
            f"({read['score_rows']:,} scores, {read['contribution_rows']:,} terms, "
            f"{read['file_mb']} MB): open + read median "
            f"{read['median_open_and_trajectory_s']:.3f} s "
            f"wall ({read['median_open_and_trajectory_cpu_s']:.3f} s CPU), "
            f"query alone {read['median_trajectory_query_s']:.4f} s, explain last change "
            f"{read['median_explain_s']:.3f} s"
        )
        warm = None
        if not args.skip_score:
            warm = bench_warm_score(tmp, args.repeat)
            print(
                f"georisk score, shipped workspace: first run {warm['first_run_wall_s']} s; warm "
                f"no-change median {warm['median_warm_wall_s']} s wall, "
                f"{warm['median_warm_cpu_s']} s CPU ({warm['warm_fit']}, "
                f"{warm['warm_changed_inputs']}); bare `import numpy, pandas` "
                f"{warm['median_bare_wall_s']} s wall, {warm['median_bare_cpu_s']} s CPU; "
                f"target < {warm['target_wall_s']} s"
            )
    result = {
        "benchmark": "bench_history",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1min_before": round(load_before, 2),
            "load_avg_1min_after": round(os.getloadavg()[0], 2),
        },
        "write_run": write,
        "read_history": read,
        "warm_score": warm,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_history.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
