r"""Documented priors as runnable objects: re-elicit, check, summarise, perturb and document.

Every prior of georisk lives in ``priors/*.yaml`` as a :class:`georisk.schemas.PriorSpec`: a
distribution (or a fixed constant), a rationale, references and the *elicitation* that produced
it. This module holds pure functions over those specs:

* :func:`reelicit` re-runs an elicitation and :func:`check_elicitation` fails when the stored
  parameters no longer follow from it, so a prior cannot drift away from its documented
  statement;
* :func:`to_preliz` turns a spec into a PreliZ distribution, :func:`prior_table` summarises
  many specs (for ``georisk priors``);
* :func:`perturb` makes the wider or shifted copy used by the what-if table;
* :func:`write_priors_doc` writes ``docs/priors.md`` and one density figure per random prior.

Families and their parameters (names as in PreliZ):

=============  =================  ===========================================================
family         parameters         meaning in georisk
=============  =================  ===========================================================
LogitNormal    ``mu, sigma``      :math:`\operatorname{logit}(p) \sim N(\mu, \sigma)`; shown
                                  and plotted in probability scale
Normal         ``mu, sigma``      e.g. log of the median lag in years
Gamma          ``alpha, beta``    rate parametrisation: mean :math:`\alpha/\beta`, sd
                                  :math:`\sqrt{\alpha}/\beta`
Beta           ``alpha, beta``    mean :math:`\alpha/(\alpha+\beta)`, concentration
                                  :math:`\kappa = \alpha+\beta`
=============  =================  ===========================================================

PreliZ takes about five seconds to import, so it is imported on first use, never at import
time of this module. The documentation can be regenerated with::

    python -m georisk.priors docs/

run from the workspace root (it reads ``priors/*.yaml`` and ``data/references.csv``).
"""

from __future__ import annotations

import argparse
import functools
import io
import math
import os
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from georisk.atomic import write_atomic
from georisk.errors import PriorSpecError, Problem, WorkspaceError
from georisk.schemas import PriorSpec, Reference

if TYPE_CHECKING:
    from preliz.distributions.distributions import Distribution as PzDistribution

__all__ = [
    "PERTURBABLE_FAMILIES",
    "PROBABILITY_FAMILIES",
    "reelicit",
    "check_elicitation",
    "to_preliz",
    "describe_distribution",
    "prior_table",
    "perturb",
    "read_references",
    "write_priors_doc",
]

#: Families whose support is (0, 1): summarised and plotted in probability scale.
PROBABILITY_FAMILIES: frozenset[str] = frozenset({"LogitNormal", "Beta"})

#: Families :func:`perturb` knows how to widen and shift, with their parameter names.
PERTURBABLE_FAMILIES: Mapping[str, tuple[str, str]] = {
    "LogitNormal": ("mu", "sigma"),
    "Normal": ("mu", "sigma"),
    "Gamma": ("alpha", "beta"),
    "Beta": ("alpha", "beta"),
}

_MAXENT_INPUTS = ("lower", "upper", "mass")
_FIG_WIDTH_IN = 6.5
_FIG_HEIGHT_IN = 3.6
_FIG_DPI = 150
_DOC_NAME = "priors.md"
_FIG_SUBDIR = Path("figures") / "priors"
_ODDS_TICKS = (1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200)
_YEAR_TICKS = (0.5, 1, 2, 3, 5, 10, 20, 30, 50)


@functools.cache
def _pz() -> Any:
    """Import PreliZ once, on first use (the import takes several seconds)."""
    import preliz

    return preliz


# --------------------------------------------------------------------------------------------
# Elicitation
# --------------------------------------------------------------------------------------------


def _inputs(spec: PriorSpec, required: Sequence[str]) -> dict[str, float]:
    given = dict(spec.elicitation.inputs)
    missing = [k for k in required if k not in given]
    unknown = sorted(set(given) - set(required))
    if missing or unknown:
        raise PriorSpecError(
            f"prior {spec.name!r}: elicitation method {spec.elicitation.method!r} needs inputs "
            f"{list(required)}. Missing: {missing}; unknown: {unknown}."
        )
    return {k: float(given[k]) for k in required}


