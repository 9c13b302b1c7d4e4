r"""From ledger rows to evidence weights: pure functions, numpy only.

An indicator is a *report* of an *event*. The model counts events, not reports.

Weight of one report
--------------------
Each report gets a reliability in (0, 1]:

.. math:: r_i = w_{\text{source}}(g_i)\, w_{\text{info}}(c_i)

where :math:`g_i \in \{A..F\}` is the Admiralty grade of its source and
:math:`c_i \in \{1..6\}` the credibility of the information (values in
``priors/weights.yaml``).

Confidence that an event happened
---------------------------------
Several independent reports of one event (same ``event_id``) raise the confidence that it
happened, not its size. With report reliabilities :math:`r_1..r_m`, the event is missed only
if every report is wrong:

.. math:: c_e = 1 - \prod_{i=1}^{m} (1 - r_i)

so :math:`c_e \le 1` and one report of reliability 1 is enough for certainty.

Fading
------
An event of kind :math:`k` that is :math:`a` days old at the as-of date counts

.. math:: f_e = 2^{-a / h_k}

with the half-life :math:`h_k` of ``priors/half_lives.yaml`` (:math:`h_k=\infty` means no
fading, e.g. an implementation milestone). The event's weight is :math:`w_e = c_e f_e`.

Effect on the log-odds
----------------------
An event linked with direction :math:`s_e = \pm 1` moves the scenario's log-odds of eventual
implementation by :math:`s_e\, w_e\, \beta_k`, where :math:`\beta_k > 0` is the strength of
its kind (a model parameter with a documented prior).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from georisk.vocab import INDICATOR_KINDS

__all__ = [
    "KINDS",
    "period_end",
    "Report",
    "EventEvidence",
    "EvidenceWeights",
    "period_midpoint",
    "report_reliability",
    "event_confidence",
    "fade",
    "aggregate_events",
    "design_row",
]

KINDS: tuple[str, ...] = tuple(INDICATOR_KINDS)


def period_midpoint(date: dt.date, precision: str) -> dt.date:
    """Return the midpoint of the period a date stands for.

    Dates of month or year precision are written as the first day of their period; the
    midpoint (the 15th of the month, or 1 July) is the unbiased guess of when it happened.

    Parameters
    ----------
    date : datetime.date
        First day of the period (any day for day precision).
    precision : {"day", "month", "year"}
        How precisely the date is known.

    Returns
    -------
    datetime.date
        The date itself for day precision, otherwise the period's midpoint.
    """
    precision = str(precision)
    if precision == "day":
        return date
    if precision == "month":
        return dt.date(date.year, date.month, 15)
    if precision == "year":
        return dt.date(date.year, 7, 1)
    raise ValueError(f"precision must be one of 'day', 'month', 'year'. Got {precision!r}.")


def period_end(date: dt.date, precision: str) -> dt.date:
    """Return the last day of the period a date stands for.

    A source published "in May 2024" (month precision, written 2024-05-01) may have appeared
    on any day of May; an as-of assessment can only be sure it was known from 31 May.

    Parameters
    ----------
    date : datetime.date
        First day of the period (any day for day precision).
    precision : {"day", "month", "year"}
        How precisely the date is known.

    Returns
    -------
    datetime.date
    """
    precision = str(precision)
    if precision == "day":
        return date
    if precision == "month":
        following = dt.date(date.year + date.month // 12, date.month % 12 + 1, 1)
        return following - dt.timedelta(days=1)
    if precision == "year":
        return dt.date(date.year, 12, 31)
    raise ValueError(f"precision must be one of 'day', 'month', 'year'. Got {precision!r}.")


@dataclass(frozen=True)
class EvidenceWeights:
    """Fixed weights of the evidence model, read from ``priors/``.

    Attributes
    ----------
    reliability : dict
        Admiralty source grade (A-F) -> weight in [0, 1].
    credibility : dict
        Information credibility (1-6) -> weight in [0, 1].
    half_life_days : dict
        Indicator kind -> half-life in days (``inf`` for no fading).
    """

    reliability: Mapping[str, float]
    credibility: Mapping[int, float]
    half_life_days: Mapping[str, float]

    @classmethod
    def from_priors(cls, priors: Mapping[str, object]) -> EvidenceWeights:
        """Build the weights from a workspace's prior specifications.

        Parameters
        ----------
        priors : mapping
            Prior name -> :class:`georisk.schemas.PriorSpec` (fixed ``value`` entries
            ``weight.reliability.<grade>``, ``weight.credibility.<n>``, ``half_life.<kind>``).

        Returns
        -------
        EvidenceWeights
        """

        def value(name: str) -> float:
            spec = priors[name]
            v = spec.value  # type: ignore[attr-defined]
            if v is None:
                raise ValueError(f"prior {name!r} must be a fixed value.")
            return float(v)

        return cls(
            reliability={g: value(f"weight.reliability.{g}") for g in "ABCDEF"},
            credibility={c: value(f"weight.credibility.{c}") for c in range(1, 7)},
            half_life_days={k: value(f"half_life.{k}") for k in KINDS},
        )


def report_reliability(grade: str, credibility: int, weights: EvidenceWeights) -> float:
    """Reliability of one report, :math:`r = w_{source}(g) w_{info}(c)`.

    Parameters
    ----------
    grade : str
        Admiralty source grade, A-F.
    credibility : int
        Information credibility, 1-6.
    weights : EvidenceWeights
        The documented weights.

    Returns
    -------
    float
        Reliability in [0, 1].
    """
    return float(weights.reliability[grade]) * float(weights.credibility[int(credibility)])


def event_confidence(reliabilities: Iterable[float]) -> float:
    r"""Confidence that an event happened given independent reports of it.

    .. math:: c = 1 - \prod_i (1 - r_i)

    Parameters
    ----------
    reliabilities : iterable of float
        Reliability of each report, each in [0, 1].

    Returns
    -------
    float
        Confidence in [0, 1]; 0 for no reports.
    """
    r = np.asarray(list(reliabilities), dtype=float)
    if np.any((r < 0) | (r > 1)):
        raise ValueError(f"report reliabilities must lie in [0, 1]. Got {r.tolist()}.")
    return float(1.0 - np.prod(1.0 - r))


def fade(age_days: np.ndarray | float, half_life_days: float) -> np.ndarray:
    r"""Exponential fading of evidence with age, :math:`2^{-a/h}`.

    Parameters
    ----------
    age_days : array_like
        Age of the event at the as-of date in days; negative ages (future events) are an
        error because they must have been filtered out before.
    half_life_days : float
        Half-life in days; ``inf`` means the evidence does not fade.

    Returns
    -------
    ndarray
        Weights in (0, 1].
    """
    age = np.asarray(age_days, dtype=float)
    if np.any(age < 0):
        raise ValueError("evidence from after the as-of date cannot be weighted (negative age).")
    if not half_life_days > 0:
        raise ValueError(f"half-life must be positive. Got {half_life_days}.")
    if np.isinf(half_life_days):
        return np.ones_like(age)
    return np.exp2(-age / half_life_days)


@dataclass(frozen=True)
class Report:
    """One report of an event as it bears on one target (a scenario or a reference case).

    Attributes
    ----------
    indicator_id, event_id, kind : str
        Identity and kind of the report.
    sign : int
        +1 for supports, -1 for opposes.
    event_date : datetime.date
        Midpoint date of the event.
    known_date : datetime.date
        Date from which the report was known (its publication, or the event date if later).
    reliability : float
        :func:`report_reliability` of the report.
    """

    indicator_id: str
    event_id: str
    kind: str
    sign: int
    event_date: dt.date
    known_date: dt.date
    reliability: float


@dataclass(frozen=True)
class EventEvidence:
    """One event's evidence for one target at one as-of date.

    Attributes
    ----------
    event_id, kind : str
        Identity and kind of the event.
    sign : int
        +1 supports, -1 opposes.
    event_date : datetime.date
        Earliest event date among its reports known by the as-of date.
    indicator_ids : tuple of str
        The reports counted.
    confidence : float
        :func:`event_confidence` of the reports.
    fading : float
        :func:`fade` at the as-of date.
    """

    event_id: str
    kind: str
    sign: int
    event_date: dt.date
    indicator_ids: tuple[str, ...]
    confidence: float
    fading: float

    @property
    def weight(self) -> float:
        """Signed weight :math:`s_e c_e f_e` that multiplies the kind's strength."""
        return self.sign * self.confidence * self.fading


