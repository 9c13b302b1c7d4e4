"""The risk memo: numbers equal the scores and the store, text is escaped, warnings on top."""

from __future__ import annotations

import datetime as dt
import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from georisk.history import HistoryStore  # noqa: E402
from georisk.memo import (  # noqa: E402
    Bullets,
    Code,
    Link,
    Memo,
    Paragraph,
    Strong,
    Table,
    backfill_dates,
    build_memo,
    render_html,
    render_markdown,
    write_memo,
)
from georisk.model import SamplerConfig  # noqa: E402
from georisk.posterior import default_posterior_dir, fit_id_for  # noqa: E402
from georisk.scoring import score_run  # noqa: E402
from georisk.workspace import load_workspace  # noqa: E402
from helpers import PROJECT_SCENARIO, TODAY, WINDOW_SCENARIO, append_line, replace_in  # noqa: E402
from test_plotting import make_posterior  # noqa: E402

EARLIER = dt.date(2026, 9, 1)
DPI = 60  # figures are checked in test_plotting; keep the memo tests light


@pytest.fixture(autouse=True)
def _no_history_from_the_environment(monkeypatch):
    monkeypatch.delenv("GEORISK_HISTORY", raising=False)


@pytest.fixture
def ws(mini_workspace):
    return load_workspace(mini_workspace, today=TODAY)


@pytest.fixture
def posterior(ws):
    return make_posterior(ws)


def pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def row_of(run, scenario_id: str):
    return run.scores.set_index("scenario_id").loc[scenario_id]


def visible_text(html: str) -> str:
    """The page's text without tags or the embedded images, entities decoded."""
    import html as _html

    body = html.split("<body>", 1)[1]
    return " ".join(_html.unescape(re.sub(r"<[^>]+>", "", body)).split())


# --- numbers ------------------------------------------------------------------------------


def test_memo_states_the_scored_numbers(ws, posterior, tmp_path):
    paths = write_memo(ws, posterior, PROJECT_SCENARIO, tmp_path / "memo", as_of=TODAY,
                       history=False)  # fmt: skip
    assert paths.markdown.name == "memo.md" and paths.html.name == "memo.html"
    assert sorted(p.name for p in paths.figures) == ["drivers.png", "trajectory.png"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    leftovers = [p for p in (tmp_path / "memo").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    row = row_of(score_run(ws, posterior, as_of=TODAY), PROJECT_SCENARIO)
    md = paths.markdown.read_text()
    page = visible_text(paths.html.read_text())
    for text in (md, page):
        assert f"at {pct(row['p_mean'])}" in text.replace("**", "")
        assert f"from {pct(row['p_q0.10'])} to {pct(row['p_q0.90'])}" in text
        assert f"from {pct(row['p_q0.025'])} to {pct(row['p_q0.975'])}" in text
        assert f"would give {pct(row['p_base_mean'])}" in text
        assert row["icd203"] in text
        assert "no earlier run in the history" in text
    memo = build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, history=False, dpi=DPI)
    for key in ("p_mean", "p_q0.025", "p_q0.10", "p_q0.90", "p_q0.975", "p_base_mean"):
        assert memo.numbers[key] == row[key]
    assert "![" in md and "(figures/drivers.png)" in md


def test_memo_names_drivers_sources_and_priors(ws, posterior):
    memo = build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, history=False, dpi=DPI)
    md = render_markdown(memo)
    run = score_run(ws, posterior, as_of=TODAY)
    events = run.contributions[
        (run.contributions["scenario_id"] == PROJECT_SCENARIO)
        & (run.contributions["term_type"] == "event")
    ]
    for e in events.itertuples(index=False):
        assert f"`{e.term}`" in md
        assert f"{e.logodds_mean:+.3f}" in md
    assert "Russia and Uzbekistan sign a deal to build a small nuclear power plant" in md
    assert "| Reuters | 2024-05-28 |" in md  # outlet, date, title of a cited source
    assert "Kazakhstan picks Rosatom to lead nuclear consortium" in md
    assert "`base_rate.nuclear_plant_abroad` is Beta(alpha=2, beta=3)" in md
    assert "prior only (no reference-case events of this kind)" in md  # russian_pressure
    assert "Plausible test value chosen for the mini workspace" in md  # a rationale
    assert "Largest R-hat | 1.0020" in md


