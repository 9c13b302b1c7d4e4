r"""Proper scoring rules for binary forecasts, on any table of forecasts and outcomes.

Numpy and pandas only: nothing here knows about georisk's model, so the same functions score
another forecaster's probabilities (``georisk evaluate FILE.csv``).

Conventions
-----------
``forecasts`` are probabilities :math:`p_i \in [0, 1]` that event :math:`i` happens and
``outcomes`` are :math:`y_i \in \{0, 1\}`; both are 1-d and of the same length
:math:`N \ge 1`. Every function checks its input with :func:`check_forecasts` and raises a
``ValueError`` naming the offending positions. Lower is better for the Brier and log scores;
higher is better for the skill score and the AUC.

=====================  ===========================================  =================
score                  definition                                   perfect / useless
=====================  ===========================================  =================
Brier                  :math:`\frac1N\sum_i (p_i - y_i)^2`          0 / 0.25 at p=0.5
log score              :math:`-\frac1N\sum_i \log(y_i p_i +         0 / log 2 = 0.693
                       (1-y_i)(1-p_i))`                             at p=0.5
Brier skill score      :math:`1 - BS / BS_{ref}`                    1 / 0 (= ref)
ROC AUC                :math:`P(p_i > p_j \mid y_i = 1, y_j = 0)`,  1 / 0.5
                       ties count one half
=====================  ===========================================  =================

References
----------
.. [1] Brier, G. W. (1950). Verification of forecasts expressed in terms of probability.
   Monthly Weather Review 78(1), 1-3.
.. [2] Murphy, A. H. (1973). A new vector partition of the probability score. Journal of
   Applied Meteorology 12(4), 595-600.
.. [3] Stephenson, D. B., Coelho, C. A. S., Jolliffe, I. T. (2008). Two extra components in
   the Brier score decomposition. Weather and Forecasting 23(4), 752-757.
.. [4] Gneiting, T., Raftery, A. E. (2007). Strictly proper scoring rules, prediction, and
   estimation. JASA 102(477), 359-378.
.. [5] Hanley, J. A., McNeil, B. J. (1982). The meaning and use of the area under a receiver
   operating characteristic (ROC) curve. Radiology 143(1), 29-36.
.. [6] Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
   inference. JASA 22(158), 209-212; Brown, L. D., Cai, T. T., DasGupta, A. (2001). Interval
   estimation for a binomial proportion. Statistical Science 16(2), 101-133.
.. [7] Efron, B., Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

__all__ = [
    "BrierDecomposition",
    "BootstrapResult",
    "check_forecasts",
    "brier_score",
    "brier_decomposition",
    "log_score",
    "brier_skill_score",
    "roc_auc",
    "wilson_interval",
    "bin_edges",
    "reliability_table",
    "bootstrap",
    "score_table",
    "read_forecast_csv",
    "evaluate",
]

ArrayLike = Sequence[float] | np.ndarray | pd.Series

_MAX_LISTED = 10


def _positions(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:_MAX_LISTED])
    more = f" and {idx.size - _MAX_LISTED} more" if idx.size > _MAX_LISTED else ""
    return f"{shown}{more}"


def check_forecasts(forecasts: ArrayLike, outcomes: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a pair of forecast and outcome arrays.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes (booleans are accepted).

    Returns
    -------
    (ndarray, ndarray)
        ``forecasts`` as float64 and ``outcomes`` as float64 holding 0.0 or 1.0.

    Raises
    ------
    ValueError
        When the arrays are not 1-d, differ in length, are empty, or hold values outside
        their domain (NaN included); the message lists the 0-based positions.
    """
    p = np.asarray(forecasts, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    if p.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"forecasts and outcomes must be 1-d. Got shapes {p.shape} and {y.shape}."
        )
    if p.shape != y.shape:
        raise ValueError(
            f"forecasts and outcomes must have the same length. Got {p.size} and {y.size}."
        )
    if p.size == 0:
        raise ValueError("at least one forecast is needed. Got none.")
    bad_p = ~((p >= 0.0) & (p <= 1.0))
    if bad_p.any():
        raise ValueError(
            f"forecasts must be probabilities in [0, 1] (no NaN). Got {int(bad_p.sum())} "
            f"invalid value(s) at position(s) {_positions(bad_p)}."
        )
    bad_y = ~((y == 0.0) | (y == 1.0))
    if bad_y.any():
        raise ValueError(
            f"outcomes must be 0 or 1. Got {int(bad_y.sum())} invalid value(s) at position(s) "
            f"{_positions(bad_y)}."
        )
    return p, y