def _family(spec: PriorSpec) -> str:
    if spec.distribution is None:
        raise PriorSpecError(
            f"prior {spec.name!r} is a fixed value ({describe_distribution(spec)}), not a "
            "distribution."
        )
    return spec.distribution.family


def _require_beta(spec: PriorSpec) -> None:
    family = _family(spec)
    if family != "Beta":
        raise PriorSpecError(
            f"prior {spec.name!r}: elicitation method {spec.elicitation.method!r} produces a "
            f"Beta distribution, but the prior's family is {family!r}."
        )


def _new_preliz(spec: PriorSpec, family: str, params: Mapping[str, float] | None = None) -> Any:
    pz = _pz()
    cls = getattr(pz, family, None)
    if not isinstance(cls, type):
        raise PriorSpecError(
            f"prior {spec.name!r}: unknown distribution family {family!r}; use a PreliZ class "
            "name such as 'LogitNormal', 'Normal', 'Gamma' or 'Beta'."
        )
    try:
        return cls() if params is None else cls(**params)
    except (TypeError, ValueError) as exc:
        raise PriorSpecError(
            f"prior {spec.name!r}: cannot build {family} from parameters {dict(params or {})}: "
            f"{exc}"
        ) from exc


def reelicit(spec: PriorSpec) -> dict[str, float]:
    r"""Re-run the elicitation recorded in a prior spec and return the parameters it gives.

    The methods are:

    ``maxent``
        PreliZ maximum entropy: the distribution of ``spec.distribution.family`` with the
        largest entropy among those with probability ``mass`` in ``[lower, upper]``,
        ``pz.maxent(Family(), lower, upper, mass)``. For a LogitNormal the bounds are in
        probability scale.
    ``beta_counts``
        ``k`` successes in ``n`` cases on a uniform base:
        :math:`\alpha = k + 1,\ \beta = n - k + 1`.
    ``beta_mean_ess``
        mean :math:`m` with effective sample size :math:`s`:
        :math:`\alpha = m s,\ \beta = (1 - m) s`.
    ``fixed``
        a documented constant: returns ``{"value": spec.value}``.

    Parameters
    ----------
    spec : PriorSpec
        The prior whose elicitation is re-run.

    Returns
    -------
    dict of str to float
        Parameters named as in PreliZ (e.g. ``{"mu": ..., "sigma": ...}``), or
        ``{"value": ...}`` for a fixed constant.

    Raises
    ------
    PriorSpecError
        When the inputs do not fit the method (missing or unknown keys, out-of-range values,
        a family the method cannot produce) or when maximum entropy cannot put ``mass`` between
        the bounds.
    """
    method = spec.elicitation.method
    if method == "fixed":
        if spec.value is None:
            raise PriorSpecError(
                f"prior {spec.name!r}: elicitation method 'fixed' needs a 'value', but the prior "
                "has a distribution. Use 'maxent', 'beta_counts' or 'beta_mean_ess'."
            )
        return {"value": float(spec.value)}

    if method == "beta_counts":
        _require_beta(spec)
        inp = _inputs(spec, ("k", "n"))
        k, n = inp["k"], inp["n"]
        if not (n > 0 and 0 <= k <= n):
            raise PriorSpecError(
                f"prior {spec.name!r}: beta_counts needs 0 <= k <= n and n > 0. Got k={k:g}, "
                f"n={n:g}."
            )
        return {"alpha": k + 1.0, "beta": n - k + 1.0}

    if method == "beta_mean_ess":
        _require_beta(spec)
        inp = _inputs(spec, ("mean", "ess"))
        m, s = inp["mean"], inp["ess"]
        if not (0 < m < 1 and s > 0):
            raise PriorSpecError(
                f"prior {spec.name!r}: beta_mean_ess needs 0 < mean < 1 and ess > 0. Got "
                f"mean={m:g}, ess={s:g}."
            )
        return {"alpha": m * s, "beta": (1.0 - m) * s}

    # maxent
    family = _family(spec)
    inp = _inputs(spec, _MAXENT_INPUTS)
    dist = _new_preliz(spec, family)
    hint = (
        " For a LogitNormal, 'lower' and 'upper' are probabilities in (0, 1)."
        if family == "LogitNormal"
        else ""
    )
    with warnings.catch_warnings():
        # PreliZ only warns when the optimum misses the requested mass: that is an error here.
        warnings.filterwarnings("error", message=r"\s*The requested mass")
        try:
            _pz().maxent(dist, inp["lower"], inp["upper"], inp["mass"], plot=False)
        except UserWarning as exc:
            raise PriorSpecError(
                f"prior {spec.name!r}: maximum entropy {family} cannot put mass "
                f"{inp['mass']:g} between {inp['lower']:g} and {inp['upper']:g}: "
                f"{' '.join(str(exc).split())}.{hint}"
            ) from exc
        except ValueError as exc:
            raise PriorSpecError(
                f"prior {spec.name!r}: PreliZ maxent rejected the inputs {inp} for {family}: "
                f"{exc}.{hint}"
            ) from exc
    return {k: float(v) for k, v in dist.params_dict.items()}