def test_memo_warns_in_words_when_the_interval_spans_two_bands(ws, posterior):
    run = score_run(ws, posterior, as_of=TODAY)
    for sid in (PROJECT_SCENARIO, WINDOW_SCENARIO):
        md = render_markdown(build_memo(ws, posterior, sid, as_of=TODAY, history=False, dpi=DPI))
        straddles = bool(row_of(run, sid)["band_straddle"])
        assert ("the 80% interval spans more than one ICD 203 band" in md) == straddles
    assert run.scores["band_straddle"].any()


# --- unconverged fits -----------------------------------------------------------------------


def test_unconverged_fit_is_stated_at_the_top(ws, tmp_path):
    bad = make_posterior(ws, converged=False)
    paths = write_memo(ws, bad, PROJECT_SCENARIO, tmp_path, as_of=TODAY, history=False, dpi=DPI)
    md = paths.markdown.read_text()
    assert md.startswith("> **Warning:** **UNCONVERGED FIT.**")
    page = paths.html.read_text()
    body = page.split("<body>", 1)[1].lstrip()
    assert body.startswith('<div class="warning" role="alert">')
    assert body.index("UNCONVERGED") < body.index("<h1>")
    assert "R-hat of eta is 1.31 &gt; 1.01" in body


def test_converged_fit_has_no_warning_box(ws, posterior):
    memo = build_memo(ws, posterior, WINDOW_SCENARIO, as_of=TODAY, history=False, dpi=DPI)
    assert "UNCONVERGED" not in render_html(memo)


# --- escaping -----------------------------------------------------------------------------

HOSTILE_SUMMARY = (
    "Deal signed <script>alert('x')</script> <img src=x onerror=alert(1)> [a](javascript:x)"
)


@pytest.fixture
def hostile_ws(mini_workspace):
    root = mini_workspace
    replace_in(
        root / "data" / "indicators.csv",
        "Russia and Uzbekistan sign a deal to build a small nuclear power plant",
        HOSTILE_SUMMARY,
    )
    replace_in(root / "data" / "sources.csv", "Reuters,", '"Reuters <b onmouseover=alert(2)>",')
    replace_in(
        root / "data" / "sources.csv",
        "https://example.org/reuters-uzb-npp",
        "https://example.org/x\"onmouseover=\"alert(3)",
    )
    replace_in(
        root / "scenarios" / f"{PROJECT_SCENARIO}.yaml",
        "title: First concrete of the Uzbek small nuclear plant by 2028",
        "title: \"First concrete </title><script>alert(4)</script> by 2028\"",
    )
    return load_workspace(root, today=TODAY)


def test_ledger_text_cannot_inject_markup(hostile_ws, tmp_path):
    posterior = make_posterior(hostile_ws)
    paths = write_memo(hostile_ws, posterior, PROJECT_SCENARIO, tmp_path, as_of=TODAY,
                       history=False, dpi=DPI)  # fmt: skip
    page = paths.html.read_text()
    lowered = page.lower()
    assert "<script" not in lowered
    assert "onerror=" not in lowered.replace("onerror=alert(1)&gt;", "")
    assert "<img src=x" not in lowered
    assert "<b onmouseover" not in lowered
    assert lowered.count("<img ") == 2  # the two embedded figures only
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "</title><script>" not in page
    assert 'href="https://example.org/x' not in page  # a URL with quotes is not linked
    assert "javascript:" not in re.findall(r'href="([^"]*)"', page)
    assert "script-src" not in page and "default-src 'none'" in page  # CSP forbids scripts
    md = paths.markdown.read_text()
    unlinked = re.sub(r"\]\(<https?://[^<>\s\"']+>\)", "]", md)  # our own link targets
    assert re.search(r"(?<!\\)<", unlinked) is None, "an unescaped < in the Markdown"
    assert r"\<script\>alert('x')\</script\>" in md
    assert r"\[a\](javascript:x)" in md


