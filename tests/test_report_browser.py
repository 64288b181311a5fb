"""report.html in a real browser: headless Chromium opens it from disk, offline.

Checks what a reader would notice: errors in the console, a request leaving the file, an
image that does not decode, a blank page. Chromium comes from the system packages
(/usr/bin/chromium); when it is missing the setup installs it with apt-get, and fails (does
not skip) when that is impossible on a machine that has apt.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SMALL = (
    "population.cards=1500",
    "bike.trips=200",
    "hospital.patients=100",
    "issuance.applications=30",
    "pos.shops.purchases=100",
    "pos.supermarkets.purchases=100",
    "pos.taxis.purchases=100",
)
"""A town small enough to run in a second or two: the page, not the day, is under test."""


def _apt_install_chromium() -> str:
    """Install chromium from the system packages; returns apt's output tail on failure."""
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:  # stale or empty package lists: refresh once and retry
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=900)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    return "" if done.returncode == 0 else (done.stdout + done.stderr)[-600:]


def ensure_chromium() -> Path:
    """The Chromium binary, installed first if needed (as root, with apt-get)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and this machine has no apt-get to install it")
    if os.geteuid() != 0:
        pytest.fail(
            f"{CHROMIUM} is missing; install it as root: apt-get install -y chromium", False
        )
    failure = _apt_install_chromium()
    if failure or not CHROMIUM.exists():
        pytest.fail(f"could not install chromium with apt-get: {failure}", False)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "town"
    overrides = [part for item in SMALL for part in ("--set", item)]
    scenario = ROOT / "scenarios" / "small-town.toml"
    command = [sys.executable, "-m", "cardsim", "run", str(scenario), "--out", str(out)]
    done = subprocess.run(
        [*command, "--seed", "2", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out / "report.html"


def test_report_opens_offline_without_errors_and_shows_its_plots(
    browser: Browser, report: Path
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")
    widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert errors == []
    # Only the page itself: images are data: URIs, and nothing reaches the network.
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
    assert len(widths) == 7 and all(w > 0 for w in widths), widths
    assert page.title().startswith("cardsim run: small-town")
    _assert_not_blank(page.screenshot(full_page=False))
    plot = page.locator("#plot-transactions_per_hour img")
    _assert_not_blank(plot.screenshot())
    page.close()


def _assert_not_blank(png: bytes) -> None:
    """A rendered page or plot has ink: enough non-white pixels and real contrast."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    non_white = float(np.mean(pixels < 240))
    assert non_white > 0.02, f"only {non_white:.1%} of the pixels are not white"
    assert pixels.std() > 10.0, f"pixel standard deviation {pixels.std():.1f}: a flat image"