def brier_score(forecasts: ArrayLike, outcomes: ArrayLike) -> float:
    r"""Mean Brier score, :math:`BS = \frac1N\sum_i (p_i - y_i)^2`.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.

    Returns
    -------
    float
        In [0, 1]; lower is better.

    Examples
    --------
    >>> round(brier_score([0.8, 0.3], [1, 0]), 12)
    0.065
    """
    p, y = check_forecasts(forecasts, outcomes)
    return float(np.mean((p - y) ** 2))


def log_score(
    forecasts: ArrayLike, outcomes: ArrayLike, *, clip: float | None = None
) -> float:
    r"""Mean logarithmic score (negative log-likelihood, natural log).

    .. math:: LS = -\frac1N \sum_i \log\bigl(y_i p_i + (1 - y_i)(1 - p_i)\bigr)

    A forecast of exactly 0 for an event that happened (or 1 for one that did not) has an
    infinite log score. By default this is an **error**, not a silent clip: a forecaster
    who says "impossible" and is wrong should see it. Pass ``clip`` to score such tables
    anyway; forecasts are then clipped to :math:`[\epsilon, 1 - \epsilon]` first (a
    certain *and right* forecast still scores 0 without clipping).

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.
    clip : float, optional
        :math:`\epsilon` in (0, 0.5); ``None`` (default) raises on a certain-and-wrong
        forecast instead.

    Returns
    -------
    float
        In [0, inf); lower is better; log 2 = 0.693 for a constant 0.5.

    Raises
    ------
    ValueError
        On a forecast of 0 with outcome 1 or of 1 with outcome 0 when ``clip`` is None
        (listing the positions), or on a ``clip`` outside (0, 0.5).
    """
    p, y = check_forecasts(forecasts, outcomes)
    if clip is not None:
        if not 0.0 < clip < 0.5:
            raise ValueError(f"clip must lie in (0, 0.5). Got {clip!r}.")
        p = np.clip(p, clip, 1.0 - clip)
    wrong = ((p == 0.0) & (y == 1.0)) | ((p == 1.0) & (y == 0.0))
    if wrong.any():
        raise ValueError(
            f"{int(wrong.sum())} forecast(s) of 0 or 1 were wrong (infinite log score) at "
            f"position(s) {_positions(wrong)}; pass clip=1e-6 (or --log-clip) to score them "
            "with clipped probabilities."
        )
    prob = np.where(y == 1.0, p, 1.0 - p)
    return float(-np.mean(np.log(prob)))


def brier_skill_score(
    forecasts: ArrayLike, outcomes: ArrayLike, reference: ArrayLike | float | None = None
) -> float:
    r"""Brier skill score against a reference forecast, :math:`1 - BS / BS_{ref}`.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.
    reference : float or array_like, optional
        The reference forecaster's probabilities (a constant base rate or one probability
        per case). Default: the sample frequency :math:`\bar y` (in-sample climatology,
        which no real forecaster could have issued: prefer an out-of-sample base rate).

    Returns
    -------
    float
        1 is perfect, 0 no better than the reference, negative worse; NaN when the
        reference is itself perfect (:math:`BS_{ref} = 0`).
    """
    p, y = check_forecasts(forecasts, outcomes)
    if reference is None:
        ref = np.full_like(y, y.mean())
    else:
        ref = np.broadcast_to(np.asarray(reference, dtype=float), y.shape)
        ref, _ = check_forecasts(ref, y)
    bs_ref = float(np.mean((ref - y) ** 2))
    if bs_ref == 0.0:
        return math.nan
    return 1.0 - float(np.mean((p - y) ** 2)) / bs_ref


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each tie group
    mean_rank = upper - (counts - 1) / 2.0
    return mean_rank[inverse]


