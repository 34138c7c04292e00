"""The diagnosis page is self-contained and a real browser renders its activation-histogram figure.

As for the study report (tests/test_report_browser.py), the check runs headless
Chromium (Debian package `chromium`); without it the test fails, saying how to
install it.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from trainlab.diagnose import diagnose_spec
from trainlab.diagnose.report import HISTOGRAM_COLOUR

SPEC = {
    "name": "browser-doctor",
    "data": {"name": "iris"},
    "model": {"layers": [{"type": "Dense", "units": 16, "activation": "tanh"},
                         {"type": "Dense", "units": 16, "activation": "relu"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"num_epochs": 3, "batch_size": 16, "seed": 0},
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    diagnosis = diagnose_spec(SPEC, runs_dir=tmp_path_factory.mktemp("runs"))
    assert diagnosis.run_dir is not None
    return diagnosis.run_dir / "diagnosis.html"


def embedded_images(page):
    return re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_the_page_is_self_contained_with_its_three_figures(report):
    page = report.read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"https?://", page) and "<script" not in page
    assert len(embedded_images(page)) == 3
    for title in ("Activation histograms by depth", "Gradients by layer and epoch", "Learning curves", "Verdicts"):
        assert title in page
    for data in embedded_images(page):
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 200 and pixels[..., :3].std() > 0.05


def test_chromium_renders_the_activation_histograms(report, tmp_path):
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.fail("headless Chromium is needed to check that the report renders: install it with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does this)")
    shot = tmp_path / "shot.png"
    completed = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1600",
         report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), f"Chromium wrote no screenshot (exit {completed.returncode}): {completed.stderr[-2000:]}"
    pixels = matplotlib.image.imread(str(shot), format="png")[..., :3]
    assert pixels.shape[:2] == (1600, 1280)
    rgb = np.round(pixels * 255).astype(np.uint8).reshape(-1, 3)
    assert (rgb.min(axis=1) < 200).mean() > 0.03  # not a blank page
    # The histogram bars are drawn in a colour no other part of the page uses: seeing it on the screen
    # means the embedded histogram figure itself was decoded and drawn.
    target = np.array([int(HISTOGRAM_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    purple = np.abs(rgb.astype(int) - target).max(axis=1) <= 12
    assert purple.sum() > 500
