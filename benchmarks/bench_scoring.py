"""Batch scoring: plain float64 numpy vs ``georisk.batch.batch_probabilities``.

Run ``python benchmarks/bench_scoring.py`` (about 2 minutes on 2 cores). Prints tables
and writes ``benchmarks/results/bench_scoring.json``.

1. Side by side at 10,000 scenarios x 4,000 draws: the plain vectorised float64 path over
   one (N, D) matrix (per-draw probabilities and status-likelihood weights with
   ``scipy.special.ndtr`` / ``expit``, then a stable argsort, cumulative weights and
   ``np.interp``'s rule vectorised over rows: ``georisk.batch._weighted_rows``) against the
   batch kernel, median of ``--repeats`` runs each, interleaved; the ratio; the largest
   difference. Both compute the published weighted summaries
   (``georisk.scoring.weighted_summary``).
2. Growth of the batch kernel at 1,000 / 10,000 / 30,000 / 100,000 scenarios, each size in
   a fresh child process: median time, tracemalloc peak of the call, peak RSS.
3. One-off costs: importing numba + loading the cached kernel in a fresh process, and a
   cold compile (empty ``NUMBA_CACHE_DIR``).

The inputs are synthetic with the shipped model's dimensions (6 project categories, 1
window category, 7 evidence kinds), 80% projects / 20% windows (0-2 years of the window
elapsed), ages continuous (no two equal, so the kernel's reuse of survival terms for equal
ages never helps: worst case).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
N_CAT, N_WIN, N_KINDS = 6, 1, 7
QUANTILES = (0.025, 0.10, 0.50, 0.90, 0.975)


def make_inputs(n: int, d: int, seed: int = 0, *, day_grid: bool = False):
    """Synthetic posterior draws and scenarios."""
    rng = np.random.default_rng(seed)
    draws = {
        "eta": rng.normal(-0.3, 1.2, (d, N_CAT)),
        "eta_window": rng.normal(-1.5, 0.6, (d, N_WIN)),
        "strength": rng.gamma(2.0, 0.4, (d, N_KINDS)),
        "lag_log_median": rng.normal(1.6, 0.2, d),
        "lag_log_sd": rng.uniform(0.5, 0.9, d),
        "term_log_median": rng.normal(2.0, 0.2, d),
        "term_log_sd": rng.uniform(0.5, 0.9, d),
    }
    win = rng.random(n) < 0.2
    age = rng.uniform(0.0, 15.0, n)
    if day_grid:  # a real as-of date: ages are whole days, about 5,500 distinct values
        age = np.round(age * 365.25) / 365.25
    horizon = age + rng.uniform(0.25, 5.0, n)
    sc = {
        "category": np.where(win, 0, rng.integers(0, N_CAT, n)),
        "x": rng.normal(0, 0.8, (n, N_KINDS)) * (rng.random((n, N_KINDS)) < 0.4),
        "is_window": win,
        "age": age,
        "horizon_age": horizon,
        "exposure": rng.uniform(0.1, 3.0, n),
        "elapsed": np.where(win, rng.uniform(0.0, 2.0, n), 0.0),
    }
    return draws, sc


def plain_reference(draws: dict, sc: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plain vectorised float64 path: one (N, D) matrix of probabilities and weights."""
    from scipy.special import expit, ndtr

    from georisk.batch import _weighted_rows

    cat, win = sc["category"], sc["is_window"]
    window_base = draws["eta_window"][:, np.minimum(cat, N_WIN - 1)].T
    base = np.where(win[:, None], window_base, draws["eta"][:, cat].T)
    eta = base + sc["x"] @ draws["strength"].T
    mu, sd, tmu, tsd = (draws[k][None, :] for k in ("lag_log_median", "lag_log_sd",
                                                    "term_log_median", "term_log_sd"))  # fmt: skip
    pr, wi = ~win, win
    log_a = np.log(np.maximum(sc["age"][pr, None], 1e-300))
    log_h = np.log(np.maximum(sc["horizon_age"][pr, None], 1e-300))
    e = eta[pr]
    pi, pi_c = expit(e), expit(-e)
    s_a, s_h = ndtr((mu - log_a) / sd), ndtr((mu - log_h) / sd)  # survival at age, horizon
    r_a = ndtr((tmu - log_a) / tsd)
    p = np.empty_like(eta)
    w = np.empty_like(eta)
    w[pr] = pi_c * r_a + pi * s_a  # still open at the age
    p[pr] = pi * (s_a - s_h) / w[pr]
    softplus = np.logaddexp(0.0, eta[wi])  # -log(1 - pi)
    p[wi] = -np.expm1(-sc["exposure"][wi, None] * softplus)
    log_w = -sc["elapsed"][wi, None] * softplus  # no event in the elapsed part
    w[wi] = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return _weighted_rows(p, w, QUANTILES)


