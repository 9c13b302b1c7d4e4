"""Refit of the shipped model: nutpie vs PyMC's own NUTS, compile and sampling apart.

Run ``python benchmarks/bench_sampler.py`` (3-6 minutes on 2 cores). Prints a table and
writes ``benchmarks/results/bench_sampler.json``.

The model is the shipped one: ``georisk.load_workspace(<workspace>)``,
``georisk.model_data.case_data(...)``, ``georisk.model.build_model(...)``; 4 chains x 1,000
tuning + 1,000 draws, target_accept 0.9 (the published configuration), same seed.

Each sampler runs in a fresh child process with its own PyTensor compile directory
(``PYTENSOR_FLAGS=base_compiledir=...``), so that "cold" means cold:

* nutpie, cold: ``nutpie.compile_pymc_model`` (numba) timed apart from ``nutpie.sample``;
* nutpie, warm cache: a second process on the same compile directory (numba's on-disk cache
  lives under it, so a stable ``base_compiledir`` makes scheduled refits cheaper);
* PyMC NUTS (``nuts_sampler="pymc"``, ``cores=2``): the first ``pm.sample`` includes the C
  compilation; a second call in the same process is reported as "warm".

For each: wall time of compile and sampling, minimum bulk ESS over the free parameters
(``arviz.ess``; also over every variable), ESS per second of sampling, divergences, peak
memory (VmHWM) of the process and, for PyMC, of each worker process (polled from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 20261125
DRAWS = TUNE = 1000
CHAINS = 4
TARGET_ACCEPT = 0.9


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


class ChildRss:
    """Poll the VmHWM of this process's child processes (PyMC's workers) in a thread.

    ``RUSAGE_CHILDREN`` cannot be used: on Linux a child's ``ru_maxrss`` starts from its
    parent's resident set at fork (it survives ``exec``), so it overstates the workers.
    """

    def __init__(self, every: float = 0.25) -> None:
        import threading

        self.peaks: dict[int, float] = {}
        self.max_concurrent_mib = 0.0  # largest sum of the workers' VmRSS at one time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        me = os.getpid()
        while not self._stop.wait(every):
            now = 0.0
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    fields = dict(
                        line.split(":", 1) for line in (entry / "status").read_text().splitlines()
                    )
                except (OSError, ValueError):
                    continue
                if int(fields.get("PPid", "0").strip()) == me and "VmHWM" in fields:
                    hwm = int(fields["VmHWM"].split()[0]) / 1024
                    pid = int(entry.name)
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), hwm)
                    now += int(fields["VmRSS"].split()[0]) / 1024
            self.max_concurrent_mib = max(self.max_concurrent_mib, now)

    def __enter__(self) -> ChildRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def build(workspace: str):
    """The shipped model on the workspace's reference cases."""
    import georisk
    from georisk.model import build_model
    from georisk.model_data import case_data, prior_parameters

    ws = georisk.load_workspace(workspace)
    priors = prior_parameters(ws.priors)
    data = case_data(ws.reference_cases, ws.reference_indicators, priors.weights)
    return build_model(data, priors), data


def ess_summary(idata, model) -> dict:
    """Minimum bulk ESS over the free parameters and over every posterior variable."""
    import arviz as az
    import numpy as np

    free = [rv.name for rv in model.free_RVs]
    post = idata["posterior"] if not hasattr(idata, "posterior") else idata.posterior
    names = list(getattr(post, "data_vars", post))

    def min_ess(var_names):
        res = az.ess(idata, var_names=var_names, method="bulk")
        res = res["posterior"] if "posterior" in getattr(res, "children", {}) else res
        return float(min(np.nanmin(np.asarray(res[v])) for v in var_names))

    return {"min_ess_bulk_free": min_ess(free), "min_ess_bulk_all": min_ess(names)}


def divergences(idata) -> int:
    import numpy as np

    stats = idata["sample_stats"]
    for key in ("diverging", "divergences"):
        if key in stats:
            return int(np.asarray(stats[key]).sum())
    return -1  # pragma: no cover


def child_nutpie(workspace: str) -> dict:
    t0 = time.perf_counter()
    import nutpie
    import pymc  # noqa: F401

    t1 = time.perf_counter()
    model, data = build(workspace)
    t2 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    t3 = time.perf_counter()
    idata = nutpie.sample(
        compiled, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=SEED, progress_bar=False,
        target_accept=TARGET_ACCEPT,
    )  # fmt: skip
    t4 = time.perf_counter()
    return {
        "sampler": "nutpie",
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "compile_s": t3 - t2,
        "sample_s": t4 - t3,
        "n_cases": int(data.n_project + len(data.window_case_ids)),
        "divergences": divergences(idata),
        **ess_summary(idata, model),
        "peak_rss_mib": peak_rss_mib(),
    }