def test_renderers_escape_every_block_kind():
    evil = "<i>x</i> & *y*"
    memo = Memo(
        title=evil,
        blocks=[
            Paragraph((evil, Strong(evil), Code(evil), Link(evil, "https://ok.example/a?b=1&c=2"))),
            Bullets((Paragraph((evil,)),), ((Paragraph((evil,)),),)),
            Table((evil,), ((evil,),)),
        ],
    )
    page = render_html(memo)
    assert "<i>" not in page
    assert page.count("&lt;i&gt;x&lt;/i&gt; &amp; *y*") == 9  # title, 4 inline, 2 items, 2 cells
    assert 'href="https://ok.example/a?b=1&amp;c=2"' in page
    md = render_markdown(memo)
    assert "`<i>x</i> & *y*`" in md  # a code span is literal text in Markdown
    outside_code = re.sub(r"`[^`]*`", "", re.sub(r"\]\(<https://[^<>\s]+>\)", "]", md))
    assert re.search(r"(?<!\\)<", outside_code) is None
    assert r"\<i\>x\</i\> \& \*y\*" in md


# --- history --------------------------------------------------------------------------------


def store_with_runs(ws, posterior, path, dates):
    with HistoryStore(path) as store:
        for day in dates:
            store.write_run(score_run(ws, posterior, as_of=day), posterior, ws, git_commit=False)
        return store.trajectory(PROJECT_SCENARIO)


def test_change_since_last_run_equals_the_store(ws, posterior, tmp_path):
    path = tmp_path / "history.duckdb"
    traj = store_with_runs(ws, posterior, path, [EARLIER, TODAY])
    memo = build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, history=path, dpi=DPI)
    before, after = traj.iloc[0], traj.iloc[1]
    assert memo.numbers["previous_p_mean"] == before["p_mean"]
    assert memo.numbers["p_mean"] == after["p_mean"]
    assert memo.numbers["change"] == pytest.approx(after["p_mean"] - before["p_mean"], abs=1e-15)
    md = render_markdown(memo)
    change = 100 * (after["p_mean"] - before["p_mean"])
    assert (
        f"Since run `{int(before['run_id'])}` (as of {EARLIER.isoformat()}), the mean "
        f"probability moved from **{pct(before['p_mean'])}** to **{pct(after['p_mean'])}** "
        f"({change:+.1f} percentage points)"
    ) in md
    from georisk.explain import explain_change

    parts = explain_change(path, PROJECT_SCENARIO).parts
    shown = parts[parts["logodds_change"].abs() > 5e-4]
    assert len(shown)
    for p in shown.itertuples(index=False):
        assert f"| {p.logodds_change:+.3f} |" in md
    assert "from `georisk.explain.explain_change` on the two stored runs" in md
    assert "from the stored scoring runs" in md  # the trajectory comes from the history


def test_change_against_a_stored_run_when_the_memo_is_newer(ws, posterior, tmp_path):
    path = tmp_path / "history.duckdb"
    traj = store_with_runs(ws, posterior, path, [EARLIER])
    memo = build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, history=path, dpi=DPI)
    assert memo.numbers["previous_p_mean"] == traj["p_mean"].iloc[0]
    assert "compared with this memo's score" in render_markdown(memo).replace(
        "comparing with", "compared with"
    )


def test_first_stored_run_and_default_store_discovery(ws, posterior, tmp_path, monkeypatch):
    from georisk.history import default_store_path

    store_with_runs(ws, posterior, default_store_path(ws), [TODAY])
    md = render_markdown(build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, dpi=DPI))
    assert "This is the first stored run of the scenario" in md
    memo = build_memo(ws, posterior, PROJECT_SCENARIO, as_of=TODAY, history=False, dpi=DPI)
    md = render_markdown(memo)
    assert "no earlier run in the history" in md


