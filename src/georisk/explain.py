r"""What moved a scenario's number between two runs: an exact decomposition.

Each stored score comes with its contribution terms (:mod:`georisk.scoring`): per posterior
draw :math:`d`, the log-odds of the score is

.. math:: \operatorname{logit} P^{(d)} = b^{(d)} + \sum_e t_e^{(d)} + \tau^{(d)}

(base rate :math:`b`; timing :math:`\tau = \operatorname{logit}P^0 - b`, which depends
only on the base rate, the lag distributions and the calendar; and one term per event,
:math:`t_e = c_e\,(\operatorname{logit}P - \operatorname{logit}P^0)/\sum c`, its
Aumann-Shapley share of the evidence's effect, with :math:`c_e = s_e w_e \beta_{k(e)}`).
Means are linear, so the *mean* log-odds is the sum of the term means, and
between an earlier run :math:`0` and a later run :math:`1`

.. math:: \Delta \overline{\operatorname{logit} P} = \Delta\bar b
          + \sum_{e \in 1 \setminus 0} \bar t_e^1 - \sum_{e \in 0 \setminus 1} \bar t_e^0
          + \sum_{e \in 0 \cap 1} (\bar t_e^1 - \bar t_e^0) + \Delta\bar\tau

exactly. The parts (:data:`PARTS`):

``refit_base_rate``
    :math:`\Delta\bar b` when the fit changed (new priors, reference cases, model version or
    sampler settings).
``scenario_base_rate``
    :math:`\Delta\bar b` with the same fit: only a changed scenario definition (its reference
    class) moves the base rate then.
``new_events`` / ``removed_events``
    Events scored only in the later / only in the earlier run (new indicators in the
    ledger, or reports that reached the as-of date; removed or unlinked reports).
``weights``
    Continuing events whose contribution changed without a refit: fading with time, edited
    reliability or credibility, and the rescaling of every event's share when the horizon
    comes nearer or other evidence arrives (the by-horizon effect of a shift of
    :math:`\eta` depends on where :math:`\eta` is). With a refit, the change of a
    continuing event is split exactly as
    :math:`w^1 m^1 - w^0 m^0 = (w^1 - w^0) m^0 + w^1 (m^1 - m^0)`, with
    :math:`m = \bar t / w` the event's mean effective strength: the first product is
    ``weights``, the second ``refit_strengths``. Without a refit all of it is ``weights``.
``refit_strengths``
    Continuing events moved because the refit changed the strengths :math:`\beta`.
``timing``
    :math:`\Delta\bar\tau`: the passage of time (a nearer horizon, a longer wait since the
    announcement, a shorter remaining window). It does not depend on the evidence; with a
    refit it also carries the new base-rate and lag estimates' effect on timing.

The parts add up to the change of the mean log-odds to floating-point precision (checked
to ``1e-9`` on every call). The mean log-odds is not the log-odds of the mean probability;
both probabilities are reported alongside.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from georisk.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from georisk.history import HistoryStore

__all__ = [
    "PARTS",
    "TOLERANCE",
    "Explanation",
    "RunLookupError",
    "decompose_change",
    "term_changes",
    "explain_change",
]

PARTS: tuple[tuple[str, str], ...] = (
    ("refit_base_rate", "refit: changed priors or reference cases (base rate)"),
    ("scenario_base_rate", "changed scenario definition (base rate, same fit)"),
    ("new_events", "new indicators (events only in the later run)"),
    ("removed_events", "removed indicators (events only in the earlier run)"),
    ("weights", "continuing events: fading, edited reports, or rescaled by time/new evidence"),
    ("refit_strengths", "continuing events: refit changed the evidence strengths"),
    ("timing", "passage of time (horizon nearer, time since announcement)"),
)
"""The parts of a change, ``(key, label)``, in display order."""

TOLERANCE = 1e-9
"""Largest allowed gap between the sum of the parts and the total change (log-odds)."""


class RunLookupError(StoreError, LookupError):
    """The history has no run or score matching the request."""


def _terms_of(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        term = str(row["term"])
        term_type = row.get("term_type")
        if term_type is None or (isinstance(term_type, float) and math.isnan(term_type)):
            term_type = term if term in ("base_rate", "timing") else "event"
        if term in out:
            raise ValueError(f"term {term!r} appears twice in one run's contributions.")
        weight = row.get("weight")
        weight = None if weight is None or not math.isfinite(float(weight)) else float(weight)
        value = float(row["logodds_mean"])
        if not math.isfinite(value):
            raise ValueError(
                f"the contribution of {term!r} is not finite ({value}); such a score cannot "
                "be decomposed."
            )
        out[term] = {
            "term_type": str(term_type),
            "kind": row.get("kind"),
            "weight": weight,
            "value": value,
        }
    return out


def term_changes(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    before_fit_id: str | None = None,
    after_fit_id: str | None = None,
) -> pd.DataFrame:
    """Per-term change between two runs of one scenario, each assigned to its part(s).

    Parameters
    ----------
    before, after : pandas.DataFrame
        Contribution terms of one scenario in the earlier and the later run (columns
        ``term``, ``term_type``, ``kind``, ``weight``, ``logodds_mean``: a slice of
        :meth:`georisk.history.HistoryStore.contributions` or of
        :attr:`georisk.scoring.ScoreRun.contributions`).
    before_fit_id, after_fit_id : str, optional
        Fit ids of the two runs; they decide whether a refit happened (equal or both
        missing: no refit).

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term, term_type, kind, status`` (``new``, ``removed``,
        ``continuing``), ``logodds_before, logodds_after, change``, ``weight_before,
        weight_after``, and one column per part key of :data:`PARTS` holding the term's
        share of the change (each row's part columns add up to its ``change``). Sorted by
        the size of the change.
    """
    import pandas as pd

    refit = before_fit_id != after_fit_id
    t0, t1 = _terms_of(before), _terms_of(after)
    keys = [k for k, _ in PARTS]
    rows = []
    for term in list(t1) + [t for t in t0 if t not in t1]:
        a, b = t0.get(term), t1.get(term)
        ref = b or a
        v0 = a["value"] if a else 0.0
        v1 = b["value"] if b else 0.0
        change = v1 - v0
        parts = dict.fromkeys(keys, 0.0)
        status = "continuing" if a and b else ("new" if b else "removed")
        term_type = ref["term_type"]
        if term_type == "base_rate":
            parts["refit_base_rate" if refit else "scenario_base_rate"] = change
        elif term_type == "timing":
            parts["timing"] = change
        elif status == "new":
            parts["new_events"] = change
        elif status == "removed":
            parts["removed_events"] = change
        elif not refit:
            parts["weights"] = change
        else:
            w0, w1 = a["weight"], b["weight"]
            if w0 is None or w1 is None:
                parts["refit_strengths"] = change  # weights unknown (migrated rows)
            else:
                if w0 != 0.0:
                    m0 = v0 / w0
                elif w1 != 0.0:
                    m0 = v1 / w1
                else:
                    m0 = 0.0
                parts["weights"] = (w1 - w0) * m0
                parts["refit_strengths"] = change - parts["weights"]
        rows.append(
            {
                "term": term,
                "term_type": term_type,
                "kind": ref["kind"],
                "status": status,
                "logodds_before": v0 if a else math.nan,
                "logodds_after": v1 if b else math.nan,
                "change": change,
                "weight_before": a["weight"] if a else math.nan,
                "weight_after": b["weight"] if b else math.nan,
                **parts,
            }
        )
    columns = [
        "term", "term_type", "kind", "status", "logodds_before", "logodds_after", "change",
        "weight_before", "weight_after", *keys,
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=columns)
    order = df["change"].abs().sort_values(ascending=False, kind="stable").index
    return df.loc[order].reset_index(drop=True)


def decompose_change(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    before_fit_id: str | None = None,
    after_fit_id: str | None = None,
) -> pd.DataFrame:
    """Split the change of a scenario's mean log-odds between two runs into its parts.

    Parameters
    ----------
    before, after : pandas.DataFrame
        Contribution terms of one scenario in the earlier and the later run (see
        :func:`term_changes`).
    before_fit_id, after_fit_id : str, optional
        Fit ids of the two runs.

    Returns
    -------
    pandas.DataFrame
        One row per part of :data:`PARTS` (all of them, zeros included), columns ``part``,
        ``label``, ``logodds_change``, ``share`` (of the total change; NaN when the total
        is zero), ``n_terms`` (terms contributing) and ``top_terms`` (the largest, with
        their change). ``logodds_change`` adds up to ``sum(after) - sum(before)`` within
        :data:`TOLERANCE`.

    Raises
    ------
    AssertionError
        If the parts do not add up (a bug, never expected).
    """
    import pandas as pd

    terms = term_changes(before, after, before_fit_id=before_fit_id, after_fit_id=after_fit_id)
    total = math.fsum(float(v) for v in after["logodds_mean"]) - math.fsum(
        float(v) for v in before["logodds_mean"]
    )
    refit = before_fit_id != after_fit_id
    rows = []
    for key, label in PARTS:
        values = terms[key]
        value = math.fsum(float(v) for v in values)
        moved = terms.loc[values != 0.0, ["term", key]]
        moved = moved.reindex(moved[key].abs().sort_values(ascending=False).index)
        top = "; ".join(f"{t} ({v:+.3f})" for t, v in moved.head(3).itertuples(index=False))
        if key == "timing" and refit:
            label += "; includes the refit's lag estimates"
        rows.append(
            {
                "part": key,
                "label": label,
                "logodds_change": value,
                "share": value / total if abs(total) > 1e-12 else math.nan,
                "n_terms": int(len(moved)),
                "top_terms": top,
            }
        )
    parts = pd.DataFrame(rows)
    gap = abs(math.fsum(parts["logodds_change"]) - total)
    if not gap <= TOLERANCE:
        raise AssertionError(
            f"the parts of the change add up to within {gap:.3g} of the total, more than "
            f"{TOLERANCE}: please report this bug."
        )
    return parts


@dataclass
class Explanation:
    """Why a scenario's probability changed between two stored runs.

    Attributes
    ----------
    scenario_id : str
        The scenario.
    before, after : dict
        The two runs: ``run_id, as_of, fit_id, started_at, p_mean, p_q10, p_q90,
        logodds_mean, diagnostics_status``.
    parts : pandas.DataFrame
        :func:`decompose_change`.
    terms : pandas.DataFrame
        :func:`term_changes`.
    """

    scenario_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    parts: pd.DataFrame
    terms: pd.DataFrame

    @property
    def total_logodds_change(self) -> float:
        """Change of the mean log-odds, later minus earlier run."""
        return float(self.after["logodds_mean"]) - float(self.before["logodds_mean"])

    @property
    def p_change(self) -> float:
        """Change of the mean probability, later minus earlier run."""
        return float(self.after["p_mean"]) - float(self.before["p_mean"])

    @property
    def refit(self) -> bool:
        """Whether the two runs used different fits."""
        return self.before["fit_id"] != self.after["fit_id"]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready view."""
        from georisk.history import json_safe

        return json_safe(
            {
                "scenario_id": self.scenario_id,
                "before": self.before,
                "after": self.after,
                "refit": self.refit,
                "p_change": self.p_change,
                "logodds_change": self.total_logodds_change,
                "parts": self.parts.to_dict("records"),
                "terms": self.terms.to_dict("records"),
            }
        )


def _parse_ref(value) -> int | dt.date | None:
    if value is None or isinstance(value, int | dt.date):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"A run reference must be a run id (e.g. 12) or a date YYYY-MM-DD. Got {value!r}."
        ) from None