def check_elicitation(spec: PriorSpec, rtol: float = 0.02, *, atol: float = 1e-3) -> None:
    r"""Check that a prior's stored parameters follow from its recorded elicitation.

    Each stored parameter :math:`a` is compared with the re-elicited :math:`b` as
    :math:`|a - b| \le \max(\text{rtol}\,|b|,\ \text{atol})`; the absolute tolerance covers
    location parameters near zero. Infinite fixed values match only infinity.

    Parameters
    ----------
    spec : PriorSpec
        The prior to check.
    rtol : float, default 0.02
        Relative tolerance (2%: stored parameters are rounded to about four digits).
    atol : float, default 1e-3
        Absolute tolerance.

    Raises
    ------
    PriorSpecError
        Naming the prior, the stored and the re-elicited values and the values to store, when
        any parameter differs or the parameter names differ; or when the elicitation cannot be
        re-run (see :func:`reelicit`).
    """
    redone = reelicit(spec)
    if spec.distribution is None:
        stored: dict[str, float] = {"value": float(spec.value)}  # type: ignore[arg-type]
    else:
        stored = {k: float(v) for k, v in spec.distribution.params.items()}
    method = spec.elicitation.method
    if set(stored) != set(redone):
        raise PriorSpecError(
            f"prior {spec.name!r}: stored parameters {sorted(stored)} but its {method} "
            f"elicitation gives {sorted(redone)}."
        )
    bad = [k for k in redone if not math.isclose(stored[k], redone[k], rel_tol=rtol, abs_tol=atol)]
    if bad:
        diffs = "; ".join(f"{k} stored {stored[k]:.4g} vs re-elicited {redone[k]:.4g}" for k in bad)
        fix = ", ".join(f"{k}: {redone[k]:.4g}" for k in redone)
        raise PriorSpecError(
            f"prior {spec.name!r}: stored parameters do not follow from its {method} elicitation "
            f"(inputs {dict(spec.elicitation.inputs)}, rtol={rtol:g}): {diffs}. Either store "
            f"{{{fix}}} or correct the elicitation inputs."
        )


# --------------------------------------------------------------------------------------------
# Distributions and summaries
# --------------------------------------------------------------------------------------------


def to_preliz(spec: PriorSpec) -> PzDistribution:
    """Return the PreliZ distribution of a random prior.

    Parameters
    ----------
    spec : PriorSpec
        A prior with a ``distribution`` (not a fixed ``value``).

    Returns
    -------
    preliz distribution
        E.g. ``pz.LogitNormal(mu=..., sigma=...)``; a LogitNormal lives on (0, 1), so its
        ``mean()`` and ``ppf()`` are in probability scale.

    Raises
    ------
    PriorSpecError
        For a fixed value, an unknown family or parameters the family does not accept.
    """
    family = _family(spec)
    return _new_preliz(spec, family, spec.distribution.params)  # type: ignore[union-attr]


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.3g}"


