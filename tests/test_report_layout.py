"""The HTML report read in headless Chromium at 1 400 px: nothing scrolls sideways, the configuration is folded,
every figure has a caption that says what it shows, and a figure with nothing to show is a sentence."""

from __future__ import annotations

import pytest
from analysis_helpers import synthetic_run
from chromium_cdp import Chromium
from viewer_helpers import multi_method_run

from llm_erm.analysis import analyze_run

WIDTH = 1400
OVERFLOW = """(() => ({
  page: document.documentElement.scrollWidth,
  boxes: [...document.querySelectorAll('.scroll, table, figure, pre, details')]
    .filter(e => e.closest('details:not([open])') === null || e.tagName === 'DETAILS')
    .map(e => [e.tagName + '.' + e.className, e.scrollWidth - e.clientWidth, Math.round(e.getBoundingClientRect().right)])
    .filter(([, over, right]) => over > 1 || right > innerWidth),
}))()"""


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=WIDTH, height=900) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    long_names = tuple(f"fn_{c}" for c in "abcdefghijkl")
    return {
        "60 cells": analyze_run(synthetic_run(root / "r60" / "run", root / "d60", targets=long_names,
                                              lengths=(20, 25, 30, 50, 100), trials=5, attempts=5)),
        "methods": analyze_run(multi_method_run(root / "rm" / "mm", root / "dm",
                                                targets=tuple(f"fn_{c}" for c in "abcdefghijklmn"))),
        "1 attempt": analyze_run(synthetic_run(root / "r1" / "run", root / "d1", attempts=1)),
    }


@pytest.mark.parametrize("name", ["60 cells", "methods", "1 attempt"])
def test_the_report_fits_1400_px_with_the_configuration_folded(reports, browser, name):
    result = reports[name]
    browser.navigate(result.report_path.as_uri())
    layout = browser.evaluate(OVERFLOW)
    assert layout["page"] <= WIDTH and layout["boxes"] == [], layout
    folded = browser.evaluate("[...document.querySelectorAll('details')].map(d => [d.open, d.querySelector('summary').textContent])")
    assert len(folded) == 1 and folded[0][0] is False and folded[0][1].startswith("manifest.json")
    config_height = browser.evaluate("document.querySelector('details').getBoundingClientRect().height")
    assert config_height < 40  # one summary line, not 1.5 screens
    captions = browser.evaluate("[...document.querySelectorAll('figure')].map(f => [f.dataset.plot, "
                                "f.querySelector('figcaption').textContent])")
    assert [plot for plot, _ in captions] == list(result.plots)
    for plot, caption in captions:
        assert len(caption.split()) >= 15 and plot not in caption, caption  # words, not a slug
    missing = browser.evaluate("[...document.querySelectorAll('p.missing')].map(p => [p.dataset.plot, p.textContent])")
    assert [plot for plot, _ in missing] == list(result.missing_plots)
    sizes = browser.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert sizes == [1200] * len(result.plots)


def test_the_methods_report_leads_with_the_methods_table(reports, browser):
    browser.navigate(reports["methods"].report_path.as_uri())
    headers = browser.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert headers[:2] == ["Methods", "Results per cell"]
    columns = browser.evaluate("[...document.querySelector('h2 + p + .scroll table').querySelectorAll('th')]"
                               ".map(t => t.textContent)")
    assert columns == ["target", "L", "erm", "sgd-n1000", "sgd-n200", "xgboost"]
    rows = browser.evaluate("document.querySelector('h2 + p + .scroll table').querySelectorAll('tbody tr').length")
    assert rows == 14 * 2
