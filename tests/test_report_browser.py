"""The study report is one self-contained page that a real browser renders with its figures.

The browser test runs headless Chromium (Debian package `chromium`; `.ci/run`
installs it). Without Chromium it fails, saying how to install it: a report
that was never looked at in a browser is not tested.
"""

import base64
import io
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from trainlab.study import build_report, parse_study, run_study

STUDY = {
    "name": "browser",
    "data": {"name": "iris"},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"num_epochs": 3, "batch_size": 16, "metrics": ["accuracy"],
               "schedule": {"name": "cosine", "warmup_epochs": 1}},
    "study": {"seeds": 2, "vary": {"optimizer": ["momentum", "adam"], "lr": [0.01, 0.1]}},
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    result = run_study(parse_study(STUDY), runs_dir=root)
    return result.report


def embedded_images(page):
    return re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def test_the_report_is_self_contained(report):
    page = report.read_text()
    assert report.name == "report.html" and report.parent.name == "browser"
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page and "url(" not in page and "@import" not in page
    # learning curves, learning rate, bar chart, and the optimizer x lr heatmap of the two-axis grid
    assert len(embedded_images(page)) == 4
    assert "optimizer x lr" in page and "Welch" in page
    for case in ("optimizer=momentum, lr=0.01", "optimizer=adam, lr=0.1"):
        assert case in page


def test_every_embedded_image_decodes_to_a_picture(report):
    for data in embedded_images(report.read_text()):
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_report_rebuilds_identically_from_the_stored_runs(report):
    first = report.read_text()
    report.unlink()
    assert build_report(report.parent) == report
    assert embedded_images(report.read_text()) == embedded_images(first)


def test_chromium_renders_the_report_with_its_figures(report, tmp_path):
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.fail("headless Chromium is needed to check that the report renders: install it with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does this)")
    shot = tmp_path / "shot.png"
    completed = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
         report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), \
        f"Chromium wrote no screenshot (exit {completed.returncode}): {completed.stderr[-2000:]}"
    pixels = matplotlib.image.imread(str(shot), format="png")[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    rgb = np.round(pixels * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 200  # text, table, anti-aliased curves
    assert (rgb.min(axis=1) < 200).mean() > 0.05  # not a blank page
    # The learning curves are drawn in matplotlib's first colour (tab:blue, #1f77b4): seeing it in the
    # screenshot means the embedded figure itself rendered, not just the page around it.
    blue = np.abs(rgb.astype(int) - [31, 119, 180]).max(axis=1) <= 12
    assert blue.sum() > 300
