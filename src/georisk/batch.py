r"""Batch scoring: probability summaries of many scenarios from many posterior draws, fast.

:func:`georisk.scoring.score_run` scores the few open scenarios of a workspace one at a
time, in float64, with every contribution. This module answers a different question:
the **mean and quantiles** of the probability of *N* scenarios (thousands to hundreds of
thousands: what-if grids, simulations, back-tests) from *D* posterior draws, with the same
maths (:func:`georisk.scoring.project_probability`, :func:`~georisk.scoring.window_probability`).
Per scenario :math:`s` and draw :math:`d`

.. math:: \eta_{sd} = \eta^{(d)}_{c(s)} + x_s \cdot \beta^{(d)}

then, for a project, with :math:`S, R` the survival functions of the lag to the event and of
the time to termination, :math:`a` the age and :math:`H` the horizon age,

.. math:: P_{sd} = \frac{\pi\,(S(a) - S(H))}{(1 - \pi)\,R(a) + \pi\,S(a)}
          = \frac{e_1\,(S(a) - S(H))}{e_0\,R(a) + e_1\,S(a)},
          \quad (e_1, e_0) = \begin{cases} (1, e^{-\eta}) & \eta \ge 0 \\
                                           (e^{\eta}, 1) & \eta < 0 \end{cases}

(the logistic's denominator cancels: one exponential, no division), and for a window of
:math:`L` years :math:`P_{sd} = -\operatorname{expm1}(-L\,\operatorname{softplus}(\eta))
= 1 - (1 - \pi)^L`.

.. note::
   The summaries here are **unweighted** over the draws: the mean of the per-draw
   probabilities :math:`P_{sd}`. The scores georisk publishes (:func:`georisk.scoring.score_run`)
   also condition on each scenario's own status (still open, no event yet in the window) by
   weighting the draws with its likelihood: their mean is the ratio of averages. The two
   differ by a few percentage points for long-open projects. Updating this kernel to the
   weighted predictive is open work; until then use ``score_run`` for published numbers and
   this module for grids, simulations and speed studies.

Backends
--------
``"numba"`` (default when numba is installed)
    One compiled, GIL-free kernel per chunk of scenarios, run on a pool of threads (one
    per CPU). Per scenario, over its *D* draws, in loops that LLVM vectorises (AVX2: 8
    float32 draws per instruction): the logits; the three survival terms (they depend on the
    age and the draw, not on the evidence, so scenarios are processed in order of (age,
    horizon) and a run of equal ages reuses them); the probabilities, into one row of
    scratch; their mean (summed in float64); and the exact order statistics that the
    quantiles need, by bucket selection (one counting pass over buckets of the floats' bit
    patterns, one gathering pass, a few values sorted), interpolated exactly as
    ``np.quantile(method="linear")`` does. Memory: ``threads x`` a few rows of *D* floats,
    plus the inputs and the (N, Q) outputs, whatever *N*. numba is imported inside
    :func:`batch_probabilities` only, never on the ``georisk score`` path; the compiled
    code is cached on disk (``cache=True``): 10-25 s to compile once per machine, then
    1-2 s at the first call in a process (importing numba and its CPU target).
``"numpy"``
    The exact float64 reference, chunked: :func:`georisk.scoring.project_probability`,
    :func:`~georisk.scoring.window_probability`, ``np.quantile(..., method="linear")``.
    Used when numba is missing or the problem is small (see ``backend``), and by the tests
    as the oracle.

Measured on 2 cores (``benchmarks/RESULTS.md``): 10,000 scenarios x 4,000 draws take
about 0.42 CPU-seconds (0.22 s wall on two free cores, 0.40 s on one) against 6-9 s for
the plain float64 path over one (N, D) matrix; time grows linearly in N (100,000: 4.3
CPU-seconds) and memory with N x kinds, not N x D.

What was measured and dropped: float32 ``scipy.special.ndtr`` (3 per element: 1.9 s for
40 M); numpy expressions of a rational approximation (each ufunc is a pass over memory:
about 8 ns per CDF per element, even in cache-sized chunks); ``np.partition`` with the ten
``kth`` of the five quantiles (0.9 s for (10,000, 4,000); numpy's SIMD ``sort`` took 0.22 s
and the bucket selection about half that); a float32 tail everywhere (the deep upper tails
lost up to 1e-5, see below).

Numerical methods (numba backend)
---------------------------------
* Normal upper tail :math:`Q(z) = \tfrac12\operatorname{erfc}(z/\sqrt2)` from the
  Chebyshev-fitted ``erfcc`` of Press, Teukolsky, Vetterling & Flannery, *Numerical Recipes
  in C*, 2nd ed. (1992), §6.2: :math:`\operatorname{erfc}(x) \approx t\exp(-x^2 + P_9(t))`,
  :math:`t = 1/(1 + x/2)`, **fractional error below 1.2e-7 everywhere**. A *relative* error
  bound is what the conditional probability needs: the ratio :math:`S(H)/S(a)` of two small
  tails decides :math:`P` for an old open project with strong evidence, and an
  absolute-error formula such as Abramowitz & Stegun 26.2.17 (|error| < 7.5e-8) allows
  errors of 7.5e-8 / :math:`S(a)` there (1e-3 at :math:`S(a) = 10^{-4}`). It is evaluated
  in float32 when every draw's erfc argument is at most 2 (:math:`Q \ge 2.3\cdot10^{-3}`;
  the subtraction :math:`\log a - \mu` in two float32 parts), else in float64 (4 lanes,
  half the speed): float32 carries :math:`x^2` in the exponent only to about
  :math:`x^2 \cdot 2\cdot10^{-7}`, which cost up to 1e-5 on the deep upper tails.
* :math:`e^x` in float32 by Cody-Waite range reduction and the degree-5 minimax
  polynomial of Cephes ``expf`` (S. L. Moshier, *Cephes Math Library*, 1984-1992), and in
  float64 with a degree-8 Taylor polynomial; :math:`2^n` built from its bits in both:
  relative errors below 3e-7 and 3e-10, and vectorisable, unlike a call to the C library.
* :math:`\log(1 + u)` for windows as :math:`2\operatorname{atanh}(u / (2 + u))` by its
  series, :math:`\operatorname{expm1}` by its Taylor series below 0.1: relative error
  below 1e-9 before float32 rounding.

Accuracy contract
-----------------
Against the exact float64 path (the ``"numpy"`` backend: ``scoring.project_probability``
/ ``window_probability`` and ``np.quantile(method="linear")`` over the same draws), the
numba backend's mean and every quantile of every scenario agree within
:data:`ABS_TOLERANCE` = **1e-5 absolute**, wherever that path is itself accurate to 1e-5:
logits :math:`|\eta| \le 20` and survival terms at the age above 1e-9 (z-scores of the age
at most 6 in both lag distributions), which covers every realistic input. The tests check
it on random inputs of both families, including logits of +-30, ages 0 and horizon =
age, at 4,000 draws. Per draw, against values computed accurately in float64 (survival
functions and :math:`1 - \pi` formed directly, never as :math:`1 - x`), the error is at
most 2.5e-6 for *any* age and :math:`|\eta| \le 30` (tested; the largest seen is 1.3e-6),
so the summaries are within that too (the mean trivially; a quantile is 1-Lipschitz in
the draws in the sup norm), whatever *D*. The quantile definition is the same, so there
is no definitional gap of order 1/D. Outside that domain the float64 scoring path loses
accuracy, not the kernel: it forms :math:`1 - F(a)` and :math:`1 - \pi` by subtraction,
with errors of about :math:`10^{-16}/S(a)` and :math:`10^{-16} e^{\eta}` (1e-5 on a window
at :math:`\eta = 30`), and returns NaN when both survival terms round to 0; the kernel
returns NaN only when the denominator underflows float32 (both terms below about 1e-38).
Probabilities are clipped to [0, 1]. Results are deterministic: each scenario's numbers
depend on neither the chunking, the number of threads, nor the other scenarios.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from georisk.scoring import QUANTILES

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

    from georisk.model_data import ScenarioEvidence

__all__ = [
    "ABS_TOLERANCE",
    "BatchSummary",
    "batch_inputs",
    "batch_probabilities",
    "numba_available",
]

ABS_TOLERANCE = 1e-5
"""Largest absolute difference allowed between the numba and float64 summaries."""

_DRAW_KEYS = (
    "eta",
    "eta_window",
    "strength",
    "lag_log_median",
    "lag_log_sd",
    "term_log_median",
    "term_log_sd",
)
_TARGET_CHUNK_BYTES = 1 << 20  # scenarios per task: about 1 MiB of float32 draws
_AUTO_NUMBA_MIN = 1_000_000


@dataclass(frozen=True)
class BatchSummary:
    """Summaries of the probability draws of many scenarios.

    Attributes
    ----------
    mean : ndarray, shape (N,)
        Posterior mean probability of each scenario.
    quantiles : ndarray, shape (N, Q)
        Its quantiles at ``levels`` (linear interpolation, as ``np.quantile``).
    levels : tuple of float
        Quantile levels, in the column order of ``quantiles``.
    base_mean, base_quantiles : ndarray or None
        The same for the base-rate-only probability (no evidence, same timing), when asked.
    n_draws : int
        Number of posterior draws summarised.
    backend : str
        ``"numba"`` or ``"numpy"``.
    """

    mean: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]
    base_mean: np.ndarray | None
    base_quantiles: np.ndarray | None
    n_draws: int
    backend: str

    def quantile(self, level: float, *, base: bool = False) -> np.ndarray:
        """Return the column of one quantile level.

        Parameters
        ----------
        level : float
            One of ``levels``.
        base : bool, default False
            The base-rate-only probability instead of the full one.

        Returns
        -------
        ndarray, shape (N,)
        """
        q = self.base_quantiles if base else self.quantiles
        if q is None:
            raise ValueError("base-rate summaries were not computed: pass base=True.")
        try:
            i = next(i for i, lv in enumerate(self.levels) if math.isclose(lv, level))
        except StopIteration:
            raise KeyError(f"quantile level {level} not in {self.levels}") from None
        return q[:, i]


def batch_inputs(evidences: Sequence[ScenarioEvidence]) -> dict[str, np.ndarray]:
    """Scenario arrays for :func:`batch_probabilities` from scenario evidence records.

    Parameters
    ----------
    evidences : sequence of ScenarioEvidence
        As built by :func:`georisk.model_data.scenario_evidence`.

    Returns
    -------
    dict of ndarray
        ``category``, ``x`` (N x kinds: the events' signed weights summed by kind),
        ``is_window``, ``age``, ``horizon_age``, ``exposure``: keyword arguments of
        :func:`batch_probabilities`.
    """
    from georisk.evidence import KINDS

    n = len(evidences)
    x = np.zeros((n, len(KINDS)))
    for i, ev in enumerate(evidences):
        if ev.events:
            x[i] = ev.x.sum(axis=0)
    return {
        "category": np.array([ev.category_index for ev in evidences], dtype=np.int64),
        "x": x,
        "is_window": np.array([ev.family == "window" for ev in evidences], dtype=bool),
        "age": np.array([ev.age for ev in evidences], dtype=float),
        "horizon_age": np.array([ev.horizon_age for ev in evidences], dtype=float),
        "exposure": np.array([ev.exposure for ev in evidences], dtype=float),
    }


def numba_available() -> bool:
    """Whether the numba backend can be used (numba importable)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba ships with pytensor here
        return False
    return True


def _as_scenarios(
    n_kinds: int,
    category: ArrayLike,
    x: ArrayLike,
    is_window: ArrayLike | None,
    age: ArrayLike | None,
    horizon_age: ArrayLike | None,
    exposure: ArrayLike | None,
) -> tuple[np.ndarray, ...]:
    cat = np.asarray(category, dtype=np.int64).ravel()
    n = cat.size
    xs = np.asarray(x, dtype=float)
    if xs.shape != (n, n_kinds):
        raise ValueError(f"x must have shape (N, kinds) = ({n}, {n_kinds}); got {xs.shape}.")
    win = np.zeros(n, bool) if is_window is None else np.asarray(is_window, bool).ravel()

    def col(values: ArrayLike | None, name: str, needed: np.ndarray) -> np.ndarray:
        if values is None:
            if needed.any():
                raise ValueError(f"{name} is required for the scenarios of that family.")
            return np.full(n, np.nan)
        out = np.broadcast_to(np.asarray(values, dtype=float), (n,)).copy()
        if np.any(~np.isfinite(out[needed])) or np.any(out[needed] < 0):
            raise ValueError(f"{name} must be finite and >= 0 for every scenario using it.")
        return out

    a = col(age, "age", ~win)
    h = col(horizon_age, "horizon_age", ~win)
    if np.any(h[~win] < a[~win]):
        raise ValueError("horizon_age must be >= age for every project scenario.")
    e = col(exposure, "exposure", win)
    return cat, xs, win, a, h, e


def _quantile_index(levels: tuple[float, ...], n_draws: int) -> tuple[np.ndarray, ...]:
    h = (n_draws - 1) * np.asarray(levels, dtype=float)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n_draws - 1)
    return lo, hi, h - lo


