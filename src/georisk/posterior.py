"""Fitted posteriors: provenance, storage keyed by an input hash, and fast loading.

A fit is stored in ``<workspace>/.georisk/posteriors/<fit_id>/``:

* ``posterior.nc``: the full ArviZ ``DataTree`` (posterior, sample stats, observed data
  summaries) in netCDF, ArviZ's own format, for audit and for ``arviz`` users;
* ``draws.npz``: the handful of arrays scoring needs, read with ``allow_pickle=False`` so
  that a warm scoring run imports neither PyMC nor ArviZ;
* ``fit.json``: provenance (fit id, input hashes, model version, sampler settings,
  diagnostics, what the evidence strengths were learned from) and the SHA-256 of
  ``draws.npz``, checked on every load.

The ``fit_id`` is a hash of everything the posterior depends on: the reference cases and
their indicator histories, the priors, the model version, the sampler settings and the
fitting options. A changed input gives a new id, hence a refit; an unchanged input reuses
the stored draws. Nothing is ever unpickled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from georisk import MODEL_VERSION, __version__
from georisk.diagnostics import DiagnosticsReport
from georisk.errors import NotFittedError, StoreError
from georisk.evidence import KINDS
from georisk.model_data import DRAW_KEYS, PROJECT_CATEGORIES, WINDOW_CATEGORIES

__all__ = ["Posterior", "fit_id_for", "default_posterior_dir", "load_posterior", "load_or_fit"]


def default_posterior_dir(ws) -> Path:
    """Where a workspace's fits are stored: ``<root>/.georisk/posteriors``."""
    return Path(ws.root) / ".georisk" / "posteriors"


