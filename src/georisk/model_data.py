r"""Arrays the model is fitted on and scored with, assembled from a workspace (numpy only).

This module turns validated workspace records into plain arrays: the reference cases with
their lags, censoring and evidence design, the documented prior parameters, and each open
scenario's events. Nothing here imports PyMC, so the scoring path stays light.

Time is measured in years of 365.25 days. A date of month or year precision stands for its
period; lags between two such dates are therefore *interval-censored*: the lag of a case
announced in year :math:`A` (year precision) whose event fell in year :math:`R` lies in
:math:`[R-A-\tfrac12-\tfrac12, R-A+\tfrac12+\tfrac12]` around the midpoint difference, clipped at 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from georisk.evidence import (
    KINDS,
    EventEvidence,
    EvidenceWeights,
    Report,
    aggregate_events,
    design_row,
    period_end,
    period_midpoint,
    report_reliability,
)
from georisk.schemas import CaseOutcome, Direction, ReferenceCase, Scenario
from georisk.vocab import REFERENCE_CATEGORIES

__all__ = [
    "DAYS_PER_YEAR",
    "DRAW_KEYS",
    "PROJECT_CATEGORIES",
    "WINDOW_CATEGORIES",
    "PriorParameters",
    "CaseData",
    "ScenarioEvidence",
    "years_between",
    "prior_parameters",
    "case_data",
    "scenario_reports",
    "scenario_evidence",
]

DAYS_PER_YEAR = 365.25
PROJECT_CATEGORIES: tuple[str, ...] = tuple(
    c for c, info in REFERENCE_CATEGORIES.items() if info["family"] == "project"
)
WINDOW_CATEGORIES: tuple[str, ...] = tuple(
    c for c, info in REFERENCE_CATEGORIES.items() if info["family"] == "window"
)
DRAW_KEYS: tuple[str, ...] = (
    "eta",
    "eta_window",
    "strength",
    "lag_log_median",
    "lag_log_sd",
    "term_log_median",
    "term_log_sd",
    "rho",
)
"""The model parameters stored with every fit and used for scoring (draws first)."""
_HALF_WIDTH_YEARS = {"day": 0.0, "month": 1.0 / 24.0, "year": 0.5}
_MIN_INTERVAL_YEARS = 1.0 / DAYS_PER_YEAR


def years_between(start: dt.date, end: dt.date) -> float:
    """Return ``end - start`` in years of 365.25 days."""
    return (end - start).days / DAYS_PER_YEAR


@dataclass(frozen=True)
class PriorParameters:
    """Numbers of the documented priors the model uses, by name.

    Attributes
    ----------
    base_rate : dict
        Category -> ``("LogitNormal", mu, sigma)`` (logit scale, partially pooled) or
        ``("Beta", alpha, beta)`` (on the probability, not pooled).
    rho : tuple
        ``(alpha, beta)`` of the Beta prior on the pooling share.
    lag_log_median : dict
        Family and parameters of the prior on the log median lag (years).
    lag_log_sd : dict
        Family and parameters of the prior on the log-lag standard deviation.
    term_log_median, term_log_sd : dict
        The same for the time from announcement to termination of projects that fail.
    strength : dict
        Kind -> ``(family, params)`` of its strength prior.
    weights : EvidenceWeights
        Fixed reliability, credibility and half-life values.
    """

    base_rate: dict[str, tuple[str, float, float]]
    rho: tuple[float, float]
    lag_log_median: tuple[str, dict[str, float]]
    lag_log_sd: tuple[str, dict[str, float]]
    term_log_median: tuple[str, dict[str, float]]
    term_log_sd: tuple[str, dict[str, float]]
    strength: dict[str, tuple[str, dict[str, float]]]
    weights: EvidenceWeights


def _dist(priors: dict, name: str) -> tuple[str, dict[str, float]]:
    spec = priors[name]
    if spec.distribution is None:
        raise ValueError(f"prior {name!r} must have a distribution, not a fixed value.")
    return spec.distribution.family, dict(spec.distribution.params)


def prior_parameters(priors: dict) -> PriorParameters:
    """Extract the model's prior parameters from a workspace's prior specifications.

    Parameters
    ----------
    priors : dict
        Prior name -> :class:`georisk.schemas.PriorSpec`.

    Returns
    -------
    PriorParameters
    """
    base = {}
    for category in REFERENCE_CATEGORIES:
        family, params = _dist(priors, f"base_rate.{category}")
        if family == "LogitNormal":
            base[category] = ("LogitNormal", float(params["mu"]), float(params["sigma"]))
        elif family == "Beta":
            base[category] = ("Beta", float(params["alpha"]), float(params["beta"]))
        else:
            raise ValueError(
                f"prior 'base_rate.{category}' must be a LogitNormal (pooled on the logit "
                f"scale) or a Beta (unpooled, conjugate). Got {family!r}."
            )
    family, params = _dist(priors, "pooling.rho")
    if family != "Beta":
        raise ValueError(f"prior 'pooling.rho' must be a Beta. Got {family!r}.")
    strength = {kind: _dist(priors, f"strength.{kind}") for kind in KINDS}
    positive = {"Gamma", "HalfNormal", "LogNormal", "Exponential"}
    for kind, (family, _) in strength.items():
        if family not in positive:
            raise ValueError(
                f"prior 'strength.{kind}' must have positive support (one of {sorted(positive)}): "
                "a strength is a size, its sign comes from the link's direction. "
                f"Got {family!r}."
            )
    return PriorParameters(
        base_rate=base,
        rho=(float(params["alpha"]), float(params["beta"])),
        lag_log_median=_dist(priors, "lag.log_median"),
        lag_log_sd=_dist(priors, "lag.log_sd"),
        term_log_median=_dist(priors, "lag.termination_log_median"),
        term_log_sd=_dist(priors, "lag.termination_log_sd"),
        strength=strength,
        weights=EvidenceWeights.from_priors(priors),
    )


@dataclass(frozen=True)
class CaseData:
    """Reference cases as arrays, split by family.

    Project cases (two-type mixture survival): ``category`` index into
    :data:`PROJECT_CATEGORIES`, ``status`` 0 = event observed, 1 = terminated (both with
    their time since announcement in ``[lag_lower, lag_upper]`` years, interval-censored
    by date precision), 2 = still open at age ``age`` (right-censored); ``x`` the evidence
    design (cases x kinds).

    Window cases: ``window_category`` index into :data:`WINDOW_CATEGORIES`, ``window_y``
    0/1, ``window_exposure`` in years.
    """

    case_ids: tuple[str, ...]
    category: np.ndarray
    status: np.ndarray
    lag_lower: np.ndarray
    lag_upper: np.ndarray
    age: np.ndarray
    x: np.ndarray
    window_case_ids: tuple[str, ...]
    window_category: np.ndarray
    window_y: np.ndarray
    window_exposure: np.ndarray
    events_per_kind: dict[str, int] = field(default_factory=dict)
    cases_per_kind: dict[str, int] = field(default_factory=dict)

    @property
    def n_project(self) -> int:
        """Number of project cases."""
        return len(self.case_ids)


def _lag_interval(
    start: dt.date, end: dt.date, start_precision: str, end_precision: str
) -> tuple[float, float]:
    """Interval (years) that a lag between two dates of given precision lies in."""
    lag = max(years_between(start, end), 0.0)
    half = _HALF_WIDTH_YEARS[str(start_precision)] + _HALF_WIDTH_YEARS[str(end_precision)]
    lo, hi = max(lag - half, 0.0), lag + half
    if hi - lo < _MIN_INTERVAL_YEARS:
        hi = lo + _MIN_INTERVAL_YEARS
    return lo, hi


def _reference_reports(reference_indicators: Iterable, weights: EvidenceWeights) -> dict:
    by_case: dict[str, list[Report]] = {}
    for ind in reference_indicators:
        date = period_midpoint(ind.event_date, ind.date_precision)
        by_case.setdefault(ind.case_id, []).append(
            Report(
                indicator_id=ind.indicator_id,
                event_id=ind.event_id,
                kind=ind.kind,
                sign=1 if ind.direction == Direction.SUPPORTS else -1,
                event_date=date,
                known_date=date,
                reliability=report_reliability(ind.reliability, ind.credibility, weights),
            )
        )
    return by_case


def case_data(
    cases: Iterable[ReferenceCase],
    reference_indicators: Iterable,
    weights: EvidenceWeights,
    *,
    include_unverified: bool = False,
    as_of: dt.date | None = None,
) -> CaseData:
    """Assemble the reference cases the model is fitted on.

    Parameters
    ----------
    cases : iterable of ReferenceCase
        All reference cases of the workspace.
    reference_indicators : iterable of ReferenceIndicator
        Indicator histories of the reference cases.
    weights : EvidenceWeights
        Fixed evidence weights.
    include_unverified : bool, default False
        Unverified cases are background knowledge: used only in sensitivity runs.
    as_of : datetime.date, optional
        Refit as of a past date: a case resolved after ``as_of`` is treated as still open at
        ``as_of``, and cases announced after it are dropped (they were not known).

    Returns
    -------
    CaseData
    """
    reports = _reference_reports(reference_indicators, weights)
    proj: dict[str, list] = {k: [] for k in ("id", "cat", "status", "lo", "hi", "age", "x")}
    win: dict[str, list] = {k: [] for k in ("id", "cat", "y", "exp")}
    events_per_kind = dict.fromkeys(KINDS, 0)
    cases_per_kind = dict.fromkeys(KINDS, 0)
    for case in cases:
        if not case.verified and not include_unverified:
            continue
        if as_of is not None and case.announced > as_of:
            continue
        if REFERENCE_CATEGORIES[case.category]["family"] == "window":
            happened = case.outcome == CaseOutcome.MATERIALISED and (
                as_of is None or (case.resolved is not None and case.resolved <= as_of)
            )
            if as_of is not None and case.last_observed > as_of and not happened:
                continue  # the window was not over yet and nothing had happened: unknown
            win["id"].append(case.case_id)
            win["cat"].append(WINDOW_CATEGORIES.index(case.category))
            win["y"].append(int(happened))
            win["exp"].append(
                max(years_between(case.announced, case.last_observed), _MIN_INTERVAL_YEARS)
            )
            continue
        announced = period_midpoint(case.announced, case.announced_precision)
        outcome, resolved, last_observed = case.outcome, case.resolved, case.last_observed
        if as_of is not None and (resolved is None or resolved > as_of):
            outcome, resolved = CaseOutcome.ONGOING, None
            last_observed = min(last_observed, as_of)
        if outcome == CaseOutcome.MATERIALISED:
            assert resolved is not None
            event = period_midpoint(resolved, case.resolved_precision)
            lo, hi = _lag_interval(
                announced, event, case.announced_precision, case.resolved_precision
            )
            status, age, evidence_date = 0, np.nan, event
        elif outcome == CaseOutcome.NOT_MATERIALISED:
            assert resolved is not None
            end = period_midpoint(resolved, case.resolved_precision)
            lo, hi = _lag_interval(
                announced, end, case.announced_precision, case.resolved_precision
            )
            status, age, evidence_date = 1, np.nan, end
        else:
            status, lo, hi = 2, np.nan, np.nan
            age = max(years_between(announced, last_observed), _MIN_INTERVAL_YEARS)
            evidence_date = last_observed
        # Evidence as it stood just before the outcome became known (strictly earlier).
        events = aggregate_events(
            reports.get(case.case_id, []),
            as_of=evidence_date - dt.timedelta(days=1),
            weights=weights,
        )
        for kind in {e.kind for e in events}:
            cases_per_kind[kind] += 1
        for e in events:
            events_per_kind[e.kind] += 1
        proj["id"].append(case.case_id)
        proj["cat"].append(PROJECT_CATEGORIES.index(case.category))
        proj["status"].append(status)
        proj["lo"].append(lo)
        proj["hi"].append(hi)
        proj["age"].append(age)
        proj["x"].append(design_row(events))
    return CaseData(
        case_ids=tuple(proj["id"]),
        category=np.asarray(proj["cat"], dtype=int),
        status=np.asarray(proj["status"], dtype=int),
        lag_lower=np.asarray(proj["lo"], dtype=float),
        lag_upper=np.asarray(proj["hi"], dtype=float),
        age=np.asarray(proj["age"], dtype=float),
        x=np.asarray(proj["x"], dtype=float).reshape(len(proj["id"]), len(KINDS)),
        window_case_ids=tuple(win["id"]),
        window_category=np.asarray(win["cat"], dtype=int),
        window_y=np.asarray(win["y"], dtype=int),
        window_exposure=np.asarray(win["exp"], dtype=float),
        events_per_kind=events_per_kind,
        cases_per_kind=cases_per_kind,
    )


def scenario_reports(ws, weights: EvidenceWeights) -> dict[str, list[Report]]:
    """Collect the reports bearing on each scenario from the ledger's indicator links.

    A report is known from the last day its source may have been published (the end of the
    publication's month or year when only that is known, but no later than today), or from
    the event date if later; its event date is the midpoint of the event's period, but never
    after the date it was known. An as-of score therefore never counts a report that might
    not yet have been published.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    weights : EvidenceWeights
        Fixed evidence weights.

    Returns
    -------
    dict
        Scenario id -> list of :class:`georisk.evidence.Report`.
    """
    today = dt.date.today()
    out: dict[str, list[Report]] = {sid: [] for sid in ws.scenarios}
    for ind in ws.indicators:
        source = ws.sources[ind.source_id]
        published = min(period_end(source.published, source.date_precision), today)
        known = max(published, ind.event_date)
        event = min(period_midpoint(ind.event_date, ind.date_precision), known)
        reliability = report_reliability(source.reliability, ind.credibility, weights)
        for link in ind.links:
            out.setdefault(link.scenario_id, []).append(
                Report(
                    indicator_id=ind.indicator_id,
                    event_id=ind.event_id,
                    kind=ind.kind,
                    sign=1 if link.direction == Direction.SUPPORTS else -1,
                    event_date=event,
                    known_date=known,
                    reliability=reliability,
                )
            )
    return out


@dataclass(frozen=True)
class ScenarioEvidence:
    """What the scoring engine needs to know about one open scenario at one date.

    ``family`` is ``project`` or ``window``; ``category_index`` indexes
    :data:`PROJECT_CATEGORIES` or :data:`WINDOW_CATEGORIES`. For projects, ``age`` and
    ``horizon_age`` are years since announcement at the as-of date and at the horizon; for
    windows, ``exposure`` is the remaining window length in years and ``elapsed`` the part of
    the window already past (without an event, since the scenario is open).
    """

    scenario: Scenario
    family: str
    category_index: int
    age: float
    horizon_age: float
    exposure: float
    events: tuple[EventEvidence, ...]
    elapsed: float = 0.0

    @property
    def x(self) -> np.ndarray:
        """Event-by-kind design matrix, shape (n_events, n_kinds), signed weights."""
        x = np.zeros((len(self.events), len(KINDS)))
        for i, event in enumerate(self.events):
            x[i, KINDS.index(event.kind)] = event.weight
        return x


def scenario_evidence(
    scenario: Scenario, reports: list[Report], *, as_of: dt.date, weights: EvidenceWeights
) -> ScenarioEvidence:
    """Assemble one scenario's timing and weighted events at ``as_of``.

    Parameters
    ----------
    scenario : Scenario
        An open scenario.
    reports : list of Report
        Reports linked to it (see :func:`scenario_reports`).
    as_of : datetime.date
        The assessment date; later reports are ignored.
    weights : EvidenceWeights
        Fixed evidence weights.

    Returns
    -------
    ScenarioEvidence
    """
    events = tuple(aggregate_events(reports, as_of=as_of, weights=weights))
    if scenario.family == "project":
        assert scenario.announced is not None
        announced = period_midpoint(scenario.announced, scenario.announced_precision)
        age = max(years_between(announced, as_of), 0.0)
        horizon_age = max(years_between(announced, scenario.horizon), age)
        return ScenarioEvidence(
            scenario=scenario,
            family="project",
            category_index=PROJECT_CATEGORIES.index(scenario.reference_class),
            age=age,
            horizon_age=horizon_age,
            exposure=np.nan,
            events=events,
        )
    window_start = scenario.window_start or scenario.opened
    start = max(window_start, as_of)
    exposure = max(years_between(start, scenario.horizon), 0.0)
    return ScenarioEvidence(
        scenario=scenario,
        family="window",
        category_index=WINDOW_CATEGORIES.index(scenario.reference_class),
        age=np.nan,
        horizon_age=np.nan,
        exposure=exposure,
        events=events,
        elapsed=max(years_between(window_start, as_of), 0.0),
    )