def _pick(traj: pd.DataFrame, ref, scenario_id: str, *, default_row: int) -> int:
    """Row position in the trajectory for a run id, a date, or the default position."""
    if ref is None:
        return default_row % len(traj)
    if isinstance(ref, int) and not isinstance(ref, bool):
        hits = [i for i, r in enumerate(traj["run_id"]) if int(r) == ref]
        if not hits:
            raise RunLookupError(
                f"run {ref} has no score for {scenario_id!r}; runs that do: "
                f"{', '.join(str(int(r)) for r in traj['run_id'][-10:])}."
            )
        return hits[0]
    hits = [i for i, d in enumerate(traj["as_of"]) if _as_date(d) <= ref]
    if not hits:
        raise RunLookupError(
            f"no run scored {scenario_id!r} as of {ref} or earlier; the first is as of "
            f"{_as_date(traj['as_of'].iloc[0])}."
        )
    return hits[-1]


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return value.to_pydatetime().date()


def explain_change(
    store_or_path: HistoryStore | str | Path,
    scenario_id: str,
    since: int | str | dt.date | None = None,
    *,
    until: int | str | dt.date | None = None,
    wait: float | None = None,
) -> Explanation:
    """Explain what moved a scenario's probability between two stored runs.

    Parameters
    ----------
    store_or_path : HistoryStore or path
        An open store, or the path of one (opened read-only and closed again).
    scenario_id : str
        The scenario.
    since : int, date or str, optional
        The earlier run: a run id, or a date (the last run as of that date or earlier).
        Default: the run just before ``until`` in the scenario's trajectory.
    until : int, date or str, optional
        The later run, same forms (default: the latest run that scored the scenario).
    wait : float, optional
        Seconds to wait for a busy store (when a path is given).

    Returns
    -------
    Explanation
        The two runs, the parts (adding up to the change of the mean log-odds within
        :data:`TOLERANCE`) and the per-term changes.

    Raises
    ------
    RunLookupError
        The scenario was never scored, or scored only once, or a reference matches no run.
    """
    from georisk.history import DEFAULT_WAIT, HistoryStore, _scalar

    if not isinstance(store_or_path, HistoryStore):
        with HistoryStore(
            store_or_path, read_only=True, wait=DEFAULT_WAIT if wait is None else wait
        ) as store:
            return explain_change(store, scenario_id, since, until=until)
    store = store_or_path
    since_ref, until_ref = _parse_ref(since), _parse_ref(until)
    traj = store.trajectory(scenario_id)
    traj = traj[traj["p_mean"].notna()].reset_index(drop=True)
    if traj.empty:
        from georisk.schemas import suggest

        known = store.scenario_ids()
        raise RunLookupError(
            f"no stored score for scenario {scenario_id!r}"
            f"{suggest(scenario_id, known)}. Scenarios in the history: "
            f"{', '.join(known) if known else 'none yet (run `georisk score`)'}."
        )
    j = _pick(traj, until_ref, scenario_id, default_row=-1)
    if since_ref is None:
        if j == 0:
            raise RunLookupError(
                f"{scenario_id!r} has no score before run {int(traj['run_id'][j])}: nothing "
                "to compare with yet."
            )
        i = j - 1
    else:
        i = _pick(traj, since_ref, scenario_id, default_row=0)
    if i > j:
        raise RunLookupError(
            f"the earlier run ({int(traj['run_id'][i])}, as of {_as_date(traj['as_of'][i])}) "
            f"comes after the later one ({int(traj['run_id'][j])}, as of "
            f"{_as_date(traj['as_of'][j])}); swap --since and --run."
        )
    if i == j:
        raise RunLookupError(
            f"both ends of the comparison are run {int(traj['run_id'][j])}; choose an "
            "earlier --since run or date."
        )
    fields = (
        "run_id", "as_of", "fit_id", "started_at", "p_mean", "p_q10", "p_q90",
        "logodds_mean", "diagnostics_status",
    )  # fmt: skip
    runs = []
    for k in (i, j):
        row = {f: _scalar(traj[f].iloc[k]) for f in fields}
        row["as_of"] = _as_date(traj["as_of"].iloc[k])
        row["run_id"] = int(row["run_id"])
        runs.append(row)
    before, after = runs
    c0 = store.contributions(before["run_id"], scenario_id)
    c1 = store.contributions(after["run_id"], scenario_id)
    for run, c in ((before, c0), (after, c1)):
        if c.empty or run["logodds_mean"] is None:
            raise RunLookupError(
                f"run {run['run_id']} stored no contributions for {scenario_id!r} (a store "
                "migrated from an older schema?): it cannot be decomposed."
            )
        gap = abs(math.fsum(c["logodds_mean"]) - float(run["logodds_mean"]))
        if not gap <= TOLERANCE:
            raise AssertionError(
                f"run {run['run_id']}: the terms of {scenario_id!r} add up to within "
                f"{gap:.3g} of its mean log-odds: the stored run is inconsistent."
            )
    kw = {"before_fit_id": before["fit_id"], "after_fit_id": after["fit_id"]}
    parts = decompose_change(c0, c1, **kw)
    terms = term_changes(c0, c1, **kw)
    total = float(after["logodds_mean"]) - float(before["logodds_mean"])
    gap = abs(math.fsum(parts["logodds_change"]) - total)
    if not gap <= TOLERANCE:
        raise AssertionError(
            f"the parts add up to within {gap:.3g} of the change of the mean log-odds."
        )
    return Explanation(
        scenario_id=scenario_id, before=before, after=after, parts=parts, terms=terms
    )