def fit_id_for(
    ws, *, config, include_unverified: bool = False, as_of: dt.date | None = None
) -> str:
    """Hash of everything a posterior depends on.

    Parameters
    ----------
    ws : Workspace
        The workspace (its reference cases, reference indicators and priors are hashed).
    config : SamplerConfig
        Sampler settings.
    include_unverified : bool
        Whether unverified cases are used.
    as_of : datetime.date, optional
        Refit date, if any.

    Returns
    -------
    str
        16 hex characters.
    """
    payload = {
        "inputs": ws.input_hash("reference", "priors"),
        "model_version": MODEL_VERSION,
        "sampler": config.as_dict(),
        "include_unverified": include_unverified,
        "as_of": as_of.isoformat() if as_of else None,
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Posterior:
    """Posterior draws of the model's parameters with their provenance.

    Attributes
    ----------
    fit_id : str
        Hash of the fit's inputs (see :func:`fit_id_for`).
    draws : dict of ndarray
        ``eta`` (draws x project categories), ``eta_window`` (draws x window categories),
        ``strength`` (draws x kinds), ``lag_log_median``, ``lag_log_sd``,
        ``term_log_median``, ``term_log_sd``, ``rho`` (draws).
    diagnostics : DiagnosticsReport
        Convergence checks of the fit.
    meta : dict
        Provenance: model and package versions, sampler settings, case counts, evidence
        learned per kind, timings, creation time.
    idata : xarray.DataTree or None
        The full ArviZ result when available (after a fit, or loaded on request).
    """

    fit_id: str
    draws: dict[str, np.ndarray]
    diagnostics: DiagnosticsReport
    meta: dict[str, Any] = field(default_factory=dict)
    idata: Any = None

    @property
    def converged(self) -> bool:
        """Whether the fit passed every convergence check."""
        return self.diagnostics.converged

    @property
    def n_draws(self) -> int:
        """Number of posterior draws (chains x draws)."""
        return int(self.draws["eta"].shape[0])

    def strength_source(self, kind: str) -> str:
        """Say whether a kind's strength was learned from reference cases or is its prior."""
        n = int(self.meta.get("events_per_kind", {}).get(kind, 0))
        cases = int(self.meta.get("cases_per_kind", {}).get(kind, 0))
        if n == 0:
            return "prior only (no reference-case events of this kind)"
        return f"learned from {n} reference event(s) in {cases} case(s)"

    @classmethod
    def from_fit(cls, result, *, data, diagnostics, fit_id, config, include_unverified, as_of):
        """Wrap a :class:`georisk.model.FitResult` with its provenance."""
        meta = {
            "georisk_version": __version__,
            "model_version": MODEL_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sampler": config.as_dict(),
            "include_unverified": include_unverified,
            "as_of": as_of.isoformat() if as_of else None,
            "categories": list(PROJECT_CATEGORIES),
            "window_categories": list(WINDOW_CATEGORIES),
            "kinds": list(KINDS),
            "n_project_cases": int(data.n_project),
            "n_window_cases": int(len(data.window_case_ids)),
            "case_ids": list(data.case_ids) + list(data.window_case_ids),
            "events_per_kind": {k: int(v) for k, v in data.events_per_kind.items()},
            "cases_per_kind": {k: int(v) for k, v in data.cases_per_kind.items()},
            "seconds_sampling": round(result.seconds_sampling, 3),
            "seconds_total": round(result.seconds_total, 3),
        }
        return cls(
            fit_id=fit_id,
            draws=result.draws,
            diagnostics=diagnostics,
            meta=meta,
            idata=result.idata,
        )

    def save(self, directory: Path | str) -> Path:
        """Store the posterior atomically under ``directory/<fit_id>``.

        The files are written to a temporary folder next to the target and moved into
        place in one rename, so a crash leaves either the whole fit or nothing.

        Parameters
        ----------
        directory : path
            Parent folder of the fits.

        Returns
        -------
        Path
            The fit's folder.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / self.fit_id
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.fit_id}.", dir=directory))
        try:
            np.savez(tmp / "draws.npz", **{k: np.asarray(self.draws[k]) for k in DRAW_KEYS})
            if self.idata is not None:
                self.idata.to_netcdf(tmp / "posterior.nc", engine="h5netcdf")
            record = {
                "fit_id": self.fit_id,
                "meta": self.meta,
                "diagnostics": self.diagnostics.as_dict(),
                "draws_sha256": _sha256(tmp / "draws.npz"),
            }
            (tmp / "fit.json").write_text(json.dumps(record, indent=2, default=float))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, folder: Path | str, *, with_idata: bool = False) -> Posterior:
        """Load a stored posterior, checking its integrity.

        Parameters
        ----------
        folder : path
            The fit's folder (``.../posteriors/<fit_id>``).
        with_idata : bool, default False
            Also open the full ArviZ DataTree (imports ArviZ).

        Returns
        -------
        Posterior
        """
        folder = Path(folder)
        try:
            record = json.loads((folder / "fit.json").read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the fit record {folder / 'fit.json'}: {exc}") from None
        npz = folder / "draws.npz"
        if not npz.exists() or _sha256(npz) != record.get("draws_sha256"):
            raise StoreError(
                f"the stored draws in {npz} are missing or do not match their recorded hash; "
                "delete the folder to refit."
            )
        with np.load(npz, allow_pickle=False) as f:
            draws = {k: np.asarray(f[k]) for k in DRAW_KEYS}
        idata = None
        if with_idata and (folder / "posterior.nc").exists():
            import arviz as az

            idata = az.from_netcdf(folder / "posterior.nc", engine="h5netcdf")
        return cls(
            fit_id=record["fit_id"],
            draws=draws,
            diagnostics=DiagnosticsReport.from_dict(record["diagnostics"]),
            meta=record["meta"],
            idata=idata,
        )


def load_posterior(ws, fit_id: str, directory: Path | str | None = None) -> Posterior:
    """Load the stored posterior ``fit_id`` of a workspace or raise NotFittedError."""
    folder = Path(directory or default_posterior_dir(ws)) / fit_id
    if not (folder / "fit.json").exists():
        raise NotFittedError(
            f"no stored fit {fit_id!r} in {folder.parent}; run `georisk.fit(ws)` or "
            "`georisk score` to fit the model."
        )
    return Posterior.load(folder)


def load_or_fit(
    ws,
    *,
    config=None,
    include_unverified: bool = False,
    as_of: dt.date | None = None,
    directory: Path | str | None = None,
    progressbar: bool = False,
    refit: bool = False,
) -> tuple[Posterior, bool]:
    """Reuse the stored posterior for the current inputs, or fit and store a new one.

    Parameters
    ----------
    ws : Workspace
        The workspace.
    config : SamplerConfig, optional
        Sampler settings (default: the published configuration).
    include_unverified : bool, default False
        Also use unverified reference cases.
    as_of : datetime.date, optional
        Refit with what was known at this date.
    directory : path, optional
        Where fits are stored (default ``<root>/.georisk/posteriors``).
    progressbar : bool, default False
        Show the sampler's progress when a fit runs.
    refit : bool, default False
        Fit even when a stored posterior exists.

    Returns
    -------
    (Posterior, bool)
        The posterior and whether a fit ran.
    """
    from georisk.model import SamplerConfig

    config = config or SamplerConfig()
    directory = Path(directory or default_posterior_dir(ws))
    fid = fit_id_for(ws, config=config, include_unverified=include_unverified, as_of=as_of)
    folder = directory / fid
    if not refit and (folder / "fit.json").exists():
        return Posterior.load(folder), False
    from georisk.model import fit

    posterior = fit(
        ws,
        config=config,
        include_unverified=include_unverified,
        as_of=as_of,
        progressbar=progressbar,
    )
    posterior.save(directory)
    return posterior, True