def describe_distribution(spec: PriorSpec) -> str:
    """Return a one-line, human-readable form of a prior.

    Parameters
    ----------
    spec : PriorSpec
        Any prior.

    Returns
    -------
    str
        ``"LogitNormal(mu=0.448, sigma=0.897)"`` for a random prior, the value with its unit for
        a fixed one (``"180 days"``, ``"inf days (never fades)"``, ``"0.8 weight"``).
    """
    if spec.distribution is None:
        value = float(spec.value)  # type: ignore[arg-type]
        text = f"{_fmt(value)} {spec.unit}".strip()
        return f"{text} (never fades)" if math.isinf(value) else text
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.distribution.params.items())
    return f"{spec.distribution.family}({params})"


def _scale(spec: PriorSpec) -> str:
    if spec.distribution is not None and spec.distribution.family in PROBABILITY_FAMILIES:
        return "share" if spec.unit == "share" else "probability"
    return spec.unit


def _as_list(specs: Iterable[PriorSpec] | Mapping[str, PriorSpec]) -> list[PriorSpec]:
    items = list(specs.values()) if isinstance(specs, Mapping) else list(specs)
    names = [s.name for s in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PriorSpecError(f"prior name(s) {dupes} appear more than once.")
    return items


def prior_table(specs: Iterable[PriorSpec] | Mapping[str, PriorSpec]) -> pd.DataFrame:
    """Summarise priors in a table, one row per prior, in the order given.

    Parameters
    ----------
    specs : iterable of PriorSpec, or mapping of name to PriorSpec
        The priors; names must be unique.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``parameter``, ``distribution`` (readable text, see
        :func:`describe_distribution`), ``scale`` (``probability`` for LogitNormal and Beta
        priors, whose ``mean``/``q05``/``q95`` are then probabilities; otherwise the prior's
        unit), ``mean``, ``q05`` and ``q95`` (central 90% interval; NaN for a fixed value, whose
        ``mean`` is the value), ``elicitation`` (the statement) and ``references``
        (comma-separated keys).

    Raises
    ------
    PriorSpecError
        On duplicate names or a distribution PreliZ cannot build.
    """
    rows = []
    for spec in _as_list(specs):
        if spec.distribution is None:
            mean, q05, q95 = float(spec.value), math.nan, math.nan  # type: ignore[arg-type]
        else:
            dist = to_preliz(spec)
            mean = float(dist.mean())
            q05, q95 = (float(q) for q in dist.ppf(np.array([0.05, 0.95])))
        rows.append(
            {
                "name": spec.name,
                "parameter": spec.parameter,
                "distribution": describe_distribution(spec),
                "scale": _scale(spec),
                "mean": mean,
                "q05": q05,
                "q95": q95,
                "elicitation": spec.elicitation.statement,
                "references": ", ".join(spec.references),
            }
        )
    columns = [
        "name", "parameter", "distribution", "scale", "mean", "q05", "q95", "elicitation",
        "references",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# Perturbation for the what-if table
# --------------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def perturb(
    spec: PriorSpec, *, widen: float | None = None, shift: float | None = None
) -> PriorSpec:
    r"""Return a copy of a prior with its spread widened and its location shifted.

    ``None`` takes the value from ``spec.sensitivity`` (its documented what-if); pass
    ``widen=1.0`` or ``shift=0.0`` to leave one of them unchanged. Per family, with
    :math:`w` = ``widen`` and :math:`s` = ``shift``:

    LogitNormal, Normal
        :math:`\mu \to \mu + s`, :math:`\sigma \to w\,\sigma`. For a LogitNormal, :math:`s` is
        on the logit scale (``-0.5`` multiplies the median odds by :math:`e^{-0.5}`).
    Gamma
        the mean is multiplied by :math:`e^{s}` and the standard deviation by :math:`w`:
        with :math:`m' = e^{s}\alpha/\beta` and :math:`d' = w\sqrt{\alpha}/\beta`,
        :math:`\alpha' = (m'/d')^2` and :math:`\beta' = m'/d'^2`.
    Beta
        the mean moves on the logit scale, :math:`m' = \operatorname{expit}(\operatorname{logit}
        (m) + s)`, and the concentration :math:`\kappa = \alpha + \beta` is divided by
        :math:`w^2`: :math:`\alpha' = m'\kappa/w^2`, :math:`\beta' = (1 - m')\kappa/w^2`. The
        standard deviation then grows by :math:`w\sqrt{(\kappa + 1)/(\kappa + w^2)}`, close to
        :math:`w` for a concentrated Beta and less for a diffuse one, whose sd is bounded.
    fixed value
        a constant has no spread: the value is multiplied by :math:`e^{s}` (``-0.693`` halves a
        half-life; infinity stays infinite). The documented ``sensitivity.widen`` is ignored,
        and an explicit ``widen`` other than 1 raises.

    The copy keeps the name, rationale and references; its elicitation statement says that it
    was perturbed, so :func:`check_elicitation` will (rightly) reject it.

    Parameters
    ----------
    spec : PriorSpec
        The prior to perturb.
    widen : float, optional
        Spread multiplier, > 0 (values below 1 narrow). Default: ``spec.sensitivity.widen``.
    shift : float, optional
        Location shift as defined above. Default: ``spec.sensitivity.shift``.

    Returns
    -------
    PriorSpec
        The perturbed copy (validated).

    Raises
    ------
    PriorSpecError
        For a non-positive or non-finite ``widen``, a non-finite ``shift``, a family not in
        :data:`PERTURBABLE_FAMILIES`, or an explicit ``widen`` on a fixed value.
    """
    w = spec.sensitivity.widen if widen is None else float(widen)
    s = spec.sensitivity.shift if shift is None else float(shift)
    if not (math.isfinite(w) and w > 0):
        raise PriorSpecError(f"prior {spec.name!r}: widen must be a finite number > 0. Got {w!r}.")
    if not math.isfinite(s):
        raise PriorSpecError(f"prior {spec.name!r}: shift must be a finite number. Got {s!r}.")

    data = spec.model_dump()
    if spec.distribution is None:
        if widen is not None and w != 1.0:
            raise PriorSpecError(
                f"prior {spec.name!r} is a fixed value: it has no spread to widen (got "
                f"widen={w:g}). Use shift to scale the value by exp(shift)."
            )
        data["value"] = float(spec.value) * math.exp(s)  # type: ignore[arg-type]
    else:
        family = spec.distribution.family
        p = spec.distribution.params
        if family in ("LogitNormal", "Normal"):
            new = {"mu": p["mu"] + s, "sigma": p["sigma"] * w}
        elif family == "Gamma":
            a, b = p["alpha"], p["beta"]
            mean, sd = math.exp(s) * a / b, w * math.sqrt(a) / b
            new = {"alpha": (mean / sd) ** 2, "beta": mean / sd**2}
        elif family == "Beta":
            a, b = p["alpha"], p["beta"]
            kappa = (a + b) / w**2
            mean = _expit(_logit(a / (a + b)) + s)
            new = {"alpha": mean * kappa, "beta": (1.0 - mean) * kappa}
        else:
            raise PriorSpecError(
                f"prior {spec.name!r}: cannot perturb family {family!r}; supported: "
                f"{sorted(PERTURBABLE_FAMILIES)}."
            )
        data["distribution"] = {"family": family, "params": new}
    data["elicitation"]["statement"] = (
        f"{spec.elicitation.statement}; PERTURBED for sensitivity (widen={w:g}, shift={s:g}), "
        "no longer the elicited prior"
    )
    return PriorSpec.model_validate(data)


# --------------------------------------------------------------------------------------------
# References and documentation
# --------------------------------------------------------------------------------------------


def read_references(path: str | os.PathLike[str]) -> dict[str, Reference]:
    """Read a ``ref_id,citation,url`` CSV (``data/references.csv``) into references by id.

    Parameters
    ----------
    path : path-like
        The CSV file.

    Returns
    -------
    dict of str to Reference
        In file order.

    Raises
    ------
    WorkspaceError
        Listing every invalid row and duplicate ``ref_id``, with line numbers.
    """
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("ref_id", "citation", "url") if c not in frame.columns]
    if missing:
        raise WorkspaceError([Problem(str(path), 1, None, f"missing column(s) {missing}.")])
    refs: dict[str, Reference] = {}
    problems: list[Problem] = []
    for i, row in enumerate(frame.itertuples(index=False), start=2):
        try:
            ref = Reference(ref_id=row.ref_id, citation=row.citation, url=row.url or None)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(x) for x in err["loc"]) or None
                problems.append(Problem(str(path), i, field, err["msg"]))
            continue
        if ref.ref_id in refs:
            problems.append(Problem(str(path), i, "ref_id", f"duplicate ref_id {ref.ref_id!r}."))
        refs[ref.ref_id] = ref
    if problems:
        raise WorkspaceError(problems)
    return refs


