"""georisk: calibrated, documented probabilities for geopolitical scenarios.

The public API, in the order an analyst uses it::

    import georisk

    ws = georisk.load_workspace(".")            # validated ledger, scenarios, priors
    posterior = georisk.fit(ws)                  # PyMC fit on the reference cases (checked)
    scores = georisk.score(ws, posterior)        # tidy DataFrame, one row per open scenario
    run = georisk.score_run(ws, posterior)       # ... plus contributions and draws

``georisk.load_posterior(ws)`` reuses the stored fit for the current inputs (fitting only
when the reference cases, priors or model changed). Heavy libraries (PyMC, ArviZ, PreliZ,
matplotlib) are imported only by the functions that need them.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

__version__ = "0.1.0"
MODEL_VERSION = "2"

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from georisk.posterior import Posterior
    from georisk.scoring import ScoreRun
    from georisk.workspace import Workspace

__all__ = [
    "__version__",
    "MODEL_VERSION",
    "load_workspace",
    "fit",
    "load_posterior",
    "score",
    "score_run",
    "prior_posterior",
    "SamplerConfig",
]


def load_workspace(path=".", *, today: _dt.date | None = None) -> Workspace:
    """Read and validate a workspace; raise ``WorkspaceError`` listing every problem.

    See :func:`georisk.workspace.load_workspace`.
    """
    from georisk.workspace import load_workspace as _load

    return _load(path, today=today)


def fit(
    ws: Workspace,
    *,
    config=None,
    include_unverified: bool = False,
    as_of=None,
    progressbar: bool = False,
    store: bool = True,
) -> Posterior:
    """Fit the model on the workspace's reference cases and store the posterior.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    config : SamplerConfig, optional
        Sampler settings (default: the published configuration, see ``docs/model.md``).
    include_unverified : bool, default False
        Also use unverified reference cases (sensitivity runs only).
    as_of : datetime.date, optional
        Refit with only the reference cases known at this date.
    progressbar : bool, default False
        Show the sampler's progress.
    store : bool, default True
        Save the posterior under ``<workspace>/.georisk/posteriors/<fit_id>``.

    Returns
    -------
    Posterior
        Check ``posterior.converged`` (R-hat, ESS, divergences) before publishing.
    """
    from georisk.model import SamplerConfig as _Config
    from georisk.model import fit as _fit
    from georisk.posterior import default_posterior_dir

    posterior = _fit(
        ws,
        config=config or _Config(),
        include_unverified=include_unverified,
        as_of=as_of,
        progressbar=progressbar,
    )
    if store:
        posterior.save(default_posterior_dir(ws))
    return posterior


def load_posterior(
    ws: Workspace,
    *,
    config=None,
    include_unverified: bool = False,
    as_of=None,
    progressbar: bool = False,
    with_idata: bool = False,
) -> Posterior:
    """Reuse the stored posterior for the workspace's current inputs, fitting if needed.

    Parameters
    ----------
    ws : Workspace
        A loaded workspace.
    config : SamplerConfig, optional
        Sampler settings (default: the published configuration).
    include_unverified : bool, default False
        Also use unverified reference cases (sensitivity runs only).
    as_of : datetime.date, optional
        Refit with only the reference cases known at this date.
    progressbar : bool, default False
        Show the sampler's progress when a fit runs.
    with_idata : bool, default False
        Also open the full ArviZ ``DataTree`` of the fit (``posterior.idata``), for
        diagnostics and plots; imports ArviZ.

    Returns
    -------
    Posterior
    """
    from georisk.posterior import Posterior as _Posterior
    from georisk.posterior import default_posterior_dir, load_or_fit

    posterior, _ = load_or_fit(
        ws,
        config=config,
        include_unverified=include_unverified,
        as_of=as_of,
        progressbar=progressbar,
    )
    if with_idata and posterior.idata is None:
        posterior = _Posterior.load(default_posterior_dir(ws) / posterior.fit_id, with_idata=True)
    return posterior


def prior_posterior(ws: Workspace, *, draws: int = 4000, seed: int = 0) -> Posterior:
    """Draws from the documented priors alone, in the layout of a posterior.

    Score with it (``georisk.score(ws, georisk.prior_posterior(ws))``) to see what the
    priors say before any reference case is seen: a prior predictive check. Its fit id is
    ``"prior"`` and it is marked converged (independent draws need no MCMC check).

    Parameters
    ----------
    ws : Workspace
        A loaded workspace (its priors are used).
    draws : int, default 4000
        Number of independent prior draws.
    seed : int, default 0
        Seed of the random generator.

    Returns
    -------
    Posterior
    """
    import numpy as np

    from georisk.diagnostics import DiagnosticsReport
    from georisk.model import prior_predictive_draws
    from georisk.model_data import prior_parameters
    from georisk.posterior import Posterior as _Posterior

    rng = np.random.default_rng(seed)
    sample = prior_predictive_draws(prior_parameters(ws.priors), draws, rng)
    report = DiagnosticsReport(True, 1.0, float(draws), float(draws), 0, [])
    return _Posterior(fit_id="prior", draws=sample, diagnostics=report, meta={"prior": True})


def score(ws: Workspace, posterior: Posterior, *, as_of: _dt.date | None = None) -> pd.DataFrame:
    """Score every open scenario: see :func:`georisk.scoring.score`."""
    from georisk.scoring import score as _score

    return _score(ws, posterior, as_of=as_of)


def score_run(ws: Workspace, posterior: Posterior, *, as_of: _dt.date | None = None) -> ScoreRun:
    """Scores with contributions and draws: see :func:`georisk.scoring.score_run`."""
    from georisk.scoring import score_run as _score_run

    return _score_run(ws, posterior, as_of=as_of)


def __getattr__(name: str):
    if name == "SamplerConfig":
        from georisk.model import SamplerConfig

        return SamplerConfig
    raise AttributeError(f"module 'georisk' has no attribute {name!r}")
