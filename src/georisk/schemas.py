"""Pydantic models of everything georisk reads from a workspace.

Each model is closed (``extra="forbid"``): an unknown key is an error, never silently ignored.
The models hold single records; cross-record checks (unknown source, duplicate id, links to
missing scenarios) live in :mod:`georisk.workspace`, which collects every problem of a
workspace before raising.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from georisk.vocab import (
    INDICATOR_KINDS,
    INFO_CREDIBILITY,
    REFERENCE_CATEGORIES,
    SOURCE_RELIABILITY,
    is_valid_actor,
)

__all__ = [
    "DatePrecision",
    "Direction",
    "ScenarioStatus",
    "CaseOutcome",
    "Source",
    "ScenarioLink",
    "Figure",
    "Indicator",
    "Resolution",
    "Scenario",
    "Distribution",
    "Elicitation",
    "Review",
    "Sensitivity",
    "PriorSpec",
    "Reference",
    "ReferenceCase",
    "ReferenceIndicator",
    "suggest",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def suggest(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    """Return a " (did you mean 'x'?)" hint for a misspelt value, or an empty string.

    Parameters
    ----------
    value : str
        The value received.
    allowed : sequence of str
        The values accepted.

    Returns
    -------
    str
        The hint, starting with a space, or ``""`` when nothing is close.
    """
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class DatePrecision(StrEnum):
    """How precisely a date is known."""

    DAY = "day"
    MONTH = "month"
    YEAR = "year"


class Direction(StrEnum):
    """Whether an indicator makes a scenario more (supports) or less (opposes) likely."""

    SUPPORTS = "supports"
    OPPOSES = "opposes"


class ScenarioStatus(StrEnum):
    """Life cycle of a scenario question."""

    OPEN = "open"
    RESOLVED_YES = "resolved-yes"
    RESOLVED_NO = "resolved-no"
    WITHDRAWN = "withdrawn"


class CaseOutcome(StrEnum):
    """Outcome of a reference case on its category's event ladder."""

    MATERIALISED = "materialised"
    NOT_MATERIALISED = "not_materialised"
    ONGOING = "ongoing"


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{what} must start with a letter or digit and contain only letters, digits, "
            f"'_', '.', ':' or '-'. Got {value!r}."
        )
    return value


class Source(_Closed):
    """A publication that indicators are taken from.

    ``reliability`` is the Admiralty source grade A-F of the outlet for this kind of report.
    """

    source_id: str
    outlet: str = Field(min_length=1)
    title: str = Field(min_length=1)
    published: dt.date
    date_precision: DatePrecision = DatePrecision.DAY
    url: str | None = None
    reliability: str
    note: str = ""

    @field_validator("source_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "source_id")

    @field_validator("reliability")
    @classmethod
    def _grade(cls, v: str) -> str:
        if v not in SOURCE_RELIABILITY:
            raise ValueError(f"must be one of {sorted(SOURCE_RELIABILITY)}. Got {v!r}.")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://. Got {v!r}.")
        return v or None


class ScenarioLink(_Closed):
    """Link from an indicator to a scenario, with the direction of its effect."""

    scenario_id: str
    direction: Direction


class Figure(_Closed):
    """A quantity reported with an indicator, e.g. ``1.3e9 USD`` or ``1.5 Mt``."""

    amount: float
    unit: str = Field(min_length=1)


def _check_credibility(v: int) -> int:
    if v not in INFO_CREDIBILITY:
        raise ValueError(f"must be an integer from 1 to 6 (Admiralty scale). Got {v!r}.")
    return v


def _check_kind(v: str) -> str:
    if v not in INDICATOR_KINDS:
        raise ValueError(
            f"must be one of {sorted(INDICATOR_KINDS)}. "
            f"Got {v!r}{suggest(v, list(INDICATOR_KINDS))}."
        )
    return v


class Indicator(_Closed):
    """One report of an event, taken from a source, linked to the scenarios it bears on.

    Several indicators with the same ``event_id`` are reports of one event: the model counts
    the event once and uses the reports only to raise its confidence that the event happened.
    """

    indicator_id: str
    source_id: str
    event_id: str
    event_date: dt.date
    date_precision: DatePrecision
    actors: tuple[str, ...] = Field(min_length=1)
    kind: str
    credibility: int
    summary: str = Field(min_length=10, max_length=300)
    figure: Figure | None = None
    links: tuple[ScenarioLink, ...] = ()
    note: str = ""

    @field_validator("indicator_id", "event_id", "source_id")
    @classmethod
    def _ids(cls, v: str, info: Any) -> str:
        return _check_id(v, info.field_name)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return _check_kind(v)

    @field_validator("credibility")
    @classmethod
    def _cred(cls, v: int) -> int:
        return _check_credibility(v)

    @field_validator("actors")
    @classmethod
    def _actors(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in v if not is_valid_actor(a)]
        if bad:
            raise ValueError(
                f"unknown or malformed actor code(s) {bad}: use ISO 3166 alpha-3 codes "
                "(e.g. KAZ, UZB, RUS) or a known organisation (see georisk.vocab.ORGANISATIONS)."
            )
        return v

    @field_validator("summary")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v or "\r" in v:
            raise ValueError("must be a single line.")
        return v

    @model_validator(mode="after")
    def _unique_links(self) -> Indicator:
        ids = [link.scenario_id for link in self.links]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"links name scenario(s) {dupes} more than once.")
        return self