def roc_auc(forecasts: ArrayLike, outcomes: ArrayLike) -> float:
    r"""Area under the ROC curve from ranks (Mann-Whitney), ties counting one half.

    .. math:: AUC = \frac{R_1 - n_1(n_1 + 1)/2}{n_1 n_0}

    with :math:`R_1` the sum of the (tie-averaged) ranks of the forecasts of the
    :math:`n_1` events among all :math:`N = n_1 + n_0` forecasts. It equals the share of
    (event, non-event) pairs in which the event got the higher forecast, a tie counting 1/2.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1] (only their order matters).
    outcomes : array_like of {0, 1}
        Observed outcomes.

    Returns
    -------
    float
        In [0, 1]; 0.5 is no discrimination. NaN when all outcomes are equal (no pair).
    """
    p, y = check_forecasts(forecasts, outcomes)
    n1 = float(y.sum())
    n0 = float(y.size - n1)
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = _average_ranks(p)
    r1 = float(ranks[y == 1.0].sum())
    return (r1 - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson score interval for binomial proportions.

    With :math:`\hat p = k/n` and :math:`z` the standard normal quantile of
    :math:`(1 + \text{level})/2`:

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} +
              \frac{z^2}{4n^2}}}{1 + z^2/n}

    It stays inside [0, 1] and has close to nominal coverage even for small :math:`n`
    (Brown, Cai & DasGupta 2001).

    Parameters
    ----------
    successes, trials : array_like
        :math:`k` and :math:`n` (broadcast together); :math:`n = 0` gives NaN.
    level : float, default 0.95
        Coverage in (0, 1).

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper bounds.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1). Got {level!r}.")
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        phat = k / n
        denom = 1.0 + z**2 / n
        centre = (phat + z**2 / (2.0 * n)) / denom
        half = z * np.sqrt(phat * (1.0 - phat) / n + z**2 / (4.0 * n**2)) / denom
        lo = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))  # exact ends
        hi = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
        lo = np.where(n > 0, lo, np.nan)
        hi = np.where(n > 0, hi, np.nan)
    return lo, hi


def bin_edges(bins: int | ArrayLike = 10) -> np.ndarray:
    """Bin edges on [0, 1]: ``bins`` equal-width bins, or the given increasing edges.

    Parameters
    ----------
    bins : int or array_like, default 10
        Number of equal-width bins (>= 1), or edges starting at 0 and ending at 1.

    Returns
    -------
    ndarray
        The edges, length ``n_bins + 1``.
    """
    if np.ndim(bins) == 0:
        n = int(bins)  # type: ignore[arg-type]
        if n < 1 or n != bins:
            raise ValueError(f"bins must be a positive integer or a list of edges. Got {bins!r}.")
        return np.linspace(0.0, 1.0, n + 1)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin edges must be at least two increasing numbers. Got {bins!r}.")
    if edges[0] != 0.0 or edges[-1] != 1.0:
        raise ValueError(f"bin edges must start at 0 and end at 1. Got {edges.tolist()}.")
    return edges


