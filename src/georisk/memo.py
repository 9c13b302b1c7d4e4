"""A risk memo for one scenario: Markdown and a self-contained HTML page, figures included.

:func:`write_memo` scores the scenario, gathers what an analyst needs to defend the number
and writes ``memo.md`` (figures as files next to it) and ``memo.html`` (figures embedded as
base64 PNG, CSS inline, no external resource of any kind). The memo says, in this order:

1. a warning box when the fit failed its convergence checks (never hidden further down);
2. the number: mean probability, 80% and 95% credible intervals, the ICD 203 words, and a
   plain warning sentence when the 80% interval spans two ICD 203 bands;
3. the proposition and its resolution criteria;
4. the change since the last stored run and why (:mod:`georisk.explain`), or a sentence
   saying the history holds no earlier run;
5. the drivers waterfall and the trajectory (from the history, or a backfill);
6. the top drivers in words, with the reports behind each event;
7. the sources cited, by outlet, date and title;
8. the priors used and their rationale, with whether each evidence strength was learned
   from reference cases or is its prior only;
9. the fit's diagnostics.

The memo is built once as a list of blocks (:class:`Memo`) and rendered twice. Every text
that comes from the workspace is escaped by the renderers: ``html.escape`` for HTML (an
indicator summary holding ``<script>`` shows as text) and backslash escapes for Markdown;
the HTML page also carries a Content-Security-Policy that forbids scripts, so even a
renderer bug could not run one. Link targets are kept only when they are ``http(s)`` URLs.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from georisk.atomic import write_atomic
from georisk.errors import GeoriskError
from georisk.scoring import ICD203_BANDS

__all__ = [
    "Strong",
    "Code",
    "Link",
    "Heading",
    "Paragraph",
    "Bullets",
    "Table",
    "FigureBlock",
    "WarningBox",
    "Memo",
    "MemoPaths",
    "build_memo",
    "render_markdown",
    "render_html",
    "write_memo",
    "backfill_dates",
    "backfill_trajectories",
    "peak_events",
    "usable_trajectory",
    "ledger_date",
]

log = logging.getLogger(__name__)

TOP_DRIVERS = 5
"""Number of events described in words."""

# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strong:
    """Bold inline text."""

    text: str


@dataclass(frozen=True)
class Code:
    """Inline identifier (scenario, event or indicator id)."""

    text: str


@dataclass(frozen=True)
class Link:
    """Inline link; ``url`` is dropped unless it is an http(s) URL."""

    text: str
    url: str | None


Inline = str | Strong | Code | Link


@dataclass(frozen=True)
class Heading:
    """Section heading (level 1 to 3)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of inline parts."""

    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Bullets:
    """A bulleted list; each item is a paragraph, optionally with sub-items."""

    items: tuple[Paragraph, ...]
    sub: tuple[tuple[Paragraph, ...], ...] = ()


@dataclass(frozen=True)
class Table:
    """A table of inline cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]
    numeric: tuple[int, ...] = ()
    nowrap: tuple[int, ...] = ()


@dataclass(frozen=True)
class FigureBlock:
    """An embedded figure: PNG bytes, alt text, caption, and its file name next to the memo."""

    name: str
    png: bytes = field(repr=False)
    alt: str
    caption: str


@dataclass(frozen=True)
class WarningBox:
    """A warning shown in a box (HTML) or a quoted bold paragraph (Markdown)."""

    parts: tuple[Inline, ...]


Block = Heading | Paragraph | Bullets | Table | FigureBlock | WarningBox


@dataclass
class Memo:
    """A memo as data: its title and blocks, and the numbers it states.

    Attributes
    ----------
    title : str
        Page title.
    blocks : list
        Content, top to bottom.
    numbers : dict
        The numbers stated in the memo (for tests and machine use): ``p_mean``,
        ``p_q0.10`` ..., ``previous_p_mean`` and ``change`` when a history exists.
    """

    title: str
    blocks: list[Block]
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> list[FigureBlock]:
        """The embedded figures, in order."""
        return [b for b in self.blocks if isinstance(b, FigureBlock)]