def batch_probabilities(
    draws: Mapping[str, np.ndarray],
    *,
    category: ArrayLike,
    x: ArrayLike,
    is_window: ArrayLike | None = None,
    age: ArrayLike | None = None,
    horizon_age: ArrayLike | None = None,
    exposure: ArrayLike | None = None,
    levels: Sequence[float] = QUANTILES,
    base: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    chunk_rows: int | None = None,
) -> BatchSummary:
    """Mean and quantiles of the probability of many scenarios over posterior draws.

    Parameters
    ----------
    draws : mapping of ndarray
        Posterior draws in the layout of :attr:`georisk.posterior.Posterior.draws`:
        ``eta`` (D x project categories), ``eta_window`` (D x window categories),
        ``strength`` (D x kinds), ``lag_log_median``, ``lag_log_sd``, ``term_log_median``,
        ``term_log_sd`` (D).
    category : array_like of int, shape (N,)
        Index into the columns of ``eta`` (projects) or ``eta_window`` (windows).
    x : array_like, shape (N, kinds)
        Signed, weighted evidence per kind (the events' weights summed by kind).
    is_window : array_like of bool, shape (N,), optional
        True for window scenarios (default: all projects).
    age, horizon_age : array_like, shape (N,), optional
        Years since announcement at the as-of date and at the horizon (projects; ignored
        for windows). ``horizon_age >= age >= 0``.
    exposure : array_like, shape (N,), optional
        Remaining window length in years (windows; ignored for projects).
    levels : sequence of float, default :data:`georisk.scoring.QUANTILES`
        Quantile levels in [0, 1].
    base : bool, default False
        Also summarise the base-rate-only probability (``x = 0``, same timing).
    backend : {"auto", "numba", "numpy"}
        ``auto`` is ``numba`` when numba is installed, except for fewer than a million
        scenario-draws in a process that has not imported numba yet (its first use costs
        1-2 s); else the float64 ``numpy`` path.
    threads : int, optional
        Worker threads (default: the CPUs this process may use). Results do not depend on it.
    chunk_rows : int, optional
        Scenarios per task handed to a thread (default: about 1 MiB of float32 draws).
        Results do not depend on it.

    Returns
    -------
    BatchSummary
        See the module docstring for the accuracy contract between the backends.

    Examples
    --------
    >>> from georisk.batch import batch_inputs, batch_probabilities
    >>> s = batch_probabilities(posterior.draws, **batch_inputs(evidences))  # doctest: +SKIP
    >>> s.mean, s.quantile(0.9)  # doctest: +SKIP
    """
    missing = [k for k in _DRAW_KEYS if k not in draws]
    if missing:
        raise ValueError(f"draws lack {missing}.")
    strength = np.asarray(draws["strength"], dtype=float)
    n_draws, n_kinds = strength.shape
    if n_draws < 1:
        raise ValueError("at least one posterior draw is needed.")
    cat, xs, win, a, h, e = _as_scenarios(
        n_kinds, category, x, is_window, age, horizon_age, exposure
    )
    n_proj_cat = np.asarray(draws["eta"]).shape[1]
    n_win_cat = np.asarray(draws["eta_window"]).shape[1]
    if np.any(cat < 0) or np.any(cat[~win] >= n_proj_cat) or np.any(cat[win] >= n_win_cat):
        raise ValueError("category index out of range for its family.")
    lv = tuple(float(q) for q in levels)
    if any(not 0.0 <= q <= 1.0 for q in lv):
        raise ValueError(f"quantile levels must lie in [0, 1]; got {lv}.")
    if backend == "auto":
        # numba's first use in a process costs 1-2 s (importing it and its CPU target's
        # registries); below a million scenario-draws the float64 path is faster.
        small = cat.size * n_draws < _AUTO_NUMBA_MIN and "numba" not in sys.modules
        backend = "numba" if numba_available() and not small else "numpy"
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy'; got {backend!r}.")
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    threads = max(1, int(threads))
    if chunk_rows is None:
        chunk_rows = max(1, _TARGET_CHUNK_BYTES // (4 * n_draws))
    chunk_rows = max(1, int(chunk_rows))
    n = cat.size
    out = {
        "mean": np.empty(n),
        "q": np.empty((n, len(lv))),
        "base_mean": np.empty(n) if base else None,
        "base_q": np.empty((n, len(lv))) if base else None,
    }
    args = (draws, cat, xs, win, a, h, e, lv, base, threads, chunk_rows, out)
    if n:
        if backend == "numba":
            _run_numba(*args)
        else:
            _run_numpy(*args)
    return BatchSummary(
        mean=out["mean"],
        quantiles=out["q"],
        levels=lv,
        base_mean=out["base_mean"],
        base_quantiles=out["base_q"],
        n_draws=n_draws,
        backend=backend,
    )


def _for_chunks(n: int, rows: int, threads: int, work) -> None:
    """Call ``work(start, stop, state)`` on every chunk, on ``threads`` threads."""
    starts = list(range(0, n, rows))
    threads = min(threads, len(starts))
    if threads <= 1:
        state: dict[str, Any] = {}
        for s in starts:
            work(s, min(s + rows, n), state)
        return

    def run(k: int) -> None:
        state: dict[str, Any] = {}
        for s in starts[k::threads]:
            work(s, min(s + rows, n), state)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(run, k) for k in range(threads)]:
            f.result()


