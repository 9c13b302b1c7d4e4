"""A warm ``georisk score`` (stored posterior, inputs unchanged) vs ``import numpy, pandas``.

Run ``python benchmarks/bench_warm_score.py`` (about a minute; the first run may fit the
model once if no posterior is stored for the current inputs). Prints a table and writes
``benchmarks/results/bench_warm_score.json``.

* Makes sure the posterior for the workspace's current inputs is stored (fits once if not:
  reported), so every timed run is warm.
* Times ``georisk score WORKSPACE --no-store --quiet`` (or, when the CLI has no ``score``
  command, a ``python -c`` doing ``load_workspace`` + ``posterior.load_or_fit`` (which must
  hit the stored fit) + ``score_run``) interleaved with ``python -c "import numpy, pandas"``,
  ``--repeats`` times each, and reports the medians and their ratio (target: <= 2x).
  Also times the same command without ``--quiet`` (the table is printed and the scores are
  compared with the last stored run, which imports and opens DuckDB), for the record.
* Runs the warm path under ``python -X importtime``, checks that neither ``pymc`` nor
  ``pytensor`` is imported, and prints the 15 most expensive imports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BARE = [sys.executable, "-c", "import numpy, pandas"]
BARE_SCIPY = [sys.executable, "-c", "import numpy, pandas, scipy.special"]
FORBIDDEN = ("pymc", "pytensor")
def fallback_code(workspace: str) -> str:
    return (
        "import georisk\n"
        "from georisk.posterior import load_or_fit\n"
        f"ws = georisk.load_workspace({workspace!r})\n"
        "posterior, fitted = load_or_fit(ws)\n"
        "assert not fitted, 'the warm path fitted: no stored posterior'\n"
        "georisk.score_run(ws, posterior)\n"
    )


def cli_has_score() -> bool:
    exe = shutil.which("georisk") or str(Path(sys.executable).with_name("georisk"))
    try:
        out = subprocess.run([exe, "score", "--help"], capture_output=True, text=True)
    except OSError:
        return False
    return out.returncode == 0 and "--no-store" in out.stdout


def cli_code(argv: list[str]) -> str:
    return f"import sys\nfrom georisk.cli import main\nsys.argv = ['georisk', *{argv!r}]\nmain()"


def warm_command(workspace: str) -> tuple[list[str], str, str]:
    """(argv, the same as python -c code for -X importtime, description)."""
    if cli_has_score():
        argv = ["score", workspace, "--no-store", "--quiet"]
        exe = shutil.which("georisk") or str(Path(sys.executable).with_name("georisk"))
        return [exe, *argv], cli_code(argv), f"georisk {' '.join(argv)}"
    code = fallback_code(workspace)
    return [sys.executable, "-c", code], code, "python -c (load_or_fit + score_run)"


def ensure_stored_fit(workspace: str) -> dict:
    code = (
        "import json, time, georisk\n"
        "from georisk.posterior import load_or_fit\n"
        f"ws = georisk.load_workspace({workspace!r})\n"
        "t = time.perf_counter()\n"
        "p, fitted = load_or_fit(ws)\n"
        "print(json.dumps({'fit_id': p.fit_id, 'fitted_now': fitted, "
        "'seconds': time.perf_counter() - t}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"could not load or fit the posterior:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_run(argv: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - t0, out.returncode, out.stderr[-2000:]


def import_profile(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line[len("import time:") :].split("|", 2)
        raw = name.rstrip("\n")[1:]  # "| " then two spaces per nesting level
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        rows.append({"module": raw.strip(), "self_us": int(self_us), "cum_us": int(cum_us),
                     "depth": depth})  # fmt: skip
    names = {r["module"] for r in rows}
    found = sorted(n for n in names if n.split(".")[0] in FORBIDDEN)
    top = sorted(rows, key=lambda r: -r["cum_us"])[:15]
    total = sum(r["self_us"] for r in rows)
    return {"returncode": out.returncode, "n_modules": len(rows), "total_import_us": total,
            "forbidden_imported": found, "top15_cumulative": top}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="/work/main")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    load = os.getloadavg()
    fit = ensure_stored_fit(args.workspace)
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at start")
    print(f"stored posterior {fit['fit_id']}: "
          f"{'FITTED NOW (first run)' if fit['fitted_now'] else 'found'} "
          f"({fit['seconds']:.1f} s)")  # fmt: skip
    argv, code, what = warm_command(args.workspace)
    print(f"warm path: {what}")
    commands = {
        "python -c \"import numpy, pandas\"": BARE,
        "python -c \"import numpy, pandas, scipy.special\"": BARE_SCIPY,
        what: argv,
    }
    table = "same without --quiet: table shown, compared with the history (DuckDB)"
    if argv[0] != sys.executable:  # the CLI
        commands[table] = [a for a in argv if a != "--quiet"]
    for cmd in commands.values():  # page cache
        timed_run(cmd)
    times: dict[str, list[float]] = {k: [] for k in commands}
    codes = set()
    for _ in range(args.repeats):
        for name, cmd in commands.items():
            t, rc, err = timed_run(cmd)
            times[name].append(t)
            if cmd is argv:
                codes.add(rc)
            if rc not in (0, 1):
                raise RuntimeError(f"{name} failed (exit {rc}):\n{err}")
    med = {k: statistics.median(v) for k, v in times.items()}
    mb, mw = med["python -c \"import numpy, pandas\""], med[what]
    print(f"\n## {args.repeats} runs each, interleaved")
    print(f"{'command':<58}{'median s':>9}{'min s':>8}{'max s':>8}{'ratio':>7}")
    for name, v in times.items():
        print(f"{name[:57]:<58}{med[name]:>9.3f}{min(v):>8.3f}{max(v):>8.3f}"
              f"{med[name] / mb:>6.2f}x")  # fmt: skip
    print(f"ratio warm score / bare import: {mw / mb:.2f}x (target <= 2x); exit codes {codes}")
    table_ratio = med[table] / mb if table in med else None
    if table_ratio is not None:
        print(f"with the table and the history comparison: {table_ratio:.2f}x")
    prof = import_profile(code)
    print(f"\n## python -X importtime of the warm path: {prof['n_modules']} modules, "
          f"{prof['total_import_us'] / 1e6:.2f} s of imports")
    verdict = ", ".join(prof["forbidden_imported"]) or "none"
    print(f"pymc / pytensor imported: {verdict}")
    print(f"{'cumulative ms':>14}{'self ms':>9}  module")
    for r in prof["top15_cumulative"]:
        print(f"{r['cum_us'] / 1000:>14.1f}{r['self_us'] / 1000:>9.1f}  "
              f"{'  ' * r['depth']}{r['module']}")  # fmt: skip
    load_end = os.getloadavg()
    print(f"load average at end {load_end[0]:.2f}")
    RESULTS.mkdir(exist_ok=True)
    record = {
        "benchmark": "bench_warm_score",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpus": os.cpu_count(),
        "loadavg_start": load,
        "loadavg_end": load_end,
        "warm_path": what,
        "stored_fit": fit,
        "times_s": times,
        "medians_s": med,
        "bare_median_s": mb,
        "warm_median_s": mw,
        "ratio": mw / mb,
        "table_and_history_ratio": table_ratio,
        "exit_codes": sorted(codes),
        "importtime": prof,
    }
    (RESULTS / "bench_warm_score.json").write_text(json.dumps(record, indent=2))
    print(f"wrote {RESULTS / 'bench_warm_score.json'}")


if __name__ == "__main__":
    main()
