"""The HTML report opens in headless Chromium and its plots render (not broken images).

Two checks that would both fail for a broken image:
- the real report, loaded with --dump-dom and a load handler that records every image's natural size
  (a broken image has naturalWidth 0);
- a page holding one of the report's own <img> tags at the top-left corner: the screenshot must reproduce
  the PNG's ink (its non-white pixels), and the same page with a truncated data URI must not.
"""

import re
import subprocess

import numpy as np
import pytest
from analysis_helpers import synthetic_run
from PIL import Image

from llm_erm.analysis import analyze_run
from llm_erm.analysis.plots import PNG_SIZE

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]
RECORD_IMAGE_SIZES = """<script>
window.addEventListener("load", () => {
  document.body.dataset.images = [...document.images].map(i => i.naturalWidth + "x" + i.naturalHeight).join(" ");
});
</script>"""


def chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def ink_reproduced(shot, expected) -> float:
    """The share of the expected image's non-white pixels that the screenshot shows (within 16 levels)."""
    ink = (expected < 250).any(axis=2)
    close = (np.abs(shot - expected) <= 16).all(axis=2)
    return float((close & ink).sum() / ink.sum())


def screenshot(tmp_path, html_file):
    png = tmp_path / f"{html_file.stem}.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1400,2000", html_file.as_uri())
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("screenshot")
    return analyze_run(synthetic_run(root / "results" / "run", root / "datasets"))


def test_every_plot_in_the_report_decodes_in_chromium(report, tmp_path):
    page = tmp_path / "report-with-probe.html"
    page.write_text(report.report_path.read_text().replace("</body>", RECORD_IMAGE_SIZES + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    sizes = re.search(r'data-images="([^"]*)"', dom)
    assert sizes, "the load handler did not run"
    assert sizes.group(1).split() == [f"{PNG_SIZE[0]}x{PNG_SIZE[1]}"] * len(report.plots)


def test_a_plot_from_the_report_renders_pixel_for_pixel(report, tmp_path):
    first_img = re.search(r"<img [^>]*>", report.report_path.read_text()).group(0)
    source = re.search(r'src="data:image/png;base64,([^"]+)"', first_img).group(1)
    expected = np.asarray(Image.open(report.plots["accuracy_vs_length"]).convert("RGB"), dtype=np.int16)
    width, height = PNG_SIZE

    def page(name, img):
        path = tmp_path / f"{name}.html"
        path.write_text(f'<!doctype html><html><body style="margin:0;background:#fff">{img}</body></html>')
        return path

    rendered = screenshot(tmp_path, page("plot", first_img))[:height, :width]
    assert ink_reproduced(rendered, expected) > 0.99
    assert len(np.unique(rendered.reshape(-1, 3), axis=0)) > 20  # not blank

    # The control: a truncated PNG (Chromium draws what it can decode) must fail the same check.
    broken = first_img.replace(source, source[: len(source) // 3])
    broken_shot = screenshot(tmp_path, page("broken", broken))[:height, :width]
    assert ink_reproduced(broken_shot, expected) < 0.9
