"""Figures of georisk.plotting, drawn from small hand-made fixtures (no MCMC), Agg backend."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from georisk.diagnostics import DiagnosticsReport  # noqa: E402
from georisk.evidence import KINDS  # noqa: E402
from georisk.model import SamplerConfig, prior_predictive_draws  # noqa: E402
from georisk.model_data import (  # noqa: E402
    PROJECT_CATEGORIES,
    WINDOW_CATEGORIES,
    prior_parameters,
)
from georisk.plotting import (  # noqa: E402
    plot_calibration,
    plot_drivers,
    plot_overview,
    plot_priors,
    plot_trajectory,
    reliability_table,
    save_figure,
    source_line,
)
from georisk.plotting.drivers import PROBABILITY_TICKS, waterfall_table  # noqa: E402
from georisk.plotting.priors import prior_panels  # noqa: E402
from georisk.plotting.style import (  # noqa: E402
    COLUMN_WIDTH_IN,
    MIN_FONT_PT,
    format_percent,
    short_event_label,
)
from georisk.plotting.trajectory import place_labels  # noqa: E402
from georisk.posterior import Posterior, default_posterior_dir, fit_id_for  # noqa: E402
from georisk.scoring import score_run  # noqa: E402
from georisk.workspace import load_workspace  # noqa: E402
from helpers import PROJECT_SCENARIO, TODAY, WINDOW_SCENARIO  # noqa: E402

FIT_ID = "testfit0123456789"


@pytest.fixture
def ws(mini_workspace):
    return load_workspace(mini_workspace, today=TODAY)


def hand_draws(n: int = 600, seed: int = 7) -> dict[str, np.ndarray]:
    """Hand-made posterior draws with a little spread, in the layout of Posterior.draws."""
    rng = np.random.default_rng(seed)
    return {
        "eta": rng.normal(0.2, 0.4, (n, len(PROJECT_CATEGORIES))),
        "eta_window": rng.normal(-0.5, 0.3, (n, len(WINDOW_CATEGORIES))),
        "strength": np.abs(rng.normal(0.6, 0.15, (n, len(KINDS)))),
        "lag_log_median": rng.normal(np.log(5.0), 0.1, n),
        "lag_log_sd": np.abs(rng.normal(0.6, 0.05, n)),
        "term_log_median": rng.normal(np.log(4.0), 0.1, n),
        "term_log_sd": np.abs(rng.normal(0.6, 0.05, n)),
        "rho": rng.beta(4.0, 6.0, n),
    }


def make_posterior(ws, *, converged: bool = True, n: int = 600, fit_id: str = FIT_ID) -> Posterior:
    """A posterior from hand-made draws (no MCMC) with the provenance a fit would record."""
    draws = hand_draws(n)
    report = (
        DiagnosticsReport(True, 1.002, 3000.0, 2500.0, 0)
        if converged
        else DiagnosticsReport(False, 1.31, 35.0, 22.0, 4, ["R-hat of eta is 1.31 > 1.01"])
    )
    meta = {
        "created": "2026-11-20T06:00:00+00:00",
        "kinds": list(KINDS),
        "n_project_cases": 3,
        "n_window_cases": 1,
        "events_per_kind": {"financing_commitment": 1, "delay_or_setback": 1},
        "cases_per_kind": {"financing_commitment": 1, "delay_or_setback": 1},
    }
    return Posterior(fit_id=fit_id, draws=draws, diagnostics=report, meta=meta)


@pytest.fixture
def posterior(ws):
    return make_posterior(ws)


@pytest.fixture
def run(ws, posterior):
    return score_run(ws, posterior, as_of=TODAY)


def texts_by_gid(fig, gid: str) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_gid() == gid]


def artists_by_gid(fig, gid: str) -> list:
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


def assert_house_style(fig, *, title: str | None = None) -> None:
    """6.5 in wide, title/subtitle/source present, every visible text >= 8 pt."""
    FigureCanvasAgg(fig).draw()
    assert fig.get_figwidth() == pytest.approx(COLUMN_WIDTH_IN)
    assert texts_by_gid(fig, "title"), "no title"
    if title is not None:
        assert title in texts_by_gid(fig, "title")[0].replace("\n", " ")
    assert texts_by_gid(fig, "subtitle"), "no subtitle"
    assert texts_by_gid(fig, "source"), "no source line"
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT
    ]
    assert not small, f"texts below {MIN_FONT_PT} pt: {small}"


# --- style ------------------------------------------------------------------------------


def test_source_line_names_run_fit_and_dates():
    text = source_line(fit_id="9b6c08bba8e11072", run_id=12, as_of=dt.date(2026, 11, 25),
                       data_date=dt.date(2025, 11, 15))  # fmt: skip
    assert text == (
        "Source: georisk · run 12 · fit 9b6c08bba8e1 · as of 2026-11-25 · ledger to 2025-11-15"
    )
    assert source_line() == "Source: georisk"


def test_short_labels_and_percent_format():
    assert short_event_label("evt-uz-kz-portfolio-2025-11-15") == "uz-kz-portfolio"
    assert short_event_label("ev-cpc-drone-2025") == "cpc-drone"
    assert short_event_label("evt-" + "x" * 40).endswith("…")
    assert format_percent(0.0425) == "4.2%"
    assert format_percent(0.425) == "42%"
    assert format_percent(0.995) == "99.5%"


def test_plots_leave_global_rcparams_alone(run):
    before = dict(matplotlib.rcParams)
    plot_overview(run)
    after = dict(matplotlib.rcParams)
    changed = {k for k in before if before[k] != after[k] and k != "backend"}
    assert not changed


def test_save_figure_writes_png_300dpi_and_svg_atomically_and_reproducibly(run, tmp_path):
    from PIL import Image

    fig = plot_overview(run)
    paths = save_figure(fig, tmp_path / "out" / "overview")
    assert [p.name for p in paths] == ["overview.png", "overview.svg"]
    with Image.open(paths[0]) as im:
        assert im.size[0] == round(COLUMN_WIDTH_IN * 300)
        assert im.info["dpi"][0] == pytest.approx(300, abs=0.5)
    svg = paths[1].read_text()
    assert "<svg" in svg and "<dc:date>" not in svg
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["overview.png", "overview.svg"]
    first = [p.read_bytes() for p in paths]
    save_figure(fig, tmp_path / "out" / "overview.png")  # a suffix given is replaced
    assert [p.read_bytes() for p in paths] == first
    again = save_figure(plot_overview(run), tmp_path / "fresh" / "overview")
    assert again[0].read_bytes() == first[0]  # same inputs, same PNG bytes
    # SVG clip-path ids hash str() of the clip box, which NumPy 2 may print as np.float64(x)
    # or x for the same value within one process: compare the SVGs without those ids
    def no_ids(svg: bytes) -> str:
        return re.sub(r"\bp[0-9a-f]{10}\b", "p", svg.decode())

    assert no_ids(again[1].read_bytes()) == no_ids(first[1])
    with pytest.raises(ValueError, match="formats"):
        save_figure(fig, tmp_path / "x", formats=("gif",))


# --- overview ---------------------------------------------------------------------------


def test_overview_marks_one_interval_per_scored_scenario(run):
    fig = plot_overview(run, data_date=dt.date(2025, 6, 16))
    assert_house_style(fig, title="Open scenarios")
    n = int(run.scores["p_mean"].notna().sum())
    assert n == 2
    for gid in ("interval95", "interval80"):
        (lines,) = artists_by_gid(fig, gid)
        assert isinstance(lines, LineCollection)
        assert len(lines.get_segments()) == n
    for gid in ("mean", "base_rate"):
        (dots,) = artists_by_gid(fig, gid)
        assert isinstance(dots, PathCollection)
        assert len(dots.get_offsets()) == n
    assert len(artists_by_gid(fig, "icd-band")) == 4  # every other ICD 203 band is shaded
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 1.0)
    # sorted: highest probability at the top (largest y)
    labels = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    order = run.scores.sort_values("p_mean")["title"].tolist()
    assert labels == order
    # 95% interval drawn at the scored quantiles
    (thin,) = artists_by_gid(fig, "interval95")
    by_y = sorted(thin.get_segments(), key=lambda s: s[0][1])
    expected = run.scores.sort_values("p_mean")
    for seg, (_, row) in zip(by_y, expected.iterrows(), strict=True):
        assert seg[0][0] == pytest.approx(row["p_q0.025"])
        assert seg[1][0] == pytest.approx(row["p_q0.975"])
    assert "2026-11-25" in texts_by_gid(fig, "subtitle")[0].replace("\n", " ")
    source = texts_by_gid(fig, "source")[0]
    assert "fit testfit01234" in source and "ledger to 2025-06-16" in source
    assert not texts_by_gid(fig, "warning")
    band_words = [t.get_text() for t in ax.child_axes[0].get_xticklabels()]
    assert band_words[0] == "almost no chance" and band_words[-1] == "almost certain"


def test_overview_warns_when_unconverged_and_wraps_long_titles(ws):
    run = score_run(ws, make_posterior(ws, converged=False), as_of=TODAY)
    run.scores.loc[0, "title"] = "A very long scenario title " * 3
    fig = plot_overview(run, label_width=30)
    (warning,) = texts_by_gid(fig, "warning")
    assert "UNCONVERGED" in warning
    assert any("\n" in t.get_text() for t in fig.axes[0].get_yticklabels())


def test_overview_draws_on_a_given_axes(run):
    fig, ax = plt.subplots(figsize=(8, 4))
    out = plot_overview(run, ax=ax, title="Custom title")
    assert out is fig
    assert texts_by_gid(fig, "title") == ["Custom title"]
    assert texts_by_gid(fig, "source")


def test_overview_rejects_a_table_without_intervals(run):
    with pytest.raises(ValueError, match=r"p_q0\.10"):
        plot_overview(run.scores.drop(columns=["p_q0.10"]))


# --- trajectory -------------------------------------------------------------------------


def trajectory_table(n: int = 6, *, unconverged_last: bool = False) -> pd.DataFrame:
    dates = pd.date_range("2026-01-01", periods=n, freq="MS")
    p = np.linspace(0.2, 0.35, n)
    df = pd.DataFrame(
        {
            "run_id": np.arange(1, n + 1),
            "started_at": dates + pd.Timedelta(hours=6),
            "as_of": dates.date,
            "p_mean": p,
            "p_q10": p - 0.08,
            "p_q90": p + 0.1,
            "p_q025": p - 0.12,
            "p_q975": p + 0.15,
            "p_base_mean": np.full(n, 0.22),
            "diagnostics_status": ["converged"] * n,
        }
    )
    if unconverged_last:
        df.loc[n - 1, "diagnostics_status"] = "unconverged"
    return df


EVENTS = pd.DataFrame(
    {
        "term": ["evt-a-deal-2026-02-10", "evt-b-strike-2026-04-02", "evt-c-loan-2026-04-20",
                 "evt-old-2025-05-01"],
        "term_type": ["event"] * 4,
        "event_date": [dt.date(2026, 2, 10), dt.date(2026, 4, 2), dt.date(2026, 4, 20),
                       dt.date(2025, 5, 1)],
        "direction": ["supports", "opposes", "supports", "supports"],
        "kind": ["project_announcement", "russian_pressure", "financing_commitment",
                 "project_announcement"],
        "logodds_mean": [0.3, -0.2, 0.1, 0.5],
    }
)  # fmt: skip


def test_trajectory_band_line_and_event_marks():
    fig = plot_trajectory(trajectory_table(), events=EVENTS, title="Scenario X by 2030")
    assert_house_style(fig, title="Scenario X by 2030")
    (line,) = artists_by_gid(fig, "mean")
    assert len(line.get_xdata()) == 6
    assert len(artists_by_gid(fig, "band80")) == 1
    assert len(artists_by_gid(fig, "base_rate")) == 1
    marks = sum(len(c.get_offsets()) for c in artists_by_gid(fig, "event"))
    assert marks == 3  # the 2025 event precedes the plotted range
    labels = [a for a in fig.findobj(Text) if a.get_gid() == "event-label"]
    assert sorted(t.get_text() for t in labels) == ["a-deal", "b-strike", "c-loan"]
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), "event labels overlap"
    subtitle = texts_by_gid(fig, "subtitle")[0].replace("\n", " ")
    assert "As of 2026-06-01" in subtitle and "80% credible interval" in subtitle


def test_trajectory_labels_by_kind_and_limits_labels():
    fig = plot_trajectory(trajectory_table(), events=EVENTS, label="kind", max_labels=1)
    labels = texts_by_gid(fig, "event-label")
    assert labels == ["project announcement"]
    assert "(2 unlabelled)" in texts_by_gid(fig, "subtitle")[0].replace("\n", " ")


def test_trajectory_flags_unconverged_runs_and_keeps_latest_run_per_date():
    traj = trajectory_table(unconverged_last=True)
    later = traj["started_at"][2] + pd.Timedelta(1, "h")
    rerun = traj.iloc[[2]].assign(run_id=99, started_at=later, p_mean=0.5)
    fig = plot_trajectory(pd.concat([traj, rerun]))
    (line,) = artists_by_gid(fig, "mean")
    assert len(line.get_ydata()) == 6
    assert line.get_ydata()[2] == pytest.approx(0.5)
    (cross,) = artists_by_gid(fig, "unconverged")
    assert len(cross.get_offsets()) == 1
    (warning,) = texts_by_gid(fig, "warning")
    assert "UNCONVERGED" in warning and "latest" in warning


def test_trajectory_accepts_scoring_column_names_and_a_scorerun(run):
    traj = trajectory_table().rename(columns={"p_q10": "p_q0.10", "p_q90": "p_q0.90"})
    fig = plot_trajectory(traj, events=run, scenario_id=PROJECT_SCENARIO)
    assert texts_by_gid(fig, "title")
    with pytest.raises(ValueError, match="p_q90"):
        plot_trajectory(trajectory_table().drop(columns=["p_q90"]))


def test_place_labels_never_overlaps_or_crosses_a_leader():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 25)
    w = rng.uniform(0.05, 0.3, 25)
    placed = place_labels(x, w)
    spans: dict[int, list[tuple[float, float]]] = {}
    for xi, wi, p in zip(x, w, placed, strict=True):
        if p is None:
            continue
        lane, ha = p
        lo, hi = (xi, xi + wi) if ha == "left" else (xi - wi, xi)
        assert lo >= 0.0 and hi <= 1.0
        for a, b in spans.get(lane, []):
            assert hi <= a or lo >= b
        spans.setdefault(lane, []).append((lo, hi))
    leaders = [(xi, p[0]) for xi, p in zip(x, placed, strict=True) if p is not None]
    for xi, lane in leaders:
        for below in range(lane + 1, 3):
            for a, b in spans.get(below, []):
                assert not (a < xi < b), "a leader crosses a label"
    assert place_labels(np.array([0.1, 0.1]), np.array([0.2, 0.2]), lanes=1)[1] is None


# --- drivers ----------------------------------------------------------------------------


def test_drivers_waterfall_has_one_bar_per_event_plus_base_and_timing(run):
    terms = run.contributions[run.contributions["scenario_id"] == PROJECT_SCENARIO]
    n_events = int((terms["term_type"] == "event").sum())
    assert n_events == 3
    fig = plot_drivers(run, scenario_id=PROJECT_SCENARIO)
    assert_house_style(fig, title="What drives the forecast")
    steps = artists_by_gid(fig, "driver-step")
    assert len(steps) == n_events + 2
    (total,) = artists_by_gid(fig, "driver-total")
    row = run.scores.set_index("scenario_id").loc[PROJECT_SCENARIO]
    assert total.get_width() == pytest.approx(row["logodds_mean"], abs=1e-9)
    (whiskers,) = artists_by_gid(fig, "whisker")
    assert len(whiskers.get_segments()) == n_events + 3  # every term and the forecast
    ax = fig.axes[0]
    top = ax.child_axes[0]
    ticks = [t.get_text() for t in top.get_xticklabels()]
    assert ticks and set(ticks) <= {f"{100 * p:g}%" for p in PROBABILITY_TICKS}
    assert ax.get_yticklabels()[-1].get_text() == "Forecast"


def test_waterfall_table_adds_up_and_lumps_small_events(run):
    terms = run.contributions[run.contributions["scenario_id"] == PROJECT_SCENARIO]
    table = waterfall_table(terms, order="size")
    assert table["end"].iloc[-1] == pytest.approx(terms["logodds_mean"].sum())
    assert np.allclose(table["start"].iloc[1:].to_numpy(), table["end"].iloc[:-1].to_numpy())
    sizes = table.loc[table["step"] == "event", "mean"].abs().to_numpy()
    assert np.all(np.diff(sizes) <= 0)
    lumped = waterfall_table(terms, max_events=2)
    assert list(lumped["step"]) == ["base_rate", "event", "other", "timing"]
    assert lumped["end"].iloc[-1] == pytest.approx(table["end"].iloc[-1])
    fig = plot_drivers(run, scenario_id=PROJECT_SCENARIO, max_events=2)
    assert len(artists_by_gid(fig, "driver-step")) == 4


def test_drivers_needs_a_scenario_when_several(run):
    with pytest.raises(ValueError, match="scenario_id"):
        plot_drivers(run)
    with pytest.raises(ValueError, match="not in the contributions"):
        plot_drivers(run, scenario_id="nope")
    fig = plot_drivers(run.contributions, scenario_id=WINDOW_SCENARIO)
    assert len(artists_by_gid(fig, "driver-step")) == 1 + 1 + 1


# --- priors -----------------------------------------------------------------------------


def test_priors_small_multiples_prior_and_posterior_per_parameter(ws, posterior):
    prior = prior_predictive_draws(prior_parameters(ws.priors), 800, np.random.default_rng(1))
    fig = plot_priors(posterior, prior)
    assert_house_style(fig, title="priors and posteriors")
    panels = [ax for ax in fig.get_axes() if ax.get_gid() == "panel"]
    assert len(panels) == len(prior_panels()) == 7 + 7 + 3
    for ax in panels:
        roles = {c.get_gid() for c in ax.get_children()}
        assert {"prior", "posterior"} <= roles, ax.get_title()
    flags = [t.get_text() for ax in panels for t in ax.texts]
    assert flags.count("learned") == 2 and flags.count("prior only") == 5
    assert "As of 2026-11-20" in texts_by_gid(fig, "subtitle")[0]


def test_priors_handle_constant_draws_and_unconverged_fits(ws):
    from test_model_math import degenerate_posterior

    prior = prior_predictive_draws(prior_parameters(ws.priors), 300, np.random.default_rng(2))
    degenerate = degenerate_posterior(n=10)
    fig = plot_priors(degenerate, prior, as_of=TODAY)
    assert len([ax for ax in fig.get_axes() if ax.get_gid() == "panel"]) == 17
    bad = make_posterior(ws, converged=False)
    fig = plot_priors(bad, prior)
    assert "UNCONVERGED" in texts_by_gid(fig, "warning")[0]
    with pytest.raises(TypeError, match="prior"):
        plot_priors(bad, [1, 2, 3])


# --- calibration ------------------------------------------------------------------------


def test_reliability_table_counts_rates_and_jeffreys_intervals():
    from scipy.stats import beta

    f = [0.05, 0.15, 0.15, 0.95, 1.0]
    o = [0, 1, 0, 1, 1]
    table = reliability_table(f, o, bins=10, interval=0.9)
    assert len(table) == 10
    assert table["n"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table.loc[1, "observed_rate"] == 0.5
    assert table.loc[1, "forecast_mean"] == pytest.approx(0.15)
    lo, hi = beta.ppf([0.05, 0.95], 1.5, 1.5)
    assert table.loc[1, "observed_lower"] == pytest.approx(lo)
    assert table.loc[1, "observed_upper"] == pytest.approx(hi)
    assert table.loc[0, "observed_lower"] == 0.0 and table.loc[9, "observed_upper"] == 1.0
    assert np.isnan(table.loc[2, "observed_rate"])
    with pytest.raises(ValueError, match="same length"):
        reliability_table([0.1, 0.2], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_table([1.2], [1])
    with pytest.raises(ValueError, match="0/1"):
        reliability_table([0.2], [2])
    with pytest.raises(ValueError, match="cover"):
        reliability_table([0.2], [1], bins=[0.1, 0.5, 1.0])


def test_calibration_plot_one_point_per_non_empty_bin():
    rng = np.random.default_rng(11)
    f = rng.beta(2, 3, 80)
    o = (rng.random(80) < f).astype(int)
    fig = plot_calibration(f, o, bins=5)
    assert_house_style(fig, title="Calibration")
    table = reliability_table(f, o, bins=5)
    n_bins = int((table["n"] > 0).sum())
    (dots,) = artists_by_gid(fig, "bins")
    assert len(dots.get_offsets()) == n_bins
    (bars,) = artists_by_gid(fig, "interval")
    assert len(bars.get_segments()) == n_bins
    assert len(artists_by_gid(fig, "diagonal")) == 1
    counts = artists_by_gid(fig, "counts")
    assert [round(p.get_height()) for p in counts] == table["n"].tolist()
    (rug,) = artists_by_gid(fig, "rug")
    assert len(rug.get_segments()) == 80
    subtitle = texts_by_gid(fig, "subtitle")[0].replace("\n", " ")
    assert f"Brier score {np.mean((f - o) ** 2):.3f}" in subtitle
    assert "Wilson" in subtitle  # georisk.metrics provides the table


def test_calibration_falls_back_to_its_own_table(monkeypatch):
    import georisk.plotting.calibration as cal

    def no_metrics(name):
        raise ImportError(name)

    monkeypatch.setattr(cal.importlib, "import_module", no_metrics)
    fig = plot_calibration([0.1, 0.4, 0.8, 0.9], [0, 1, 1, 1], bins=4)
    assert "Jeffreys" in texts_by_gid(fig, "subtitle")[0].replace("\n", " ")
    fig, ax = plt.subplots()
    assert plot_calibration([0.1, 0.9], [0, 1], ax=ax) is fig
    assert not artists_by_gid(fig, "counts")


# --- georisk figures ----------------------------------------------------------------------


def test_cli_figures_writes_every_figure_as_png_and_svg(ws, tmp_path):
    from georisk.cli import app

    posterior = make_posterior(ws, fit_id=fit_id_for(ws, config=SamplerConfig()))
    posterior.save(default_posterior_dir(ws))
    out = tmp_path / "figs"
    result = CliRunner().invoke(
        app,
        ["figures", str(ws.root), "--out", str(out), "--as-of", "2026-11-25",
         "--backfill-from", "2026-06-01", "--today", "2026-11-25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stems = ["overview", "priors"] + [
        f"{kind}_{sid}" for sid in (WINDOW_SCENARIO, PROJECT_SCENARIO)
        for kind in ("trajectory", "drivers")
    ]  # fmt: skip
    expected = sorted(f"{s}.{ext}" for s in stems for ext in ("png", "svg"))
    assert sorted(p.name for p in out.iterdir()) == expected
    assert str(out / "overview.png") in result.output