class Resolution(_Closed):
    """How and when a scenario was resolved."""

    date: dt.date
    note: str = Field(min_length=1)


class Scenario(_Closed):
    """A resolvable proposition with a horizon, scored against a reference class.

    ``announced`` is when the underlying project or commitment was first announced: the
    origin of its age in the survival model (``project`` family). ``window_start`` is the
    start of the exposure window for the ``window`` family (default: ``opened``).
    """

    id: str
    title: str = Field(min_length=3, max_length=90)
    proposition: str = Field(min_length=10)
    resolution_criteria: str = Field(min_length=20)
    reference_class: str
    announced: dt.date | None = None
    announced_precision: DatePrecision = DatePrecision.DAY
    window_start: dt.date | None = None
    opened: dt.date
    horizon: dt.date
    status: ScenarioStatus = ScenarioStatus.OPEN
    resolution: Resolution | None = None
    tags: tuple[str, ...] = ()
    note: str = ""

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"must be a lowercase slug (a-z, 0-9, '-'). Got {v!r}.")
        return v

    @field_validator("reference_class")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in REFERENCE_CATEGORIES:
            raise ValueError(
                f"must be one of {sorted(REFERENCE_CATEGORIES)}. "
                f"Got {v!r}{suggest(v, list(REFERENCE_CATEGORIES))}."
            )
        return v

    @property
    def family(self) -> str:
        """Scenario family of the reference class (``project`` or ``window``)."""
        return REFERENCE_CATEGORIES[self.reference_class]["family"]

    @model_validator(mode="after")
    def _dates(self) -> Scenario:
        if self.horizon <= self.opened:
            raise ValueError(
                f"horizon ({self.horizon}) must be after the date the question was opened "
                f"({self.opened})."
            )
        if self.family == "project" and self.announced is None:
            raise ValueError(
                f"reference class {self.reference_class!r} is a project class: 'announced' "
                "(when the underlying project was announced) is required."
            )
        if self.announced is not None and self.announced > self.opened:
            raise ValueError(
                f"announced ({self.announced}) must not be after opened ({self.opened})."
            )
        resolved = self.status in (ScenarioStatus.RESOLVED_YES, ScenarioStatus.RESOLVED_NO)
        if resolved and self.resolution is None:
            raise ValueError(f"status {self.status.value!r} needs a 'resolution' (date, note).")
        if self.status == ScenarioStatus.OPEN and self.resolution is not None:
            raise ValueError("an open scenario must not have a 'resolution'.")
        return self


class Distribution(_Closed):
    """A probability distribution named as in PreliZ, e.g. ``LogitNormal(mu, sigma)``."""

    family: str
    params: dict[str, float]


class Elicitation(_Closed):
    """How a prior's parameters were obtained, precise enough to be re-run.

    ``method`` is ``maxent`` (PreliZ maximum entropy with ``lower``, ``upper``, ``mass``),
    ``beta_counts`` (``k`` successes of ``n`` on a Beta(1, 1) base), ``beta_mean_ess``
    (``mean`` and effective sample size ``ess``) or ``fixed`` (a documented constant).
    """

    method: Literal["maxent", "beta_counts", "beta_mean_ess", "fixed"]
    inputs: dict[str, float] = Field(default_factory=dict)
    statement: str = Field(min_length=10)
    date: dt.date
    by: str = Field(min_length=1)