# --------------------------------------------------------------------------------------
# float64 reference (numpy)
# --------------------------------------------------------------------------------------


def _run_numpy(draws, cat, xs, win, a, h, e, lv, base, threads, rows, out) -> None:
    from georisk.scoring import project_probability, window_probability

    eta_p = np.asarray(draws["eta"], dtype=float)
    eta_w = np.asarray(draws["eta_window"], dtype=float)
    beta = np.asarray(draws["strength"], dtype=float)
    lag = [np.asarray(draws[k], dtype=float)[None, :] for k in _DRAW_KEYS[3:]]
    rows = max(1, min(rows, (1 << 22) // (8 * beta.shape[0])))  # float64 work arrays

    def summarise(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return p.mean(axis=1), np.quantile(p, lv, axis=1, method="linear").T

    def work(i: int, j: int, _state: dict) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):  # NaN where 0/0, as documented
            chunk(i, j)

    def chunk(i: int, j: int) -> None:
        sl = slice(i, j)
        w, c = win[sl], cat[sl]
        b = np.empty((j - i, beta.shape[0]))
        b[~w] = eta_p[:, c[~w]].T
        b[w] = eta_w[:, c[w]].T
        eta = b + xs[sl] @ beta.T
        for target, key_m, key_q in ((eta, "mean", "q"), (b, "base_mean", "base_q")):
            if key_m == "base_mean" and not base:
                continue
            p = np.empty_like(target)
            pw, pp = w, ~w
            if pp.any():
                p[pp] = project_probability(
                    target[pp], a[sl][pp, None], h[sl][pp, None], *lag
                )
            if pw.any():
                p[pw] = window_probability(target[pw], e[sl][pw, None])
            m, q = summarise(p)
            out[key_m][sl] = m
            out[key_q][sl] = q

    _for_chunks(cat.size, rows, threads, work)


# --------------------------------------------------------------------------------------
# numba kernel. Plain Python functions here; compiled (and the globals _nb_* bound) on
# first use by _numba_kernel(), so that importing this module never imports numba.
# --------------------------------------------------------------------------------------

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
_INV_SQRT2 = 0.7071067811865476

_nb_bits_to_f32: Any = None
_nb_f32_to_bits: Any = None
_nb_bits_to_f64: Any = None
_nb_f64_to_bits: Any = None
_nb_exp64: Any = None
_nb_q32: Any = None
_nb_q64: Any = None
_nb_exp: Any = None
_nb_tail_row: Any = None
_nb_mean: Any = None
_nb_select: Any = None
_nb_summarise_row: Any = None
_nb_kernel: Any = None
_NB_LOCK = threading.Lock()


def _py_exp(x):
    """Float32 exp: Cody-Waite reduction and the Cephes expf polynomial; x clamped."""
    x = min(max(x, _F(-87.0)), _F(88.0))
    n = np.floor(x * _LOG2E + _F(0.5))
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    y = p * r * r + r + _F(1.0)
    return y * _nb_bits_to_f32((np.int32(n) + np.int32(127)) << np.int32(23))


def _py_exp64(x):
    """Float64 exp for x <= 0 (clamped at -708): Cody-Waite, degree-8 Taylor (Estrin).

    The rounding uses the 1.5 * 2**52 trick, so :math:`2^n` is built from the bits of the
    rounded sum without a float-to-int64 conversion (AVX2 has none): vectorisable.
    Relative error below 3e-10 (the tails are stored in float32 anyway).
    """
    x = max(x, -708.0)
    k = x * 1.4426950408889634 + 6755399441055744.0
    n = k - 6755399441055744.0
    r = x - n * 6.93147180369123816490e-01
    r = r - n * 1.90821492927058770002e-10
    r2 = r * r
    r4 = r2 * r2
    p = ((1.0 + r) + (0.5 + r * (1.0 / 6.0)) * r2) + (
        (1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2
    ) * r4 + (1.0 / 40320.0) * (r4 * r4)
    return p * _nb_bits_to_f64((_nb_f64_to_bits(k) + 1023) << 52)


def _py_q32(x):
    """Return the normal upper tail at ``x * sqrt 2`` (``erfc(x) / 2``), in float32."""
    av = abs(x)
    t = _F(1.0) / (_F(1.0) + _F(0.5) * av)
    # P_9(t) by Estrin's scheme: shorter dependency chains than Horner (8% faster here)
    t2 = t * t
    t4 = t2 * t2
    a01 = _F(-1.26551223) + _F(1.00002368) * t
    a23 = _F(0.37409196) + _F(0.09678418) * t
    a45 = _F(-0.18628806) + _F(0.27886807) * t
    a67 = _F(-1.13520398) + _F(1.48851587) * t
    a89 = _F(-0.82215223) + _F(0.17087277) * t
    poly = (a01 + a23 * t2) + (a45 + a67 * t2) * t4 + a89 * (t4 * t4)
    r = _F(0.5) * t * _nb_exp(poly - av * av)
    return r if x >= _F(0.0) else _F(1.0) - r


def _py_q64(x):
    """Return the normal upper tail at ``x * sqrt 2`` (``erfc(x) / 2``), float64, as float32."""
    av = abs(x)
    t = 1.0 / (1.0 + 0.5 * av)
    t2 = t * t
    t4 = t2 * t2
    a01 = -1.26551223 + 1.00002368 * t
    a23 = 0.37409196 + 0.09678418 * t
    a45 = -0.18628806 + 0.27886807 * t
    a67 = -1.13520398 + 1.48851587 * t
    a89 = -0.82215223 + 0.17087277 * t
    poly = (a01 + a23 * t2) + (a45 + a67 * t2) * t4 + a89 * (t4 * t4)
    r = 0.5 * t * _nb_exp64(poly - av * av)
    return _F(r if x >= 0.0 else 1.0 - r)


def _py_tail_row(log_t, mu, isd, mu_hi, mu_lo, isd32, out):
    r"""``out[d] = Q((log_t - mu[d]) * isd[d] * sqrt 2)``, Q the normal upper tail.

    ``isd`` holds :math:`1/(\sigma\sqrt2)`, so the argument :math:`x` is erfc's. Numerical
    Recipes ``erfcc``, fractional error < 1.2e-7. In float32 (8 lanes) when every
    :math:`x \le 2` (:math:`Q \ge 2.3e-3`), with the subtraction done in two parts
    (``mu_hi + mu_lo``); else in float64 (4 lanes, 2x slower). Float32 holds :math:`x` to
    a relative :math:`\rho \approx 2e-7`, hence :math:`Q` to :math:`2x^2\rho`: fine for
    :math:`x \le 2`, too coarse for the deep upper tails whose ratio decides the
    probability of an old open project (lower tails, :math:`Q \to 1`, need only an
    absolute accuracy).
    """
    n = out.shape[0]
    lt_hi = _F(log_t)
    lt_lo = _F(log_t - np.float64(lt_hi))
    big = _F(-np.inf)
    for d in range(n):
        big = max(big, (lt_hi - mu_hi[d]) * isd32[d])
    if big <= _F(2.0):
        for d in range(n):
            out[d] = _nb_q32(((lt_hi - mu_hi[d]) + (lt_lo - mu_lo[d])) * isd32[d])
    else:
        for d in range(n):
            out[d] = _nb_q64((log_t - mu[d]) * isd[d])


def _py_mean(row):
    """Mean of a float32 row, accumulated in float64."""
    acc = 0.0
    for d in range(row.shape[0]):
        acc += row[d]
    return acc / row.shape[0]


def _py_select(row, ranks, vals, counts, idx, slot, seg, gather):
    """Order statistics ``ranks`` (sorted, distinct) of ``row`` into ``vals``: exact.

    Bucket selection: one pass buckets every value (on the float's bit pattern, a log-like
    scale, for non-negative rows; linearly otherwise) and counts; the buckets holding the
    wanted ranks are gathered in a second pass and sorted (a few values each). Returns
    False, leaving ``vals`` alone, when the row holds a NaN.
    """
    n = row.shape[0]
    n_buckets = counts.shape[0]
    m = ranks.shape[0]
    mn = row[0]
    mx = row[0]
    pos_min = np.float32(np.inf)
    nan = False
    for d in range(n):
        v = row[d]
        nan |= v != v
        mn = min(mn, v)
        mx = max(mx, v)
        pos_min = min(pos_min, v if v > 0 else np.float32(np.inf))
    if nan:
        return False
    if mx == mn:
        for j in range(m):
            vals[j] = mn
        return True
    top = n_buckets - 1
    if mn >= 0 and pos_min < mx:
        # non-negative: bucket the bit patterns (monotone in the value), zeros in bucket 0
        # (float32 arithmetic: rounding is monotone, so the buckets stay ordered)
        keys = row.view(np.int32)
        lo = np.float32(_nb_f32_to_bits(pos_min))
        hi = np.float32(_nb_f32_to_bits(mx))
        scale = np.float32((n_buckets - 0.5) / (np.float64(hi) - np.float64(lo)))
        for d in range(n):
            b = np.int32((np.float32(keys[d]) - lo) * scale)
            idx[d] = min(max(b, 0), top)
    else:
        scale = np.float32((n_buckets - 0.5) / (np.float64(mx) - np.float64(mn)))
        for d in range(n):
            b = np.int32((row[d] - mn) * scale)
            idx[d] = min(max(b, 0), top)
    counts[:] = 0
    for d in range(n):
        counts[idx[d]] += 1
    # seg[k] = (start in gather, size, rank of its first value, filled so far)
    j = 0
    cum = 0
    n_seg = 0
    pos = 0
    for b in range(n_buckets):
        c = counts[b]
        slot[b] = -1
        if j < m and ranks[j] < cum + c:
            slot[b] = n_seg
            seg[n_seg, 0] = pos
            seg[n_seg, 1] = c
            seg[n_seg, 2] = cum
            seg[n_seg, 3] = 0
            pos += c
            n_seg += 1
            while j < m and ranks[j] < cum + c:
                j += 1
        cum += c
    for d in range(n):
        k = slot[idx[d]]
        if k >= 0:
            gather[seg[k, 0] + seg[k, 3]] = row[d]
            seg[k, 3] += 1
    j = 0
    for k in range(n_seg):
        s0 = seg[k, 0]
        c = seg[k, 1]
        part = gather[s0 : s0 + c]
        if c <= 48:
            for i in range(1, c):
                v = part[i]
                i2 = i - 1
                while i2 >= 0 and part[i2] > v:
                    part[i2 + 1] = part[i2]
                    i2 -= 1
                part[i2 + 1] = v
        else:
            part.sort()
        while j < m and ranks[j] < seg[k, 2] + c:
            vals[j] = part[ranks[j] - seg[k, 2]]
            j += 1
    return True


def _py_summarise_row(row, s, mean, q, ranks, pos_lo, pos_hi, tq, sel):
    """Mean and interpolated quantiles of one row (``np.quantile``'s linear formula)."""
    mean[s] = _nb_mean(row)
    counts, idx, slot, seg, gather, vals = sel
    if _nb_select(row, ranks, vals, counts, idx, slot, seg, gather):
        for j in range(tq.shape[0]):
            a = np.float64(vals[pos_lo[j]])
            b = np.float64(vals[pos_hi[j]])
            t = tq[j]
            diff = b - a
            q[s, j] = b - diff * (1.0 - t) if t >= 0.5 else a + diff * t
    else:
        for j in range(tq.shape[0]):
            q[s, j] = np.nan


def _py_kernel(
    base_p, base_w, beta, lag, cat, x, win, age, horizon, expo,
    ranks, pos_lo, pos_hi, tq, do_base,
    mean, q, mean_base, q_base,
    row, eta, s_a, s_h, r_a, sel,
):  # fmt: skip
    """Summaries of a run of scenarios: probabilities row by row, then mean and quantiles."""
    mu, isd, mu_hi, mu_lo, isd32, tmu, tisd, tmu_hi, tmu_lo, tisd32 = lag
    n_rows = cat.shape[0]
    n_draws = row.shape[0]
    n_kinds = beta.shape[0]
    last_age = -1.0
    last_h = -1.0
    one = _F(1.0)
    zero = _F(0.0)
    nan = _F(np.nan)
    for s in range(n_rows):
        c = cat[s]
        is_w = win[s]
        for variant in range(2 if do_base else 1):
            if is_w:
                for d in range(n_draws):
                    eta[d] = base_w[c, d]
            else:
                for d in range(n_draws):
                    eta[d] = base_p[c, d]
            if variant == 0:
                for k in range(n_kinds):
                    w = _F(x[s, k])
                    if w != zero:
                        for d in range(n_draws):
                            eta[d] += w * beta[k, d]
            if is_w:
                ln = _F(expo[s])
                for d in range(n_draws):
                    v = eta[d]
                    u = _nb_exp(-abs(v))
                    # log1p(u) = 2 atanh(u / (2 + u)), series in q = (u / (2 + u))^2 <= 1/9
                    z = u / (_F(2.0) + u)
                    zz = z * z
                    ser = _F(1.0 / 19.0)
                    ser = ser * zz + _F(1.0 / 17.0)
                    ser = ser * zz + _F(1.0 / 15.0)
                    ser = ser * zz + _F(1.0 / 13.0)
                    ser = ser * zz + _F(1.0 / 11.0)
                    ser = ser * zz + _F(1.0 / 9.0)
                    ser = ser * zz + _F(1.0 / 7.0)
                    ser = ser * zz + _F(1.0 / 5.0)
                    ser = ser * zz + _F(1.0 / 3.0)
                    ser = ser * zz + one
                    y = ln * (max(v, zero) + _F(2.0) * z * ser)
                    # -expm1(-y): Taylor series below 0.1, else 1 - exp(-y)
                    small = _F(1.0 / 720.0)
                    small = _F(1.0 / 120.0) - y * small
                    small = _F(1.0 / 24.0) - y * small
                    small = _F(1.0 / 6.0) - y * small
                    small = _F(0.5) - y * small
                    small = y * (one - y * small)
                    p = small if y < _F(0.1) else one - _nb_exp(-y)
                    row[d] = min(max(p, zero), one)
            else:
                if variant == 0:
                    a = age[s]
                    hz = horizon[s]
                    if a != last_age:
                        if a > 0.0:
                            la = math.log(a)
                            _nb_tail_row(la, mu, isd, mu_hi, mu_lo, isd32, s_a)
                            _nb_tail_row(la, tmu, tisd, tmu_hi, tmu_lo, tisd32, r_a)
                        else:
                            s_a[:] = one
                            r_a[:] = one
                    if hz != last_h or a != last_age:
                        if hz == a:
                            s_h[:] = s_a
                        elif hz > 0.0:
                            _nb_tail_row(math.log(hz), mu, isd, mu_hi, mu_lo, isd32, s_h)
                        else:
                            s_h[:] = one
                    last_age = a
                    last_h = hz
                for d in range(n_draws):
                    v = eta[d]
                    u = _nb_exp(-abs(v))
                    e1 = one if v >= zero else u
                    e0 = u if v >= zero else one
                    sa = s_a[d]
                    den = e0 * r_a[d] + e1 * sa
                    p = min(max(e1 * (sa - s_h[d]) / den, zero), one)
                    row[d] = p if den > zero else nan
            if variant == 0:
                _nb_summarise_row(row, s, mean, q, ranks, pos_lo, pos_hi, tq, sel)
            else:
                _nb_summarise_row(row, s, mean_base, q_base, ranks, pos_lo, pos_hi, tq, sel)



def _numba_kernel():
    """Compile (or load from numba's on-disk cache) the kernel; imports numba."""
    global _nb_bits_to_f32, _nb_f32_to_bits, _nb_bits_to_f64, _nb_f64_to_bits
    global _nb_exp, _nb_exp64, _nb_q32, _nb_q64, _nb_tail_row, _nb_mean
    global _nb_select, _nb_summarise_row, _nb_kernel
    if _nb_kernel is not None:
        return _nb_kernel
    with _NB_LOCK:
        if _nb_kernel is not None:  # pragma: no cover - lost a race
            return _nb_kernel
        import numba
        from llvmlite import ir
        from numba.core import types
        from numba.extending import intrinsic

        @intrinsic
        def bits_to_f32(typingctx, v):
            if not isinstance(v, types.Integer):  # pragma: no cover
                return None

            def codegen(context, builder, signature, args):
                value = builder.trunc(args[0], ir.IntType(32)) if v.bitwidth > 32 else args[0]
                return builder.bitcast(value, ir.FloatType())

            return types.float32(v), codegen

        @intrinsic
        def f32_to_bits(typingctx, v):
            if not isinstance(v, types.Float) or v.bitwidth != 32:  # pragma: no cover
                return None

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], ir.IntType(32))

            return types.int32(v), codegen

        @intrinsic
        def bits_to_f64(typingctx, v):
            if not isinstance(v, types.Integer):  # pragma: no cover
                return None

            def codegen(context, builder, signature, args):
                value = builder.sext(args[0], ir.IntType(64)) if v.bitwidth < 64 else args[0]
                return builder.bitcast(value, ir.DoubleType())

            return types.float64(v), codegen

        @intrinsic
        def f64_to_bits(typingctx, v):
            if not isinstance(v, types.Float) or v.bitwidth != 64:  # pragma: no cover
                return None

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], ir.IntType(64))

            return types.int64(v), codegen

        # No 'reassoc' where the order of operations is the algorithm (Cody-Waite, the
        # series); 'nnan'/'ninf' never (inputs may hold inf). The mean may reassociate.
        exact = {"contract", "arcp", "nsz", "afn"}
        opts: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy"}
        _nb_bits_to_f32 = bits_to_f32
        _nb_f32_to_bits = f32_to_bits
        _nb_bits_to_f64 = bits_to_f64
        _nb_f64_to_bits = f64_to_bits
        _nb_exp64 = numba.njit(fastmath=exact, **opts)(_py_exp64)
        _nb_exp = numba.njit(fastmath=exact, **opts)(_py_exp)
        _nb_q32 = numba.njit(fastmath=exact, **opts)(_py_q32)
        _nb_q64 = numba.njit(fastmath=exact, **opts)(_py_q64)
        _nb_tail_row = numba.njit(fastmath=exact, **opts)(_py_tail_row)
        _nb_mean = numba.njit(fastmath=exact | {"reassoc"}, **opts)(_py_mean)
        _nb_select = numba.njit(**opts)(_py_select)
        _nb_summarise_row = numba.njit(**opts)(_py_summarise_row)
        _nb_kernel = numba.njit(fastmath=exact, **opts)(_py_kernel)
        return _nb_kernel


