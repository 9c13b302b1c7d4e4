"""Read and validate a whole georisk workspace, reporting every problem at once.

A workspace is a directory with this layout::

    data/sources.csv                one row per publication               -> Source
    data/indicators.csv             one row per report of an event        -> Indicator
    data/reference_cases.csv        historical cases of reference classes -> ReferenceCase
    data/reference_indicators.csv   indicators in those cases' histories  -> ReferenceIndicator
    data/references.csv             bibliography cited by priors          -> Reference
    scenarios/<id>.yaml             one scenario per file                 -> Scenario
    priors/*.yaml                   ``priors:`` list of documented priors -> PriorSpec

:func:`load_workspace` reads every file, validates every record against
:mod:`georisk.schemas`, runs the cross-record checks (unknown references, duplicate ids,
inconsistent reports of one event, dates in the future or after the outcome they predict,
required priors) and either returns a complete, immutable :class:`Workspace` or raises one
:class:`~georisk.errors.WorkspaceError` listing *all* problems. It never returns a partly
loaded workspace.

File conventions
----------------
* Files are UTF-8 (a leading byte-order mark is tolerated). A file that is not valid UTF-8 is
  one problem naming the byte offset and line of the first bad byte.
* CSV: comma-separated, first row is the header; a problem's ``line`` is the physical line
  (header = line 1; for a quoted cell spanning lines, the record's first line). Cells are
  stripped of surrounding blanks; an empty cell means "not given" (``None`` or the field's
  default). Dates are ISO ``YYYY-MM-DD`` (a date known to the month or year is written as
  its first day, with ``date_precision`` saying so). Booleans are ``true``/``false``/
  ``yes``/``no`` (any case). ``actors`` and ``links`` are ``;``-separated; a link is
  ``scenario_id:direction``. ``figure_amount`` and ``figure_unit`` are given together or not
  at all. Optional columns (those whose field has a default) may be left out of the header;
  required ones may not, and unknown columns are problems.
* YAML is read with PyYAML's ``SafeLoader`` only (no object construction); line numbers come
  from the YAML nodes, so a problem points at the offending key or list entry. Numbers in
  priors must be finite, except a ``half_life.*`` value of ``.inf`` ("never fades").
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from georisk.errors import Problem, WorkspaceError
from georisk.schemas import (
    DatePrecision,
    Indicator,
    PriorSpec,
    Reference,
    ReferenceCase,
    ReferenceIndicator,
    Scenario,
    Source,
    suggest,
)
from georisk.vocab import (
    INDICATOR_KINDS,
    INFO_CREDIBILITY,
    ORGANISATIONS,
    REFERENCE_CATEGORIES,
    SOURCE_RELIABILITY,
    is_valid_actor,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Workspace",
    "load_workspace",
    "ledger_query",
    "required_prior_names",
    "INPUT_GROUPS",
    "SOURCES_FILE",
    "INDICATORS_FILE",
    "REFERENCE_CASES_FILE",
    "REFERENCE_INDICATORS_FILE",
    "REFERENCES_FILE",
    "SCENARIOS_DIR",
    "PRIORS_DIR",
    "INDICATOR_FRAME_COLUMNS",
]

SOURCES_FILE = "data/sources.csv"
INDICATORS_FILE = "data/indicators.csv"
REFERENCE_CASES_FILE = "data/reference_cases.csv"
REFERENCE_INDICATORS_FILE = "data/reference_indicators.csv"
REFERENCES_FILE = "data/references.csv"
SCENARIOS_DIR = "scenarios"
PRIORS_DIR = "priors"

#: Input groups of :meth:`Workspace.input_hash` and the files each one covers.
INPUT_GROUPS: dict[str, str] = {
    "ledger": f"{SOURCES_FILE} + {INDICATORS_FILE}",
    "scenarios": f"{SCENARIOS_DIR}/*.yaml",
    "priors": f"{PRIORS_DIR}/*.yaml + {REFERENCES_FILE}",
    "reference": f"{REFERENCE_CASES_FILE} + {REFERENCE_INDICATORS_FILE}",
}

#: Columns of :meth:`Workspace.indicators_frame`, in order.
INDICATOR_FRAME_COLUMNS: tuple[str, ...] = (
    "indicator_id",
    "source_id",
    "event_id",
    "event_date",
    "date_precision",
    "actors",
    "kind",
    "credibility",
    "reliability",
    "summary",
    "scenario_id",
    "direction",
    "outlet",
    "source_title",
    "published",
)

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_BOOLS = {"true": True, "yes": True, "false": False, "no": False}
_MAX_SHOWN = 60


def required_prior_names() -> tuple[str, ...]:
    """Names of the priors every workspace must define.

    Returns
    -------
    tuple of str
        ``base_rate.<category>`` for every reference category, ``strength.<kind>`` and
        ``half_life.<kind>`` for every indicator kind, ``weight.reliability.<A-F>``,
        ``weight.credibility.<1-6>``, ``pooling.rho``, ``lag.log_median``, ``lag.log_sd``,
        ``lag.termination_log_median`` and ``lag.termination_log_sd``.
    """
    names = [f"base_rate.{c}" for c in REFERENCE_CATEGORIES]
    names += [f"strength.{k}" for k in INDICATOR_KINDS]
    names += [f"half_life.{k}" for k in INDICATOR_KINDS]
    names += [f"weight.reliability.{g}" for g in SOURCE_RELIABILITY]
    names += [f"weight.credibility.{c}" for c in INFO_CREDIBILITY]
    names += [
        "pooling.rho",
        "lag.log_median",
        "lag.log_sd",
        "lag.termination_log_median",
        "lag.termination_log_sd",
    ]
    return tuple(names)


# --------------------------------------------------------------------------------------
# The loaded workspace
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """A fully validated workspace. Build it with :func:`load_workspace`.

    Attributes
    ----------
    root : Path
        Absolute path of the workspace directory.
    sources : dict of str to Source
        Sources by ``source_id``, in file order.
    indicators : tuple of Indicator
        Ledger indicators, in file order.
    scenarios : dict of str to Scenario
        Scenarios by id, sorted by file name.
    priors : dict of str to PriorSpec
        Priors by name.
    references : dict of str to Reference
        Bibliography by ``ref_id``.
    reference_cases : tuple of ReferenceCase
        Historical cases, in file order.
    reference_indicators : tuple of ReferenceIndicator
        Indicators of the historical cases, in file order.
    file_hashes : dict of str to str
        SHA-256 (hex) of the bytes of every file read, by path relative to ``root``.
    """

    root: Path
    sources: dict[str, Source]
    indicators: tuple[Indicator, ...]
    scenarios: dict[str, Scenario]
    priors: dict[str, PriorSpec]
    references: dict[str, Reference]
    reference_cases: tuple[ReferenceCase, ...]
    reference_indicators: tuple[ReferenceIndicator, ...]
    file_hashes: dict[str, str] = field(default_factory=dict)

    def input_hash(self, *groups: str) -> str:
        """Stable SHA-256 over the files of some input groups.

        The hash covers the sorted ``(relative path, file hash)`` pairs of the groups'
        files, so it changes when a file of the groups is edited, added or removed, and
        only then.

        Parameters
        ----------
        *groups : str
            Any of ``"ledger"`` (sources and indicators), ``"scenarios"``, ``"priors"``
            (``priors/*.yaml`` and ``data/references.csv``) and ``"reference"`` (reference
            cases and reference indicators). No group means all of them.

        Returns
        -------
        str
            Hex digest.

        Raises
        ------
        ValueError
            If a group is unknown.
        """
        unknown = [g for g in groups if g not in INPUT_GROUPS]
        if unknown:
            raise ValueError(
                f"The 'groups' of input_hash must be among {sorted(INPUT_GROUPS)}. "
                f"Got {unknown}{suggest(unknown[0], list(INPUT_GROUPS))}."
            )
        wanted = set(groups or INPUT_GROUPS)
        pairs = sorted(
            (path, digest) for path, digest in self.file_hashes.items() if _group_of(path) in wanted
        )
        h = hashlib.sha256()
        for path, digest in pairs:
            h.update(f"{path}\0{digest}\n".encode())
        return h.hexdigest()

    def indicators_frame(self) -> pd.DataFrame:
        """Return the ledger as a tidy table: one row per indicator and scenario link.

        Returns
        -------
        DataFrame
            Columns :data:`INDICATOR_FRAME_COLUMNS`. An indicator linked to ``n`` scenarios
            gives ``n`` rows; one without links gives one row with ``scenario_id`` and
            ``direction`` ``None``. ``actors`` is ``";"``-joined; ``reliability``,
            ``outlet``, ``source_title`` and ``published`` come from the indicator's source;
            ``event_date`` and ``published`` are ``datetime64``. A fresh copy on each call.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for ind in self.indicators:
            src = self.sources[ind.source_id]
            base = {
                "indicator_id": ind.indicator_id,
                "source_id": ind.source_id,
                "event_id": ind.event_id,
                "event_date": ind.event_date,
                "date_precision": ind.date_precision.value,
                "actors": ";".join(ind.actors),
                "kind": ind.kind,
                "credibility": ind.credibility,
                "reliability": src.reliability,
                "summary": ind.summary,
                "outlet": src.outlet,
                "source_title": src.title,
                "published": src.published,
            }
            for link in ind.links or (None,):
                rows.append(
                    base
                    | {
                        "scenario_id": None if link is None else link.scenario_id,
                        "direction": None if link is None else link.direction.value,
                    }
                )
        columns = {c: [r[c] for r in rows] for c in INDICATOR_FRAME_COLUMNS}
        df = pd.DataFrame(
            {
                c: pd.Series(v, dtype=object) if c in ("scenario_id", "direction") else v
                for c, v in columns.items()
            },
            columns=list(INDICATOR_FRAME_COLUMNS),
        )
        df["event_date"] = pd.to_datetime(df["event_date"])
        df["published"] = pd.to_datetime(df["published"])
        df["credibility"] = df["credibility"].astype("int64")
        return df

    def reference_cases_frame(self) -> pd.DataFrame:
        """Return the reference cases as a table, one row per case.

        Returns
        -------
        DataFrame
            The :class:`~georisk.schemas.ReferenceCase` fields plus ``family`` (``project``
            or ``window``, from the category) and ``n_indicators`` (number of reference
            indicators of the case). Dates are ``datetime64`` (``resolved`` is ``NaT`` for an
            ongoing case); enums are their string values.
        """
        import pandas as pd

        counts: dict[str, int] = {}
        for ri in self.reference_indicators:
            counts[ri.case_id] = counts.get(ri.case_id, 0) + 1
        fields = list(ReferenceCase.model_fields)
        rows = []
        for case in self.reference_cases:
            row = case.model_dump(mode="python")
            for k in ("announced_precision", "resolved_precision", "outcome"):
                row[k] = getattr(case, k).value
            row["family"] = REFERENCE_CATEGORIES[case.category]["family"]
            row["n_indicators"] = counts.get(case.case_id, 0)
            rows.append(row)
        columns = [*fields, "family", "n_indicators"]
        df = pd.DataFrame({c: [r[c] for r in rows] for c in columns}, columns=columns)
        for c in ("announced", "resolved", "last_observed"):
            df[c] = pd.to_datetime(df[c])
        df["russia_involved"] = df["russia_involved"].astype(bool)
        df["verified"] = df["verified"].astype(bool)
        df["n_indicators"] = df["n_indicators"].astype("int64")
        return df


def _group_of(path: str) -> str | None:
    if path in (SOURCES_FILE, INDICATORS_FILE):
        return "ledger"
    if path in (REFERENCE_CASES_FILE, REFERENCE_INDICATORS_FILE):
        return "reference"
    if path == REFERENCES_FILE or path.startswith(f"{PRIORS_DIR}/"):
        return "priors"
    if path.startswith(f"{SCENARIOS_DIR}/"):
        return "scenarios"
    return None


def ledger_query(
    ws: Workspace,
    *,
    scenario: str | None = None,
    kind: str | None = None,
    actor: str | None = None,
    since: dt.date | str | None = None,
    until: dt.date | str | None = None,
) -> pd.DataFrame:
    """Select rows of the ledger table.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    scenario : str, optional
        Keep rows linked to this scenario id.
    kind : str, optional
        Keep indicators of this kind (see :data:`georisk.vocab.INDICATOR_KINDS`).
    actor : str, optional
        Keep indicators naming this actor (ISO 3166 alpha-3 code or organisation, any case).
    since, until : date or str, optional
        Keep indicators whose ``event_date`` is on or after ``since`` / on or before
        ``until`` (``YYYY-MM-DD`` strings accepted).

    Returns
    -------
    DataFrame
        Rows of :meth:`Workspace.indicators_frame`, sorted by ``event_date`` and
        ``indicator_id``, index reset.

    Raises
    ------
    ValueError
        If a filter names an unknown scenario, kind or actor, a date cannot be read, or
        ``since`` is after ``until``.
    """
    import pandas as pd

    df = ws.indicators_frame()
    if scenario is not None:
        if scenario not in ws.scenarios:
            raise ValueError(
                f"The 'scenario' filter must be one of {sorted(ws.scenarios)}. "
                f"Got {scenario!r}{suggest(scenario, list(ws.scenarios))}."
            )
        df = df[df["scenario_id"] == scenario]
    if kind is not None:
        if kind not in INDICATOR_KINDS:
            raise ValueError(
                f"The 'kind' filter must be one of {sorted(INDICATOR_KINDS)}. "
                f"Got {kind!r}{suggest(kind, list(INDICATOR_KINDS))}."
            )
        df = df[df["kind"] == kind]
    if actor is not None:
        code = _canonical_actor(actor)
        df = df[df["actors"].map(lambda s: code in s.split(";"))]
    start = _as_date(since, "since")
    end = _as_date(until, "until")
    if start is not None and end is not None and start > end:
        raise ValueError(f"'since' ({start}) is after 'until' ({end}).")
    if start is not None:
        df = df[df["event_date"] >= pd.Timestamp(start)]
    if end is not None:
        df = df[df["event_date"] <= pd.Timestamp(end)]
    return df.sort_values(["event_date", "indicator_id"], kind="stable").reset_index(drop=True)


def _canonical_actor(actor: str) -> str:
    a = actor.strip()
    by_fold = {o.casefold(): o for o in ORGANISATIONS}
    code = by_fold.get(a.casefold(), a.upper())
    if not is_valid_actor(code):
        raise ValueError(
            "The 'actor' filter must be an ISO 3166 alpha-3 code from georisk.vocab.ISO3_CODES "
            f"or an organisation from georisk.vocab.ORGANISATIONS. Got {actor!r}"
            f"{suggest(a, list(ORGANISATIONS))}."
        )
    return code


def _as_date(value: dt.date | str | None, name: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"'{name}' must be a date YYYY-MM-DD. Got {value!r}.") from None


# --------------------------------------------------------------------------------------
# Loading: shared state of one load
# --------------------------------------------------------------------------------------


class _Loader:
    """Problems and file hashes collected during one :func:`load_workspace` call."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.hashes: dict[str, str] = {}

    def add(self, file: str, line: int | None, fld: str | None, message: str) -> None:
        self.problems.append(Problem(file, line, fld, message))

    def read_text(self, rel: str) -> str | None:
        """Read a file as strict UTF-8; record a problem and return None on failure."""
        path = self.root / rel
        if not path.exists():
            self.add(rel, None, None, "required file is missing.")
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.add(rel, None, None, f"cannot be read: {exc.strerror or exc}.")
            return None
        self.hashes[rel] = hashlib.sha256(data).hexdigest()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.add(
                rel,
                line,
                None,
                f"not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
                f"({exc.reason}). Save the file as UTF-8.",
            )
            return None
        text = text.removeprefix("\ufeff")
        if not text.strip():
            self.add(rel, None, None, "file is empty.")
            return None
        return text


# --------------------------------------------------------------------------------------
# Pydantic errors -> problems
# --------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _allowed_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model reached by ``path`` from ``model``."""
    current: Any = model
    for part in path:
        if not isinstance(part, str):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is tuple or origin is list:
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def _error_field(model: type[BaseModel], err: Mapping[str, Any]) -> tuple[Any, ...]:
    """Location of an error; for a model-level error, the field its message starts with."""
    loc = tuple(err["loc"])
    if loc:
        return loc
    msg = _strip_prefix(str(err["msg"]))
    match = re.match(r"^([a-z_]+)\b", msg)
    if match and match.group(1) in model.model_fields:
        return (match.group(1),)
    return ()


def _strip_prefix(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _error_message(model: type[BaseModel], err: Mapping[str, Any], *, missing: str) -> str:
    """Build a readable message for one pydantic error: its text, the value got, a hint."""
    kind = err["type"]
    msg = _strip_prefix(str(err["msg"]))
    value = err.get("input")
    if kind == "missing":
        return missing
    if kind == "extra_forbidden":
        loc = tuple(err["loc"])
        key = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(model, loc[:-1])
        hint = suggest(key, allowed) if allowed else ""
        listing = f" Allowed keys: {', '.join(allowed)}." if allowed else ""
        return f"unknown key {key!r}{hint}.{listing}"
    if kind in ("enum", "literal_error"):
        allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        return f"{msg}. Got {_short(value)}{suggest(str(value), allowed)}."
    if kind.startswith("value_error") or kind == "assertion_error" or "Got " in msg:
        return msg if msg.endswith((".", "?", ")")) else f"{msg}."
    if isinstance(value, (str, int, float, bool, dt.date)):
        return f"{msg}. Got {_short(value)}."
    return f"{msg}."


# --------------------------------------------------------------------------------------
# CSV tables
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """How one CSV file maps to a schema model."""

    path: str
    model: type[BaseModel]
    id_column: str
    columns: tuple[str, ...]
    dates: tuple[str, ...] = ()
    bools: tuple[str, ...] = ()

    def field_of(self, column: str) -> str:
        return "figure" if column in ("figure_amount", "figure_unit") else column

    def required_columns(self) -> list[str]:
        fields = self.model.model_fields
        return [
            c
            for c in self.columns
            if self.field_of(c) in fields and fields[self.field_of(c)].is_required()
        ]


_SOURCES = _Table(
    SOURCES_FILE,
    Source,
    "source_id",
    ("source_id", "outlet", "title", "published", "date_precision", "url", "reliability", "note"),
    dates=("published",),
)
_INDICATORS = _Table(
    INDICATORS_FILE,
    Indicator,
    "indicator_id",
    (
        "indicator_id",
        "source_id",
        "event_id",
        "event_date",
        "date_precision",
        "actors",
        "kind",
        "credibility",
        "summary",
        "figure_amount",
        "figure_unit",
        "links",
        "note",
    ),
    dates=("event_date",),
)
_REFERENCE_CASES = _Table(
    REFERENCE_CASES_FILE,
    ReferenceCase,
    "case_id",
    (
        "case_id",
        "name",
        "category",
        "region",
        "announced",
        "announced_precision",
        "resolved",
        "resolved_precision",
        "last_observed",
        "outcome",
        "russia_involved",
        "outcome_definition",
        "source",
        "verified",
        "note",
    ),
    dates=("announced", "resolved", "last_observed"),
    bools=("russia_involved", "verified"),
)
_REFERENCE_INDICATORS = _Table(
    REFERENCE_INDICATORS_FILE,
    ReferenceIndicator,
    "indicator_id",
    (
        "indicator_id",
        "case_id",
        "event_id",
        "event_date",
        "date_precision",
        "kind",
        "direction",
        "reliability",
        "credibility",
        "summary",
        "citation",
    ),
    dates=("event_date",),
)
_REFERENCES = _Table(REFERENCES_FILE, Reference, "ref_id", ("ref_id", "citation", "url"))


@dataclass
class _Loaded:
    """Result of reading one table or group of YAML files."""

    ok: bool = False  # the file(s) could be read and the header is usable
    records: list[tuple[str, int, Any]] = field(default_factory=list)  # (file, line, model)
    known: set[str] = field(default_factory=set)  # every id written, valid record or not
    first: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (file, line)
    raw: list[tuple[str, int, Any]] = field(default_factory=list)  # (file, line, raw values)


def _read_csv_rows(
    ld: _Loader, rel: str
) -> tuple[int, list[str], list[tuple[int, list[str]]]] | None:
    """Parse a CSV file into (header line, header, [(line, cells)]), recording problems."""
    text = ld.read_text(rel)
    if text is None:
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    consumed = 0
    while True:
        start = consumed + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            ld.add(
                rel,
                start,
                None,
                f"malformed CSV: {exc} (quote cells that contain "
                'commas, quotes or line breaks, and double quotes inside them: "").',
            )
            consumed = reader.line_num
            continue
        consumed = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header, header_line = [c.strip() for c in cells], start
        else:
            rows.append((start, cells))
    if header is None:
        ld.add(rel, None, None, "file has no header row.")
        return None
    return header_line, header, rows


def _load_table(ld: _Loader, table: _Table) -> _Loaded:
    """Read, parse and validate one CSV table."""
    out = _Loaded()
    parsed = _read_csv_rows(ld, table.path)
    if parsed is None:
        return out
    header_line, header, rows = parsed
    rel = table.path

    seen: dict[str, int] = {}
    for pos, name in enumerate(header):
        if not name:
            ld.add(rel, header_line, None, f"column {pos + 1} of the header has no name.")
        elif name in seen:
            ld.add(rel, header_line, name, f"column {name!r} appears twice in the header.")
        elif name not in table.columns:
            ld.add(
                rel,
                header_line,
                name,
                f"unexpected column {name!r}{suggest(name, table.columns)}. "
                f"Expected columns: {', '.join(table.columns)}.",
            )
        seen.setdefault(name, pos)
    absent = [c for c in table.required_columns() if c not in seen]
    for col in absent:
        ld.add(rel, header_line, col, f"required column {col!r} is missing from the header.")
    out.ok = True
    absent_fields = {table.field_of(c) for c in absent}
    id_pos = seen.get(table.id_column)

    for line, cells in rows:
        raw_id = cells[id_pos].strip() if id_pos is not None and id_pos < len(cells) else ""
        if raw_id:
            out.known.add(raw_id)
            if raw_id in out.first:
                ld.add(
                    rel,
                    line,
                    table.id_column,
                    f"duplicate {table.id_column} {raw_id!r}: already used on line "
                    f"{out.first[raw_id][1]}.",
                )
            else:
                out.first[raw_id] = (rel, line)
        if len(cells) != len(header):
            hint = (
                " (an unquoted ',' inside a text cell? Put the cell in double quotes.)"
                if len(cells) > len(header)
                else ""
            )
            ld.add(
                rel,
                line,
                None,
                f"row has {len(cells)} cells but the header has {len(header)} columns{hint}",
            )
            continue
        values = {
            name: cell.strip()
            for pos, (name, cell) in enumerate(zip(header, cells, strict=True))
            if name in table.columns and seen[name] == pos
        }
        out.raw.append((rel, line, values))
        record = _validate_row(ld, table, line, values, absent_fields)
        if record is not None:
            out.records.append((rel, line, record))
    return out


def _validate_row(
    ld: _Loader,
    table: _Table,
    line: int,
    values: dict[str, str],
    absent_fields: set[str],
) -> BaseModel | None:
    """Convert one row's cells and validate them; record problems, return the record."""
    rel = table.path
    data: dict[str, Any] = {}
    pre: dict[str, list[tuple[str, str]]] = {}  # model field -> [(column, message)]
    link_texts: list[str] = []

    def fail(column: str, message: str) -> None:
        pre.setdefault(table.field_of(column), []).append((column, message))

    for column, cell in values.items():
        if not cell or column in ("figure_amount", "figure_unit"):
            continue
        if column in table.dates:
            parsed = _parse_date(cell)
            if isinstance(parsed, str):
                fail(column, parsed)
            else:
                data[column] = parsed
        elif column in table.bools:
            if cell.lower() in _BOOLS:
                data[column] = _BOOLS[cell.lower()]
            else:
                fail(column, f"must be true, false, yes or no. Got {_short(cell)}.")
        elif column == "actors" and table is _INDICATORS:
            data[column] = tuple(a.strip() for a in cell.split(";") if a.strip())
        elif column == "links" and table is _INDICATORS:
            links = []
            for piece in (p.strip() for p in cell.split(";")):
                if not piece:
                    continue
                sid, sep, direction = piece.rpartition(":")
                if not sep or not sid.strip() or not direction.strip():
                    fail(
                        column,
                        f"link {_short(piece)} must be written scenario_id:direction "
                        "(e.g. my-scenario:supports); separate links with ';'.",
                    )
                    continue
                link_texts.append(piece)
                links.append({"scenario_id": sid.strip(), "direction": direction.strip()})
            data[column] = tuple(links)
        else:
            data[column] = cell

    if table is _INDICATORS:
        amount = values.get("figure_amount", "")
        unit = values.get("figure_unit", "")
        if amount and unit:
            try:
                number = float(amount)
            except ValueError:
                fail("figure_amount", f"must be a number. Got {_short(amount)}.")
            else:
                if math.isfinite(number):
                    data["figure"] = {"amount": number, "unit": unit}
                else:
                    fail("figure_amount", f"must be a finite number. Got {_short(amount)}.")
        elif amount:
            fail("figure_unit", "figure_amount is given without figure_unit: give both or neither.")
        elif unit:
            fail(
                "figure_amount", "figure_unit is given without figure_amount: give both or neither."
            )

    for column_messages in pre.values():
        for column, message in column_messages:
            ld.add(rel, line, column, message)
    try:
        record = table.model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _error_field(table.model, err)
            top = loc[0] if loc else None
            if top in pre or top in absent_fields:
                continue
            column = _column_of(loc)
            message = _error_message(
                table.model, err, missing="a value is required (the cell is empty)."
            )
            if top == "links" and len(loc) > 1 and isinstance(loc[1], int):
                text = link_texts[loc[1]] if loc[1] < len(link_texts) else f"#{loc[1] + 1}"
                sub = ".".join(str(p) for p in loc[2:])
                message = f"link {text!r}: {sub + ': ' if sub else ''}{message}"
            elif top == "actors" and len(loc) > 1:
                message = f"actor #{loc[1] + 1}: {message}"
            ld.add(rel, line, column, message)
        return None
    return None if pre else record


def _column_of(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return None
    if loc[0] == "figure":
        return "figure_unit" if len(loc) > 1 and loc[1] == "unit" else "figure_amount"
    return str(loc[0])


def _parse_date(cell: str) -> dt.date | str:
    """Parse an ISO date cell; return the date or an error message."""
    hint = (
        "must be a date written YYYY-MM-DD (a date known only to the month or year is "
        "written as its first day, e.g. 2025-03-01, with date_precision saying so)."
    )
    if not _ISO_DATE.match(cell):
        return f"{hint} Got {_short(cell)}."
    try:
        return dt.date.fromisoformat(cell)
    except ValueError as exc:
        return f"is not a valid calendar date ({exc}). Got {_short(cell)}."


# --------------------------------------------------------------------------------------
# YAML files
# --------------------------------------------------------------------------------------


# libyaml's C parser when PyYAML was built with it (about 10x faster), else the pure-Python
# one; both are the *safe* loaders: plain YAML only, no object construction.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(ld: _Loader, rel: str) -> tuple[Any, dict[tuple[Any, ...], int]] | None:
    """Parse one YAML document safely; return (data, line map) or None after a problem."""
    text = ld.read_text(rel)
    if text is None:
        return None
    try:
        loader = _SAFE_LOADER(text)
        try:
            node = loader.get_single_node()
            if node is None:
                ld.add(rel, None, None, "file is empty (no YAML document).")
                return None
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if isinstance(exc, yaml.constructor.ConstructorError):
            hint = (
                " (only plain YAML is read: no !!python/... or custom tags)"
                if "tag" in what
                else ""
            )
            message = f"YAML cannot be loaded: {what}{hint}."
        else:
            message = f"YAML syntax error: {what}."
        ld.add(rel, mark.line + 1 if mark else None, None, message)
        return None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        ld.add(rel, line, None, f"YAML cannot be read: {exc.reason} (character {exc.character!r}).")
        return None
    except yaml.YAMLError as exc:  # pragma: no cover - other PyYAML errors carry marks
        ld.add(rel, None, None, f"YAML error: {exc}.")
        return None
    except RecursionError:
        ld.add(rel, None, None, "YAML nesting is too deep.")
        return None
    return data, _line_map(ld, rel, node)


def _line_map(ld: _Loader, rel: str, root: yaml.Node) -> dict[tuple[Any, ...], int]:
    """Map key/index paths to 1-based lines; record duplicate mapping keys as problems."""
    lines: dict[tuple[Any, ...], int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                key_line = key.start_mark.line + 1
                if key.value in first:
                    ld.add(
                        rel,
                        key_line,
                        key.value,
                        f"duplicate key {key.value!r} (first on line {first[key.value]}); "
                        "only one value can be kept.",
                    )
                else:
                    first[key.value] = key_line
                lines.setdefault((*path, key.value), key_line)
                stack.append((value, (*path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, i)))
    return lines


def _line_for(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _yaml_errors(
    ld: _Loader,
    rel: str,
    model: type[BaseModel],
    exc: ValidationError,
    lines: Mapping[tuple[Any, ...], int],
    prefix: tuple[Any, ...] = (),
) -> None:
    for err in exc.errors():
        loc = _error_field(model, err)
        fld = ".".join(str(p) for p in loc) or None
        message = _error_message(model, err, missing="required key is missing.")
        line_path = (*prefix, *loc)
        if err["type"] == "missing":
            line_path = (*prefix, *loc[:-1])
        ld.add(rel, _line_for(lines, line_path), fld, message)


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _yaml_files(ld: _Loader, directory: str) -> list[str] | None:
    path = ld.root / directory
    if not path.is_dir():
        ld.add(f"{directory}/", None, None, "required directory is missing.")
        return None
    for odd in sorted(path.glob("*.yml")):
        ld.add(
            f"{directory}/{odd.name}", None, None, "rename to .yaml: only *.yaml files are read."
        )
    return [f"{directory}/{p.name}" for p in sorted(path.glob("*.yaml")) if p.is_file()]


def _load_scenarios(ld: _Loader) -> tuple[_Loaded, dict[str, dict[tuple[Any, ...], int]]]:
    out = _Loaded()
    line_maps: dict[str, dict[tuple[Any, ...], int]] = {}
    files = _yaml_files(ld, SCENARIOS_DIR)
    if files is None:
        return out, line_maps
    out.ok = True
    claims: list[tuple[bool, str, int, str]] = []  # (misnamed, file, line, id)
    for rel in files:
        stem = Path(rel).stem
        out.known.add(stem)
        parsed = _read_yaml(ld, rel)
        if parsed is None:
            continue
        data, lines = parsed
        line_maps[rel] = lines
        if not isinstance(data, dict):
            ld.add(
                rel,
                1,
                None,
                f"must be a mapping of scenario fields (id: ..., title: ...), "
                f"got {_type_name(data)}.",
            )
            continue
        raw_id = data.get("id")
        if isinstance(raw_id, str) and raw_id.strip():
            raw_id = raw_id.strip()
            out.known.add(raw_id)
            id_line = lines.get(("id",), 1)
            if raw_id != stem:
                ld.add(
                    rel,
                    id_line,
                    "id",
                    f"the file name must equal the scenario id: rename the file to "
                    f"{raw_id}.yaml or set id: {stem}. Got id {raw_id!r}.",
                )
            claims.append((raw_id != stem, rel, id_line, raw_id))
        try:
            scenario = Scenario.model_validate(data)
        except ValidationError as exc:
            _yaml_errors(ld, rel, Scenario, exc, lines)
            continue
        out.records.append((rel, lines.get((), 1), scenario))
    # The file named after the id owns it; other files claiming the id are duplicates.
    for _, rel, id_line, raw_id in sorted(claims):
        if raw_id in out.first:
            other = out.first[raw_id]
            ld.add(
                rel,
                id_line,
                "id",
                f"duplicate scenario id {raw_id!r}: also defined in {other[0]}:{other[1]}.",
            )
        else:
            out.first[raw_id] = (rel, id_line)
    return out, line_maps


def _load_priors(ld: _Loader) -> tuple[_Loaded, dict[str, dict[tuple[Any, ...], int]]]:
    out = _Loaded()
    line_maps: dict[str, dict[tuple[Any, ...], int]] = {}
    files = _yaml_files(ld, PRIORS_DIR)
    if files is None:
        return out, line_maps
    out.ok = True
    for rel in files:
        parsed = _read_yaml(ld, rel)
        if parsed is None:
            continue
        data, lines = parsed
        line_maps[rel] = lines
        if not isinstance(data, dict):
            ld.add(
                rel, 1, None, f"must be a mapping with a 'priors:' list, got {_type_name(data)}."
            )
            continue
        for key in data:
            if key != "priors":
                ld.add(
                    rel,
                    lines.get((key,), 1),
                    str(key),
                    f"unknown top-level key {key!r}{suggest(str(key), ['priors'])}: a priors "
                    "file holds only 'priors:', a list of prior entries.",
                )
        if "priors" not in data:
            ld.add(rel, 1, "priors", "required key 'priors' (a list of prior entries) is missing.")
            continue
        entries = data["priors"]
        if not isinstance(entries, list):
            ld.add(
                rel,
                lines.get(("priors",), 1),
                "priors",
                f"must be a list of prior entries (lines starting with '- name: ...'), "
                f"got {_type_name(entries)}.",
            )
            continue
        for i, entry in enumerate(entries):
            entry_line = _line_for(lines, ("priors", i)) or 1
            if not isinstance(entry, dict):
                ld.add(
                    rel,
                    entry_line,
                    f"priors.{i}",
                    f"a prior entry must be a mapping (name: ..., parameter: ...), "
                    f"got {_type_name(entry)}.",
                )
                continue
            out.raw.append((rel, entry_line, (i, entry)))
            name = entry.get("name")
            if isinstance(name, str) and name.strip():
                name = name.strip()
                out.known.add(name)
                if name in out.first:
                    other = out.first[name]
                    ld.add(
                        rel,
                        entry_line,
                        "name",
                        f"duplicate prior name {name!r}: also defined in {other[0]}:{other[1]}.",
                    )
                else:
                    out.first[name] = (rel, entry_line)
            try:
                spec = PriorSpec.model_validate(entry)
            except ValidationError as exc:
                _yaml_errors(ld, rel, PriorSpec, exc, lines, prefix=("priors", i))
                continue
            out.records.append((rel, entry_line, (i, spec)))
    return out, line_maps


# --------------------------------------------------------------------------------------
# Cross-record checks
# --------------------------------------------------------------------------------------


def _check_future(
    ld: _Loader, rel: str, line: int | None, fld: str, value: dt.date | None, today: dt.date
) -> None:
    if value is not None and value > today:
        ld.add(rel, line, fld, f"{value} is in the future (today is {today}).")


def _check_events(
    ld: _Loader,
    records: Iterable[tuple[str, int, Any]],
    what: str,
) -> None:
    """Check that reports of one event agree on its kind and on each link's direction."""
    kinds: dict[str, tuple[str, int, str]] = {}
    directions: dict[tuple[str, str], tuple[str, int, str]] = {}
    for rel, line, rec in records:
        first = kinds.setdefault(rec.event_id, (rec.kind, line, rec.indicator_id))
        if rec.kind != first[0]:
            ld.add(
                rel,
                line,
                "kind",
                f"event {rec.event_id!r} is reported here as {rec.kind!r} but as {first[0]!r} "
                f"on line {first[1]} ({what} {first[2]!r}): reports of one event must share "
                "its kind.",
            )
        if isinstance(rec, Indicator):
            field_name = "links"
            pairs = [(f"scenario {lk.scenario_id!r}", lk.direction.value) for lk in rec.links]
        else:  # a reference indicator's direction is relative to its own case
            field_name = "direction"
            pairs = [(f"case {rec.case_id!r}", rec.direction.value)]
        for target, direction in pairs:
            prior = directions.setdefault(
                (rec.event_id, target), (direction, line, rec.indicator_id)
            )
            if direction != prior[0]:
                ld.add(
                    rel,
                    line,
                    field_name,
                    f"event {rec.event_id!r} {direction} {target} here but {prior[0]} it on "
                    f"line {prior[1]} ({what} {prior[2]!r}): reports of one event must agree "
                    "on its direction.",
                )


def _cross_checks(
    ld: _Loader,
    today: dt.date,
    sources: _Loaded,
    indicators: _Loaded,
    cases: _Loaded,
    ref_indicators: _Loaded,
    references: _Loaded,
    scenarios: _Loaded,
    scenario_lines: Mapping[str, Mapping[tuple[Any, ...], int]],
    priors: _Loaded,
    prior_lines: Mapping[str, Mapping[tuple[Any, ...], int]],
) -> None:
    source_by_id = {s.source_id: (rel, line, s) for rel, line, s in sources.records}
    for rel, line, src in sources.records:
        _check_future(ld, rel, line, "published", src.published, today)

    # References are checked on the raw cells, so that rows failing validation for another
    # reason still get their dangling references reported.
    for rel, line, values in indicators.raw:
        source_id = values.get("source_id", "")
        if sources.ok and source_id and source_id not in sources.known:
            ld.add(
                rel,
                line,
                "source_id",
                f"unknown source {source_id!r}"
                f"{suggest(source_id, sorted(sources.known))}: add it to {SOURCES_FILE}.",
            )
        if scenarios.ok:
            for piece in values.get("links", "").split(";"):
                scenario_id, sep, _ = piece.strip().rpartition(":")
                scenario_id = scenario_id.strip()
                if sep and scenario_id and scenario_id not in scenarios.known:
                    ld.add(
                        rel,
                        line,
                        "links",
                        f"link to unknown scenario {scenario_id!r}"
                        f"{suggest(scenario_id, sorted(scenarios.known))}: scenarios are "
                        f"the files {SCENARIOS_DIR}/<id>.yaml.",
                    )

    for rel, line, ind in indicators.records:
        _check_future(ld, rel, line, "event_date", ind.event_date, today)
        found = source_by_id.get(ind.source_id)
        if found is not None:
            src = found[2]
            if src.date_precision == DatePrecision.DAY and ind.event_date > src.published:
                ld.add(
                    rel,
                    line,
                    "event_date",
                    f"{ind.event_date} is after the publication date {src.published} of its "
                    f"source {src.source_id!r} ({found[0]}:{found[1]}).",
                )
    _check_events(ld, indicators.records, "indicator")

    case_by_id = {c.case_id: c for _, _, c in cases.records}
    for rel, line, case in cases.records:
        for name in ("announced", "resolved", "last_observed"):
            _check_future(ld, rel, line, name, getattr(case, name), today)

    for rel, line, values in ref_indicators.raw:
        case_id = values.get("case_id", "")
        if cases.ok and case_id and case_id not in cases.known:
            ld.add(
                rel,
                line,
                "case_id",
                f"unknown case {case_id!r}{suggest(case_id, sorted(cases.known))}: "
                f"add it to {REFERENCE_CASES_FILE}.",
            )

    for rel, line, ri in ref_indicators.records:
        _check_future(ld, rel, line, "event_date", ri.event_date, today)
        case = case_by_id.get(ri.case_id)
        if case is None:
            continue
        if case.resolved is not None and ri.event_date >= case.resolved:
            ld.add(
                rel,
                line,
                "event_date",
                f"{ri.event_date} is on or after the date case {case.case_id!r} was resolved "
                f"({case.resolved}): an indicator must come before the outcome it predicts.",
            )
        elif ri.event_date > case.last_observed:
            ld.add(
                rel,
                line,
                "event_date",
                f"{ri.event_date} is after case {case.case_id!r} was last observed "
                f"({case.last_observed}).",
            )
    _check_events(ld, ref_indicators.records, "reference indicator")

    for rel, line, scenario in scenarios.records:
        lines = scenario_lines.get(rel, {})
        _check_future(
            ld, rel, _line_for(lines, ("opened",)) or line, "opened", scenario.opened, today
        )
        if scenario.resolution is not None:
            where = _line_for(lines, ("resolution", "date")) or line
            _check_future(ld, rel, where, "resolution.date", scenario.resolution.date, today)

    for rel, line, (i, spec) in priors.records:
        lines = prior_lines.get(rel, {})
        for path in (("elicitation", "date"), ("review", "date")):
            value = getattr(getattr(spec, path[0]), path[1])
            where = _line_for(lines, ("priors", i, *path)) or line
            _check_future(ld, rel, where, ".".join(path), value, today)
        numbers: list[tuple[str, Any]] = [("value", spec.value)]
        if spec.distribution is not None:
            numbers += [
                (f"distribution.params.{k}", v) for k, v in spec.distribution.params.items()
            ]
        numbers += [(f"elicitation.inputs.{k}", v) for k, v in spec.elicitation.inputs.items()]
        for name, value in numbers:
            if value is None or math.isfinite(value):
                continue
            if name == "value" and value == math.inf and spec.name.startswith("half_life."):
                continue  # a half-life of .inf documents evidence that never fades
            where = _line_for(lines, ("priors", i, *name.split("."))) or line
            ld.add(
                rel,
                where,
                name,
                f"must be a finite number (only a half_life.* value may be .inf, meaning "
                f"'never fades'). Got {value!r}.",
            )

    for rel, line, (i, entry) in priors.raw:
        refs = entry.get("references")
        if not references.ok or not isinstance(refs, list):
            continue
        lines = prior_lines.get(rel, {})
        for j, ref in enumerate(refs):
            if isinstance(ref, str) and ref.strip() and ref.strip() not in references.known:
                ld.add(
                    rel,
                    _line_for(lines, ("priors", i, "references", j)) or line,
                    "references",
                    f"unknown reference {ref!r}{suggest(ref, sorted(references.known))}: "
                    f"add it to {REFERENCES_FILE}.",
                )

    if priors.ok:
        missing = [n for n in required_prior_names() if n not in priors.known]
        if missing and not priors.known:
            ld.add(
                f"{PRIORS_DIR}/",
                None,
                "name",
                f"no priors found: all {len(missing)} required priors are missing "
                "(base_rate.<category>, strength.<kind>, half_life.<kind>, "
                "weight.reliability.<A-F>, weight.credibility.<1-6>, pooling.rho, "
                "lag.log_median, lag.log_sd, lag.termination_log_median, lag.termination_log_sd).",
            )
        else:
            for name in missing:
                ld.add(
                    f"{PRIORS_DIR}/",
                    None,
                    "name",
                    f"required prior {name!r} is missing: add an entry 'name: {name}' to a "
                    f"file in {PRIORS_DIR}/.",
                )


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def load_workspace(path: str | Path = ".", *, today: dt.date | None = None) -> Workspace:
    """Read and validate a whole workspace.

    Every file is read and every check is run before anything is returned, so one call
    reports every problem of the workspace.

    Parameters
    ----------
    path : str or Path, default "."
        Workspace directory.
    today : date, optional
        The date no recorded date may be after (scenario horizons excepted). Default:
        ``datetime.date.today()``. Pass it explicitly for reproducible validation.

    Returns
    -------
    Workspace
        The validated, immutable workspace.

    Raises
    ------
    WorkspaceError
        With the list of every :class:`~georisk.errors.Problem` found (file paths relative
        to the workspace root). No partial workspace is returned.

    Examples
    --------
    >>> ws = load_workspace("path/to/workspace", today=datetime.date(2026, 11, 25))
    ... # doctest: +SKIP
    >>> ws.indicators_frame().groupby("kind").size()  # doctest: +SKIP
    """
    if today is None:
        today = dt.date.today()
    root = Path(path)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise WorkspaceError([Problem(str(path), None, None, f"workspace directory {what}.")])
    root = root.resolve()
    ld = _Loader(root)

    sources = _load_table(ld, _SOURCES)
    indicators = _load_table(ld, _INDICATORS)
    cases = _load_table(ld, _REFERENCE_CASES)
    ref_indicators = _load_table(ld, _REFERENCE_INDICATORS)
    references = _load_table(ld, _REFERENCES)
    scenarios, scenario_lines = _load_scenarios(ld)
    priors, prior_lines = _load_priors(ld)
    _cross_checks(
        ld,
        today,
        sources,
        indicators,
        cases,
        ref_indicators,
        references,
        scenarios,
        scenario_lines,
        priors,
        prior_lines,
    )
    if ld.problems:
        raise WorkspaceError(ld.problems)

    return Workspace(
        root=root,
        sources={s.source_id: s for _, _, s in sources.records},
        indicators=tuple(r for _, _, r in indicators.records),
        scenarios={s.id: s for _, _, s in scenarios.records},
        priors={spec.name: spec for _, _, (_, spec) in priors.records},
        references={r.ref_id: r for _, _, r in references.records},
        reference_cases=tuple(r for _, _, r in cases.records),
        reference_indicators=tuple(r for _, _, r in ref_indicators.records),
        file_hashes=dict(sorted(ld.hashes.items())),
    )