def aggregate_events(
    reports: Iterable[Report], *, as_of: dt.date, weights: EvidenceWeights
) -> list[EventEvidence]:
    """Group the reports known by ``as_of`` into events and weight each event.

    Reports known after ``as_of`` are ignored, so an as-of score never sees the future.

    Parameters
    ----------
    reports : iterable of Report
        Reports bearing on one target.
    as_of : datetime.date
        The date of the assessment.
    weights : EvidenceWeights
        Half-lives per kind.

    Returns
    -------
    list of EventEvidence
        One entry per event, ordered by event date then id.
    """
    groups: dict[str, list[Report]] = {}
    for report in reports:
        if report.known_date <= as_of and report.event_date <= as_of:
            groups.setdefault(report.event_id, []).append(report)
    events = []
    for event_id, group in groups.items():
        kinds = {r.kind for r in group}
        signs = {r.sign for r in group}
        if len(kinds) != 1 or len(signs) != 1:
            raise ValueError(
                f"reports of event {event_id!r} disagree on kind {sorted(kinds)} or direction; "
                "the workspace validator should have caught this."
            )
        kind = group[0].kind
        date = min(r.event_date for r in group)
        age = (as_of - date).days
        events.append(
            EventEvidence(
                event_id=event_id,
                kind=kind,
                sign=group[0].sign,
                event_date=date,
                indicator_ids=tuple(sorted(r.indicator_id for r in group)),
                confidence=event_confidence(r.reliability for r in group),
                fading=float(fade(age, weights.half_life_days[kind])),
            )
        )
    events.sort(key=lambda e: (e.event_date, e.event_id))
    return events


def design_row(events: Iterable[EventEvidence]) -> np.ndarray:
    """Sum the signed event weights per kind: the row ``x`` with ``eta += x @ beta``.

    Parameters
    ----------
    events : iterable of EventEvidence
        Weighted events of one target.

    Returns
    -------
    ndarray, shape (n_kinds,)
        Signed weight per kind, in the order of :data:`KINDS`.
    """
    row = np.zeros(len(KINDS))
    for event in events:
        row[KINDS.index(event.kind)] += event.weight
    return row