def _run_numba(draws, cat, xs, win, a, h, e, lv, base, threads, rows, out) -> None:
    kernel = _numba_kernel()
    f32 = np.float32
    base_p = np.ascontiguousarray(np.asarray(draws["eta"], dtype=float).T, dtype=f32)
    base_w = np.ascontiguousarray(np.asarray(draws["eta_window"], dtype=float).T, dtype=f32)
    if base_w.shape[0] == 0:
        base_w = np.zeros((1, base_p.shape[1]), f32)
    beta = np.ascontiguousarray(np.asarray(draws["strength"], dtype=float).T, dtype=f32)
    n_draws = beta.shape[1]
    lag: list[np.ndarray] = []
    for k_mu, k_sd in (("lag_log_median", "lag_log_sd"), ("term_log_median", "term_log_sd")):
        mu = np.ascontiguousarray(draws[k_mu], dtype=float)
        isd = _INV_SQRT2 / np.ascontiguousarray(draws[k_sd], dtype=float)
        mu_hi = mu.astype(f32)
        lag += [mu, isd, mu_hi, (mu - mu_hi).astype(f32), isd.astype(f32)]
    # Process scenarios in order of (family, age, horizon): runs of equal ages share the
    # survival terms. Each scenario's result is independent of the order.
    order = np.lexsort((h, a, win))
    cat_o = np.ascontiguousarray(cat[order])
    x_o = np.ascontiguousarray(xs[order])
    win_o = np.ascontiguousarray(win[order])
    a_o = np.ascontiguousarray(np.where(win_o, 0.0, a[order]))
    h_o = np.ascontiguousarray(np.where(win_o, 0.0, h[order]))
    e_o = np.ascontiguousarray(np.where(win_o, e[order], 0.0))
    lo, hi, tq = _quantile_index(lv, n_draws)
    ranks, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    pos_lo = np.ascontiguousarray(inverse[: lo.size])
    pos_hi = np.ascontiguousarray(inverse[lo.size :])
    n_buckets = int(np.clip(1 << max(0, (n_draws // 4 - 1).bit_length()), 64, 1 << 14))
    n = cat.size
    mean_o = np.empty(n)
    q_o = np.empty((n, len(lv)))
    bmean_o = np.empty(n if base else 1)
    bq_o = np.empty((n if base else 1, len(lv)))

    def work(i: int, j: int, state: dict) -> None:
        if not state:
            state["scratch"] = [np.empty(n_draws, f32) for _ in range(5)]
            state["sel"] = (
                np.empty(n_buckets, np.int32),
                np.empty(n_draws, np.int32),
                np.empty(n_buckets, np.int32),
                np.empty((ranks.size, 4), np.int64),
                np.empty(n_draws, f32),
                np.empty(ranks.size, f32),
            )
        kernel(
            base_p, base_w, beta, tuple(lag),
            cat_o[i:j], x_o[i:j], win_o[i:j], a_o[i:j], h_o[i:j], e_o[i:j],
            ranks, pos_lo, pos_hi, tq, base,
            mean_o[i:j], q_o[i:j],
            bmean_o[i:j] if base else bmean_o, bq_o[i:j] if base else bq_o,
            *state["scratch"], state["sel"],
        )  # fmt: skip

    _for_chunks(n, rows, threads, work)
    out["mean"][order] = mean_o
    out["q"][order] = q_o
    if base:
        out["base_mean"][order] = bmean_o
        out["base_q"][order] = bq_o