class Review(_Closed):
    """Who reviewed a prior and when."""

    reviewer: str = Field(min_length=1)
    date: dt.date


class Sensitivity(_Closed):
    """How a prior is perturbed in the what-if table: scale its spread, shift its location."""

    widen: float = Field(default=2.0, gt=1.0)
    shift: float = 0.0


class PriorSpec(_Closed):
    """A documented prior: distribution, rationale, references and a re-runnable elicitation.

    Exactly one of ``distribution`` (a random parameter) and ``value`` (a documented fixed
    constant, e.g. a half-life) is given.
    """

    name: str
    parameter: str
    distribution: Distribution | None = None
    value: float | None = None
    unit: str = ""
    rationale: str = Field(min_length=40)
    references: tuple[str, ...] = Field(min_length=1)
    elicitation: Elicitation
    review: Review
    sensitivity: Sensitivity = Sensitivity()

    @model_validator(mode="after")
    def _one_of(self) -> PriorSpec:
        if (self.distribution is None) == (self.value is None):
            raise ValueError("give exactly one of 'distribution' and 'value'.")
        if self.value is not None and self.elicitation.method != "fixed":
            raise ValueError("a fixed 'value' must have elicitation method 'fixed'.")
        return self


class Reference(_Closed):
    """A bibliographic reference cited by priors and reference cases."""

    ref_id: str
    citation: str = Field(min_length=10)
    url: str | None = None


class ReferenceCase(_Closed):
    """A historical case of a reference class, resolved or still open (right-censored).

    ``resolved`` is the date of the category's event (materialised) or of the termination
    (not materialised); it is empty for an ongoing case, which is censored at
    ``last_observed``.
    """

    case_id: str
    name: str = Field(min_length=3)
    category: str
    region: str = Field(min_length=2)
    announced: dt.date
    announced_precision: DatePrecision
    resolved: dt.date | None = None
    resolved_precision: DatePrecision = DatePrecision.YEAR
    last_observed: dt.date
    outcome: CaseOutcome
    russia_involved: bool
    outcome_definition: str = Field(min_length=10)
    source: str = Field(min_length=5)
    verified: bool
    note: str = ""

    @field_validator("case_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "case_id")

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v not in REFERENCE_CATEGORIES:
            raise ValueError(
                f"must be one of {sorted(REFERENCE_CATEGORIES)}. "
                f"Got {v!r}{suggest(v, list(REFERENCE_CATEGORIES))}."
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceCase:
        if self.outcome == CaseOutcome.ONGOING and self.resolved is not None:
            raise ValueError("an ongoing case must leave 'resolved' empty.")
        if self.outcome != CaseOutcome.ONGOING and self.resolved is None:
            raise ValueError(f"outcome {self.outcome.value!r} needs a 'resolved' date.")
        if self.resolved is not None and self.resolved < self.announced:
            raise ValueError(f"resolved ({self.resolved}) is before announced ({self.announced}).")
        if self.last_observed < self.announced:
            raise ValueError(
                f"last_observed ({self.last_observed}) is before announced ({self.announced})."
            )
        return self


class ReferenceIndicator(_Closed):
    """An indicator in the history of a reference case, used to learn evidence strengths.

    ``direction`` is relative to the case reaching its category's event.
    """

    indicator_id: str
    case_id: str
    event_id: str
    event_date: dt.date
    date_precision: DatePrecision
    kind: str
    direction: Direction
    reliability: str
    credibility: int
    summary: str = Field(min_length=10, max_length=300)
    citation: str = Field(min_length=10)

    @field_validator("indicator_id", "case_id", "event_id")
    @classmethod
    def _ids(cls, v: str, info: Any) -> str:
        return _check_id(v, info.field_name)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return _check_kind(v)

    @field_validator("credibility")
    @classmethod
    def _cred(cls, v: int) -> int:
        return _check_credibility(v)

    @field_validator("reliability")
    @classmethod
    def _grade(cls, v: str) -> str:
        if v not in SOURCE_RELIABILITY:
            raise ValueError(f"must be one of {sorted(SOURCE_RELIABILITY)}. Got {v!r}.")
        return v