def _xlabel(spec: PriorSpec) -> str:
    family = spec.distribution.family  # type: ignore[union-attr]
    if family == "LogitNormal":
        return "probability  (inverse logit of the parameter)"
    if family == "Beta":
        return "share (0 to 1)" if spec.unit == "share" else "probability"
    if spec.unit == "log-odds":
        return "log-odds shift applied by one fully reliable event"
    return f"parameter value ({spec.unit})" if spec.unit else "parameter value"


def _safe_log(y: np.ndarray) -> np.ndarray:
    return np.log(np.clip(y, 1e-12, None))


def _render_density(spec: PriorSpec, dist: Any) -> bytes:
    """Draw the prior density of ``spec`` and return it as PNG bytes (Agg, no pyplot)."""
    from matplotlib.figure import Figure

    family = spec.distribution.family  # type: ignore[union-attr]
    if family in PROBABILITY_FAMILIES:
        x = np.linspace(0.0005, 0.9995, 1200)
    else:
        lo, hi = (float(v) for v in dist.ppf(np.array([0.001, 0.999])))
        pad = 0.05 * (hi - lo)
        lo = max(lo - pad, 0.0) if family == "Gamma" else lo - pad
        x = np.linspace(lo, hi + pad, 1200)
    y = np.asarray(dist.pdf(x), dtype=float)
    q05, q95 = (float(q) for q in dist.ppf(np.array([0.05, 0.95])))
    mean = float(dist.mean())

    fig = Figure(figsize=(_FIG_WIDTH_IN, _FIG_HEIGHT_IN), dpi=_FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, y, color="C0", lw=2, label="prior density")
    inside = (x >= q05) & (x <= q95)
    ax.fill_between(
        x, 0, y, where=inside, color="C0", alpha=0.2,
        label=f"central 90%: {_fmt(q05)} to {_fmt(q95)}",
    )  # fmt: skip
    ax.axvline(mean, color="C1", ls="--", lw=1.2, label=f"mean {_fmt(mean)}")
    el = spec.elicitation
    if el.method == "maxent" and set(_MAXENT_INPUTS) <= set(el.inputs):
        lo_in, hi_in, mass = (el.inputs[k] for k in _MAXENT_INPUTS)
        ax.plot(
            [lo_in, hi_in], [0, 0], "o", color="C3", ms=6, clip_on=False, zorder=5,
            label=f"elicited: {mass:.0%} of mass between {_fmt(lo_in)} and {_fmt(hi_in)}",
        )  # fmt: skip
    ax.set_xlim((0.0, 1.0) if family in PROBABILITY_FAMILIES else (x[0], x[-1]))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(_xlabel(spec))
    ax.set_ylabel("prior density")
    ax.set_title(f"{spec.name}: {describe_distribution(spec)}", fontsize=10, loc="left")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    if spec.unit == "log-odds":
        top_axis = ("odds multiplied by exp(x)", _ODDS_TICKS)
    elif spec.unit == "log years" and spec.name.endswith("log_median"):
        top_axis = ("median in years, exp(x)", _YEAR_TICKS)
    else:
        top_axis = None
    if top_axis is not None:
        label, candidates = top_axis
        top = ax.secondary_xaxis("top", functions=(np.exp, _safe_log))
        ticks = [t for t in candidates if np.exp(x[0]) <= t <= np.exp(x[-1])]
        top.set_xticks(ticks, [f"{t:g}" for t in ticks])
        top.set_xlabel(label, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_FIG_DPI, metadata={"Software": None})
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", r"\|")


