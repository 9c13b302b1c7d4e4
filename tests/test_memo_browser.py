"""Open the HTML memo in a real headless Chromium, as a reader would.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe`` (two
pipes, NUL-separated JSON; no websocket library, no network port). The test loads
``memo.html`` from a ``file://`` URL, waits for the load event, measures every ``<img>``
and ``<svg>`` in the page, collects console messages, uncaught exceptions and browser log
errors (a failed load, a Content-Security-Policy violation), and saves a full-page
screenshot to ``artifacts/screenshots/`` (uploaded by CI).

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). When it
is missing the test fails with a clear message, unless ``GEORISK_SKIP_BROWSER=1``.
``GEORISK_CHROMIUM`` overrides the browser binary.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from georisk.memo import write_memo
from georisk.workspace import load_workspace
from helpers import PROJECT_SCENARIO, TODAY, replace_in
from test_plotting import make_posterior

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def chromium_binary() -> str:
    """The Chromium to use, or fail (skip only with GEORISK_SKIP_BROWSER=1)."""
    candidates = [os.environ.get("GEORISK_CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), "/usr/bin/chromium"]  # fmt: skip
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    if os.environ.get("GEORISK_SKIP_BROWSER") == "1":
        pytest.skip("GEORISK_SKIP_BROWSER=1 and no chromium installed")
    pytest.fail(
        "Chromium is not installed, so the HTML memo cannot be checked in a browser. "
        "Install Debian's package (`apt-get install -y chromium`), point GEORISK_CHROMIUM at "
        "a Chromium binary, or set GEORISK_SKIP_BROWSER=1 to skip this test.",
        pytrace=False,
    )


class Chromium:
    """Minimal DevTools-protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, *, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="georisk-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        args = [
            binary, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        # Chromium reads commands on fd 3 and writes replies on fd 4; bash (not dash, which
        # takes single-digit descriptors only) moves our pipe ends there.
        cmd = "exec " + " ".join(shlex.quote(a) for a in args) + f" 3<&{to_r} 4>&{from_w}"
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", cmd], pass_fds=(to_r, from_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            e = self._read()
            if e.get("method") == method and e.get("sessionId") == session:
                return e
            self.events.append(e)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium sent nothing for {self.timeout} s")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    err = err.decode(errors="replace")
                    raise RuntimeError(f"Chromium closed the pipe:\n{err[-3000:]}")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self.profile, ignore_errors=True)


MEASURE = """JSON.stringify({
  images: Array.from(document.images).map(i => {
    const r = i.getBoundingClientRect();
    return {complete: i.complete, natural: i.naturalWidth, width: r.width, height: r.height};
  }),
  svgs: Array.from(document.querySelectorAll('svg')).map(s => {
    const r = s.getBoundingClientRect();
    return {width: r.width, height: r.height};
  }),
  scripts: document.scripts.length,
  warningTop: (() => { const w = document.querySelector('.warning');
                       return w ? w.getBoundingClientRect().top : null; })(),
  h1Top: document.querySelector('h1').getBoundingClientRect().top,
  height: document.documentElement.scrollHeight
})"""


def open_in_chromium(html: Path, screenshot: Path) -> tuple[dict, list[dict]]:
    """Load a page, measure it, save a full-page screenshot; return measures and problems."""
    browser = Chromium(chromium_binary())
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            browser.send(domain, session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 2000, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired", session)
        result = browser.send(
            "Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session=session
        )
        measures = json.loads(result["result"]["value"])
        shot = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=session,
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        problems = [
            e for e in browser.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in {"error", "assert", "warning"})
            or (e.get("method") == "Log.entryAdded"
                and e["params"]["entry"].get("level") in {"error", "warning"})
        ]  # fmt: skip
    finally:
        browser.close()
    return measures, problems


def check_page(measures: dict, problems: list[dict], *, figures: int) -> None:
    assert not problems, f"console errors or warnings: {json.dumps(problems, indent=1)[:3000]}"
    assert len(measures["images"]) == figures, measures["images"]
    for img in measures["images"] + measures["svgs"]:
        assert img.get("complete", True), f"an image did not load: {img}"
        assert img.get("natural", 1) > 0, f"an image has no pixels: {img}"
        assert img["width"] > 100 and img["height"] > 50, f"an image has no size: {img}"
    assert measures["scripts"] == 0


@pytest.fixture
def memo_workspace(mini_workspace):
    # hostile ledger text must render as text, not run (a CSP violation would be logged)
    replace_in(
        mini_workspace / "data" / "indicators.csv",
        "Russia and Uzbekistan sign a deal to build a small nuclear power plant",
        "Deal signed <script>alert('x')</script> <img src=x onerror=alert(1)>",
    )
    return load_workspace(mini_workspace, today=TODAY)


def test_memo_opens_in_chromium_with_all_figures_and_no_errors(memo_workspace, tmp_path):
    ws = memo_workspace
    paths = write_memo(ws, make_posterior(ws), PROJECT_SCENARIO, tmp_path / "memo",
                       as_of=TODAY, history=False)  # fmt: skip
    shot = SCREENSHOTS / "memo.png"
    measures, problems = open_in_chromium(paths.html, shot)
    check_page(measures, problems, figures=len(paths.figures))
    assert measures["warningTop"] is None or measures["warningTop"] > measures["h1Top"]
    assert shot.stat().st_size > 10_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[1] >= measures["height"] * 0.9  # the whole page, not just the viewport


def test_unconverged_memo_shows_its_warning_above_the_title(memo_workspace, tmp_path):
    ws = memo_workspace
    paths = write_memo(ws, make_posterior(ws, converged=False), PROJECT_SCENARIO,
                       tmp_path / "memo", as_of=TODAY, history=False)  # fmt: skip
    measures, problems = open_in_chromium(paths.html, SCREENSHOTS / "memo-unconverged.png")
    check_page(measures, problems, figures=len(paths.figures))
    assert measures["warningTop"] is not None
    assert measures["warningTop"] < measures["h1Top"]
