"""The study report is one offline page that a real browser renders, with charts that respond.

The browser tests run headless Chromium (Debian package `chromium`; `make test`
and `.ci/run` install it). Without Chromium they fail, saying how to install it:
a report that was never looked at in a browser is not tested.

The interactive test screenshots the page at 1280 px wide into docs/ (shown in
the README), so the pictures there are always those of the current report.
"""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from trainlab.study import build_report, parse_study, run_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = {
    "name": "browser",
    "data": {"name": "iris", "validation_split": 0.2},
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]},
    "recipe": {"num_epochs": 6, "batch_size": 16, "metrics": ["accuracy"],
               "schedule": {"name": "cosine", "warmup_epochs": 1}},
    "study": {"seeds": 2, "vary": {"optimizer": ["momentum", "adam"], "lr": [0.01, 0.1]}},
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Run in the page after load: count the charts and their drawn traces, hover a point, click the first
# legend entry (a case) and count the hidden traces, then undo both so that the screenshot is clean.
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {plots: 0, drawn: [], hover: 0, hidden: 0, shown_again: 0, error: null};
  function finish() { document.title = "PROBE " + JSON.stringify(out); }
  function click(gd) {
    var toggle = gd.querySelector(".legend .traces .legendtoggle");
    var box = toggle.getBoundingClientRect();
    var opts = {bubbles: true, clientX: box.left + 2, clientY: box.top + 2, button: 0, buttons: 1, view: window};
    toggle.dispatchEvent(new MouseEvent("mousedown", opts));
    toggle.dispatchEvent(new MouseEvent("mouseup", opts));
  }
  function hidden(gd) { return gd._fullData.filter(function (t) { return t.visible === "legendonly"; }).length; }
  try {
    var plots = Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot"));
    out.plots = plots.length;
    out.drawn = plots.map(function (p) {
      return p.querySelectorAll(".scatterlayer .trace .point, .scatterlayer .trace .js-line, .heatmaplayer .hm").length;
    });
    var gd = plots[0];
    Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: 0}]);
    var text = gd.querySelector(".hoverlayer .hovertext");
    out.hover = text ? text.textContent : "";
    Plotly.Fx.unhover(gd);
    click(gd);
    setTimeout(function () {
      out.hidden = hidden(gd);
      click(gd);
      setTimeout(function () { out.shown_again = hidden(gd) === 0; finish(); }, 700);
    }, 700);
  } catch (e) { out.error = String(e); finish(); }
});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    result = run_study(parse_study(STUDY), runs_dir=root)
    return result.report


def embedded_images(page):
    return re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)


def html_outside_scripts(page):
    return re.sub(r"<script\b.*?</script>", "", page, flags=re.S)


def test_the_report_is_one_offline_file_with_plotly_inlined_once(report):
    page = report.read_text()
    assert report.name == "report.html" and report.parent.name == "browser"
    markup = html_outside_scripts(page)
    # Nothing is fetched: no external script, stylesheet, image or font; links go to run folders or anchors.
    assert "<link" not in markup and "@import" not in markup and "url(" not in markup
    assert not re.search(r"<script[^>]*\bsrc=", page)
    sources = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", markup)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) or re.fullmatch(r"[\w.+=-]+/", s)
                           for s in sources), sources
    assert page.count("plotly.js v") == 1  # the library, once, whatever the number of charts
    assert page.count("Plotly.newPlot(") == 4  # per case, curves, lr, and the optimizer x lr heatmap
    assert "optimizer x lr" in page and "Welch" in page and "Holm" in page
    for case in ("optimizer=momentum, lr=0.01", "optimizer=adam, lr=0.1"):
        assert case in markup


def test_the_verdict_tables_and_case_details_link_to_the_run_folders(report):
    markup = html_outside_scripts(report.read_text())
    verdict = re.search(r"<p class=\"verdict\">(.*?)</p>", markup, flags=re.S).group(1)
    assert verdict.startswith("Best: ")
    links = re.findall(r"<a href='([\w.+=-]+)/'>", markup)
    assert len(links) == 8 and all((report.parent / link / "result.json").is_file() for link in links)
    # One confusion matrix per case; its counts add up to the validation part (30 of 150) times 2 seeds.
    matrices = re.findall(r"<table class='confusion'>(.*?)</table>", markup, flags=re.S)
    assert len(matrices) == 4
    for matrix in matrices:
        counts = [int(v) for v in re.findall(r"<td [^>]*>(\d+)</td>", matrix)]
        assert len(counts) == 9 and sum(counts) == 2 * 30


def test_every_static_fallback_image_decodes_to_a_picture(report):
    images = embedded_images(report.read_text())
    assert len(images) == 4
    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_report_rebuilds_identically_from_the_stored_runs(report):
    first = report.read_text()
    report.unlink()
    assert build_report(report.parent) == report
    assert report.read_text() == first


def chromium(tmp_path, url, *args):
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.fail("headless Chromium is needed to check that the report renders: install it with "
                    "`apt-get update && apt-get install -y chromium` (`make test` does this as root)")
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000",
         *args, url],
        capture_output=True, text=True, timeout=180,
    )


def test_chromium_draws_the_charts_and_they_respond_to_hover_and_legend_clicks(report, tmp_path):
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    shot = ROOT / "docs" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    done = chromium(tmp_path, probe.resolve().as_uri(), "--window-size=1280,3600", f"--screenshot={shot}",
                    "--dump-dom")
    title = re.search(r"<title>PROBE (.*?)</title>", done.stdout)
    assert title, f"the page's probe did not run (exit {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(title.group(1).replace("&quot;", '"'))
    assert result["error"] is None
    assert result["plots"] == 4
    # per case: 8 seed dots + 4 means; curves: a line per case and panel; lr: a line per case; heatmap
    assert result["drawn"][0] >= 12 and result["drawn"][1] >= 16 and result["drawn"][2] >= 4
    assert result["drawn"][3] >= 1
    assert "browser" not in result["hover"] and re.search(r"s\d", result["hover"])  # the run id of a seed
    assert result["hidden"] == 2  # a case's seeds and its mean go together
    assert result["shown_again"] is True
    pixels = matplotlib.image.imread(str(shot), format="png")[..., :3]
    assert pixels.shape[:2] == (3600, 1280)
    rgb = np.round(pixels * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 200 and (rgb.min(axis=1) < 200).mean() > 0.03


def test_without_javascript_the_static_figures_show(report, tmp_path):
    # What a browser with JavaScript off gets: the page without its scripts (headless Chromium cannot
    # take a screenshot with scripts disabled).
    static = report.with_name("static.html")
    static.write_text(re.sub(r"<script\b.*?</script>", "", report.read_text(), flags=re.S))
    shot = tmp_path / "static.png"
    done = chromium(tmp_path, static.resolve().as_uri(), "--window-size=1280,2000", f"--screenshot={shot}")
    assert shot.is_file(), f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    rgb = np.round(matplotlib.image.imread(str(shot), format="png")[..., :3] * 255).astype(int).reshape(-1, 3)
    # The curves are drawn in matplotlib's first colour (tab:blue, #1f77b4): the embedded PNGs rendered.
    blue = np.abs(rgb - [31, 119, 180]).max(axis=1) <= 12
    assert blue.sum() > 300