def _reference_lines(spec: PriorSpec, references: Mapping[str, Reference] | None) -> list[str]:
    lines = []
    for key in spec.references:
        if references is None:
            lines.append(f"- `{key}`")
            continue
        ref = references[key]
        url = f" <{ref.url}>" if ref.url else ""
        lines.append(f"- `{key}`: {ref.citation}{url}")
    return lines


def _sensitivity_text(spec: PriorSpec) -> str:
    sens = spec.sensitivity
    if spec.distribution is None:
        return (
            f"what-if multiplies the value by exp({sens.shift:g}) = {math.exp(sens.shift):.3g}"
            if sens.shift
            else "no what-if perturbation"
        )
    family = spec.distribution.family
    spread = {
        "Gamma": "multiplies the sd",
        "Beta": "divides the concentration by widen²",
    }.get(family, "multiplies sigma")
    where = {
        "LogitNormal": "added to mu (logit scale)",
        "Normal": "added to mu",
        "Gamma": "mean multiplied by exp(shift)",
        "Beta": "added to the logit of the mean",
    }.get(family, "location")
    return f"widen = {sens.widen:g} ({spread}), shift = {sens.shift:g} ({where})"


def write_priors_doc(
    specs: Iterable[PriorSpec] | Mapping[str, PriorSpec],
    out_dir: str | os.PathLike[str],
    *,
    references: Mapping[str, Reference] | None = None,
) -> Path:
    """Write ``<out_dir>/priors.md`` and a density figure per random prior.

    The page has a summary table of all priors and, for each prior, its parameter, rationale,
    elicitation, review, what-if perturbation and references (resolved to full citations when
    ``references`` is given). Each random prior gets
    ``<out_dir>/figures/priors/<name>.png`` (6.5 in wide, 150 dpi; probability-scale x axis for
    LogitNormal and Beta priors). Every file is written to a temporary file first and moved
    into place, so a reader never sees a half-written file. The output has no timestamps, so
    regenerating unchanged priors gives an unchanged page.

    Parameters
    ----------
    specs : iterable of PriorSpec, or mapping of name to PriorSpec
        The priors, in the order they should appear; names must be unique.
    out_dir : path-like
        Documentation directory, usually ``docs``.
    references : mapping of str to Reference, optional
        Bibliography (see :func:`read_references`). Without it, references are listed by key.

    Returns
    -------
    pathlib.Path
        Path of the written ``priors.md``.

    Raises
    ------
    PriorSpecError
        When a prior cites a reference key missing from ``references``, names are duplicated,
        or a distribution cannot be built.
    """
    items = _as_list(specs)
    if references is not None:
        missing = sorted(
            {f"{s.name} -> {k}" for s in items for k in s.references if k not in references}
        )
        if missing:
            raise PriorSpecError(f"unknown reference key(s): {missing}.")
    out_dir = Path(out_dir)
    table = prior_table(items)

    md: list[str] = [
        "# Priors",
        "",
        "<!-- GENERATED FILE: do not edit by hand. -->",
        "",
        "> Generated by `python -m georisk.priors docs/` (the function "
        "`georisk.priors.write_priors_doc`) from `priors/*.yaml` and `data/references.csv`. "
        "Do not edit this page by hand: change the YAML and regenerate.",
        "",
        "Each random prior below was elicited from the statement shown and is re-elicited by "
        "the test suite (`georisk.priors.check_elicitation`), so the parameters cannot drift "
        "from their documented reasons. LogitNormal and Beta priors are summarised in "
        "probability scale; the other priors in the unit shown. The reference cases in "
        "`data/reference_cases.csv` are data for the model, not inputs to these priors.",
        "",
        "## Summary",
        "",
        "| name | distribution | scale | mean | central 90% interval |",
        "|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        interval = "" if math.isnan(row.q05) else f"{_fmt(row.q05)} – {_fmt(row.q95)}"
        md.append(
            f"| [`{row.name}`](#{_anchor(row.name)}) | {_md_cell(row.distribution)} | "
            f"{_md_cell(row.scale)} | {_fmt(row.mean)} | {interval} |"
        )

    random_specs = [s for s in items if s.distribution is not None]
    fixed_specs = [s for s in items if s.distribution is None]
    rows = {row.name: row for row in table.itertuples(index=False)}
    for title, group in (("Random priors", random_specs), ("Fixed constants", fixed_specs)):
        if not group:
            continue
        md += ["", f"## {title}"]
        for spec in group:
            row = rows[spec.name]
            md += ["", f"### {spec.name}", "", f"**Parameter.** {_md_cell(spec.parameter)}", ""]
            if spec.distribution is not None:
                fig_rel = (_FIG_SUBDIR / f"{spec.name}.png").as_posix()
                write_atomic(out_dir / fig_rel, _render_density(spec, to_preliz(spec)))
                md += [
                    f"**Prior.** `{describe_distribution(spec)}`, mean {_fmt(row.mean)}, central "
                    f"90% interval {_fmt(row.q05)} – {_fmt(row.q95)} ({row.scale}).",
                    "",
                    f"![Prior density of {spec.name}]({fig_rel})",
                ]
            else:
                md.append(f"**Value.** {describe_distribution(spec)}")
            el = spec.elicitation
            inputs = ", ".join(f"{k} = {_fmt(v)}" for k, v in el.inputs.items()) or "none"
            md += [
                "",
                f"**Rationale.** {_md_cell(spec.rationale)}",
                "",
                f"**Elicitation.** {el.method} ({inputs}): {_md_cell(el.statement)}. "
                f"By {el.by}, {el.date.isoformat()}.",
                "",
                f"**Review.** {spec.review.reviewer}, {spec.review.date.isoformat()}.",
                "",
                f"**What-if.** {_sensitivity_text(spec)}.",
                "",
                "**References.**",
                "",
                *_reference_lines(spec, references),
            ]
    path = out_dir / _DOC_NAME
    write_atomic(path, ("\n".join(md) + "\n").encode("utf-8"))
    return path


def _anchor(name: str) -> str:
    """GitHub-style heading anchor of a prior name (dots are dropped)."""
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")


# --------------------------------------------------------------------------------------------
# Command line: python -m georisk.priors [OUT_DIR] [--root ROOT]
# --------------------------------------------------------------------------------------------


def _read_prior_files(paths: Sequence[Path], root: Path) -> list[PriorSpec]:
    """Minimal reader of ``priors/*.yaml`` for the command line (the workspace loader is richer)."""
    specs: list[PriorSpec] = []
    problems: list[Problem] = []
    for path in paths:
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = data.get("priors") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            problems.append(Problem(rel, None, "priors", "top-level key 'priors' must be a list."))
            continue
        for entry in entries:
            try:
                specs.append(PriorSpec(**entry))
            except (TypeError, ValidationError) as exc:
                name = entry.get("name") if isinstance(entry, dict) else None
                problems.append(Problem(rel, None, name, " ".join(str(exc).split())))
    if problems:
        raise WorkspaceError(problems)
    return specs


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m georisk.priors",
        description="Regenerate docs/priors.md and its figures from priors/*.yaml.",
    )
    parser.add_argument("out_dir", nargs="?", default="docs", help="output directory")
    parser.add_argument("--root", default=".", help="workspace root (default: current dir)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    files = sorted((root / "priors").glob("*.yaml"))
    if not files:
        sys.stderr.write(f"no priors/*.yaml under {root}\n")
        return 1
    try:
        specs = _read_prior_files(files, root)
        refs_path = root / "data" / "references.csv"
        refs = read_references(refs_path) if refs_path.exists() else None
        out = Path(args.out_dir)
        path = write_priors_doc(specs, out if out.is_absolute() else root / out, references=refs)
    except (PriorSpecError, WorkspaceError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"wrote {path} ({len(specs)} priors)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
