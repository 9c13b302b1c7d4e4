r"""Batch scoring: weighted probability summaries of many scenarios from many draws, fast.

:func:`georisk.scoring.score_run` scores the few open scenarios of a workspace one at a
time, in float64, with every contribution. This module answers a narrower question for
*N* scenarios (thousands to hundreds of thousands: what-if grids, simulations,
back-tests) and *D* posterior draws: the **posterior predictive mean, weighted quantiles
and effective number of draws** of each scenario's probability, with exactly the
definitions that ``score_run`` publishes (:func:`georisk.scoring.weighted_summary`). Per
scenario :math:`s` and draw :math:`d`

.. math:: \eta_{sd} = \eta^{(d)}_{c(s)} + x_s \cdot \beta^{(d)}

then, for a project, with :math:`S, R` the survival functions of the lag to the event and of
the time to termination, :math:`a` the age and :math:`H` the horizon age,

.. math:: P_{sd} = \frac{\pi\,(S(a) - S(H))}{(1 - \pi)\,R(a) + \pi\,S(a)}
          = \frac{e_1\,(S(a) - S(H))}{e_0\,R(a) + e_1\,S(a)},
          \quad (e_1, e_0) = \begin{cases} (1, e^{-\eta}) & \eta \ge 0 \\
                                           (e^{\eta}, 1) & \eta < 0 \end{cases}

(the logistic's denominator cancels: one exponential, no division), and for a window of
:math:`L` years :math:`P_{sd} = -\operatorname{expm1}(-L\,\operatorname{softplus}(\eta))
= 1 - (1 - \pi)^L`. Draw :math:`d` is weighted by the likelihood of the scenario's own
status at the as-of date: still open, :math:`w_{sd} = (1 - \pi) R(a) + \pi S(a)`, for a
project; no event in the :math:`\ell` years of the window already past,
:math:`w_{sd} = (1 - \pi)^{\ell}`, for a window (see :mod:`georisk.scoring` for why this
makes the score a posterior predictive probability). The summaries are

.. math:: \bar P_s = \frac{\sum_d w_{sd} P_{sd}}{\sum_d w_{sd}}, \qquad
          \mathrm{ESS}_s = \frac{(\sum_d w_{sd})^2}{\sum_d w_{sd}^2},

and the quantile at level :math:`q` interpolates (as ``np.interp`` does) the weighted CDF
at the draws' weight mid-points, :math:`\hat F(P_{(i)}) = (\sum_{j \le i} w_{(j)} -
w_{(i)}/2) / \sum_j w_j`, over the draws sorted as a stable sort orders them; with equal
weights this is the Hazen plotting position. ``base=True`` adds the same three summaries
of the base-rate-only probability (:math:`x_s = 0`), weighted by its own status
likelihood, as ``score_run`` does.

Backends
--------
``"numba"`` (default when numba is installed)
    One compiled, GIL-free kernel per chunk of scenarios, run on a pool of threads (one
    per CPU). Per scenario, over its *D* draws, in loops that LLVM vectorises (AVX2: 8
    float32 draws per instruction): the logits; the three survival terms (they depend on the
    age and the draw, not on the evidence, so scenarios are processed in order of (age,
    horizon) and a run of equal ages reuses them); the probabilities and weights, into
    rows of scratch; the sums of :math:`w`, :math:`wP` and :math:`w^2` (in float64); and
    the weighted quantiles by bucket selection. One pass puts every draw in a bucket of its
    float's bit pattern (power-of-two widths: a log-like scale) and adds up the buckets'
    counts and weights; the cumulative weights locate, for each level, the buckets that hold
    the two draws whose mid-points bracket it (and the nearest non-empty bucket on each
    side); a second pass gathers those few draws and sorts them. Draws whose float32 value
    lies within the proven error bound of the bracketing pair are recomputed in float64 by
    the scoring path's formulas (and ordered by (value, draw) as a stable argsort orders
    them), and the window widens until the bracketing pair is certain: the pair is the one
    the float64 path picks. Memory: ``threads x`` a few rows of *D* floats, plus the inputs
    and the (N, Q) outputs, whatever *N*. numba is imported inside
    :func:`batch_probabilities` only, never on the ``georisk score`` path; the compiled
    code is cached on disk (``cache=True``): 10-60 s to compile once per machine, then
    1-2 s at the first call in a process (importing numba and its CPU target).
``"numpy"``
    The float64 reference, chunked: :func:`georisk.scoring.project_terms` and
    :func:`~georisk.scoring.window_terms` per draw, then a stable argsort, cumulative
    weights and ``np.interp``'s rule vectorised over the rows. Used when numba is missing or
    the problem is small (see ``backend``), and by the tests, which check it against
    :func:`georisk.scoring.weighted_summary` row by row to 1e-12.

Measured on 2 cores (``benchmarks/RESULTS.md``, 10,000 scenarios x 4,000 draws, 80%
projects): the numba backend takes about 0.6 CPU-seconds, 0.35 s of wall time on two
threads, against about 10 s for the plain float64 path over one (N, D) matrix (weights,
argsort, cumulative sums, interpolation); time grows linearly in N (100,000: 2.8 s), and
memory with N x kinds, not N x D.

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
Against the float64 path (the ``"numpy"`` backend, equal to
:func:`georisk.scoring.weighted_summary` of the scoring path's per-draw probabilities and
weights to 1e-12), for logits :math:`|\eta| \le 30` and any age, as long as the still-open
probability :math:`w_{sd}` of a project stays within float32's normal range (above about
1.2e-38; below it, for a project open for a hundred times its lag's median, the kernel
returns NaN, never a wrong number):

* each draw's probability is within 2.5e-6 of an independent float64 oracle (scipy's
  ``ndtr`` and ``expit``; the largest seen is about 1.3e-6), and its weight within a
  relative :data:`WEIGHT_RTOL` = 2e-6 for a project (the float32 tails, 1.2e-7 for erfc
  and up to 8e-7 for :math:`x^2` in the exponent; 3e-7 for exp; the rounding of
  :math:`\eta`). A window's log-weight :math:`-\ell\,\operatorname{softplus}(\eta)` is
  formed from the float32 logit, so its relative error grows with the years elapsed:
  at most :math:`\max(2\cdot10^{-6},\ 1.2\cdot10^{-7}\,\ell\,(1 + 2\max_d|\eta_d|))`
  (2.5e-6 for 3 years at :math:`|\eta| \le 3`; 8e-5 for 30 years at :math:`|\eta|
  \le 10`), and that is the bound its quantiles' band below uses;
* the **mean** agrees within :data:`ABS_TOLERANCE` = **1e-5 absolute**, the effective
  number of draws within :data:`ESS_RTOL` = **1e-5 relative**;
* each **quantile** is **backward stable in the weights**: it lies within 2.5e-6 of the
  float64 quantile function evaluated somewhere in ``[level - 2 WEIGHT_RTOL, level + 2
  WEIGHT_RTOL]`` (or the window's own bound above; a relative error :math:`\epsilon` in
  every weight moves the weighted CDF by at most :math:`2\epsilon`). Where the weighted
  quantile is well conditioned (a change
  of 4e-6 in its level moves it by less than 7.5e-6) that means within
  :data:`ABS_TOLERANCE` of the float64 value: every posterior-like input we tried, where
  the largest difference seen is below 1e-6 (8e-8 at 10,000 x 4,000 in the benchmark).
  Where it is ill conditioned, the level falls in the CDF gap between draws of very
  different probability and little weight (two clusters of draws with the median between
  them; 32 draws with weights spread over seven orders of magnitude), and the difference
  can reach 1e-3. The float64 answer itself moves as much under a relative change of
  1e-6 in one weight, and its Monte Carlo error there is orders of magnitude larger: use
  the float64 backend, or more draws, if such a quantile matters.

The order of the draws around every quantile is decided on exact float64 probabilities
(draws within the per-draw error bound of the bracket are recomputed), so no error in a
draw's probability can swap two draws. The tests check all of this on random inputs of both
families (logits of +-30, ages 0 to 100 years, horizon = age, windows with up to 30 years
elapsed, 4,000 draws) and on constructed ill-conditioned rows. Probabilities are clipped
to [0, 1]. Results are deterministic: each scenario's numbers depend on neither the
chunking, the number of threads, nor the other scenarios.
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

from georisk.model_data import DRAW_KEYS
from georisk.scoring import QUANTILES

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

    from georisk.model_data import ScenarioEvidence

__all__ = [
    "ABS_TOLERANCE",
    "ESS_RTOL",
    "WEIGHT_RTOL",
    "BatchSummary",
    "batch_inputs",
    "batch_probabilities",
    "numba_available",
]

ABS_TOLERANCE = 1e-5
"""Largest absolute difference allowed between the numba and float64 means and quantiles."""
ESS_RTOL = 1e-5
"""Largest relative difference allowed between the numba and float64 effective draws."""
WEIGHT_RTOL = 2e-6
"""Bound on the relative error of the numba backend's float32 project weights (windows: see
the accuracy contract)."""

_LAG_KEYS = ("lag_log_median", "lag_log_sd", "term_log_median", "term_log_sd")
_DRAW_KEYS = tuple(k for k in DRAW_KEYS if k != "rho")  # scoring needs all but rho
_TARGET_CHUNK_BYTES = 1 << 20  # scenarios per task: about 1 MiB of float32 draws
_AUTO_NUMBA_MIN = 1_000_000


@dataclass(frozen=True)
class BatchSummary:
    r"""Weighted summaries of the probability draws of many scenarios.

    Every summary weights draw :math:`d` of scenario :math:`s` by the likelihood of the
    scenario's own status at the as-of date under that draw (see
    :mod:`georisk.scoring`), exactly as :func:`georisk.scoring.weighted_summary` does.

    Attributes
    ----------
    mean : ndarray, shape (N,)
        Posterior predictive probability of each scenario (the weighted mean).
    quantiles : ndarray, shape (N, Q)
        Its weighted quantiles at ``levels`` (:func:`georisk.scoring.weighted_summary`'s
        definition: the weighted empirical CDF at the draws' mid-points, interpolated).
    levels : tuple of float
        Quantile levels, in the column order of ``quantiles``.
    ess : ndarray, shape (N,)
        Effective number of draws after weighting, :math:`(\sum w)^2 / \sum w^2`.
    base_mean, base_quantiles, base_ess : ndarray or None
        The same for the base-rate-only probability (no evidence, same timing, weighted by
        the status likelihood without evidence), when asked.
    n_draws : int
        Number of posterior draws summarised.
    backend : str
        ``"numba"`` or ``"numpy"``.
    """

    mean: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]
    ess: np.ndarray
    base_mean: np.ndarray | None
    base_quantiles: np.ndarray | None
    base_ess: np.ndarray | None
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
        ``is_window``, ``age``, ``horizon_age``, ``exposure``, ``elapsed``: keyword
        arguments of :func:`batch_probabilities`.
    """
    from georisk.evidence import KINDS

    n = len(evidences)
    x = np.zeros((n, len(KINDS)))
    for i, ev in enumerate(evidences):
        if ev.events:
            x[i] = ev.x.sum(axis=0)
    is_window = np.array([ev.family == "window" for ev in evidences], dtype=bool)
    return {
        "category": np.array([ev.category_index for ev in evidences], dtype=np.int64),
        "x": x,
        "is_window": is_window,
        "age": np.array([ev.age for ev in evidences], dtype=float),
        "horizon_age": np.array([ev.horizon_age for ev in evidences], dtype=float),
        "exposure": np.array([ev.exposure for ev in evidences], dtype=float),
        "elapsed": np.array(
            [ev.elapsed if w else 0.0 for ev, w in zip(evidences, is_window, strict=True)],
            dtype=float,
        ),
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
    elapsed: ArrayLike | None,
) -> tuple[np.ndarray, ...]:
    cat = np.asarray(category, dtype=np.int64).ravel()
    n = cat.size
    xs = np.asarray(x, dtype=float)
    if xs.shape != (n, n_kinds):
        raise ValueError(f"x must have shape (N, kinds) = ({n}, {n_kinds}); got {xs.shape}.")
    if not np.all(np.isfinite(xs)):
        raise ValueError("x must be finite.")
    win = np.zeros(n, bool) if is_window is None else np.asarray(is_window, bool).ravel()

    def col(values: ArrayLike | None, name: str, needed: np.ndarray, default=np.nan):
        if values is None:
            if needed.any() and np.isnan(default):
                raise ValueError(f"{name} is required for the scenarios of that family.")
            return np.full(n, default)
        out = np.broadcast_to(np.asarray(values, dtype=float), (n,)).copy()
        if np.any(~np.isfinite(out[needed])) or np.any(out[needed] < 0):
            raise ValueError(f"{name} must be finite and >= 0 for every scenario using it.")
        return out

    a = col(age, "age", ~win)
    h = col(horizon_age, "horizon_age", ~win)
    if np.any(h[~win] < a[~win]):
        raise ValueError("horizon_age must be >= age for every project scenario.")
    e = col(exposure, "exposure", win)
    el = col(elapsed, "elapsed", win, default=0.0)
    return cat, xs, win, a, h, e, el


def batch_probabilities(
    draws: Mapping[str, np.ndarray],
    *,
    category: ArrayLike,
    x: ArrayLike,
    is_window: ArrayLike | None = None,
    age: ArrayLike | None = None,
    horizon_age: ArrayLike | None = None,
    exposure: ArrayLike | None = None,
    elapsed: ArrayLike | None = None,
    levels: Sequence[float] = QUANTILES,
    base: bool = False,
    backend: str = "auto",
    threads: int | None = None,
    chunk_rows: int | None = None,
) -> BatchSummary:
    r"""Posterior predictive mean, weighted quantiles and ESS of many scenarios' probability.

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
    elapsed : array_like, shape (N,), optional
        Years of the window already past without an event (windows; ignored for projects):
        the draws are weighted by :math:`(1 - \pi)^{\text{elapsed}}`. Default 0, i.e.
        windows that start at the as-of date (no conditioning).
    levels : sequence of float, default :data:`georisk.scoring.QUANTILES`
        Quantile levels in [0, 1].
    base : bool, default False
        Also summarise the base-rate-only probability (``x = 0``, same timing, weighted by
        the status likelihood without evidence).
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
    >>> s.mean, s.quantile(0.9), s.ess  # doctest: +SKIP
    """
    missing = [k for k in _DRAW_KEYS if k not in draws]
    if missing:
        raise ValueError(f"draws lack {missing}.")
    strength = np.asarray(draws["strength"], dtype=float)
    n_draws, n_kinds = strength.shape
    if n_draws < 1:
        raise ValueError("at least one posterior draw is needed.")
    cat, xs, win, a, h, e, el = _as_scenarios(
        n_kinds, category, x, is_window, age, horizon_age, exposure, elapsed
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
        "ess": np.empty(n),
        "base_mean": np.empty(n) if base else None,
        "base_q": np.empty((n, len(lv))) if base else None,
        "base_ess": np.empty(n) if base else None,
    }
    args = (draws, cat, xs, win, a, h, e, el, lv, base, threads, chunk_rows, out)
    if n:
        if backend == "numba":
            _run_numba(*args)
        else:
            _run_numpy(*args)
    return BatchSummary(
        mean=out["mean"],
        quantiles=out["q"],
        levels=lv,
        ess=out["ess"],
        base_mean=out["base_mean"],
        base_quantiles=out["base_q"],
        base_ess=out["base_ess"],
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


def _weighted_rows(
    p: np.ndarray, w: np.ndarray, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise :func:`georisk.scoring.weighted_summary` of (rows, draws) arrays.

    Rows holding a NaN probability, or whose weights are not positive in sum, give NaN.

    Parameters
    ----------
    p, w : ndarray, shape (rows, draws)
        Probability draws and their weights.
    levels : sequence of float
        Quantile levels.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        Weighted means (rows,), quantiles (rows, levels) and effective draws (rows,).
    """
    lv = np.asarray(levels, dtype=float)
    n_rows, n_draws = p.shape
    with np.errstate(divide="ignore", invalid="ignore"):  # only ratios matter: no underflow
        top = w.max(axis=1, keepdims=True)
        w = np.where(top > 0, w / np.where(top > 0, top, 1.0), w)
    order = np.argsort(p, axis=1, kind="stable")
    vs = np.take_along_axis(p, order, axis=1)
    ws = np.take_along_axis(w, order, axis=1)
    total = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf = (np.cumsum(ws, axis=1) - 0.5 * ws) / total[:, None]
        mean = np.einsum("ij,ij->i", w, p) / total
        ess = total**2 / np.einsum("ij,ij->i", w, w)
    bad = ~(total > 0) | np.isnan(p).any(axis=1) | (w < 0).any(axis=1)
    q = np.empty((n_rows, lv.size))
    r = np.arange(n_rows)
    for k, level in enumerate(lv):
        # np.interp(level, cdf[r], vs[r]) for every row at once: j is the last point with
        # cdf[j] <= level (the CDF is non-decreasing), as in numpy's binary search.
        j = (cdf <= level).sum(axis=1) - 1
        lo = np.clip(j, 0, n_draws - 1)
        hi = np.clip(j + 1, 0, n_draws - 1)
        x0, x1 = cdf[r, lo], cdf[r, hi]
        y0, y1 = vs[r, lo], vs[r, hi]
        with np.errstate(divide="ignore", invalid="ignore"):
            inner = (y1 - y0) / (x1 - x0) * (level - x0) + y0
        q[:, k] = np.where(
            j < 0, vs[:, 0], np.where(j >= n_draws - 1, vs[:, -1], np.where(x0 == level, y0, inner))
        )
    mean[bad] = np.nan
    ess[bad] = np.nan
    q[bad] = np.nan
    return mean, q, ess


def _run_numpy(draws, cat, xs, win, a, h, e, el, lv, base, threads, rows, out) -> None:
    from georisk.scoring import project_terms, window_terms

    eta_p = np.asarray(draws["eta"], dtype=float)
    eta_w = np.asarray(draws["eta_window"], dtype=float)
    beta = np.asarray(draws["strength"], dtype=float)
    lag = [np.asarray(draws[k], dtype=float)[None, :] for k in _LAG_KEYS]
    rows = max(1, min(rows, (1 << 22) // (8 * beta.shape[0])))  # float64 work arrays

    def work(i: int, j: int, _state: dict) -> None:
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):  # NaN at 0/0
            chunk(i, j)

    def chunk(i: int, j: int) -> None:
        sl = slice(i, j)
        w, c = win[sl], cat[sl]
        b = np.empty((j - i, beta.shape[0]))
        b[~w] = eta_p[:, c[~w]].T
        b[w] = eta_w[:, c[w]].T
        eta = b + xs[sl] @ beta.T
        for target, prefix in ((eta, ""), (b, "base_")):
            if prefix and not base:
                continue
            p = np.empty_like(target)
            wt = np.empty_like(target)
            pw, pp = w, ~w
            if pp.any():
                num, den = project_terms(target[pp], a[sl][pp, None], h[sl][pp, None], *lag)
                p[pp] = num / den
                wt[pp] = den
            if pw.any():
                p[pw], wt[pw] = window_terms(target[pw], e[sl][pw, None], el[sl][pw, None])
            m, q, ess = _weighted_rows(p, wt, lv)
            out[prefix + "mean"][sl] = m
            out[prefix + "q"][sl] = q
            out[prefix + "ess"][sl] = ess

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
_SQRT2 = math.sqrt(2.0)
_KEY_MASK = np.int64(0xFFFFFFFF)
# Bound on |float32 probability - float64 probability| of one draw (see the module
# docstring): _RHO0 + _RHO_ETA * H relative (H bounds |eta|'s terms), _ALPHA * U absolute
# (U bounds the cancelling terms), _TAU absolute.
_RHO0 = 2.0**-18
_RHO_ETA = 2.0**-19
_ALPHA = 2.0**-18
_TAU = 2.0**-80
_F32_TINY = _F(np.finfo(np.float32).tiny)  # smallest normal float32, about 1.2e-38

_nb_bits_to_f32: Any = None
_nb_f32_to_bits: Any = None
_nb_bits_to_f64: Any = None
_nb_f64_to_bits: Any = None
_nb_exp64: Any = None
_nb_r32: Any = None
_nb_r64: Any = None
_nb_exp: Any = None
_nb_tail_row: Any = None
_nb_row_min: Any = None
_nb_row_stats: Any = None
_nb_key: Any = None
_nb_key_value: Any = None
_nb_bucket: Any = None
_nb_err: Any = None
_nb_bucket_value: Any = None
_nb_exact: Any = None
_nb_resolve: Any = None
_nb_slow: Any = None
_nb_sort_keys: Any = None
_nb_wquantiles: Any = None
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
    p = (
        ((1.0 + r) + (0.5 + r * (1.0 / 6.0)) * r2)
        + ((1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2) * r4
        + (1.0 / 40320.0) * (r4 * r4)
    )
    return p * _nb_bits_to_f64((_nb_f64_to_bits(k) + 1023) << 52)


def _py_r32(av):
    """Return ``erfc(av) / 2`` for ``av >= 0`` in float32: the smaller normal tail."""
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
    return _F(0.5) * t * _nb_exp(poly - av * av)


def _py_r64(av):
    """Return ``erfc(av) / 2`` for ``av >= 0`` in float64."""
    t = 1.0 / (1.0 + 0.5 * av)
    t2 = t * t
    t4 = t2 * t2
    a01 = -1.26551223 + 1.00002368 * t
    a23 = 0.37409196 + 0.09678418 * t
    a45 = -0.18628806 + 0.27886807 * t
    a67 = -1.13520398 + 1.48851587 * t
    a89 = -0.82215223 + 0.17087277 * t
    poly = (a01 + a23 * t2) + (a45 + a67 * t2) * t4 + a89 * (t4 * t4)
    return 0.5 * t * _nb_exp64(poly - av * av)


def _py_tail_row(log_t, mu, isd, mu_hi, mu_lo, isd32, upper, lower):
    r"""Both tails of the normal at :math:`z_d = (\log t - \mu_d)/\sigma_d`, as float32.

    ``upper[d]`` = :math:`1 - \Phi(z_d)`, ``lower[d]`` = :math:`\Phi(z_d)`, each formed
    from the smaller tail :math:`r = \operatorname{erfc}(|x|)/2`, :math:`x = z/\sqrt2`
    (``isd`` holds :math:`1/(\sigma\sqrt2)`), so that the smaller of the two is accurate
    *relatively*. Numerical Recipes ``erfcc``, fractional error < 1.2e-7. In float32 (8
    lanes) when every :math:`|x| \le 2` (:math:`r \ge 2.3e-3`), with the subtraction done
    in two parts (``mu_hi + mu_lo``); else in float64 (4 lanes, 2x slower). Float32 holds
    :math:`x` to a relative :math:`\rho \approx 2e-7`, hence :math:`r` to
    :math:`2x^2\rho`: fine for :math:`|x| \le 2`, too coarse for the deep tails whose ratio
    decides the probability of an old open project.
    """
    n = upper.shape[0]
    lt_hi = _F(log_t)
    lt_lo = _F(log_t - np.float64(lt_hi))
    big = _F(0.0)
    for d in range(n):
        big = max(big, abs((lt_hi - mu_hi[d]) * isd32[d]))
    one = _F(1.0)
    if big <= _F(2.0):
        for d in range(n):
            x = ((lt_hi - mu_hi[d]) + (lt_lo - mu_lo[d])) * isd32[d]
            r = _nb_r32(abs(x))
            pos = x >= _F(0.0)
            upper[d] = r if pos else one - r
            lower[d] = one - r if pos else r
    else:
        for d in range(n):
            x = (log_t - mu[d]) * isd[d]
            r = _nb_r64(abs(x))
            pos = x >= 0.0
            upper[d] = _F(r if pos else 1.0 - r)
            lower[d] = _F(1.0 - r if pos else r)


def _py_row_min(row):
    """Smallest value of a float32 row of finite numbers."""
    acc = row[0]
    for d in range(row.shape[0]):
        acc = min(acc, row[d])
    return acc


def _py_row_stats(row, wrow, urow, with_u):
    """Return the sums of w, w * p and w**2 of a row (float64) and extremes from the bits.

    On the bits (integer compares, vectorised; ordered like the values for p >= 0): the
    smallest, largest and smallest positive p, the largest u and a bound on u / p. One
    pass; the integer work is in int32 ufuncs (numba would widen ``&``, ``-``, ``min`` to
    int64, which AVX2 cannot compare). Returns (sum w, sum w p, sum w**2, min, max, min
    positive (bits), max u, u / p bound, or -1 if a draw has p = 0 < u).
    """
    bits = row.view(np.int32)
    ubits = urow.view(np.int32)
    big = np.int32(0x7FFFFFFF)
    sign = np.int32(-0x80000000)
    one = np.int32(1)
    zero = np.int32(0)
    sw = 0.0
    swp = 0.0
    sww = 0.0
    mn = big
    mx = zero
    pm = big
    um = zero
    cd = np.int32(-0x7FFFFFFF)
    zf = zero
    for d in range(row.shape[0]):
        w = np.float64(wrow[d])
        sw += w
        swp += w * np.float64(row[d])
        sww += w * w
        b = np.bitwise_and(bits[d], big)  # -0.0 as 0.0
        u = ubits[d]
        mn = np.minimum(mn, b)
        mx = np.maximum(mx, b)
        pm = np.minimum(pm, np.bitwise_xor(np.subtract(b, one), sign))  # unsigned: skips 0
        um = np.maximum(um, u)
        cd = np.maximum(cd, np.subtract(u, b))  # exponent of u / p, in units of 2**-23
        zf = np.maximum(zf, np.minimum(u, np.subtract(one, np.minimum(b, one))))
    pm = (pm ^ sign) + one
    umax = 0.0
    ratio = 0.0
    if with_u:
        umax = np.float64(_nb_bits_to_f32(um))
        # u / p < 2**(e_u - e_p + 1) and (cd >> 23) >= e_u - e_p - 1
        ratio = -1.0 if zf > 0 else 2.0 ** ((cd >> np.int32(23)) + 2)
    return sw, swp, sww, mn, mx, pm, umax, ratio


def _py_key(v, d):
    """Sort key of draw ``d`` with probability ``v >= 0``: (value bits, draw) in one int64."""
    bits = np.int64(_nb_f32_to_bits(v) & np.int32(0x7FFFFFFF))  # -0.0 sorts as 0.0
    return (bits << np.int64(32)) | np.int64(d)


def _py_key_value(key):
    """Return the float32 value of a sort key."""
    return _nb_bits_to_f32(np.int32(key >> np.int64(32)))


def _py_err(v, rho, ua, uc):
    """Return the bound on |float32 - float64 probability| of a draw of float32 value ``v``."""
    return rho * v + (ua if uc < 0.0 else min(ua, uc * v)) + _TAU


def _py_bucket(bits, base, scale, top):
    """Bucket of a non-negative float32 given by its bits: ``(bits - base) * scale``, clamped.

    In float32 (vectorised; ``scale`` a power of two): monotone in the value.
    """
    v = (_F(np.bitwise_and(bits, np.int32(0x7FFFFFFF))) - base) * scale
    v = v if v > _F(0.0) else _F(0.0)
    v = v if v < top else top
    return np.uint32(v)


def _py_bucket_value(v, base, scale, top):
    """Bucket of the float32 nearest to ``v`` (0 for ``v <= 0``): conservative bounds."""
    if v <= 0.0:
        return np.int64(0)
    return np.int64(_nb_bucket(_nb_f32_to_bits(_F(v)), base, scale, top))


def _py_exact(d, ctx):
    """Probability and weight of draw ``d``, in float64, by the formulas of the scoring path.

    ``ctx`` = (mode, category, with evidence, x row, eta (project, window), strength, lag
    mu, lag sd, termination mu, termination sd, scalars, given p, given w). ``mode`` 1 is a
    project, 2 a window (both exactly as :func:`georisk.scoring.project_terms` /
    :func:`~georisk.scoring.window_probability` compute them, libm ``erfc``, ``exp``,
    ``log``, ``log1p``, ``expm1``, no contraction), 0 reads the given arrays (tests).
    """
    mode, c, with_x, xrow, eta_p, eta_w, beta, mu, sd, tmu, tsd, scal, gp, gw = ctx
    if mode == 0:
        return gp[d], gw[d]
    eta = eta_w[c, d] if mode == 2 else eta_p[c, d]
    if with_x:
        shift = 0.0
        for k in range(xrow.shape[0]):
            if xrow[k] != 0.0:
                shift += xrow[k] * beta[k, d]
        eta = eta + shift
    u = math.exp(-abs(eta))
    if eta >= 0.0:
        pi, pi_c = 1.0 / (1.0 + u), u / (1.0 + u)  # expit(eta), expit(-eta)
    else:
        pi, pi_c = u / (1.0 + u), 1.0 / (1.0 + u)
    if mode == 2:
        l1 = -(max(eta, 0.0) + math.log1p(u))  # log(1 - pi) = -softplus(eta)
        return -math.expm1(scal[4] * l1), math.exp(scal[5] * l1 + scal[6])
    # lag_tails: the smaller tail by erfc, the other as one minus it
    f_a, s_a, r_a, f_h, s_h = 0.0, 1.0, 1.0, 0.0, 1.0
    if scal[0] > 0.0:
        z = (scal[2] - mu[d]) / sd[d]
        small = 0.5 * math.erfc(abs(z) / _SQRT2)
        f_a, s_a = (small, 1.0 - small) if z < 0.0 else (1.0 - small, small)
        z = (scal[2] - tmu[d]) / tsd[d]
        small = 0.5 * math.erfc(abs(z) / _SQRT2)
        r_a = 1.0 - small if z < 0.0 else small
    if scal[1] > 0.0:
        z = (scal[3] - mu[d]) / sd[d]
        small = 0.5 * math.erfc(abs(z) / _SQRT2)
        f_h, s_h = (small, 1.0 - small) if z < 0.0 else (1.0 - small, small)
    num = pi * ((f_h - f_a) if f_h <= 0.5 else (s_a - s_h))
    den = pi_c * r_a + pi * s_a
    return num / den, den


def _py_resolve(
    keys, off, n, p0, c_p0, below, above, lv, wq, row, wrow,
    use_b, g_lo, g_hi, bpar, counts, s_lo, s_hi, rho, ua, uc, ctx, ap, aw, ad, ao,
):  # fmt: skip
    """Weighted quantile ``lv`` from candidates ``keys[off:off+n]`` (sorted), exactly.

    The candidates are every draw in a range of buckets (``use_b``: ``g_lo..g_hi``) or of
    float32 values (``s_lo..s_hi``), ``below`` / ``above`` whether any draw lies outside;
    ``c_p0`` is the weight of the draws before candidate ``p0``, where the search starts.
    Draws whose float32 values lie within the error bound of the bracketing pair are
    recomputed in float64 by the scoring path's formulas and ordered by (value, draw), as
    ``np.argsort(kind="stable")`` orders them; the window grows until both bracketing draws
    are further than the bound from every draw outside it. Returns (0, quantile, _, _), or
    (1, nan, lo, hi) when the window [lo, hi] reaches beyond the candidates.
    """
    base, scale, top = bpar
    t = lv * wq
    c = c_p0
    k = p0 - 1
    for i in range(p0, n):  # the float32 bracket: where to start
        w = np.float64(wrow[np.uint64(keys[off + i] & _KEY_MASK)])
        c += w
        if c - 0.5 * w <= t:
            k = i
        else:
            break
    m0 = max(k, 0)
    m1 = min(k + 1, n - 1)
    v = np.float64(_nb_key_value(keys[off + m0]))
    a_lo = v - 3.0 * _nb_err(v, rho, ua, uc)
    v = np.float64(_nb_key_value(keys[off + m1]))
    a_hi = v + 3.0 * _nb_err(v, rho, ua, uc)
    for _ in range(n + 64):
        ok_lo = True
        ok_hi = True
        if use_b:  # no draw outside the buckets g_lo..g_hi may lie in [a_lo, a_hi]
            if below:
                for b in range(_nb_bucket_value(a_lo, base, scale, top), g_lo):
                    if counts[b] > 0:
                        ok_lo = False
                        break
            if above:
                for b in range(g_hi + 1, _nb_bucket_value(a_hi, base, scale, top) + 1):
                    if counts[b] > 0:
                        ok_hi = False
                        break
        else:
            ok_lo = a_lo >= s_lo or not below
            ok_hi = a_hi <= s_hi or not above
        if not (ok_lo and ok_hi):
            return 1, np.nan, a_lo, a_hi
        while m0 > 0 and np.float64(_nb_key_value(keys[off + m0 - 1])) >= a_lo:
            m0 -= 1
        while m1 < n - 1 and np.float64(_nb_key_value(keys[off + m1 + 1])) <= a_hi:
            m1 += 1
        cb = c_p0  # weight before the window
        if m0 >= p0:
            for i in range(p0, m0):
                cb += np.float64(wrow[np.uint64(keys[off + i] & _KEY_MASK)])
        else:
            for i in range(m0, p0):
                cb -= np.float64(wrow[np.uint64(keys[off + i] & _KEY_MASK)])
        na = m1 - m0 + 1
        for i in range(na):
            d = np.uint64(keys[off + m0 + i] & _KEY_MASK)
            p, w = _nb_exact(d, ctx)
            ap[i] = p
            aw[i] = w
            ad[i] = d
            ao[i] = i
        for i in range(1, na):  # insertion sort by (exact value, draw)
            cur = ao[i]
            pc = ap[cur]
            dc = ad[cur]
            u = i - 1
            while u >= 0 and (ap[ao[u]] > pc or (ap[ao[u]] == pc and ad[ao[u]] > dc)):
                ao[u + 1] = ao[u]
                u -= 1
            ao[u + 1] = cur
        c = cb
        j = -1
        x0 = 0.0
        x1 = 0.0
        for i in range(na):  # the exact mid-point CDF, as scoring.weighted_summary has it
            w = aw[ao[i]]
            c += w
            cdf = (c - 0.5 * w) / wq
            if cdf <= lv:
                j = i
                x0 = cdf
            else:
                x1 = cdf
                break
        none_below = m0 == 0 and not below
        none_above = m1 == n - 1 and not above
        if j == -1 and not none_below:  # the lower draw of the bracket lies below
            if m0 > 0:
                v = np.float64(_nb_key_value(keys[off + m0 - 1]))
                a_lo = min(a_lo, v - 3.0 * _nb_err(v, rho, ua, uc))
            else:
                a_lo = a_lo - 3.0 * _nb_err(abs(a_lo), rho, ua, uc) - (a_hi - a_lo)
            continue
        if j == na - 1 and not none_above:  # the upper draw lies above
            if m1 < n - 1:
                v = np.float64(_nb_key_value(keys[off + m1 + 1]))
                a_hi = max(a_hi, v + 3.0 * _nb_err(v, rho, ua, uc))
            else:
                a_hi = a_hi + 3.0 * _nb_err(abs(a_hi), rho, ua, uc) + (a_hi - a_lo)
            continue
        if j == -1:
            e0 = ao[0]
            e1 = e0
        elif j == na - 1:
            e0 = ao[na - 1]
            e1 = e0
        else:
            e0 = ao[j]
            e1 = ao[j + 1]
        grow = False
        v = np.float64(row[ad[e0]])
        r = 3.0 * _nb_err(v, rho, ua, uc)
        if v - r < a_lo and not none_below:
            a_lo = v - r
            grow = True
        v = np.float64(row[ad[e1]])
        r = 3.0 * _nb_err(v, rho, ua, uc)
        if v + r > a_hi and not none_above:
            a_hi = v + r
            grow = True
        if grow:
            continue
        y0 = ap[e0]
        if j == -1 or j == na - 1 or x0 == lv:  # np.interp's ends and exact hits
            return 0, y0, 0.0, 0.0
        y1 = ap[e1]
        slope = (y1 - y0) / (x1 - x0)
        res = slope * (lv - x0) + y0
        if res != res:  # np.interp's fallbacks
            res = slope * (lv - x1) + y1
            if res != res and y0 == y1:
                res = y0
        return 0, res, 0.0, 0.0
    return 1, np.nan, a_lo, a_hi  # pragma: no cover - then the slow path widens it


def _py_sort_keys(part):
    """Sort int64 keys in place: insertion sort when few, else numpy's."""
    c = part.shape[0]
    if c <= 32:
        for i in range(1, c):
            v = part[i]
            i2 = i - 1
            while i2 >= 0 and part[i2] > v:
                part[i2 + 1] = part[i2]
                i2 -= 1
            part[i2 + 1] = v
    else:
        part.sort()


def _py_slow(row, wrow, lv, wq, a_lo, a_hi, bpar, counts, rho, ua, uc, ctx, skey, ap, aw, ad,
              ao):  # fmt: skip
    """Weighted quantile ``lv`` with the window [a_lo, a_hi] gathered from the whole row."""
    n = row.shape[0]
    while True:
        pad = 2.0 * (a_hi - a_lo) + 4.0 * (ua + _TAU)
        s_lo = a_lo - pad
        s_hi = a_hi + pad
        c0 = 0.0
        below = False
        above = False
        cnt = 0
        for d in range(n):
            v = np.float64(row[d])
            if v < s_lo:
                c0 += np.float64(wrow[d])
                below = True
            elif v > s_hi:
                above = True
            else:
                skey[cnt] = _nb_key(row[d], d)
                cnt += 1
        _nb_sort_keys(skey[:cnt])
        st, val, n_lo, n_hi = _nb_resolve(
            skey, 0, cnt, 0, c0, below, above, lv, wq, row, wrow,
            False, 0, 0, bpar, counts, s_lo, s_hi, rho, ua, uc, ctx, ap, aw, ad, ao,
        )  # fmt: skip
        if st == 0:
            return val
        a_lo = min(a_lo, n_lo)
        a_hi = max(a_hi, n_hi)


def _py_wquantiles(row, wrow, lv, q, s, rho, ua, uc, mn_bits, mx_bits, pm_bits, sel, ctx):
    """Weighted quantiles of one row into ``q[s]``: bucket selection, then exact brackets.

    One pass puts every draw in a bucket (on the float's bit pattern: a log-like scale with
    power-of-two widths, from about the 0.4% quantile to the largest value) and adds up
    the buckets' counts and weights; the cumulative weights give, for each level, the
    buckets that hold its bracketing draws (with the nearest non-empty bucket on each
    side); a second pass gathers those draws bucket by bucket, each bucket is
    sorted (a few draws), and :func:`_py_resolve` finishes. ``row`` holds probabilities
    (>= 0, no NaN).
    """
    counts, idx, slot, cb, bw, gkey, lvi, bstart, ap, aw, ad, ao, skey = sel
    n = row.shape[0]
    m = lv.shape[0]
    if mx_bits == mn_bits:
        v = _nb_bits_to_f32(mn_bits)
        for j in range(m):
            q[s, j] = v
        return
    # The buckets' floor: one binade below the smallest of every 16th draw (about the 0.4%
    # quantile), at most 24 binades below the largest value; draws below go to bucket 0.
    # (Where most buckets fall matters for speed only: the selection is exact anyway.)
    bits = row.view(np.int32)
    smp = mx_bits
    for d in range(0, n, 16):
        bd = bits[d] & np.int32(0x7FFFFFFF)
        if bd > np.int32(0):
            smp = min(smp, bd)
    base = max(pm_bits, smp - np.int32(1 << 23), mx_bits - np.int32(24 << 23))
    shift = 0
    while ((mx_bits - base) >> shift) >= counts.shape[0]:
        shift += 1
    nb = ((mx_bits - base) >> shift) + 1
    bpar = (_F(base), _F(2.0**-shift), _F(nb - 1))
    for d in range(n):  # (vectorised)
        idx[d] = _nb_bucket(bits[d], bpar[0], bpar[1], bpar[2])
    counts[:nb] = 0
    bw[:nb] = 0.0
    for d in range(n):
        b = idx[d]
        counts[b] += 1
        bw[b] += np.float64(wrow[d])
    c = 0.0
    first = -1
    last = -1
    for b in range(nb):
        cb[b] = c
        c += bw[b]
        if counts[b] > 0:
            if first < 0:
                first = b
            last = b
    cb[nb] = c
    wq = c
    slot[:nb] = -1
    for j in range(m):
        t = lv[j] * wq
        b0 = first
        b1 = last
        while b0 < b1:  # first bucket whose cumulative weight reaches t
            mid = (b0 + b1) // 2
            if cb[mid + 1] >= t:
                b1 = mid
            else:
                b0 = mid + 1
        while counts[b0] == 0 and b0 < last:
            b0 += 1
        r1 = b0
        b = b0 + 1
        while b <= last:  # later buckets whose draws' mid-points may still be <= t
            if counts[b] > 0:
                if cb[b] <= t:
                    r1 = b
                else:
                    break
            b += 1
        g = b0 - 1
        while g >= first and counts[g] == 0:
            g -= 1
        g_lo = g if g >= first else b0
        g = r1 + 1
        while g <= last and counts[g] == 0:
            g += 1
        g_hi = g if g <= last else r1
        lvi[j, 0] = g_lo
        lvi[j, 1] = g_hi
        lvi[j, 2] = b0
        for b in range(g_lo, g_hi + 1):
            slot[b] = 0
    pos = 0
    for b in range(first, last + 1):  # the wanted buckets' places, in bucket order
        if slot[b] == 0:
            bstart[b] = pos
            slot[b] = pos
            pos += counts[b]
    for d in range(n):
        b = idx[d]
        p = slot[b]
        if p >= 0:
            gkey[np.uint64(p)] = _nb_key(row[d], d)
            slot[b] = p + 1
    for b in range(first, last + 1):
        if slot[b] > 0 and counts[b] > 1:
            _nb_sort_keys(gkey[bstart[b] : bstart[b] + counts[b]])
    for j in range(m):
        g_lo = lvi[j, 0]
        g_hi = lvi[j, 1]
        b0 = lvi[j, 2]
        off = bstart[g_lo]
        cnt = bstart[g_hi] + counts[g_hi] - off
        st, val, a_lo, a_hi = _nb_resolve(
            gkey, off, cnt, bstart[b0] - off, cb[b0], g_lo > first, g_hi < last, lv[j], wq,
            row, wrow, True, g_lo, g_hi, bpar, counts, 0.0, 0.0, rho, ua, uc, ctx, ap, aw,
            ad, ao,
        )  # fmt: skip
        if st != 0:
            val = _nb_slow(row, wrow, lv[j], wq, a_lo, a_hi, bpar, counts, rho, ua, uc, ctx,
                           skey, ap, aw, ad, ao)  # fmt: skip
        q[s, j] = val


def _py_summarise_row(row, wrow, urow, with_u, s, mean, q, ess, lv, rho, sel, ctx):
    """Weighted mean, quantiles and effective draws of one row; NaN if a draw is NaN."""
    sw, swp, sww, mn_bits, mx_bits, pm_bits, umax, ratio = _nb_row_stats(row, wrow, urow, with_u)
    if not (swp == swp and sw > 0.0):
        mean[s] = np.nan
        ess[s] = np.nan
        for j in range(lv.shape[0]):
            q[s, j] = np.nan
        return
    mean[s] = swp / sw
    ess[s] = sw * sw / sww
    # the error bound's cancellation term: alpha * min(max u, (u / p bound) * p)
    ua = _ALPHA * umax
    uc = _ALPHA * ratio if ratio >= 0.0 else -1.0
    _nb_wquantiles(row, wrow, lv, q, s, rho, ua, uc, mn_bits, mx_bits, pm_bits, sel, ctx)


def _py_kernel(
    base_p, base_w, beta, lag, exact_in, cat, x, win, age, horizon, expo, elap,
    lv, do_base, out, out_base, rows, sel, scal, dummy,
):  # fmt: skip
    """Summaries of a run of scenarios: probabilities and weights row by row, then summaries."""
    mu, isd, mu_hi, mu_lo, isd32, tmu, tisd, tmu_hi, tmu_lo, tisd32 = lag
    eta_p64, eta_w64, beta64, mu64, sd64, tmu64, tsd64, amax_p, amax_w, amax_b = exact_in
    row, wrow, eta, s_a, f_a, s_h, f_h, r_a, junk, urow = rows
    n_rows = cat.shape[0]
    n_draws = row.shape[0]
    n_kinds = beta.shape[0]
    last_age = -1.0
    last_h = -1.0
    one = _F(1.0)
    zero = _F(0.0)
    half = _F(0.5)
    tiny = _F32_TINY
    nan = _F(np.nan)
    for s in range(n_rows):
        c = cat[s]
        is_w = win[s]
        for variant in range(2 if do_base else 1):
            if is_w:
                for d in range(n_draws):
                    eta[d] = base_w[c, d]
                h_eta = amax_w[c]
            else:
                for d in range(n_draws):
                    eta[d] = base_p[c, d]
                h_eta = amax_p[c]
            if variant == 0:
                for k in range(n_kinds):
                    w = _F(x[s, k])
                    if w != zero:
                        h_eta += abs(x[s, k]) * amax_b[k]
                        for d in range(n_draws):
                            eta[d] += w * beta[k, d]
            rho = _RHO0 + _RHO_ETA * h_eta
            if is_w:
                ln = _F(expo[s])
                el = _F(elap[s])
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
                    softplus = max(v, zero) + _F(2.0) * z * ser  # -log(1 - pi)
                    y = ln * softplus
                    # -expm1(-y): Taylor series below 0.1, else 1 - exp(-y)
                    small = _F(1.0 / 720.0)
                    small = _F(1.0 / 120.0) - y * small
                    small = _F(1.0 / 24.0) - y * small
                    small = _F(1.0 / 6.0) - y * small
                    small = _F(0.5) - y * small
                    small = y * (one - y * small)
                    p = small if y < _F(0.1) else one - _nb_exp(-y)
                    row[d] = min(max(p, zero), one)
                    wrow[d] = el * softplus
                # weights (1 - pi)^elapsed, scaled by the largest: no underflow
                shift = zero
                if el > zero:
                    shift = _nb_row_min(wrow)
                    for d in range(n_draws):
                        wrow[d] = _nb_exp(shift - wrow[d])
                else:
                    wrow[:] = one
                scal[4] = expo[s]
                scal[5] = elap[s]
                scal[6] = shift
                mode = 2
            else:
                a = age[s]
                hz = horizon[s]
                if variant == 0:
                    if a != last_age:
                        if a > 0.0:
                            la = math.log(a)
                            _nb_tail_row(la, mu, isd, mu_hi, mu_lo, isd32, s_a, f_a)
                            _nb_tail_row(la, tmu, tisd, tmu_hi, tmu_lo, tisd32, r_a, junk)
                        else:
                            s_a[:] = one
                            f_a[:] = zero
                            r_a[:] = one
                    if hz != last_h or a != last_age:
                        if hz == a:
                            s_h[:] = s_a
                            f_h[:] = f_a
                        elif hz > 0.0:
                            _nb_tail_row(math.log(hz), mu, isd, mu_hi, mu_lo, isd32, s_h, f_h)
                        else:
                            s_h[:] = one
                            f_h[:] = zero
                    last_age = a
                    last_h = hz
                for d in range(n_draws):
                    v = eta[d]
                    u = _nb_exp(-abs(v))
                    e1 = one if v >= zero else u
                    e0 = u if v >= zero else one
                    sa = s_a[d]
                    den = e0 * r_a[d] + e1 * sa
                    fh = f_h[d]
                    fa = f_a[d]  # (both loads unconditional: the loop stays vectorised)
                    sh = s_h[d]
                    low = fh <= half
                    # F(H) - F(a) = S(a) - S(H), from the smaller tails: no cancellation
                    # of 1 - small when both are small
                    diff = fh - fa if low else sa - sh
                    inv = one / den
                    p = min(max(e1 * diff * inv, zero), one)
                    ok = den >= tiny  # below float32's normal range 1 / den overflows: NaN
                    row[d] = p if ok else nan
                    wrow[d] = den / (e0 + e1)  # (1 - pi) R(a) + pi S(a)
                    urow[d] = e1 * (fh if low else sa) * inv if ok else zero
                scal[0] = a
                scal[1] = hz
                scal[2] = math.log(a) if a > 0.0 else 0.0
                scal[3] = math.log(hz) if hz > 0.0 else 0.0
                mode = 1
            ctx = (
                mode, c, variant == 0, x[s], eta_p64, eta_w64, beta64,
                mu64, sd64, tmu64, tsd64, scal, dummy, dummy,
            )  # fmt: skip
            o = out if variant == 0 else out_base
            _nb_summarise_row(row, wrow, urow, not is_w, s, o[0], o[1], o[2], lv, rho, sel, ctx)


def _numba_kernel():
    """Compile (or load from numba's on-disk cache) the kernel; imports numba."""
    global _nb_bits_to_f32, _nb_f32_to_bits, _nb_bits_to_f64, _nb_f64_to_bits
    global _nb_exp, _nb_exp64, _nb_r32, _nb_r64, _nb_tail_row, _nb_row_min, _nb_row_stats
    global _nb_key, _nb_key_value, _nb_bucket, _nb_bucket_value, _nb_exact, _nb_resolve
    global _nb_slow, _nb_err, _nb_sort_keys
    global _nb_wquantiles, _nb_summarise_row, _nb_kernel
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
        # series); 'nnan'/'ninf' never where inputs may hold them. The sums may reassociate;
        # the max/min reductions run over finite numbers. The exact float64 path and the
        # quantile interpolation use no fast-math at all (no contraction: they reproduce
        # numpy's roundings).
        exact = {"contract", "arcp", "nsz", "afn"}
        finite = {"nnan", "ninf", "nsz", "reassoc"}
        opts: dict[str, Any] = {"nogil": True, "cache": True, "error_model": "numpy"}
        _nb_bits_to_f32 = bits_to_f32
        _nb_f32_to_bits = f32_to_bits
        _nb_bits_to_f64 = bits_to_f64
        _nb_f64_to_bits = f64_to_bits
        _nb_exp64 = numba.njit(fastmath=exact, **opts)(_py_exp64)
        _nb_exp = numba.njit(fastmath=exact, **opts)(_py_exp)
        _nb_r32 = numba.njit(fastmath=exact, **opts)(_py_r32)
        _nb_r64 = numba.njit(fastmath=exact, **opts)(_py_r64)
        _nb_tail_row = numba.njit(fastmath=exact, **opts)(_py_tail_row)
        _nb_row_min = numba.njit(fastmath=finite, **opts)(_py_row_min)
        _nb_row_stats = numba.njit(fastmath=exact | {"reassoc"}, **opts)(_py_row_stats)
        _nb_key = numba.njit(**opts)(_py_key)
        _nb_key_value = numba.njit(**opts)(_py_key_value)
        _nb_err = numba.njit(**opts)(_py_err)
        _nb_bucket = numba.njit(**opts)(_py_bucket)
        _nb_bucket_value = numba.njit(**opts)(_py_bucket_value)
        _nb_exact = numba.njit(**opts)(_py_exact)
        _nb_resolve = numba.njit(**opts)(_py_resolve)
        _nb_sort_keys = numba.njit(**opts)(_py_sort_keys)
        _nb_slow = numba.njit(**opts)(_py_slow)
        _nb_wquantiles = numba.njit(**opts)(_py_wquantiles)
        _nb_summarise_row = numba.njit(**opts)(_py_summarise_row)
        _nb_kernel = numba.njit(fastmath=exact, **opts)(_py_kernel)
        return _nb_kernel


def _selection_scratch(n_draws: int, n_levels: int) -> tuple[np.ndarray, ...]:
    n_buckets = int(np.clip(1 << max(0, (n_draws // 4 - 1).bit_length()), 64, 1 << 14))
    return (
        np.empty(n_buckets, np.int32),  # counts
        np.empty(n_draws, np.uint32),  # bucket of each draw
        np.empty(n_buckets, np.int64),  # place of the next draw of each wanted bucket
        np.empty(n_buckets + 1),  # cumulative weights
        np.empty(n_buckets),  # weights
        np.empty(n_draws, np.int64),  # gathered keys
        np.empty((n_levels, 3), np.int64),  # per level: first, last, its own bucket
        np.empty(n_buckets, np.int64),  # where each wanted bucket's draws start
        np.empty(n_draws),  # exact values of a window
        np.empty(n_draws),  # exact weights
        np.empty(n_draws, np.int64),  # draws
        np.empty(n_draws, np.int64),  # order
        np.empty(n_draws, np.int64),  # keys of the slow path
    )


def _weighted_quantiles_given(
    p32: np.ndarray,
    w32: np.ndarray,
    p64: np.ndarray,
    w64: np.ndarray,
    levels: Sequence[float],
    rho: float,
    ub: float,
) -> np.ndarray:
    """Run the numba weighted quantile selection on given rows (tests).

    ``p32``/``w32`` play the kernel's float32 rows, ``p64``/``w64`` the exact values that
    its float64 path would recompute; ``rho`` and ``ub`` bound ``|p32 - p64|`` by
    ``rho * p32 + ub``.
    """
    _numba_kernel()
    p32 = np.ascontiguousarray(p32, dtype=np.float32)
    w32 = np.ascontiguousarray(w32, dtype=np.float32)
    lv = np.asarray(levels, dtype=float)
    q = np.empty((1, lv.size))
    k = 1
    z2 = np.zeros((1, p32.size))
    z1 = np.zeros(p32.size)
    ctx = (
        0, 0, False, np.zeros(k), z2, z2, z2, z1, z1, z1, z1, np.zeros(8),
        np.ascontiguousarray(p64, dtype=float), np.ascontiguousarray(w64, dtype=float),
    )  # fmt: skip
    if np.any(p32 < 0) or np.any(~np.isfinite(p32)):
        raise ValueError("p32 must hold probabilities.")
    sel = _selection_scratch(p32.size, lv.size)
    stats = _nb_row_stats(p32, w32, np.zeros_like(p32), False)
    _nb_wquantiles(p32, w32, lv, q, 0, float(rho), float(ub), -1.0, *stats[3:6], sel, ctx)
    return q[0]


def _run_numba(draws, cat, xs, win, a, h, e, el, lv, base, threads, rows, out) -> None:
    kernel = _numba_kernel()
    f32 = np.float32
    eta_p64 = np.ascontiguousarray(np.asarray(draws["eta"], dtype=float).T)
    eta_w64 = np.ascontiguousarray(np.asarray(draws["eta_window"], dtype=float).T)
    if eta_w64.shape[0] == 0:
        eta_w64 = np.zeros((1, eta_p64.shape[1]))
    beta64 = np.ascontiguousarray(np.asarray(draws["strength"], dtype=float).T)
    base_p = eta_p64.astype(f32)
    base_w = eta_w64.astype(f32)
    beta = beta64.astype(f32)
    n_draws = beta.shape[1]
    lag: list[np.ndarray] = []
    lag64: list[np.ndarray] = []
    for k_mu, k_sd in (("lag_log_median", "lag_log_sd"), ("term_log_median", "term_log_sd")):
        mu = np.ascontiguousarray(draws[k_mu], dtype=float)
        sd = np.ascontiguousarray(draws[k_sd], dtype=float)
        isd = _INV_SQRT2 / sd
        mu_hi = mu.astype(f32)
        lag += [mu, isd, mu_hi, (mu - mu_hi).astype(f32), isd.astype(f32)]
        lag64 += [mu, sd]
    exact_in = (
        eta_p64, eta_w64, beta64, *lag64,
        np.abs(eta_p64).max(axis=1), np.abs(eta_w64).max(axis=1), np.abs(beta64).max(axis=1),
    )  # fmt: skip
    # Process scenarios in order of (family, age, horizon): runs of equal ages share the
    # survival terms. Each scenario's result is independent of the order.
    order = np.lexsort((h, a, win))
    cat_o = np.ascontiguousarray(cat[order])
    x_o = np.ascontiguousarray(xs[order])
    win_o = np.ascontiguousarray(win[order])
    a_o = np.ascontiguousarray(np.where(win_o, 0.0, a[order]))
    h_o = np.ascontiguousarray(np.where(win_o, 0.0, h[order]))
    e_o = np.ascontiguousarray(np.where(win_o, e[order], 0.0))
    el_o = np.ascontiguousarray(np.where(win_o, el[order], 0.0))
    levels = np.asarray(lv, dtype=float)
    n = cat.size
    res = [np.empty(n), np.empty((n, len(lv))), np.empty(n)]
    res_b = [np.empty(n), np.empty((n, len(lv))), np.empty(n)] if base else res

    def work(i: int, j: int, state: dict) -> None:
        if not state:
            state["rows"] = tuple(np.empty(n_draws, f32) for _ in range(10))
            state["sel"] = _selection_scratch(n_draws, len(lv))
            state["scal"] = np.zeros(8)
            state["dummy"] = np.zeros(1)
        kernel(
            base_p, base_w, beta, tuple(lag), exact_in,
            cat_o[i:j], x_o[i:j], win_o[i:j], a_o[i:j], h_o[i:j], e_o[i:j], el_o[i:j],
            levels, base, tuple(r[i:j] for r in res), tuple(r[i:j] for r in res_b),
            state["rows"], state["sel"], state["scal"], state["dummy"],
        )  # fmt: skip

    _for_chunks(n, rows, threads, work)
    out["mean"][order], out["q"][order], out["ess"][order] = res
    if base:
        out["base_mean"][order], out["base_q"][order], out["base_ess"][order] = res_b