def child_pymc(workspace: str) -> dict:
    t0 = time.perf_counter()
    import pymc as pm

    t1 = time.perf_counter()
    model, data = build(workspace)
    t2 = time.perf_counter()
    runs = []
    for _ in range(2):
        s0 = time.perf_counter()
        with model, ChildRss() as workers:
            idata = pm.sample(
                draws=DRAWS, tune=TUNE, chains=CHAINS, cores=2, random_seed=SEED,
                nuts_sampler="pymc", progressbar=False, target_accept=TARGET_ACCEPT,
                compute_convergence_checks=False,
            )  # fmt: skip
        s1 = time.perf_counter()
        runs.append({"total_s": s1 - s0, "divergences": divergences(idata),
                     "worker_peak_rss_mib": sorted(workers.peaks.values()),
                     "workers_max_concurrent_rss_mib": workers.max_concurrent_mib,
                     **ess_summary(idata, model)})  # fmt: skip
    return {
        "sampler": "pymc",
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "first_call": runs[0],
        "warm_call": runs[1],
        "n_cases": int(data.n_project + len(data.window_case_ids)),
        "peak_rss_mib": peak_rss_mib(),
    }


def run_child(kind: str, workspace: str, compiledir: str) -> dict:
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--workspace", workspace],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{kind} child failed:\n{out.stderr[-3000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["process_wall_s"] = time.perf_counter() - t0
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="/work/main")
    ap.add_argument("--child", choices=["nutpie", "pymc"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = child_nutpie if args.child == "nutpie" else child_pymc
        print(json.dumps(fn(args.workspace)))
        return

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as nut_dir, tempfile.TemporaryDirectory() as pymc_dir:
        nut_cold = run_child("nutpie", args.workspace, nut_dir)
        nut_warm = run_child("nutpie", args.workspace, nut_dir)
        pymc = run_child("pymc", args.workspace, pymc_dir)
    load_end = os.getloadavg()

    def row(name, compile_s, sample_s, ess, div, rss):
        per_s = ess / sample_s if sample_s else float("nan")
        c = f"{compile_s:>9.1f}" if compile_s is not None else f"{'(in run)':>9}"
        print(f"{name:<34}{c}{sample_s:>10.1f}{ess:>10.0f}{per_s:>10.0f}{div:>6}{rss:>9.0f}")
        return per_s

    print(f"\n## shipped model, {nut_cold['n_cases']} cases, {CHAINS} chains x {TUNE} tune + "
          f"{DRAWS} draws, target_accept {TARGET_ACCEPT}")  # fmt: skip
    print(f"{'sampler':<34}{'compile s':>9}{'sample s':>10}{'min ESS':>10}{'ESS/s':>10}"
          f"{'div':>6}{'RSS MiB':>9}")  # fmt: skip
    nc = row("nutpie, cold numba cache", nut_cold["compile_s"], nut_cold["sample_s"],
             nut_cold["min_ess_bulk_free"], nut_cold["divergences"], nut_cold["peak_rss_mib"])
    nw = row("nutpie, warm numba cache", nut_warm["compile_s"], nut_warm["sample_s"],
             nut_warm["min_ess_bulk_free"], nut_warm["divergences"], nut_warm["peak_rss_mib"])
    f, w = pymc["first_call"], pymc["warm_call"]
    rss = pymc["peak_rss_mib"] + w["workers_max_concurrent_rss_mib"]
    row("PyMC NUTS, first call (C compile)", None, f["total_s"], f["min_ess_bulk_free"],
        f["divergences"], rss)
    pw = row("PyMC NUTS, second call (warm)", None, w["total_s"], w["min_ess_bulk_free"],
             w["divergences"], rss)  # fmt: skip
    ratio_ess = nw / pw
    ratio_wall = w["total_s"] / nut_warm["sample_s"]
    refit_nut = nut_warm["compile_s"] + nut_warm["sample_s"]
    print(f"\nESS/s ratio nutpie (warm cache) / PyMC warm: {ratio_ess:.1f}x "
          f"(cold-cache nutpie: {nc / pw:.1f}x); sampling wall ratio {ratio_wall:.1f}x")
    print(f"a refit, compile + sample: nutpie {refit_nut:.1f} s (cold cache "
          f"{nut_cold['compile_s'] + nut_cold['sample_s']:.1f} s) vs PyMC "
          f"{w['total_s']:.1f} s warm, {f['total_s']:.1f} s first call")
    workers = ", ".join(f"{x:.0f}" for x in w["worker_peak_rss_mib"]) or "not seen"
    print(f"import nutpie + pymc in a child: {nut_cold['import_s']:.1f} s, pymc alone "
          f"{pymc['import_s']:.1f} s; memory (VmHWM): nutpie {nut_warm['peak_rss_mib']:.0f} "
          f"MiB (one process), PyMC parent {pymc['peak_rss_mib']:.0f} MiB + at most "
          f"{w['workers_max_concurrent_rss_mib']:.0f} MiB of workers at a time (each worker's "
          f"peak: {workers} MiB; RSS column: parent + workers)")
    print(f"min bulk ESS over every variable (incl. deterministics): nutpie "
          f"{nut_warm['min_ess_bulk_all']:.0f}, PyMC {w['min_ess_bulk_all']:.0f}")
    print(f"load average at end {load_end[0]:.2f}")
    RESULTS.mkdir(exist_ok=True)
    record = {
        "benchmark": "bench_sampler",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "loadavg_start": load,
        "loadavg_end": load_end,
        "nutpie_cold": nut_cold,
        "nutpie_warm_cache": nut_warm,
        "pymc": pymc,
        "ess_per_s_ratio_nutpie_warm_over_pymc_warm": ratio_ess,
        "sampling_wall_ratio_pymc_warm_over_nutpie": ratio_wall,
    }
    (RESULTS / "bench_sampler.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {RESULTS / 'bench_sampler.json'}")


if __name__ == "__main__":
    main()