@dataclass(frozen=True)
class MemoPaths:
    """Files written by :func:`write_memo`."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]

    def __iter__(self):
        yield self.markdown
        yield self.html
        yield from self.figures


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#+\-=>]|\d+[.)])")


def _safe_url(url: str | None) -> str | None:
    return url if url and _SAFE_URL.match(url.strip()) else None


def _one_line(text: Any) -> str:
    """Collapse runs of whitespace (newlines included) to one space, keeping edge spaces."""
    return re.sub(r"\s+", " ", str(text))


def _md_text(text: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def _md_block(text: str) -> str:
    """Escape a character that would start a Markdown block (heading, list, quote)."""
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def _md_inline(part: Inline) -> str:
    if isinstance(part, Strong):
        return f"**{_md_text(part.text)}**"
    if isinstance(part, Code):
        return "`" + _one_line(part.text).replace("`", "'") + "`"
    if isinstance(part, Link):
        url = _safe_url(part.url)
        label = _md_text(part.text)
        return f"[{label}](<{url}>)" if url else label
    return _md_text(part)


def _md_parts(parts: Iterable[Inline]) -> str:
    return "".join(_md_inline(p) for p in parts)


def render_markdown(memo: Memo, *, figure_dir: str = "figures") -> str:
    """Render a memo as Markdown; figures are linked as ``figure_dir/<name>.png``.

    Parameters
    ----------
    memo : Memo
        The memo.
    figure_dir : str, default "figures"
        Folder of the figure files, relative to the Markdown file.

    Returns
    -------
    str
    """
    out: list[str] = []
    for block in memo.blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + _md_text(block.text))
        elif isinstance(block, Paragraph):
            out.append(_md_block(_md_parts(block.parts)))
        elif isinstance(block, WarningBox):
            out.append("> **Warning:** " + _md_parts(block.parts))
        elif isinstance(block, Bullets):
            lines = []
            for i, item in enumerate(block.items):
                lines.append("- " + _md_block(_md_parts(item.parts)))
                for sub in block.sub[i] if i < len(block.sub) else ():
                    lines.append("  - " + _md_block(_md_parts(sub.parts)))
            out.append("\n".join(lines))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(_md_text(h) for h in block.header) + " |"]
            lines.append(
                "|" + "|".join("---:" if i in block.numeric else "---"
                               for i in range(len(block.header))) + "|"
            )  # fmt: skip
            for row in block.rows:
                lines.append("| " + " | ".join(_md_inline(c) for c in row) + " |")
            out.append("\n".join(lines))
        elif isinstance(block, FigureBlock):
            out.append(
                f"![{_md_text(block.alt)}]({figure_dir}/{block.name}.png)\n\n"
                f"*{_md_text(block.caption)}*"
            )
    return "\n\n".join(out) + "\n"


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_inline(part: Inline) -> str:
    if isinstance(part, Strong):
        return f"<strong>{_h(part.text)}</strong>"
    if isinstance(part, Code):
        return f"<code>{_h(part.text)}</code>"
    if isinstance(part, Link):
        url = _safe_url(part.url)
        if url:
            return f'<a href="{_h(url)}" rel="noopener noreferrer">{_h(part.text)}</a>'
        return _h(part.text)
    return _h(part)


def _html_parts(parts: Iterable[Inline]) -> str:
    return "".join(_html_inline(p) for p in parts)


_CSS = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1a1a1a;
       max-width: 46rem; margin: 2rem auto; padding: 0 1.25rem; line-height: 1.5;
       font-size: 15px; background: #fff; }
h1 { font-size: 1.55rem; line-height: 1.25; margin: 0.6rem 0 0.3rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 0.5rem; border-bottom: 1px solid #ddd;
     padding-bottom: 0.2rem; }
p.meta { color: #5a5a5a; font-size: 0.85rem; margin-top: 0; }
.warning { border: 2px solid #D55E00; background: #fdf1e8; color: #1a1a1a;
           padding: 0.7rem 0.9rem; border-radius: 4px; margin: 0.8rem 0; }
.warning strong.label { color: #a84400; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; width: 100%; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f4f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
figure { margin: 1.2rem 0; }
figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #5a5a5a; font-size: 0.85rem; }
code { font-size: 0.88em; background: #f4f5f7; padding: 0 0.2em; border-radius: 3px; }
li { margin: 0.25rem 0; }
footer { margin-top: 2.5rem; color: #5a5a5a; font-size: 0.8rem; border-top: 1px solid #ddd;
         padding-top: 0.5rem; }
@media print { body { margin: 0; max-width: none; } figure { break-inside: avoid; } }
""".strip()

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)