def batch(draws: dict, sc: dict, **kw):
    from georisk.batch import batch_probabilities

    s = batch_probabilities(draws, **sc, **kw)
    return s.mean, s.quantiles, s.ess


CPU_LOG: list[float] = []  # process CPU seconds of each timed() call, in order


def timed(fn, *args, **kw) -> tuple[float, object]:
    """Wall seconds of one call (its process CPU seconds go to CPU_LOG)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    wall = time.perf_counter() - t0
    CPU_LOG.append(time.process_time() - c0)
    return wall, out


def side_by_side(n: int, d: int, repeats: int) -> dict:
    draws, sc = make_inputs(n, d)
    grid_draws, grid_sc = make_inputs(n, d, day_grid=True)
    batch(draws, sc)  # load / compile the kernel
    ref_t, bat_t, bat1_t, grid_t = [], [], [], []
    ref_c, bat_c, bat1_c, grid_c = [], [], [], []
    for _ in range(repeats):
        t, ref = timed(plain_reference, draws, sc)
        ref_t.append(t)
        ref_c.append(CPU_LOG[-1])
        t, got = timed(batch, draws, sc)
        bat_t.append(t)
        bat_c.append(CPU_LOG[-1])
        t, _ = timed(batch, draws, sc, threads=1)
        bat1_t.append(t)
        bat1_c.append(CPU_LOG[-1])
        t, _ = timed(batch, grid_draws, grid_sc)
        grid_t.append(t)
        grid_c.append(CPU_LOG[-1])
    dm = float(np.max(np.abs(got[0] - ref[0])))
    dq = float(np.max(np.abs(got[1] - ref[1])))
    de = float(np.max(np.abs(got[2] / ref[2] - 1.0)))
    return {
        "n_scenarios": n,
        "n_draws": d,
        "repeats": repeats,
        "reference_s": ref_t,
        "batch_s": bat_t,
        "batch_1thread_s": bat1_t,
        "batch_day_grid_ages_s": grid_t,
        "reference_cpu_s": ref_c,
        "batch_cpu_s": bat_c,
        "batch_1thread_cpu_s": bat1_c,
        "reference_median_cpu_s": statistics.median(ref_c),
        "batch_median_cpu_s": statistics.median(bat_c),
        "batch_1thread_median_cpu_s": statistics.median(bat1_c),
        "batch_day_grid_cpu_s": grid_c,
        "batch_day_grid_median_cpu_s": statistics.median(grid_c),
        "ratio_cpu_reference_over_batch": statistics.median(ref_c) / statistics.median(bat_c),
        "reference_median_s": statistics.median(ref_t),
        "batch_median_s": statistics.median(bat_t),
        "batch_1thread_median_s": statistics.median(bat1_t),
        "batch_day_grid_median_s": statistics.median(grid_t),
        "ratio_reference_over_batch": statistics.median(ref_t) / statistics.median(bat_t),
        "max_abs_diff_mean": dm,
        "max_abs_diff_quantiles": dq,
        "max_rel_diff_ess": de,
        "distinct_ages_day_grid": int(np.unique(grid_sc["age"][~grid_sc["is_window"]]).size),
    }


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss survives exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(n: int, d: int, repeats: int) -> dict:
    """Child process: time one size, with tracemalloc peak and RSS."""
    draws, sc = make_inputs(n, d)
    t_first, _ = timed(batch, draws, sc)  # includes importing numba + loading the cache
    rss_before = peak_rss_mib()
    times = [timed(batch, draws, sc)[0] for _ in range(repeats)]
    cpu = CPU_LOG[-repeats:]
    tracemalloc.start()
    batch(draws, sc)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n_scenarios": n,
        "n_draws": d,
        "first_call_s": t_first,
        "times_s": times,
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu),
        "ns_per_scenario_draw": statistics.median(times) / (n * d) * 1e9,
        "tracemalloc_peak_mib": peak / 2**20,
        "inputs_mib": (sc["x"].nbytes + 6 * n * 8 + sum(v.nbytes for v in draws.values()))
        / 2**20,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_timing_mib": rss_before,
    }


def child(args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_process_costs(d: int) -> dict:
    """First call in a fresh process: warm numba cache, and cold (empty cache dir)."""
    warm = child(["--first-call", str(d)])
    with tempfile.TemporaryDirectory() as tmp:
        cold = child(["--first-call", str(d)], env={**os.environ, "NUMBA_CACHE_DIR": tmp})
    return {"warm_cache": warm, "cold_cache": cold}


def first_call(d: int) -> dict:
    t0 = time.perf_counter()
    import numba  # noqa: F401

    t_import = time.perf_counter() - t0
    draws, sc = make_inputs(100, d)
    t, _ = timed(batch, draws, sc)
    t2, _ = timed(batch, draws, sc)
    return {"import_numba_s": t_import, "first_call_100_s": t, "second_call_100_s": t2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--sizes", default="1000,10000,30000,100000")
    ap.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first-call", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_size:
        print(json.dumps(one_size(args.one_size, args.draws, args.repeats)))
        return
    if args.first_call:
        print(json.dumps(first_call(args.first_call)))
        return

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at start\n")
    sbs = side_by_side(10_000, args.draws, args.repeats)
    print(f"## 10,000 scenarios x {args.draws:,} draws (median of {args.repeats}, interleaved)")
    print(f"{'path':<44}{'median s':>10}{'min s':>9}{'max s':>9}{'CPU s':>8}")
    for name, key, cpu in (
        ("plain float64 numpy (one matrix)", "reference_s", "reference_median_cpu_s"),
        ("batch_probabilities (numba, 2 threads)", "batch_s", "batch_median_cpu_s"),
        ("batch_probabilities (numba, 1 thread)", "batch_1thread_s",
         "batch_1thread_median_cpu_s"),
        ("batch_probabilities, ages on a day grid", "batch_day_grid_ages_s",
         "batch_day_grid_median_cpu_s"),
    ):  # fmt: skip
        v = sbs[key]
        c = f"{sbs[cpu]:>8.3f}" if cpu else f"{'':>8}"
        print(f"{name:<44}{statistics.median(v):>10.3f}{min(v):>9.3f}{max(v):>9.3f}{c}")
    print(f"ratio reference / batch: {sbs['ratio_reference_over_batch']:.1f}x wall, "
          f"{sbs['ratio_cpu_reference_over_batch']:.1f}x CPU")  # fmt: skip
    print(
        f"largest |difference|: mean {sbs['max_abs_diff_mean']:.1e}, "
        f"quantiles {sbs['max_abs_diff_quantiles']:.1e}, "
        f"relative, effective draws {sbs['max_rel_diff_ess']:.1e}\n"
    )

    growth = [child(["--one-size", s, "--draws", str(args.draws), "--repeats", "3"])
              for s in args.sizes.split(",")]  # fmt: skip
    print(f"## growth, {args.draws:,} draws (each size in a fresh process, median of 3)")
    print(f"{'scenarios':>10}{'median s':>10}{'CPU s':>8}{'ns/(s*d)':>10}"
          f"{'tracemalloc MiB':>17}{'inputs MiB':>12}{'peak RSS MiB':>14}")  # fmt: skip
    for g in growth:
        print(f"{g['n_scenarios']:>10,}{g['median_s']:>10.3f}{g['median_cpu_s']:>8.3f}"
              f"{g['ns_per_scenario_draw']:>10.2f}{g['tracemalloc_peak_mib']:>17.1f}"
              f"{g['inputs_mib']:>12.1f}{g['peak_rss_mib']:>14.0f}")  # fmt: skip
    fresh = fresh_process_costs(args.draws)
    print("\n## one-off costs in a fresh process (100 scenarios)")
    for k, v in fresh.items():
        print(
            f"{k:<12} import numba {v['import_numba_s']:.2f} s, first call "
            f"{v['first_call_100_s']:.2f} s, second call {v['second_call_100_s']:.3f} s"
        )
    load_end = os.getloadavg()
    print(f"\nload average at end {load_end[0]:.2f} (2 cores: above ~1, others share them)")
    RESULTS.mkdir(exist_ok=True)
    record = {
        "benchmark": "bench_scoring",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "loadavg_start": load,
        "loadavg_end": load_end,
        "numpy": np.__version__,
        "side_by_side": sbs,
        "growth": growth,
        "fresh_process": fresh,
    }
    (RESULTS / "bench_scoring.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {RESULTS / 'bench_scoring.json'}")


if __name__ == "__main__":
    main()
