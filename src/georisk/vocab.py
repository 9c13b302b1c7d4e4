"""Controlled vocabularies of georisk, declared as data.

Every categorical field of the ledger, the scenarios and the reference cases is checked
against one of the tables below. Each entry carries a one-line definition so that
``georisk ledger`` and the documentation can print what a code means.

Admiralty (NATO) grading
------------------------
Source reliability is graded A-F and information credibility 1-6, as in NATO
AJP-2.1 / STANAG 2511. The grades are separate on purpose: a usually reliable outlet
(B) can carry a report that cannot be judged (6).
"""

from __future__ import annotations

import re

__all__ = [
    "INDICATOR_KINDS",
    "SOURCE_RELIABILITY",
    "INFO_CREDIBILITY",
    "ORGANISATIONS",
    "ISO3_CODES",
    "REFERENCE_CATEGORIES",
    "SCENARIO_FAMILIES",
    "DATE_PRECISIONS",
    "DIRECTIONS",
    "is_valid_actor",
]

INDICATOR_KINDS: dict[str, str] = {
    "realignment_signal": (
        "A government takes a public step that reduces dependence on Russia or deepens ties "
        "with other powers (agreements with the EU, Turkey, the Gulf, China; leaving or "
        "snubbing Russian-led bodies)."
    ),
    "russian_pressure": (
        "Russia uses leverage against a regional state: export interruptions, court orders, "
        "threats by officials or public figures, demands to join Russian-led arrangements."
    ),
    "project_announcement": (
        "A project, portfolio or agreement is announced or signed at the political level "
        "(memorandum, intergovernmental agreement, summit communique)."
    ),
    "financing_commitment": (
        "Money is committed to a project: a signed loan, an EPC contract with a price, an "
        "investment decision, a budget allocation."
    ),
    "implementation_milestone": (
        "Physical or regulatory progress on a project: licence granted, site works, "
        "first concrete, first flows, commissioning."
    ),
    "delay_or_setback": (
        "A project slips, is suspended, renegotiated, loses financing or faces an obstacle "
        "(court ruling, sanctions, protest, technical failure)."
    ),
    "alignment_with_russia": (
        "A regional state moves towards Russia: new Russian-built projects, purchases of "
        "Russian energy, praise of alliance ties, joining Russian-led schemes."
    ),
}

SOURCE_RELIABILITY: dict[str, str] = {
    "A": "Completely reliable",
    "B": "Usually reliable",
    "C": "Fairly reliable",
    "D": "Not usually reliable",
    "E": "Unreliable",
    "F": "Reliability cannot be judged",
}

INFO_CREDIBILITY: dict[int, str] = {
    1: "Confirmed by other sources",
    2: "Probably true",
    3: "Possibly true",
    4: "Doubtful",
    5: "Improbable",
    6: "Truth cannot be judged",
}

ORGANISATIONS: dict[str, str] = {
    "CSTO": "Collective Security Treaty Organization",
    "EAEU": "Eurasian Economic Union",
    "EU": "European Union",
    "ECO": "Economic Cooperation Organization",
    "Rosatom": "Russian State Atomic Energy Corporation (incl. Atomstroyexport)",
    "CPC": "Caspian Pipeline Consortium",
    "Gazprom": "Gazprom PJSC",
    "KMG": "KazMunayGas",
    "SOCAR": "State Oil Company of Azerbaijan Republic",
    "Transneft": "Transneft PJSC",
    "SCO": "Shanghai Cooperation Organisation",
    "NATO": "North Atlantic Treaty Organization",
    "WB": "World Bank Group",
    "ADB": "Asian Development Bank",
}

# ISO 3166-1 alpha-3 codes of the states that appear in georisk's region of interest and its
# reference classes. A code outside this list is rejected as malformed or out of scope; extend
# the list (with the official code) when a new state enters the ledger.
ISO3_CODES: frozenset[str] = frozenset(
    {
        "AFG", "ARM", "AZE", "BGD", "BGR", "BLR", "CHN", "DEU", "EGY", "FIN", "FRA", "GBR",
        "GEO", "HUN", "IND", "IRN", "ISR", "JOR", "JPN", "KAZ", "KGZ", "KOR", "PAK", "PSE",
        "QAT", "RUS", "SAU", "TJK", "TKM", "TUR", "UKR", "USA", "UZB", "VNM", "ZAF", "ARE",
        "MNG", "IRQ", "SYR", "GRC", "POL", "ITA",
    }
)  # fmt: skip

_ISO3_PATTERN = re.compile(r"^[A-Z]{3}$")


def is_valid_actor(code: str) -> bool:
    """Return True when ``code`` is a known ISO 3166 alpha-3 code or organisation.

    Parameters
    ----------
    code : str
        Actor code as written in the ledger.

    Returns
    -------
    bool
        Whether the code is known.
    """
    if code in ORGANISATIONS:
        return True
    return bool(_ISO3_PATTERN.match(code)) and code in ISO3_CODES


REFERENCE_CATEGORIES: dict[str, dict[str, str]] = {
    "nuclear_plant_abroad": {
        "family": "project",
        "event": "first safety-related concrete of the first unit (IAEA construction start)",
    },
    "pipeline": {
        "family": "project",
        "event": "first commercial flows of oil, gas or power through the line",
    },
    "rail": {"family": "project", "event": "line open to regular traffic"},
    "hydro": {"family": "project", "event": "first unit generating power"},
    "bilateral_portfolio": {
        "family": "project",
        "event": "at least half of the announced value at financing close or under construction",
    },
    "regional_union": {
        "family": "project",
        "event": "founding agreement of the union or scheme signed by all its intended parties",
    },
    "export_route_disruption": {
        "family": "window",
        "event": "an interruption or cut of at least 7 days of a named export route within a year",
    },
}

SCENARIO_FAMILIES: dict[str, str] = {
    "project": (
        "Will an announced project reach its category's event by the horizon? Scored with a "
        "mixture-cure survival model: an eventual-implementation probability and a lag."
    ),
    "window": (
        "Will a recurring kind of event happen at least once in a time window? Scored with an "
        "annual event probability."
    ),
}

DATE_PRECISIONS: tuple[str, ...] = ("day", "month", "year")
DIRECTIONS: tuple[str, ...] = ("supports", "opposes")