def render_html(memo: Memo) -> str:
    """Render a memo as one self-contained HTML page.

    Figures are embedded as ``data:image/png;base64`` images, the CSS is inline, and a
    Content-Security-Policy meta tag forbids scripts and any external load. Every text is
    escaped with :func:`html.escape`.

    Parameters
    ----------
    memo : Memo
        The memo.

    Returns
    -------
    str
        The HTML document.
    """
    body: list[str] = []
    for block in memo.blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 3)
            body.append(f"<h{level}>{_h(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_parts(block.parts)}</p>")
        elif isinstance(block, WarningBox):
            body.append(
                '<div class="warning" role="alert"><strong class="label">Warning:</strong> '
                f"{_html_parts(block.parts)}</div>"
            )
        elif isinstance(block, Bullets):
            items = []
            for i, item in enumerate(block.items):
                sub = block.sub[i] if i < len(block.sub) else ()
                inner = (
                    "<ul>" + "".join(f"<li>{_html_parts(s.parts)}</li>" for s in sub) + "</ul>"
                    if sub
                    else ""
                )
                items.append(f"<li>{_html_parts(item.parts)}{inner}</li>")
            body.append("<ul>" + "".join(items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_h(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{_html_inline(c)}</td>' if i in block.numeric
                    else f'<td class="nowrap">{_html_inline(c)}</td>' if i in block.nowrap
                    else f"<td>{_html_inline(c)}</td>"
                    for i, c in enumerate(row)
                )  # fmt: skip
                + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, FigureBlock):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(
                f'<figure id="fig-{_h(block.name)}"><img src="data:image/png;base64,{data}" '
                f'alt="{_h(block.alt)}"><figcaption>{_h(block.caption)}</figcaption></figure>'
            )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(memo.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------------------------


def ledger_date(ws, as_of: dt.date | None = None) -> dt.date | None:
    """Newest date at which a ledger report became known, on or before ``as_of``.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    as_of : datetime.date, optional
        Ignore reports known after this date.

    Returns
    -------
    datetime.date or None
        None for an empty ledger.
    """
    known = []
    for ind in ws.indicators:
        source = ws.sources.get(ind.source_id)
        when = max(source.published, ind.event_date) if source else ind.event_date
        if as_of is None or when <= as_of:
            known.append(when)
    return max(known) if known else None


def backfill_dates(
    end: dt.date, *, start: dt.date | None = None, months: int = 48
) -> list[dt.date]:
    """As-of dates of a monthly backfill: each first of the month from ``start``, and ``end``.

    Parameters
    ----------
    end : datetime.date
        Last as-of date (always included).
    start : datetime.date, optional
        First date (default: the first of the month ``months`` months before ``end``).
    months : int, default 48
        Length of the default range.

    Returns
    -------
    list of datetime.date
        Increasing dates.
    """
    if start is None:
        m = end.year * 12 + (end.month - 1) - months
        start = dt.date(m // 12, m % 12 + 1, 1)
    dates = []
    m = start.year * 12 + start.month - 1 + (0 if start.day == 1 else 1)
    day = dt.date(m // 12, m % 12 + 1, 1)
    while day < end:
        dates.append(day)
        m += 1
        day = dt.date(m // 12, m % 12 + 1, 1)
    dates.append(end)
    return dates


def backfill_trajectories(
    ws,
    posterior,
    dates: Sequence[dt.date] | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    scenario_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the workspace at past as-of dates with one posterior (a backfill).

    Each date sees only the reports known by then (:func:`georisk.scoring.score_run`);
    the parameters come from today's fit. Nothing is stored; use ``georisk score --as-of``
    to fill the history store instead.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    posterior : Posterior
        The posterior draws.
    dates : sequence of date, optional
        As-of dates; default: :func:`backfill_dates` from ``start`` to ``end``.
    start, end : datetime.date, optional
        Range of the default dates (default: four years before ``end``; today).
    scenario_ids : sequence of str, optional
        Keep only these scenarios.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Scores (the trajectory columns of the history store: ``scenario_id, title,
        run_id`` = ``"backfill"``, ``as_of, fit_id, p_mean, p_q10, p_q90, p_q025,
        p_q975, p_base_mean, diagnostics_status``) and the contributions of every date
        (with an ``as_of`` column).
    """
    from georisk.scoring import score_run

    if dates is None:
        dates = backfill_dates(end or dt.date.today(), start=start)
    if not dates:
        raise ValueError("a backfill needs at least one as-of date.")
    scores, contributions = [], []
    for day in dates:
        run = score_run(ws, posterior, as_of=day)
        s, c = run.scores, run.contributions
        if scenario_ids is not None and len(s):
            s = s[s["scenario_id"].isin(scenario_ids)]
            c = c[c["scenario_id"].isin(scenario_ids)] if len(c) else c
        if len(s):
            scores.append(s)
        if len(c):
            contributions.append(c.assign(as_of=day))
    if not scores:
        return pd.DataFrame(), pd.DataFrame()
    frame = pd.concat(scores, ignore_index=True)
    frame = frame.rename(
        columns={"p_q0.10": "p_q10", "p_q0.90": "p_q90", "p_q0.025": "p_q025",
                 "p_q0.975": "p_q975", "diagnostics": "diagnostics_status"}
    )  # fmt: skip
    frame["run_id"] = "backfill"
    contrib = pd.concat(contributions, ignore_index=True) if contributions else pd.DataFrame()
    return frame, contrib


def usable_trajectory(trajectory: pd.DataFrame | None) -> bool:
    """Whether a stored trajectory can be drawn as a line: two or more scored as-of dates."""
    if trajectory is None or trajectory.empty or "as_of" not in trajectory.columns:
        return False
    scored = trajectory[trajectory["p_mean"].notna()] if "p_mean" in trajectory else trajectory
    return scored["as_of"].nunique() >= 2


def peak_events(
    contributions: pd.DataFrame | None, trajectory: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per event: its largest contribution, and when it first entered the scores.

    Parameters
    ----------
    contributions : pandas.DataFrame
        Contributions of many runs or dates (``term``, ``term_type``, ``logodds_mean``, and
        ``as_of`` or ``run_id``).
    trajectory : pandas.DataFrame, optional
        ``run_id`` and ``as_of`` of the runs, to date contributions that carry only a
        ``run_id`` (as read from the history store).

    Returns
    -------
    pandas.DataFrame
        Event rows only, one per ``term``, with ``first_seen``: the earliest as-of date at
        which the event was scored (the date it moved the number), when known.
    """
    if contributions is None or contributions.empty:
        return pd.DataFrame(columns=["term", "event_date", "logodds_mean"])
    ev = contributions[contributions["term_type"] == "event"].copy()
    if "as_of" not in ev.columns and trajectory is not None and "run_id" in ev.columns:
        runs = trajectory[["run_id", "as_of"]].drop_duplicates("run_id")
        ev = ev.merge(runs, on="run_id", how="left")
    if "as_of" in ev.columns:
        first = pd.to_datetime(ev["as_of"]).groupby(ev["term"]).min()
        ev["first_seen"] = ev["term"].map(first)
    ev["_size"] = ev["logodds_mean"].abs()
    ev = ev.sort_values("_size", kind="stable").drop_duplicates("term", keep="last")
    return ev.drop(columns="_size").reset_index(drop=True)


def _pct(p: float) -> str:
    return f"{100 * float(p):.1f}%"


def _band_range(words: str) -> str:
    for w, lo, hi in ICD203_BANDS:
        if w == words:
            return f"{100 * lo:.0f}-{100 * hi:.0f}%"
    return ""


def _fig_png(fig, dpi: int) -> bytes:
    from georisk.plotting.style import freeze_layout, house_style

    freeze_layout(fig)
    buf = io.BytesIO()
    with house_style():
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def _open_history(ws, history: Any):
    """Return the history store to read (or None) and whether this call opened it."""
    if history is False:
        return None, False
    if history is not None and hasattr(history, "trajectory"):
        return history, False
    try:
        from georisk.history import HistoryStore, resolve_store_path
    except ImportError:  # pragma: no cover - the history module is part of georisk
        return None, False
    path = resolve_store_path(ws, history)
    if not path.exists():
        if history is not None:
            raise GeoriskError(f"no history store at {path}.")
        return None, False
    return HistoryStore(path, read_only=True), True


# --------------------------------------------------------------------------------------------
# Building the memo
# --------------------------------------------------------------------------------------------


def _scenario_row(run, ws, scenario_id: str) -> pd.Series:
    from georisk.schemas import suggest

    if scenario_id not in ws.scenarios:
        raise GeoriskError(
            f"unknown scenario {scenario_id!r}{suggest(scenario_id, list(ws.scenarios))}. "
            f"Scenarios: {', '.join(sorted(ws.scenarios))}."
        )
    rows = run.scores[run.scores["scenario_id"] == scenario_id] if len(run.scores) else []
    if len(rows) == 0:
        scenario = ws.scenarios[scenario_id]
        raise GeoriskError(
            f"scenario {scenario_id!r} is not scored as of {run.as_of}: it is "
            f"{scenario.status} or not yet open (opened {scenario.opened})."
        )
    row = rows.iloc[0]
    if pd.isna(row.get("p_mean")):
        raise GeoriskError(
            f"scenario {scenario_id!r} is not scored as of {run.as_of}: {row.get('note')}."
        )
    return row


def _history_section(
    store, scenario_id: str, run, row: pd.Series
) -> tuple[list[Block], pd.DataFrame | None, dict[str, Any]]:
    """Blocks of the "change since the last run" section, the stored trajectory, numbers."""
    from georisk.explain import PARTS, decompose_change, explain_change

    blocks: list[Block] = [Heading(2, "Change since the last run")]
    numbers: dict[str, Any] = {}
    if store is None:
        blocks.append(
            Paragraph(("There is no earlier run in the history: no history store was found, "
                       "so no change can be reported yet. Run ",
                       Code("georisk score"), " on a schedule to build one.",))
        )  # fmt: skip
        return blocks, None, numbers
    traj = store.trajectory(scenario_id)
    traj = traj[traj["p_mean"].notna()] if len(traj) else traj
    traj = traj[pd.to_datetime(traj["as_of"]).dt.date <= run.as_of] if len(traj) else traj
    if len(traj) == 0:
        blocks.append(
            Paragraph(("There is no earlier run of this scenario in the history, so there is "
                       "no change to explain yet.",))
        )  # fmt: skip
        return blocks, None, numbers
    traj = traj.reset_index(drop=True)
    latest = traj.iloc[-1]
    same = (
        pd.Timestamp(latest["as_of"]).date() == run.as_of
        and str(latest["fit_id"]) == str(run.fit_id)
        and math.isclose(float(latest["p_mean"]), float(row["p_mean"]), rel_tol=0, abs_tol=1e-12)
    )
    if same and len(traj) == 1:
        blocks.append(
            Paragraph(("This is the first stored run of the scenario (run ",
                       Code(str(latest["run_id"])), "): there is no earlier run in the history "
                       "to compare with.",))
        )  # fmt: skip
        return blocks, traj, numbers
    if same:
        explanation = explain_change(store, scenario_id)
        before, parts = explanation.before, explanation.parts
        now_label: tuple[Inline, ...] = ("run ", Code(str(explanation.after["run_id"])))
        source: tuple[Inline, ...] = (Code("georisk.explain.explain_change"),
                                      " on the two stored runs")  # fmt: skip
    else:
        prev = latest
        before = {k: prev[k] for k in ("run_id", "as_of", "fit_id", "p_mean", "p_q10", "p_q90")}
        c0 = store.contributions(int(prev["run_id"]), scenario_id)
        c1 = run.contributions[run.contributions["scenario_id"] == scenario_id]
        parts = decompose_change(
            c0, c1, before_fit_id=str(prev["fit_id"]), after_fit_id=str(run.fit_id)
        )
        now_label = ("this memo's score",)
        source = (Code("georisk.explain.decompose_change"), ", stored run against this memo")
    p0, p1 = float(before["p_mean"]), float(row["p_mean"])
    numbers.update(previous_run_id=before["run_id"], previous_p_mean=p0, change=p1 - p0)
    as_of0 = pd.Timestamp(before["as_of"]).date().isoformat()
    refit = str(before["fit_id"]) != str(run.fit_id)
    if abs(p1 - p0) < 5e-4:
        moved: tuple[Inline, ...] = ("the mean probability did not move (", Strong(_pct(p1)),
                                     f", {100 * (p1 - p0):+.2f} percentage points)")  # fmt: skip
    else:
        moved = ("the mean probability moved from ", Strong(_pct(p0)), " to ", Strong(_pct(p1)),
                 f" ({100 * (p1 - p0):+.1f} percentage points)")  # fmt: skip
    blocks.append(
        Paragraph((
            "Since run ", Code(str(before["run_id"])), f" (as of {as_of0}), ", *moved,
            ", comparing with ", *now_label, ".",
            " The model was refitted in between." if refit else " Both use the same fit.",
        ))
    )  # fmt: skip
    labels = dict(PARTS)
    shown = parts[parts["logodds_change"].abs() > 5e-4] if len(parts) else parts
    if len(shown):
        rows = []
        for r in shown.itertuples(index=False):
            top = getattr(r, "top_terms", "") or ""
            rows.append((labels.get(r.part, str(r.part)), f"{r.logodds_change:+.3f}", str(top)))
        blocks.append(
            Paragraph(("Why, in log-odds (the parts add up to the change of the mean "
                       "log-odds; from ", *source, "):"))
        )  # fmt: skip
        blocks.append(Table(("Part", "Log-odds change", "Largest terms"), tuple(rows), (1,)))
    else:
        blocks.append(Paragraph(("No part of the model moved it by more than 0.0005 log-odds.",)))
    return blocks, traj, numbers


def build_memo(
    ws,
    posterior,
    scenario_id: str,
    *,
    as_of: dt.date | None = None,
    history: Any = None,
    backfill_months: int = 36,
    dpi: int = 300,
) -> Memo:
    """Gather the memo's content for one scenario (no file is written).

    Parameters
    ----------
    ws : Workspace
        The workspace.
    posterior : Posterior
        The posterior draws (diagnostics and strength provenance included).
    scenario_id : str
        An open scenario.
    as_of : datetime.date, optional
        Assessment date (default today).
    history : HistoryStore, path, None or False
        The history store: an open store, its path, None for the workspace's default store
        (or ``$GEORISK_HISTORY``) if it exists, False to ignore any history.
    backfill_months : int, default 36
        Without a stored trajectory over at least two as-of dates
        (:func:`usable_trajectory`), the trajectory figure is a monthly
        backfill over this many months (or since the scenario opened).
    dpi : int, default 300
        Resolution of the embedded figures (300 prints sharply; lower gives a lighter page).

    Returns
    -------
    Memo
    """
    from georisk import __version__
    from georisk.diagnostics import ESS_MIN, RHAT_MAX
    from georisk.plotting import plot_drivers, plot_trajectory
    from georisk.priors import describe_distribution
    from georisk.scoring import score_run
    from georisk.vocab import REFERENCE_CATEGORIES

    as_of = as_of or dt.date.today()
    run = score_run(ws, posterior, as_of=as_of)
    row = _scenario_row(run, ws, scenario_id)
    scenario = ws.scenarios[scenario_id]
    contrib = run.contributions[run.contributions["scenario_id"] == scenario_id]
    data_day = ledger_date(ws, as_of)
    diag = posterior.diagnostics
    unconverged = not diag.converged or row.get("diagnostics") == "unconverged"
    numbers: dict[str, Any] = {
        k: float(row[k])
        for k in ("p_mean", "p_median", "p_q0.025", "p_q0.10", "p_q0.90", "p_q0.975",
                  "p_base_mean")
    }  # fmt: skip
    numbers.update(icd203=row["icd203"], band_straddle=bool(row["band_straddle"]))

    blocks: list[Block] = []
    # 1. an unconverged fit, at the very top
    if unconverged:
        problems = "; ".join(diag.problems) if diag.problems else "see the diagnostics below"
        blocks.append(
            WarningBox((Strong("UNCONVERGED FIT."), " The model fit ", Code(posterior.fit_id),
                        " failed its convergence checks (", problems, "). The numbers in this "
                        "memo are not reliable: do not publish them before a converged refit.",))
        )  # fmt: skip
    blocks.append(Heading(1, scenario.title))
    meta = (f"Risk memo · scenario {scenario_id} · as of {as_of.isoformat()} · fit "
            f"{posterior.fit_id} · ledger to {data_day.isoformat() if data_day else 'n/a'} · "
            f"georisk {__version__}")  # fmt: skip
    blocks.append(Paragraph((meta,)))

    # 2. the number
    blocks.append(Heading(2, "Assessment"))
    blocks.append(
        Paragraph((
            "georisk puts the probability that this scenario resolves yes by ",
            f"{scenario.horizon.isoformat()} at ", Strong(_pct(row["p_mean"])), ", which ICD 203 "
            "calls ", Strong(str(row["icd203"])), f" ({_band_range(str(row['icd203']))}). The "
            "80% credible interval runs from ", _pct(row["p_q0.10"]), " to ", _pct(row["p_q0.90"]),
            " and the 95% interval from ", _pct(row["p_q0.025"]), " to ", _pct(row["p_q0.975"]),
            ". With the same timing but no evidence, the base rate of its reference class would "
            "give ", _pct(row["p_base_mean"]), ".",
        ))
    )  # fmt: skip
    if bool(row["band_straddle"]):
        from georisk.scoring import icd203_band

        lo_words, hi_words = icd203_band(float(row["p_q0.10"])), icd203_band(float(row["p_q0.90"]))
        blocks.append(
            WarningBox((f"the 80% interval spans more than one ICD 203 band, from "
                        f"'{lo_words}' to '{hi_words}'. The single phrase '{row['icd203']}' "
                        "sounds more certain than the evidence allows; quote the interval "
                        "with it.",))
        )  # fmt: skip
    blocks.append(
        Table(
            ("Quantity", "Value"),
            (
                ("Mean probability", _pct(row["p_mean"])),
                ("Median probability", _pct(row["p_median"])),
                ("80% credible interval", f"{_pct(row['p_q0.10'])} to {_pct(row['p_q0.90'])}"),
                ("95% credible interval", f"{_pct(row['p_q0.025'])} to {_pct(row['p_q0.975'])}"),
                ("Base rate (same timing, no evidence)", _pct(row["p_base_mean"])),
                ("ICD 203 words", str(row["icd203"])),
                ("Evidence shift (mean log-odds)", f"{float(row['evidence_logodds_mean']):+.3f}"),
                ("Events / indicators counted", f"{int(row['n_events'])} / "
                                                 f"{int(row['n_indicators'])}"),
                ("Fit diagnostics", diag.status),
            ),
            (1,),
        )
    )  # fmt: skip

    # 3. proposition and resolution
    category = REFERENCE_CATEGORIES.get(scenario.reference_class, {})
    blocks += [
        Heading(2, "Proposition and resolution"),
        Paragraph((Strong("Proposition. "), _one_line(scenario.proposition))),
        Paragraph((Strong("Resolution criteria. "), _one_line(scenario.resolution_criteria))),
        Paragraph((
            Strong("Horizon and class. "), f"Horizon {scenario.horizon.isoformat()}; reference "
            f"class {scenario.reference_class.replace('_', ' ')}",
            f" (class event: {category['event']})" if category.get("event") else "", ".",
        )),
    ]  # fmt: skip

    # 4. change since the last run
    store, opened = _open_history(ws, history)
    try:
        hist_blocks, traj, hist_numbers = _history_section(store, scenario_id, run, row)
        stored_contrib = store.contributions(None, scenario_id) if traj is not None else None
    finally:
        if opened and store is not None:
            store.close()
    blocks += hist_blocks
    numbers.update(hist_numbers)

    # 5. figures
    blocks.append(Heading(2, "Figures"))
    fig = plot_drivers(run, scenario_id=scenario_id, data_date=data_day)
    blocks.append(
        FigureBlock("drivers", _fig_png(fig, dpi), "Log-odds waterfall from the base rate to the "
                    "forecast", "What drives the forecast: the class base rate, each event and "
                    "the timing term, in log-odds, with 80% intervals.")
    )  # fmt: skip
    if usable_trajectory(traj):
        trajectory, events, note = traj.assign(title=scenario.title), stored_contrib, "history"
        if pd.Timestamp(traj["as_of"].iloc[-1]).date() != as_of:
            current = pd.DataFrame([{
                "run_id": "this memo", "as_of": as_of, "p_mean": row["p_mean"],
                "p_q10": row["p_q0.10"], "p_q90": row["p_q0.90"],
                "p_base_mean": row["p_base_mean"], "diagnostics_status": row["diagnostics"],
                "fit_id": run.fit_id, "title": scenario.title,
            }])  # fmt: skip
            trajectory = pd.concat([trajectory, current], ignore_index=True)
    else:
        first = scenario.opened if scenario.announced is None else min(
            scenario.opened, scenario.announced
        )
        dates = backfill_dates(as_of, months=backfill_months)
        dates = [d for d in dates if d >= first] or [as_of]
        trajectory, events = backfill_trajectories(ws, posterior, dates, scenario_ids=[scenario_id])
        note = "backfill"
    fig = plot_trajectory(
        trajectory, events=peak_events(events, trajectory),
        scenario_id=scenario_id, title=scenario.title, data_date=data_day,
    )  # fmt: skip
    caption = (
        "Probability over time from the stored scoring runs, with the events that moved it."
        if note == "history"
        else "Probability over time, backfilled: today's fit scored monthly with only what "
        "was known at each date (the history holds fewer than two as-of dates)."
    )
    blocks.append(FigureBlock("trajectory", _fig_png(fig, dpi), "Probability over time", caption))

    # 6. top drivers in words
    blocks += _driver_blocks(ws, contrib)

    # 7. sources
    blocks += _source_blocks(ws, contrib, as_of)

    # 8. priors
    blocks += _prior_blocks(ws, posterior, scenario, contrib, describe_distribution)

    # 9. diagnostics
    blocks.append(Heading(2, "Model fit and diagnostics"))
    status_words = (
        "converged: every check passed" if diag.converged
        else "UNCONVERGED: at least one check failed"
    )  # fmt: skip
    blocks.append(
        Paragraph(("Fit ", Code(posterior.fit_id), f" is {status_words}. Thresholds: R-hat at "
                   f"most {RHAT_MAX}, bulk and tail effective sample size at least "
                   f"{ESS_MIN:.0f}, no divergent transitions (Vehtari et al. 2021).",))
    )  # fmt: skip
    meta_fit = posterior.meta or {}
    blocks.append(
        Table(
            ("Check", "Value"),
            (
                ("Status", diag.status),
                ("Largest R-hat", f"{diag.max_rhat:.4f}"),
                ("Smallest bulk ESS", f"{diag.min_ess_bulk:.0f}"),
                ("Smallest tail ESS", f"{diag.min_ess_tail:.0f}"),
                ("Divergent transitions", str(diag.divergences)),
                ("Posterior draws", str(posterior.n_draws)),
                ("Reference cases (project / window)",
                 f"{meta_fit.get('n_project_cases', 'n/a')} / "
                 f"{meta_fit.get('n_window_cases', 'n/a')}"),
            ),
            (1,),
        )
    )  # fmt: skip
    if diag.problems:
        blocks.append(Bullets(tuple(Paragraph((p,)) for p in diag.problems)))
    blocks.append(
        Paragraph((f"Generated by georisk {__version__} on {dt.date.today().isoformat()}. The "
                   "memo paraphrases the evidence ledger and cites its sources; check the "
                   "sources before quoting them.",))
    )  # fmt: skip
    return Memo(title=f"Risk memo: {scenario.title}", blocks=blocks, numbers=numbers)


def _indicators_of(ws, ids: str | None) -> list:
    by_id = {i.indicator_id: i for i in ws.indicators}
    return [by_id[i] for i in (ids or "").split(";") if i in by_id]


def _driver_blocks(ws, contrib: pd.DataFrame) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Top drivers")]
    events = contrib[contrib["term_type"] == "event"].copy()
    base = contrib[contrib["term_type"] == "base_rate"]
    timing = contrib[contrib["term_type"] == "timing"]
    other = []
    if len(base):
        other.append(f"the class base rate contributes {float(base['logodds_mean'].iloc[0]):+.3f}")
    if len(timing):
        other.append(f"the timing term {float(timing['logodds_mean'].iloc[0]):+.3f}")
    if events.empty:
        blocks.append(
            Paragraph(("No event in the ledger bears on this scenario by the as-of date; "
                       + (", ".join(other) + " log-odds." if other else ""),))
        )  # fmt: skip
        return blocks
    events["_size"] = events["logodds_mean"].abs()
    events = events.sort_values("_size", ascending=False, kind="stable")
    top = events.head(TOP_DRIVERS)
    blocks.append(
        Paragraph((f"{len(events)} event(s) bear on the scenario; the {len(top)} with the "
                   "largest effect on the log-odds are below (80% intervals in brackets). "
                   "Apart from them, " + ", ".join(other) + " log-odds.",))
    )  # fmt: skip
    items, subs = [], []
    for r in top.to_dict("records"):
        day = r["event_date"]
        day = day.isoformat() if isinstance(day, dt.date) else str(day)
        kind = str(r["kind"]).replace("_", " ")
        items.append(
            Paragraph((
                Code(str(r["term"])), f": a {kind} event dated {day} that {r['direction']} the "
                "scenario; it moves the log-odds by ", Strong(f"{r['logodds_mean']:+.3f}"),
                f" ({r['logodds_q0.10']:+.3f} to {r['logodds_q0.90']:+.3f}), with weight "
                f"{float(r['weight']):+.3f} (reliability x credibility x recency).",
            ))
        )  # fmt: skip
        sub = []
        for ind in _indicators_of(ws, r["indicator_ids"]):
            source = ws.sources.get(ind.source_id)
            where = f"{source.outlet}, {source.published.isoformat()}" if source else ind.source_id
            sub.append(Paragraph((Code(ind.indicator_id), f" ({where}): ", _one_line(ind.summary))))
        subs.append(tuple(sub))
    blocks.append(Bullets(tuple(items), tuple(subs)))
    return blocks


def _source_blocks(ws, contrib: pd.DataFrame, as_of: dt.date) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Sources cited")]
    used: dict[str, list[str]] = {}
    for ids in contrib.loc[contrib["term_type"] == "event", "indicator_ids"].dropna():
        for ind in _indicators_of(ws, ids):
            used.setdefault(ind.source_id, []).append(ind.indicator_id)
    if not used:
        blocks.append(Paragraph((f"No source bears on this scenario as of {as_of.isoformat()}.",)))
        return blocks
    rows = []
    for sid in sorted(used, key=lambda s: (ws.sources[s].published, s) if s in ws.sources else
                      (dt.date.min, s)):  # fmt: skip
        src = ws.sources.get(sid)
        if src is None:
            continue
        rows.append((
            src.outlet, src.published.isoformat(), Link(src.title, src.url),
            src.reliability, ", ".join(sorted(used[sid])),
        ))  # fmt: skip
    blocks.append(
        Paragraph((f"{len(rows)} source(s) behind the indicators counted, oldest first "
                   "(reliability graded A-F, NATO AJP-2.1):",))
    )  # fmt: skip
    blocks.append(
        Table(("Outlet", "Published", "Title", "Grade", "Indicators"), tuple(rows), nowrap=(1,))
    )
    return blocks


def _prior_blocks(ws, posterior, scenario, contrib: pd.DataFrame, describe) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Priors used")]

    def refs(spec) -> str:
        names = []
        for key in spec.references:
            ref = ws.references.get(key)
            names.append(_one_line(ref.citation) if ref else key)
        return "; ".join(names)

    base = ws.priors.get(f"base_rate.{scenario.reference_class}")
    if base is not None:
        blocks.append(
            Paragraph((Strong("Base rate of the class. "), Code(base.name), " is ",
                       describe(base), ". ", _one_line(base.rationale),
                       " References: ", refs(base), "."))
        )  # fmt: skip
    kinds = sorted({str(k) for k in contrib.loc[contrib["term_type"] == "event", "kind"]})
    if not kinds:
        blocks.append(Paragraph(("No evidence strength is used: no event bears on the scenario.",)))
        return blocks
    items = []
    for kind in kinds:
        spec = ws.priors.get(f"strength.{kind}")
        origin = posterior.strength_source(kind)
        if spec is None:
            items.append(Paragraph((Code(f"strength.{kind}"), f": {origin}.")))
            continue
        items.append(
            Paragraph((Code(spec.name), " is ", describe(spec), "; ", Strong(origin), ". ",
                       _one_line(spec.rationale)))
        )  # fmt: skip
    blocks.append(Paragraph((Strong("Evidence strengths of the kinds used."),)))
    blocks.append(Bullets(tuple(items)))
    return blocks


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_memo(
    ws,
    posterior,
    scenario_id: str,
    out_dir: str | os.PathLike[str],
    *,
    as_of: dt.date | None = None,
    history: Any = None,
    dpi: int = 300,
) -> MemoPaths:
    """Write ``memo.md``, ``memo.html`` and the figure PNGs of one scenario.

    Every file is written to a temporary name and renamed into place, figures first and
    the HTML last, so a reader never sees a half-written memo.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    posterior : Posterior
        The posterior draws.
    scenario_id : str
        An open scenario.
    out_dir : path-like
        Output folder (created if needed).
    as_of : datetime.date, optional
        Assessment date (default today).
    history : HistoryStore, path, None or False
        See :func:`build_memo`.
    dpi : int, default 300
        Resolution of the figures.

    Returns
    -------
    MemoPaths
        ``markdown``, ``html`` and ``figures`` (``figures/<name>.png``).
    """
    out = Path(out_dir)
    memo = build_memo(ws, posterior, scenario_id, as_of=as_of, history=history, dpi=dpi)
    figures = []
    for fig in memo.figures:
        target = out / "figures" / f"{fig.name}.png"
        write_atomic(target, fig.png)
        figures.append(target)
    md, page = out / "memo.md", out / "memo.html"
    write_atomic(md, render_markdown(memo).encode("utf-8"))
    write_atomic(page, render_html(memo).encode("utf-8"))
    log.info("memo for %s written to %s", scenario_id, out)
    return MemoPaths(markdown=md, html=page, figures=tuple(figures))