def _bin_index(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each forecast: ``[e_j, e_{j+1})``, the last bin closed on the right."""
    return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, edges.size - 2)


@dataclass(frozen=True)
class BrierDecomposition:
    r"""Murphy's decomposition of the Brier score, with Stephenson's within-bin terms.

    ``brier == reliability - resolution + uncertainty + within_bin`` holds exactly (to
    floating-point precision); see :func:`brier_decomposition`.

    Attributes
    ----------
    brier : float
        The Brier score.
    reliability : float
        :math:`\frac1N\sum_k n_k(\bar p_k - \bar y_k)^2` (lower is better).
    resolution : float
        :math:`\frac1N\sum_k n_k(\bar y_k - \bar y)^2` (higher is better).
    uncertainty : float
        :math:`\bar y(1 - \bar y)`.
    within_bin_variance, within_bin_covariance : float
        Stephenson et al.'s two extra components (0 when each bin holds a single value).
    within_bin : float
        Their sum, the residual ``brier - (reliability - resolution + uncertainty)``.
    n_bins : int or None
        Number of bins, ``None`` for the exact decomposition by distinct forecast values.
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float
    within_bin: float
    n_bins: int | None

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain-dict view."""
        return asdict(self)


def brier_decomposition(
    forecasts: ArrayLike, outcomes: ArrayLike, bins: int | ArrayLike | None = 10
) -> BrierDecomposition:
    r"""Murphy (1973) decomposition of the Brier score into reliability, resolution, uncertainty.

    Forecasts are grouped into bins :math:`k` with :math:`n_k` cases, mean forecast
    :math:`\bar p_k` and observed frequency :math:`\bar y_k`; :math:`\bar y` is the overall
    frequency. Then, exactly,

    .. math::

        BS = \underbrace{\tfrac1N\textstyle\sum_k n_k(\bar p_k - \bar y_k)^2}_{REL}
           - \underbrace{\tfrac1N\textstyle\sum_k n_k(\bar y_k - \bar y)^2}_{RES}
           + \underbrace{\bar y(1 - \bar y)}_{UNC}
           + \underbrace{\tfrac1N\textstyle\sum_k\sum_{i\in k}(p_i - \bar p_k)^2}_{WBV}
           - \underbrace{\tfrac2N\textstyle\sum_k\sum_{i\in k}(p_i - \bar p_k)
             (y_i - \bar y_k)}_{-WBC}

    (Stephenson, Coelho & Jolliffe 2008). The familiar identity
    :math:`BS = REL - RES + UNC` therefore holds exactly **when every forecast equals its
    bin's value** (e.g. ``bins=None``, which groups by distinct forecast values); otherwise
    the residual ``within_bin`` = WBV + WBC is reported, small when bins are narrow.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.
    bins : int, array_like or None, default 10
        Equal-width bins on [0, 1], explicit edges (see :func:`bin_edges`), or ``None`` to
        group by distinct forecast values (residual exactly 0).

    Returns
    -------
    BrierDecomposition
    """
    p, y = check_forecasts(forecasts, outcomes)
    n = p.size
    if bins is None:
        _, idx = np.unique(p, return_inverse=True)
        n_bins = None
    else:
        idx = _bin_index(p, bin_edges(bins))
        n_bins = int(bin_edges(bins).size - 1)
    size = int(idx.max()) + 1
    count = np.bincount(idx, minlength=size).astype(float)
    occupied = count > 0
    p_bar = np.zeros(size)
    y_bar = np.zeros(size)
    p_bar[occupied] = np.bincount(idx, weights=p, minlength=size)[occupied] / count[occupied]
    y_bar[occupied] = np.bincount(idx, weights=y, minlength=size)[occupied] / count[occupied]
    ybar = float(y.mean())
    rel = float(np.sum(count * (p_bar - y_bar) ** 2) / n)
    res = float(np.sum(count * (y_bar - ybar) ** 2) / n)
    unc = ybar * (1.0 - ybar)
    dev = p - p_bar[idx]
    wbv = float(np.sum(dev**2) / n)
    wbc = float(-2.0 * np.sum(dev * (y - y_bar[idx])) / n)
    bs = float(np.mean((p - y) ** 2))
    return BrierDecomposition(
        brier=bs,
        reliability=rel,
        resolution=res,
        uncertainty=unc,
        within_bin_variance=wbv,
        within_bin_covariance=wbc,
        within_bin=bs - (rel - res + unc),
        n_bins=n_bins,
    )


def reliability_table(
    forecasts: ArrayLike,
    outcomes: ArrayLike,
    bins: int | ArrayLike = 10,
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Tabulate a reliability diagram: per bin, mean forecast against observed frequency.

    Bins are ``[lower, upper)`` on [0, 1], the last one closed (a forecast of 1 falls in
    it). Every bin is listed, empty ones with ``count`` 0 and NaN statistics, so a plot
    knows the edges. A calibrated forecaster's ``observed_frequency`` lies within
    ``[ci_lower, ci_upper]`` of ``mean_forecast`` in about ``level`` of the bins.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.
    bins : int or array_like, default 10
        Number of equal-width bins or explicit edges (see :func:`bin_edges`).
    level : float, default 0.95
        Coverage of the Wilson interval of each bin's observed frequency
        (:func:`wilson_interval`).

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``bin`` (0-based), ``bin_lower``, ``bin_upper``, ``count``,
        ``events`` (outcomes equal to 1), ``mean_forecast``, ``observed_frequency``,
        ``ci_lower``, ``ci_upper`` (Wilson interval of the observed frequency).
    """
    p, y = check_forecasts(forecasts, outcomes)
    edges = bin_edges(bins)
    k = edges.size - 1
    idx = _bin_index(p, edges)
    count = np.bincount(idx, minlength=k)
    events = np.bincount(idx, weights=y, minlength=k)
    sum_p = np.bincount(idx, weights=p, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        freq = np.where(count > 0, events / count, np.nan)
    lo, hi = wilson_interval(events, count, level)
    return pd.DataFrame(
        {
            "bin": np.arange(k),
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count.astype(int),
            "events": events.astype(int),
            "mean_forecast": mean_p,
            "observed_frequency": freq,
            "ci_lower": lo,
            "ci_upper": hi,
        }
    )


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic with its percentile bootstrap interval.

    Attributes
    ----------
    estimate : float
        The statistic on the original data.
    lower, upper : float
        Percentile interval at ``level``.
    se : float
        Standard deviation of the bootstrap replicates.
    level : float
        Interval coverage.
    n_resamples : int
        Replicates drawn.
    n_valid : int
        Replicates with a finite value (e.g. an AUC needs both outcomes in the resample).
    """

    estimate: float
    lower: float
    upper: float
    se: float
    level: float
    n_resamples: int
    n_valid: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain-dict view."""
        return asdict(self)


def bootstrap(
    statistic: Callable[..., float],
    *arrays: ArrayLike,
    n_resamples: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    strata: ArrayLike | None = None,
) -> BootstrapResult:
    r"""Percentile bootstrap interval of any statistic of paired arrays.

    Cases (rows across all ``arrays``) are resampled with replacement :math:`B` times
    (within each stratum when ``strata`` is given); the interval is the
    :math:`(1 \mp \text{level})/2` quantiles of the finite replicates (Efron & Tibshirani
    1993). Replicates where the statistic is undefined (NaN) are dropped and counted.

    Parameters
    ----------
    statistic : callable
        ``statistic(*arrays) -> float``, e.g. :func:`brier_score` or
        ``lambda p, y, r: brier_skill_score(p, y, r)``.
    *arrays : array_like
        Arrays of the same length, resampled together.
    n_resamples : int, default 2000
        Number of replicates :math:`B`.
    level : float, default 0.95
        Interval coverage.
    rng : numpy.random.Generator, optional
        Source of randomness; default ``np.random.default_rng(0)`` so that results are
        reproducible. Pass your own generator for independent runs.
    strata : array_like, optional
        Labels: resample within each label (keeps e.g. the number of events fixed).

    Returns
    -------
    BootstrapResult
    """
    if not arrays:
        raise ValueError("bootstrap needs at least one array.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1. Got {n_resamples}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1). Got {level!r}.")
    cols = [np.asarray(a) for a in arrays]
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        raise ValueError(f"all arrays must have the same length. Got {[c.shape[0] for c in cols]}.")
    rng = np.random.default_rng(0) if rng is None else rng
    estimate = float(statistic(*cols))
    if strata is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(strata)
        if labels.shape[0] != n:
            raise ValueError("strata must have the same length as the arrays.")
        groups = [np.flatnonzero(labels == v) for v in np.unique(labels)]
    reps = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        reps[b] = statistic(*(c[idx] for c in cols))
    finite = reps[np.isfinite(reps)]
    alpha = (1.0 - level) / 2.0
    if finite.size:
        lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
        se = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    else:
        lo = hi = se = math.nan
    return BootstrapResult(
        estimate=estimate,
        lower=float(lo),
        upper=float(hi),
        se=se,
        level=level,
        n_resamples=n_resamples,
        n_valid=int(finite.size),
    )


def score_table(
    forecasts: ArrayLike,
    outcomes: ArrayLike,
    *,
    reference: ArrayLike | float | None = None,
    n_resamples: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
    log_clip: float | None = None,
) -> pd.DataFrame:
    """All scores of one forecaster with bootstrap intervals, one row per score.

    Parameters
    ----------
    forecasts : array_like of float
        Probabilities in [0, 1].
    outcomes : array_like of {0, 1}
        Observed outcomes.
    reference : float or array_like, optional
        Reference forecast of the skill score (default: the sample frequency, see
        :func:`brier_skill_score`).
    n_resamples : int, default 2000
        Bootstrap replicates (0 for no intervals).
    level : float, default 0.95
        Interval coverage.
    rng : numpy.random.Generator, optional
        Randomness of the bootstrap (default seeded, see :func:`bootstrap`).
    log_clip : float, optional
        Passed to :func:`log_score` as ``clip``.

    Returns
    -------
    pandas.DataFrame
        Columns ``score`` (``n``, ``base_rate``, ``brier``, ``log``, ``bss``, ``auc``,
        ``reliability``, ``resolution``, ``uncertainty``), ``estimate``, ``lower``,
        ``upper``; the Murphy terms use 10 bins and have no interval.
    """
    p, y = check_forecasts(forecasts, outcomes)
    ref = (
        np.full_like(y, y.mean())
        if reference is None
        else np.broadcast_to(np.asarray(reference, dtype=float), y.shape).copy()
    )
    rng = np.random.default_rng(0) if rng is None else rng
    stats: dict[str, Callable[..., float]] = {
        "brier": lambda p_, y_, r_: brier_score(p_, y_),
        "log": lambda p_, y_, r_: log_score(p_, y_, clip=log_clip),
        "bss": lambda p_, y_, r_: brier_skill_score(p_, y_, r_),
        "auc": lambda p_, y_, r_: roc_auc(p_, y_),
    }
    rows = [
        {"score": "n", "estimate": float(p.size), "lower": math.nan, "upper": math.nan},
        {"score": "base_rate", "estimate": float(y.mean()), "lower": math.nan, "upper": math.nan},
    ]
    for name, fn in stats.items():
        if n_resamples > 0:
            b = bootstrap(fn, p, y, ref, n_resamples=n_resamples, level=level, rng=rng)
            rows.append({"score": name, "estimate": b.estimate, "lower": b.lower, "upper": b.upper})
        else:
            rows.append(
                {"score": name, "estimate": fn(p, y, ref), "lower": math.nan, "upper": math.nan}
            )
    dec = brier_decomposition(p, y, bins=10)
    for name in ("reliability", "resolution", "uncertainty"):
        rows.append(
            {"score": name, "estimate": getattr(dec, name), "lower": math.nan, "upper": math.nan}
        )
    return pd.DataFrame(rows, columns=["score", "estimate", "lower", "upper"])


# --------------------------------------------------------------------------------------------
# Tables of forecasts from files
# --------------------------------------------------------------------------------------------

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def read_forecast_csv(
    path,
    *,
    forecast_col: str = "p",
    outcome_col: str = "y",
    group_col: str | None = None,
    reference_col: str | None = None,
) -> tuple[pd.DataFrame, list]:
    """Read and validate a CSV of forecasts and outcomes, collecting every problem.

    Each data row must have a forecast that parses as a number in [0, 1] and an outcome
    of 0 or 1 (``true``/``false`` and ``yes``/``no`` are accepted, any case); a reference
    column, when named, is checked like the forecasts. Nothing is dropped silently: every
    problem is reported with its line number (the header is line 1).

    Parameters
    ----------
    path : path-like
        The CSV file.
    forecast_col, outcome_col : str, default "p", "y"
        Column names of the probabilities and the outcomes.
    group_col : str, optional
        Column to score separately by (e.g. forecaster or question type).
    reference_col : str, optional
        Column of a reference forecaster's probabilities for the skill score.

    Returns
    -------
    (pandas.DataFrame, list of georisk.errors.Problem)
        Columns ``p``, ``y`` (float 0/1), ``line``, and ``group`` / ``reference`` when
        asked; the frame is empty when there are problems.
    """
    from pathlib import Path

    from georisk.errors import Problem

    path = Path(path)
    name = str(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return pd.DataFrame(), [Problem(name, None, None, f"cannot read the CSV: {exc}")]
    raw.columns = [str(c).strip() for c in raw.columns]
    wanted = [c for c in (forecast_col, outcome_col, group_col, reference_col) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        return pd.DataFrame(), [
            Problem(name, 1, c, f"missing column {c!r}; the file has {list(raw.columns)}.")
            for c in missing
        ]
    if raw.empty:
        return pd.DataFrame(), [Problem(name, None, None, "the file has no data rows.")]
    problems: list = []

    def probability(column: str) -> np.ndarray:
        values = np.full(len(raw), np.nan)
        for i, cell in enumerate(raw[column].str.strip()):
            line = i + 2
            if cell == "":
                problems.append(Problem(name, line, column, "missing value."))
                continue
            try:
                v = float(cell)
            except ValueError:
                problems.append(Problem(name, line, column, f"not a number: {cell!r}."))
                continue
            if not 0.0 <= v <= 1.0:  # also catches nan
                problems.append(
                    Problem(name, line, column, f"must be a probability in [0, 1]. Got {cell}.")
                )
                continue
            values[i] = v
        return values

    p = probability(forecast_col)
    ref = probability(reference_col) if reference_col else None
    y = np.full(len(raw), np.nan)
    for i, cell in enumerate(raw[outcome_col].str.strip()):
        low = cell.lower()
        if low in _TRUE:
            y[i] = 1.0
        elif low in _FALSE:
            y[i] = 0.0
        else:
            problems.append(
                Problem(name, i + 2, outcome_col, f"outcome must be 0 or 1. Got {cell!r}.")
            )
    if problems:
        return pd.DataFrame(), sorted(problems, key=lambda q: (q.line or 0, q.field or ""))
    out = pd.DataFrame({"p": p, "y": y, "line": np.arange(2, len(raw) + 2)})
    if group_col:
        out["group"] = raw[group_col].str.strip().replace("", "(empty)").to_numpy()
    if ref is not None:
        out["reference"] = ref
    return out, []


def evaluate(
    table: pd.DataFrame,
    *,
    reference: float | None = None,
    bins: int = 10,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    log_clip: float | None = None,
) -> dict:
    """Score a validated forecast table overall and by group.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`read_forecast_csv` (columns ``p``, ``y``, optional ``group`` and
        ``reference``).
    reference : float, optional
        Constant reference forecast of the skill score when the table has no
        ``reference`` column (default: each subset's own frequency).
    bins : int, default 10
        Bins of the reliability table.
    n_resamples, level, seed : int, float, int
        Bootstrap settings (seeded: the same file gives the same intervals).
    log_clip : float, optional
        See :func:`log_score`.

    Returns
    -------
    dict
        ``overall`` and ``groups`` (name -> scores), each a list of rows of
        :func:`score_table`; ``decomposition`` (:class:`BrierDecomposition` as a dict) and
        ``reliability`` (rows of :func:`reliability_table`) of the whole table;
        ``reference`` (what the skill score compares against).
    """

    def scores(sub: pd.DataFrame) -> pd.DataFrame:
        ref = sub["reference"].to_numpy() if "reference" in sub else reference
        return score_table(
            sub["p"].to_numpy(),
            sub["y"].to_numpy(),
            reference=ref,
            n_resamples=n_resamples,
            level=level,
            rng=np.random.default_rng(seed),
            log_clip=log_clip,
        )

    out: dict = {
        "overall": scores(table).to_dict(orient="records"),
        "groups": {},
        "decomposition": brier_decomposition(table["p"], table["y"], bins=bins).as_dict(),
        "reliability": reliability_table(table["p"], table["y"], bins=bins, level=level)
        .replace({np.nan: None})
        .to_dict(orient="records"),
        "reference": "reference column"
        if "reference" in table
        else (f"constant {reference:g}" if reference is not None else "sample frequency"),
    }
    if "group" in table:
        for name, sub in table.groupby("group", sort=True):
            out["groups"][str(name)] = scores(sub).to_dict(orient="records")
    return out