# --- errors, helpers and the command ------------------------------------------------------


def test_unknown_or_unscored_scenario_is_a_clear_error(ws, posterior, mini_workspace):
    from georisk.errors import GeoriskError

    with pytest.raises(GeoriskError, match="unknown scenario 'uzb-npp-first-concret'"):
        build_memo(ws, posterior, "uzb-npp-first-concret", as_of=TODAY, history=False)
    with pytest.raises(GeoriskError, match="not scored as of 2029-01-01"):
        build_memo(ws, posterior, PROJECT_SCENARIO, as_of=dt.date(2029, 1, 1), history=False)


def test_backfill_dates_are_monthly_and_end_on_the_as_of_date():
    assert backfill_dates(dt.date(2026, 11, 25), months=2) == [
        dt.date(2026, 9, 1), dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 11, 25),
    ]  # fmt: skip
    assert backfill_dates(dt.date(2026, 1, 1), start=dt.date(2025, 11, 15)) == [
        dt.date(2025, 12, 1), dt.date(2026, 1, 1),
    ]  # fmt: skip


def test_cli_memo_writes_the_memo(ws, tmp_path):
    from georisk.cli import app

    posterior = make_posterior(ws, fit_id=fit_id_for(ws, config=SamplerConfig()))
    posterior.save(default_posterior_dir(ws))
    out = tmp_path / "memo"
    args = ["memo", PROJECT_SCENARIO, str(ws.root), "--out", str(out), "--as-of", "2026-11-25",
            "--today", "2026-11-25", "--no-history"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "memo.html").exists() and (out / "memo.md").exists()
    assert str(out / "memo.html") in result.output
    result = CliRunner().invoke(app, ["memo", "nope", str(ws.root), "--out", str(out),
                                      "--today", "2026-11-25"])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown scenario 'nope'" in result.output


def test_cli_memo_exit_1_and_banner_for_an_unconverged_fit(ws, tmp_path):
    from georisk.cli import app

    bad = make_posterior(ws, converged=False, fit_id=fit_id_for(ws, config=SamplerConfig()))
    bad.save(default_posterior_dir(ws))
    out = tmp_path / "memo"
    result = CliRunner().invoke(
        app, ["memo", WINDOW_SCENARIO, str(ws.root), "--out", str(out), "--as-of",
              "2026-11-25", "--today", "2026-11-25", "--no-history"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "UNCONVERGED" in result.output
    assert (out / "memo.md").read_text().startswith("> **Warning:** **UNCONVERGED FIT.**")


def test_an_added_indicator_shows_up_in_the_memo(mini_workspace):
    append_line(
        mini_workspace / "data" / "sources.csv",
        "src-003,Reuters,Russia lends for the Uzbek nuclear plant,2026-03-03,day,"
        "https://example.org/reuters-loan,B,",
    )
    append_line(
        mini_workspace / "data" / "indicators.csv",
        "ind-006,src-003,ev-uzb-npp-loan,2026-03-02,day,RUS;UZB,financing_commitment,2,"
        "Russia opens a credit line for the Uzbek plant's first stage,,,"
        "uzb-npp-first-concrete:supports,",
    )
    ws = load_workspace(mini_workspace, today=TODAY)
    md = render_markdown(build_memo(ws, make_posterior(ws), PROJECT_SCENARIO, as_of=TODAY,
                                    history=False, dpi=DPI))  # fmt: skip
    assert "`ev-uzb-npp-loan`: a financing commitment event dated 2026-03-02" in md
    assert "learned from 1 reference event(s) in 1 case(s)" in md
    assert "| Reuters | 2026-03-03 | [Russia lends for the Uzbek nuclear plant]" in md
