r"""History of scoring runs: an embedded DuckDB database that is never left half-written.

Every ``georisk score`` run is stored in ``<workspace>/.georisk/history.duckdb`` (override
with ``--store PATH`` or the ``GEORISK_HISTORY`` environment variable; the option wins).
The file holds four tables (schema version :data:`SCHEMA_VERSION`):

``meta(schema_version, created_by, created_at)``
    One row. ``created_by`` starts with ``georisk``: the store's identity.
``runs``
    One row per run: ``run_id`` (1, 2, ... in the order runs were written), ``started_at``
    and ``finished_at`` (UTC), ``as_of``, ``fit_id``, the SHA-256 of each input group
    (``ledger_hash``, ``scenarios_hash``, ``priors_hash``, ``reference_hash``; see
    :meth:`georisk.workspace.Workspace.input_hash`), ``workspace_git_commit`` (``NULL``
    outside a git repository), ``georisk_version``, ``model_version``,
    ``diagnostics_status``, ``diagnostics_json``, ``sampler_json``, ``refit`` (whether the
    run fitted the model), ``changed_inputs`` (which inputs differ from the previous run, or
    ``nothing changed``) and a free ``note``.
``scores``
    One row per run and scenario: mean, median, 95% (``p_q025``, ``p_q975``) and 80%
    (``p_q10``, ``p_q90``) credible bounds, the base-rate-only mean ``p_base_mean``, the mean
    log-odds and the evidence's share of it, ICD 203 words, whether the 80% interval spans
    two bands, the number of events and the diagnostics status (``unconverged`` scores are
    stored as such, never silently). ``note`` says why a scenario was not scored (horizon
    reached); its numbers are then ``NULL``.
``contributions``
    One row per run, scenario and term (``base_rate``, each event, ``timing``): the term's
    mean log-odds and its 80% and 95% intervals. For each run and scenario the term means
    add up to the score's ``logodds_mean`` (see :mod:`georisk.explain`).

Reliability
-----------
* **Atomic runs.** :meth:`HistoryStore.write_run` inserts the run, its scores and its
  contributions in one transaction: a crash (even ``SIGKILL``) leaves the whole run or
  nothing; DuckDB's write-ahead log replays committed transactions only.
* **One writer.** DuckDB lets one process open the file for writing. A second writer (or a
  reader while a writer holds the file) retries for ``wait`` seconds, then gets
  :class:`~georisk.errors.StoreBusyError`. ``georisk score`` opens the store only for the
  moment it writes a run, so readers rarely have to wait.
* **Foreign files are never touched.** An existing file that is not a DuckDB database, or a
  DuckDB database without georisk's ``meta`` identity, raises
  :class:`~georisk.errors.StoreError` before anything is written; the file is only ever
  opened read-only to find out.
* **Migrations.** A store written with an older schema is migrated on open, in one
  transaction (all steps or none): see :data:`MIGRATIONS`. A store with a newer schema
  than this georisk knows is refused, not modified.

The ordering of runs
--------------------
"Previous" and "latest" follow the trajectory: runs are ordered by ``(as_of, run_id)``.
The previous run of a run is the one just before it in that order (so a backfill of past
dates does not become the "previous run" of today's scheduled run), and the latest run
is the one with the latest as-of date, ties going to the last written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from georisk.errors import StoreBusyError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "ENV_VAR",
    "DEFAULT_WAIT",
    "INPUT_GROUPS",
    "MIGRATIONS",
    "HistoryStore",
    "default_store_path",
    "resolve_store_path",
    "check_store_path",
    "iter_dates",
    "input_hashes",
    "workspace_git_commit",
    "json_safe",
]

SCHEMA_VERSION = 1
"""Version of the store layout written by this georisk."""

STORE_FILENAME = "history.duckdb"
ENV_VAR = "GEORISK_HISTORY"
DEFAULT_WAIT = 5.0
"""Seconds a writer or reader retries while another process holds the store."""

INPUT_GROUPS: tuple[str, ...] = ("ledger", "scenarios", "priors", "reference")
"""Input groups hashed with every run (``<group>_hash`` columns of ``runs``)."""

_CREATED_BY_PREFIX = "georisk"

_SCHEMA_V1: tuple[str, ...] = (
    """CREATE TABLE meta (
        schema_version INTEGER NOT NULL,
        created_by VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE runs (
        run_id BIGINT PRIMARY KEY,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        as_of DATE NOT NULL,
        fit_id VARCHAR NOT NULL,
        ledger_hash VARCHAR,
        scenarios_hash VARCHAR,
        priors_hash VARCHAR,
        reference_hash VARCHAR,
        workspace_git_commit VARCHAR,
        georisk_version VARCHAR,
        model_version VARCHAR,
        diagnostics_status VARCHAR NOT NULL,
        diagnostics_json VARCHAR,
        sampler_json VARCHAR,
        refit BOOLEAN,
        changed_inputs VARCHAR,
        note VARCHAR
    )""",
    """CREATE TABLE scores (
        run_id BIGINT NOT NULL,
        scenario_id VARCHAR NOT NULL,
        title VARCHAR,
        p_mean DOUBLE,
        p_median DOUBLE,
        p_q025 DOUBLE,
        p_q10 DOUBLE,
        p_q90 DOUBLE,
        p_q975 DOUBLE,
        p_base_mean DOUBLE,
        logodds_mean DOUBLE,
        evidence_logodds_mean DOUBLE,
        icd203 VARCHAR,
        band_straddle BOOLEAN,
        n_events INTEGER,
        diagnostics_status VARCHAR,
        note VARCHAR
    )""",
    """CREATE TABLE contributions (
        run_id BIGINT NOT NULL,
        scenario_id VARCHAR NOT NULL,
        term VARCHAR NOT NULL,
        term_type VARCHAR NOT NULL,
        kind VARCHAR,
        direction VARCHAR,
        event_date DATE,
        indicator_ids VARCHAR,
        weight DOUBLE,
        logodds_mean DOUBLE,
        logodds_q10 DOUBLE,
        logodds_q90 DOUBLE,
        logodds_q025 DOUBLE,
        logodds_q975 DOUBLE
    )""",
)

#: Layout of schema version 0 (georisk pre-releases), kept to document :data:`MIGRATIONS`
#: and to test them: no reference-case hash, git commit, sampler settings, refit flag,
#: changed inputs or notes; scores without 95% bounds, log-odds, band flag or event count;
#: contributions without type, dates, weights or 95% bounds.
SCHEMA_V0: tuple[str, ...] = (
    """CREATE TABLE meta (schema_version INTEGER, created_by VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE runs (
        run_id BIGINT, started_at TIMESTAMP, finished_at TIMESTAMP, as_of DATE,
        fit_id VARCHAR, ledger_hash VARCHAR, scenarios_hash VARCHAR, priors_hash VARCHAR,
        georisk_version VARCHAR, model_version VARCHAR, diagnostics_status VARCHAR,
        diagnostics_json VARCHAR
    )""",
    """CREATE TABLE scores (
        run_id BIGINT, scenario_id VARCHAR, title VARCHAR, p_mean DOUBLE, p_median DOUBLE,
        p_q10 DOUBLE, p_q90 DOUBLE, p_base_mean DOUBLE, icd203 VARCHAR,
        diagnostics_status VARCHAR
    )""",
    """CREATE TABLE contributions (
        run_id BIGINT, scenario_id VARCHAR, term VARCHAR, kind VARCHAR,
        logodds_mean DOUBLE, logodds_q10 DOUBLE, logodds_q90 DOUBLE
    )""",
)


def _migrate_v0_to_v1(con) -> None:
    """Add the columns schema 1 introduced; old rows get NULL (unknown), never a guess."""
    added = {
        "runs": (
            ("reference_hash", "VARCHAR"),
            ("workspace_git_commit", "VARCHAR"),
            ("sampler_json", "VARCHAR"),
            ("refit", "BOOLEAN"),
            ("changed_inputs", "VARCHAR"),
            ("note", "VARCHAR"),
        ),
        "scores": (
            ("p_q025", "DOUBLE"),
            ("p_q975", "DOUBLE"),
            ("logodds_mean", "DOUBLE"),
            ("evidence_logodds_mean", "DOUBLE"),
            ("band_straddle", "BOOLEAN"),
            ("n_events", "INTEGER"),
            ("note", "VARCHAR"),
        ),
        "contributions": (
            ("term_type", "VARCHAR"),
            ("direction", "VARCHAR"),
            ("event_date", "DATE"),
            ("indicator_ids", "VARCHAR"),
            ("weight", "DOUBLE"),
            ("logodds_q025", "DOUBLE"),
            ("logodds_q975", "DOUBLE"),
        ),
    }
    for table, columns in added.items():
        for name, sql_type in columns:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
    con.execute(
        "UPDATE contributions SET term_type = CASE WHEN term IN ('base_rate', 'timing') "
        "THEN term ELSE 'event' END"
    )
    con.execute("UPDATE runs SET changed_inputs = 'unknown (migrated from schema 0)'")


MIGRATIONS: dict[int, tuple[str, Callable[[Any], None]]] = {
    0: ("add input, provenance, interval and weight columns", _migrate_v0_to_v1),
}
"""``from_version -> (description, step)``. Opening a store of version ``v`` applies the
steps ``v, v+1, ..., SCHEMA_VERSION - 1`` in one transaction, then records the new version."""


# --------------------------------------------------------------------------------------
# Paths, hashes, provenance
# --------------------------------------------------------------------------------------


def _root_of(ws_or_root) -> Path:
    if isinstance(ws_or_root, str | os.PathLike):
        return Path(ws_or_root)
    return Path(ws_or_root.root)


def default_store_path(ws_or_root) -> Path:
    """Default history store of a workspace: ``<root>/.georisk/history.duckdb``.

    Parameters
    ----------
    ws_or_root : Workspace or path
        A loaded workspace or its directory.

    Returns
    -------
    Path
    """
    return _root_of(ws_or_root) / ".georisk" / STORE_FILENAME


def resolve_store_path(ws_or_root, store: str | os.PathLike[str] | None = None) -> Path:
    """Return the store a command uses: ``store``, else ``$GEORISK_HISTORY``, else the default.

    Parameters
    ----------
    ws_or_root : Workspace or path
        The workspace (for the default path).
    store : path, optional
        Explicit store path (``--store``).

    Returns
    -------
    Path
    """
    if store:
        return Path(store).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_store_path(ws_or_root)


def input_hashes(ws) -> dict[str, str]:
    """SHA-256 of each input group of a workspace (:data:`INPUT_GROUPS`).

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.

    Returns
    -------
    dict of str to str
        ``{"ledger": ..., "scenarios": ..., "priors": ..., "reference": ...}``.
    """
    return {group: ws.input_hash(group) for group in INPUT_GROUPS}


def workspace_git_commit(root, *, timeout: float = 2.0) -> str | None:
    """Commit checked out in the workspace's git repository, or None.

    Runs ``git rev-parse HEAD`` in ``root`` with a timeout. Never raises: no git, not a
    repository, a repository without commits or a slow file system all give ``None``.

    Parameters
    ----------
    root : path
        Workspace directory.
    timeout : float, default 2.0
        Seconds to wait for git.

    Returns
    -------
    str or None
        The full commit hash.
    """
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(root),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit):
        return None
    return commit


def json_safe(value: Any) -> Any:
    """Convert a value to plain JSON types: numpy scalars, dates, NaN/inf (-> None).

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples and scalars.

    Returns
    -------
    object
        Something :func:`json.dumps` accepts with ``allow_nan=False``.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError, ImportError):
        pass
    return str(value)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------


class _Locked(Exception):
    """Internal: another process holds the DuckDB file lock."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _busy_detail(exc: BaseException) -> str:
    m = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(exc))
    if m:
        return f"process {m.group(2)} ({Path(m.group(1)).name}) holds it"
    return "another process holds it"


def _has_duckdb_header(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[8:12] == b"DUCK"


def _foreign(path: Path, why: str) -> StoreError:
    return StoreError(
        f"{path} is not a georisk history store ({why}). georisk never overwrites or "
        "modifies such a file: move it away, or choose another store with --store PATH or "
        f"${ENV_VAR}."
    )


class HistoryStore:
    """The history of scoring runs in one DuckDB file.

    Use it as a context manager so the file is released promptly (other processes wait
    for it)::

        with HistoryStore(default_store_path(ws)) as store:
            run_id = store.write_run(run, posterior, ws)
            store.trajectory("kz-npp-first-concrete-by-2030")

    Parameters
    ----------
    path : path
        The store file. Created (with its folder) when missing, unless ``read_only``.
    read_only : bool, default False
        Open for reading only (``history``, ``explain``, ``export``). The file must exist.
    wait : float, default 5.0
        Seconds to retry while another process holds the file, before
        :class:`~georisk.errors.StoreBusyError`.
    migrate : bool, default True
        Migrate a store written with an older schema (one transaction). With False, such a
        store raises :class:`~georisk.errors.StoreError` instead (a dry run writes nothing).

    Raises
    ------
    StoreError
        The path is a folder, a foreign or corrupt file, a store written by a newer georisk,
        or (``read_only``) does not exist.
    StoreBusyError
        Another process kept the file for longer than ``wait`` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        wait: float = DEFAULT_WAIT,
        migrate: bool = True,
    ):
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self.wait = float(wait)
        self.migrate = migrate
        self.migrated_from: int | None = None
        self._con = None
        self._con = self._open()

    # -- opening -------------------------------------------------------------------------

    def _connect(self, read_only: bool):
        import duckdb

        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            if _is_lock_error(exc):
                raise _Locked(_busy_detail(exc)) from exc
            if "not a valid duckdb database" in str(exc).lower():
                raise _foreign(self.path, "not a DuckDB database") from None
            raise StoreError(f"cannot open the history store {self.path}: {exc}") from None

    def _open(self):
        if self.path.is_dir():
            raise StoreError(f"the history store path {self.path} is a folder, not a file.")
        deadline = time.monotonic() + max(self.wait, 0.0)
        pause = 0.05
        while True:
            try:
                return self._try_open()
            except _Locked as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreBusyError(
                        f"the history store {self.path} is busy: {exc} (a scoring run is "
                        f"writing to it). Waited {self.wait:g} s; try again in a moment or "
                        "allow a longer wait with --wait SECONDS."
                    ) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.5)

    def _try_open(self):
        if not self.path.exists():
            if self.read_only:
                raise StoreError(
                    f"no history store at {self.path} yet: run `georisk score` first "
                    f"(or point --store / ${ENV_VAR} at an existing store)."
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._connect(read_only=False)
            try:
                if not self._tables(con):
                    self._create(con)
                else:
                    self._identify(con)
            except BaseException:
                con.close()
                raise
            return con
        if not _has_duckdb_header(self.path):
            # Possibly a store another process is creating right now: DuckDB's own check
            # (read-only, never writes) tells a locked new store from a foreign file.
            self._connect(read_only=True).close()
            raise _foreign(self.path, "not a DuckDB database")
        con = self._connect(read_only=True)
        try:
            version = self._identify(con)
        except BaseException:
            con.close()
            raise
        if version == SCHEMA_VERSION and self.read_only:
            return con
        con.close()
        if version < SCHEMA_VERSION and not self.migrate:
            raise StoreError(
                f"the history store {self.path} has the older schema version {version}; it "
                f"is migrated to version {SCHEMA_VERSION} by the next run that writes to it."
            )
        con = self._connect(read_only=False)
        try:
            version = self._identify(con)
            if version < SCHEMA_VERSION:
                self._migrate(con, version)
        except BaseException:
            con.close()
            raise
        if self.read_only:
            con.close()
            con = self._connect(read_only=True)
        return con

    @staticmethod
    def _tables(con) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_catalog = current_database()"
        ).fetchall()
        return {r[0] for r in rows}

    def _identify(self, con) -> int:
        tables = self._tables(con)
        if "meta" not in tables:
            shown = ", ".join(sorted(tables)[:8]) or "no tables"
            raise _foreign(self.path, f"a DuckDB database without georisk's 'meta' table: {shown}")
        try:
            rows = con.execute("SELECT schema_version, created_by FROM meta").fetchall()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ours"
            raise _foreign(self.path, f"unreadable 'meta' table: {exc}") from None
        if len(rows) != 1 or not str(rows[0][1] or "").startswith(_CREATED_BY_PREFIX):
            raise _foreign(self.path, "its 'meta' table was not written by georisk")
        version = int(rows[0][0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the history store {self.path} has schema version {version}, written by a "
                f"newer georisk; this georisk reads up to version {SCHEMA_VERSION}. Upgrade "
                "georisk; the file was not modified."
            )
        missing = {"runs", "scores", "contributions"} - tables
        if missing:
            raise StoreError(
                f"the history store {self.path} lacks table(s) {sorted(missing)}: it is "
                "damaged. It was not modified; move it away to start a new history."
            )
        return version

    @staticmethod
    def _create(con) -> None:
        from georisk import __version__

        con.execute("BEGIN TRANSACTION")
        try:
            for ddl in _SCHEMA_V1:
                con.execute(ddl)
            con.execute(
                "INSERT INTO meta VALUES (?, ?, ?)",
                [SCHEMA_VERSION, f"{_CREATED_BY_PREFIX} {__version__}", _utcnow()],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _migrate(self, con, version: int) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            for v in range(version, SCHEMA_VERSION):
                if v not in MIGRATIONS:
                    raise StoreError(f"no migration from history schema {v} to {v + 1}.")
                MIGRATIONS[v][1](con)
            con.execute("UPDATE meta SET schema_version = ?", [SCHEMA_VERSION])
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"could not migrate the history store {self.path} from schema {version} to "
                f"{SCHEMA_VERSION}: {exc}. Nothing was changed."
            ) from exc
        self.migrated_from = version

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def con(self):
        """The open DuckDB connection (for ad-hoc SQL in notebooks)."""
        if self._con is None:
            raise StoreError(f"the history store {self.path} is closed.")
        return self._con

    @property
    def schema_version(self) -> int:
        """Schema version of the open store."""
        return int(self.con.execute("SELECT schema_version FROM meta").fetchone()[0])

    def close(self) -> None:
        """Release the file (other processes may then open it)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "open" if self._con is not None else "closed"
        return f"HistoryStore({str(self.path)!r}, {mode}, {state})"

    # -- writing -------------------------------------------------------------------------

    def write_run(
        self,
        score_run,
        posterior,
        ws=None,
        *,
        started_at: dt.datetime | None = None,
        finished_at: dt.datetime | None = None,
        refit: bool = False,
        note: str | None = None,
        hashes: dict[str, str] | None = None,
        git_commit: str | None | bool = True,
    ) -> int:
        """Store one scoring run, whole or not at all.

        Parameters
        ----------
        score_run : georisk.scoring.ScoreRun
            The scores and contributions.
        posterior : georisk.posterior.Posterior
            The posterior used (diagnostics, sampler settings and model version are stored).
        ws : Workspace, optional
            The scored workspace, for its input hashes and git commit.
        started_at, finished_at : datetime, optional
            UTC times of the run (default: now).
        refit : bool, default False
            Whether this run fitted the model (False: reused a stored fit).
        note : str, optional
            Free text kept with the run (e.g. ``backfill``).
        hashes : dict, optional
            Input hashes by group (default: :func:`input_hashes` of ``ws``).
        git_commit : str, None or bool, default True
            The workspace's commit; ``True`` asks git (:func:`workspace_git_commit`),
            ``None``/``False`` stores NULL.

        Returns
        -------
        int
            The new run's id.
        """
        import json as _json

        from georisk import MODEL_VERSION, __version__

        if self.read_only:
            raise StoreError(f"the history store {self.path} was opened read-only.")
        if hashes is None:
            hashes = input_hashes(ws) if ws is not None else {}
        if git_commit is True:
            git_commit = workspace_git_commit(ws.root) if ws is not None else None
        elif git_commit is False:
            git_commit = None
        now = _utcnow()
        started_at = _naive_utc(started_at or now)
        finished_at = _naive_utc(finished_at or now)
        scores = _scores_frame(score_run)
        contributions = _contributions_frame(score_run)
        diagnostics = posterior.diagnostics
        meta = getattr(posterior, "meta", {}) or {}
        status = str(getattr(score_run, "diagnostics_status", diagnostics.status))
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            run_id = int(con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0])
            row = {
                "run_id": run_id,
                "started_at": started_at,
                "finished_at": finished_at,
                "as_of": score_run.as_of,
                "fit_id": str(score_run.fit_id),
                **{f"{g}_hash": hashes.get(g) for g in INPUT_GROUPS},
                "workspace_git_commit": git_commit,
                "georisk_version": __version__,
                "model_version": str(meta.get("model_version", MODEL_VERSION)),
                "diagnostics_status": status,
                "diagnostics_json": _json.dumps(json_safe(diagnostics.as_dict()), sort_keys=True),
                "sampler_json": _json.dumps(json_safe(meta.get("sampler", {})), sort_keys=True),
                "refit": bool(refit),
                "changed_inputs": None,
                "note": note,
            }
            row["changed_inputs"] = self.compare_inputs(
                as_of=row["as_of"],
                hashes=hashes,
                fit_id=row["fit_id"],
                model_version=row["model_version"],
            )
            columns = list(row)
            con.execute(
                f"INSERT INTO runs ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [row[c] for c in columns],
            )
            scores.insert(0, "run_id", run_id)
            contributions.insert(0, "run_id", run_id)
            _insert_frame(con, "scores", scores)
            _insert_frame(con, "contributions", contributions)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            raise
        return run_id

    def compare_inputs(
        self,
        *,
        as_of: dt.date,
        hashes: dict[str, str],
        fit_id: str,
        model_version: str,
    ) -> str:
        """Which inputs differ from the last stored run as of ``as_of`` or earlier.

        Parameters
        ----------
        as_of : date
            The new run's as-of date.
        hashes : dict
            The new run's input hashes by group.
        fit_id, model_version : str
            The new run's fit and model version.

        Returns
        -------
        str
            ``"first run"``, ``"nothing changed"``, or the changed names among
            ``ledger, scenarios, priors, reference, fit, model_version``, comma-separated.
        """
        prev = self.con.execute(
            "SELECT run_id, ledger_hash, scenarios_hash, priors_hash, reference_hash, fit_id, "
            "model_version FROM runs WHERE as_of <= ? ORDER BY as_of DESC, run_id DESC LIMIT 1",
            [as_of],
        ).fetchone()
        if prev is None:
            return "first run"
        names = [*INPUT_GROUPS, "fit", "model_version"]
        now = [hashes.get(g) for g in INPUT_GROUPS] + [fit_id, model_version]
        changed = [n for n, a, b in zip(names, prev[1:], now, strict=True) if a != b]
        return ", ".join(changed) if changed else "nothing changed"

    # -- reading -------------------------------------------------------------------------

    def _df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def runs(self) -> pd.DataFrame:
        """All runs, one row each, in the order they were written.

        Returns
        -------
        pandas.DataFrame
            The ``runs`` table plus ``n_scores`` (scenarios stored).
        """
        return self._df(
            "SELECT r.*, coalesce(n.n_scores, 0) AS n_scores FROM runs r LEFT JOIN "
            "(SELECT run_id, count(*) AS n_scores FROM scores GROUP BY run_id) n USING (run_id) "
            "ORDER BY r.run_id"
        )

    def run(self, run_id: int) -> dict[str, Any]:
        """One run's row as a dict; StoreError if there is no such run."""
        df = self._df("SELECT * FROM runs WHERE run_id = ?", [int(run_id)])
        if df.empty:
            raise StoreError(f"no run {run_id} in the history store {self.path}.")
        out = {k: _scalar(v) for k, v in df.iloc[0].items()}
        if isinstance(out.get("as_of"), dt.datetime):
            out["as_of"] = out["as_of"].date()
        return out

    def latest_run_id(self) -> int | None:
        """Id of the latest run (latest as-of date, then last written), or None."""
        row = self.con.execute(
            "SELECT run_id FROM runs ORDER BY as_of DESC, run_id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def scenario_ids(self) -> list[str]:
        """Every scenario id with at least one stored score."""
        return [
            r[0]
            for r in self.con.execute(
                "SELECT DISTINCT scenario_id FROM scores ORDER BY scenario_id"
            ).fetchall()
        ]

    def scores(self, run_id: int | None = None) -> pd.DataFrame:
        """Scores of one run (default: the latest), one row per scenario."""
        if run_id is None:
            run_id = self.latest_run_id()
            if run_id is None:
                return self._df("SELECT * FROM scores WHERE false")
        return self._df("SELECT * FROM scores WHERE run_id = ? ORDER BY scenario_id", [int(run_id)])

    def latest_scores(self) -> pd.DataFrame:
        """Scores of the latest run, with the run's as-of date, fit and times.

        Returns
        -------
        pandas.DataFrame
            One row per scenario of the latest run (empty when the store has no runs).
        """
        return self._df(
            "SELECT s.*, r.as_of, r.fit_id, r.started_at, r.finished_at FROM scores s "
            "JOIN runs r USING (run_id) WHERE s.run_id = (SELECT run_id FROM runs "
            "ORDER BY as_of DESC, run_id DESC LIMIT 1) ORDER BY s.scenario_id"
        )

    def history(self) -> pd.DataFrame:
        """Every stored score with its run's metadata, ordered by as-of date and run."""
        return self._df(
            "SELECT s.*, r.as_of, r.started_at, r.finished_at, r.fit_id, r.refit, "
            "r.changed_inputs, r.georisk_version, r.model_version, r.note AS run_note "
            "FROM scores s JOIN runs r USING (run_id) "
            "ORDER BY r.as_of, s.run_id, s.scenario_id"
        )

    def trajectory(self, scenario_id: str) -> pd.DataFrame:
        """One scenario's scores over time, with each run's metadata.

        Parameters
        ----------
        scenario_id : str
            The scenario.

        Returns
        -------
        pandas.DataFrame
            One row per run that stored the scenario, ordered by ``(as_of, run_id)``:
            ``run_id, started_at, finished_at, as_of, fit_id, refit, changed_inputs`` and the
            score columns (``p_mean``, intervals, ``p_base_mean``, ``diagnostics_status`` ...).
            Empty if the scenario was never scored.
        """
        return self._df(
            "SELECT r.run_id, r.started_at, r.finished_at, r.as_of, r.fit_id, r.refit, "
            "r.changed_inputs, r.note AS run_note, s.* EXCLUDE (run_id, scenario_id) "
            "FROM scores s JOIN runs r USING (run_id) WHERE s.scenario_id = ? "
            "ORDER BY r.as_of, r.run_id",
            [scenario_id],
        )

    def contributions(
        self, run_id: int | None = None, scenario_id: str | None = None
    ) -> pd.DataFrame:
        """Contribution terms of one run (or of every run when ``run_id`` is None).

        Parameters
        ----------
        run_id : int, optional
            The run; None for all runs.
        scenario_id : str, optional
            Only this scenario.

        Returns
        -------
        pandas.DataFrame
            One row per run, scenario and term.
        """
        where, params = [], []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(int(run_id))
        if scenario_id is not None:
            where.append("scenario_id = ?")
            params.append(scenario_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._df(
            f"SELECT * FROM contributions {clause} ORDER BY run_id, scenario_id, "
            "CASE term_type WHEN 'base_rate' THEN 0 WHEN 'event' THEN 1 ELSE 2 END, term",
            params,
        )

    def previous_scores(
        self, run_id: int | None = None, *, as_of: dt.date | None = None
    ) -> pd.DataFrame:
        """Each scenario's score in the run before a given point of the trajectory.

        Parameters
        ----------
        run_id : int, optional
            A stored run: for each of its scenarios, the last score before it in
            ``(as_of, run_id)`` order.
        as_of : date, optional
            Without ``run_id``: the last score with an as-of date on or before this date
            (what a dry run compares with).

        Returns
        -------
        pandas.DataFrame
            ``scenario_id, prev_run_id, prev_as_of, prev_fit_id, prev_p_mean,
            prev_logodds_mean, prev_diagnostics_status``; scenarios never scored before
            are absent.
        """
        if run_id is not None:
            info = self.run(run_id)
            cond = "(r.as_of < ? OR (r.as_of = ? AND r.run_id < ?))"
            params: list[Any] = [info["as_of"], info["as_of"], int(run_id)]
        elif as_of is not None:
            cond = "r.as_of <= ?"
            params = [as_of]
        else:
            raise ValueError("previous_scores needs a run_id or an as_of date.")
        return self._df(
            "SELECT s.scenario_id, r.run_id AS prev_run_id, r.as_of AS prev_as_of, "
            "r.fit_id AS prev_fit_id, s.p_mean AS prev_p_mean, "
            "s.logodds_mean AS prev_logodds_mean, "
            "s.diagnostics_status AS prev_diagnostics_status "
            f"FROM scores s JOIN runs r USING (run_id) WHERE s.p_mean IS NOT NULL AND {cond} "
            "QUALIFY row_number() OVER (PARTITION BY s.scenario_id "
            "ORDER BY r.as_of DESC, r.run_id DESC) = 1 ORDER BY s.scenario_id",
            params,
        )


def check_store_path(path: str | os.PathLike[str]) -> None:
    """Fail fast if an existing file at ``path`` cannot be used as the history store.

    Called before a long fit so that a foreign file is reported at once. A missing file is
    fine (it will be created) and so is a busy store (the write waits for it later). A store
    with an older schema is migrated here.

    Parameters
    ----------
    path : path
        The store file.

    Raises
    ------
    StoreError
        The path is a folder, a foreign or corrupt file, or a store from a newer georisk.
    """
    path = Path(path).expanduser()
    if not path.exists():
        return
    try:
        HistoryStore(path, read_only=True, wait=0.0).close()
    except StoreBusyError:
        return


# --------------------------------------------------------------------------------------
# Frames written
# --------------------------------------------------------------------------------------

_SCORE_FLOATS = {
    "p_mean": "p_mean",
    "p_median": "p_median",
    "p_q025": "p_q0.025",
    "p_q10": "p_q0.10",
    "p_q90": "p_q0.90",
    "p_q975": "p_q0.975",
    "p_base_mean": "p_base_mean",
    "logodds_mean": "logodds_mean",
    "evidence_logodds_mean": "evidence_logodds_mean",
}
_CONTRIB_FLOATS = {
    "weight": "weight",
    "logodds_mean": "logodds_mean",
    "logodds_q10": "logodds_q0.10",
    "logodds_q90": "logodds_q0.90",
    "logodds_q025": "logodds_q0.025",
    "logodds_q975": "logodds_q0.975",
}


def _text(series) -> Any:
    """Convert to a text column DuckDB reads quickly (pandas string dtype, NA if missing)."""
    import pandas as pd

    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series
    return series.astype("string")


def _column(df, name: str, n: int):
    import pandas as pd

    if name in df.columns:
        return df[name]
    return pd.Series([None] * n, index=df.index, dtype=object)


def _scores_frame(score_run) -> pd.DataFrame:
    import pandas as pd

    src = score_run.scores
    n = len(src)
    out = pd.DataFrame(index=src.index)
    out["scenario_id"] = _text(_column(src, "scenario_id", n))
    out["title"] = _text(_column(src, "title", n))
    for dst, col in _SCORE_FLOATS.items():
        out[dst] = pd.to_numeric(_column(src, col, n), errors="coerce").astype("float64")
    out["icd203"] = _text(_column(src, "icd203", n))
    straddle = _column(src, "band_straddle", n).astype(object)
    out["band_straddle"] = straddle.where(pd.notna(straddle), None).map(
        lambda v: v if v is None else bool(v)
    )
    n_events = pd.to_numeric(_column(src, "n_events", n), errors="coerce")
    out["n_events"] = n_events.astype("Int64")
    status = _column(src, "diagnostics", n) if "diagnostics" in src.columns else None
    if status is None:
        status = _column(src, "diagnostics_status", n)
    out["diagnostics_status"] = _text(status).fillna(str(score_run.diagnostics_status))
    note = _text(_column(src, "note", n))
    out["note"] = note.mask(note == "")
    return out.reset_index(drop=True)


def _contributions_frame(score_run) -> pd.DataFrame:
    import pandas as pd

    src = score_run.contributions
    n = len(src)
    out = pd.DataFrame(index=src.index)
    for name in ("scenario_id", "term", "term_type", "kind", "direction"):
        out[name] = _text(_column(src, name, n))
    out["event_date"] = pd.to_datetime(_column(src, "event_date", n), errors="coerce")
    out["indicator_ids"] = _text(_column(src, "indicator_ids", n))
    for dst, col in _CONTRIB_FLOATS.items():
        out[dst] = pd.to_numeric(_column(src, col, n), errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def _insert_frame(con, table: str, frame: pd.DataFrame) -> None:
    """Append a DataFrame to a table by column name (inside the caller's transaction)."""
    if frame.empty:
        return
    name = f"_georisk_rows_{table}"
    con.register(name, frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _scalar(value: Any) -> Any:
    """Plain Python value from a pandas cell (NaT/NaN -> None, Timestamp -> datetime)."""
    import pandas as pd

    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


def parse_json_column(text: str | None) -> Any:
    """Decode a ``*_json`` column (None stays None)."""
    return None if text is None else json.loads(text)


def iter_dates(start: dt.date, end: dt.date, every: str) -> Iterator[dt.date]:
    """Dates from ``start`` to ``end`` every ``N[d|w|m|y]``, always ending with ``end``.

    Months and years are counted from ``start`` (the 31st becomes the last day of shorter
    months), so the dates do not drift.

    Parameters
    ----------
    start, end : date
        First and last date, ``start <= end``.
    every : str
        Step: a positive integer followed by ``d`` (days), ``w`` (weeks), ``m`` (months) or
        ``y`` (years), e.g. ``30d``, ``1m``.

    Yields
    ------
    date
    """
    m = re.fullmatch(r"\s*(\d+)\s*([dwmy])\s*", every.lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(
            f"The 'every' step must be a positive number followed by d, w, m or y (e.g. 30d, "
            f"1m). Got {every!r}."
        )
    if start > end:
        raise ValueError(f"The date range must start before it ends. Got {start} to {end}.")
    n, unit = int(m.group(1)), m.group(2)
    k = 0
    while True:
        if unit in "dw":
            day = start + dt.timedelta(days=n * k * (7 if unit == "w" else 1))
        else:
            months = n * k * (12 if unit == "y" else 1)
            day = _add_months(start, months)
        if day >= end:
            break
        yield day
        k += 1
    yield end


def _add_months(day: dt.date, months: int) -> dt.date:
    import calendar

    y, m0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
