"""The viewer in a real headless Chromium, driven over the DevTools protocol with real mouse clicks.

- a finished multi-method run: runs page -> the run's grid -> a cell -> an attempt, whose code is shown highlighted;
- a running run: a trial written while the page is open appears without a reload;
- two runs side by side: the planted regression is marked, and only it;
- a token-protected viewer works in the browser once opened with the printed URL.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from analysis_helpers import attempt_row
from chromium_cdp import Chromium
from viewer_helpers import method_trial_path, multi_method_run, write_method_trial

from llm_erm.results import ledger
from llm_erm.viewer import make_server


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1400, height=1000) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer")
    multi_method_run(root / "results" / "mm", root / "datasets")
    return root / "results"


@pytest.fixture(scope="module")
def viewer(results):
    server = make_server(results, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def errors_on_page(browser) -> list[str]:
    """Uncaught exceptions and console errors (a CSP violation is one) since the page was opened."""
    out = []
    for event in browser.events:
        if event.get("method") == "Runtime.exceptionThrown":
            out.append(event["params"]["exceptionDetails"].get("text", "exception"))
        elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
            out.append(" ".join(str(a.get("value", a.get("description"))) for a in event["params"]["args"]))
    return out


def open_page(browser, url: str, ready: str) -> None:
    browser.navigate("about:blank")  # a fresh document, so `ready` below is this page's
    browser.events.clear()
    browser.navigate(url)
    browser.wait_for(f"document.body && document.body.dataset.ready === '1' && !!({ready})")


def test_grid_to_cell_to_attempt_shows_the_code(browser, viewer):
    open_page(browser, viewer.url, "document.querySelector('#runs a.run-link')")
    assert browser.evaluate("document.querySelector('tr[data-run=mm] [data-state]').dataset.state") == "complete"
    browser.click("tr[data-run=mm] a.run-link")
    browser.wait_for("document.querySelectorAll('section.method a.cell').length === 16")
    labels = browser.evaluate("[...document.querySelectorAll('section.method')].map(s => s.dataset.label)")
    assert labels == ["erm", "sgd-n1000", "sgd-n200", "xgboost"]
    assert browser.evaluate("document.querySelector('[data-leakage]').dataset.leakage") == "not analysed"
    prefect = browser.evaluate("[...document.querySelectorAll('a')].find(a => a.textContent.includes('Prefect UI')).href")
    assert prefect == "http://127.0.0.1:4200/runs/flow-run/0b8f5c1e-1111-2222-3333-444455556666"
    flags = browser.evaluate("[...document.querySelectorAll('section.method[data-label=erm] [data-flag]')]"
                             ".map(f => f.dataset.flag)")
    assert "limit_test" in flags and "truncated" in flags  # the synthetic run has both

    browser.click("a.cell[data-label=erm][data-target=fn_b][data-length='24']")
    browser.wait_for("location.hash.includes('/cell/erm/fn_b/24') && document.querySelectorAll('section.trial').length === 2")
    selected = browser.evaluate("document.querySelectorAll('section.trial[data-trial=\"1\"] tr.selected').length")
    assert selected == 1

    # the first attempt that has code
    row = browser.evaluate("""[...document.querySelectorAll('section.trial[data-trial="1"] tbody tr')]
        .find(r => r.querySelector('td:nth-child(2)').textContent !== 'syntax_error').dataset.attempt""")
    browser.click(f"section.trial[data-trial='1'] tr[data-attempt='{row}'] a.attempt-link")
    browser.wait_for("document.querySelector('#code')")
    code = browser.evaluate("document.querySelector('#code').textContent")
    assert code.startswith("def f(x):") and f"# attempt {row}" in code
    highlighted = browser.evaluate("[...document.querySelectorAll('#code span')].map(s => s.className + ':' + s.textContent)")
    assert "hl-kw:def" in highlighted and "hl-def:f" in highlighted and "hl-kw:return" in highlighted
    assert any(h.startswith("hl-com:# attempt") for h in highlighted)
    assert browser.evaluate("document.querySelector('details[data-key=prompt]').open") is False  # folded
    assert "length 24" in browser.evaluate("document.querySelector('#prompt').textContent")
    assert json.loads(browser.evaluate("document.querySelector('#response').textContent"))["code"] == code
    assert errors_on_page(browser) == []


def test_a_baseline_attempt_shows_its_training_curve(browser, viewer):
    open_page(browser, viewer.url + "#/run/mm", "document.querySelector('a.cell')")
    browser.click("a.cell[data-label=sgd-n1000][data-target=fn_a][data-length='20']")
    browser.wait_for("document.querySelector('section.trial a.attempt-link')")
    browser.click("section.trial[data-trial='2'] a.attempt-link")
    browser.wait_for("document.querySelector('#curve')")
    assert browser.evaluate("document.querySelectorAll('#curve tbody tr').length") == 3
    assert browser.evaluate("document.querySelector('#code-missing').textContent").startswith("No code")
    assert errors_on_page(browser) == []


def test_a_trial_written_while_the_page_is_open_appears_without_a_reload(browser, results, viewer):
    run_dir = results / "running"
    write_method_trial(run_dir, "erm", "fn_a", 20, 1, [attempt_row("fn_a", 20, 1, 1, 0.7, 0.6, code="def f(x): 0")])
    marker = method_trial_path(run_dir, "erm", "fn_a", 20, 2).with_suffix(".running")
    marker.write_text(f"{platform.node()} {os.getpid()}")  # trial 2 is in flight, in this (live) process
    try:
        open_page(browser, viewer.url + "#/run/running/cell/erm/fn_a/20", "document.querySelector('section.trial')")
        browser.evaluate("window.__sameDocument = 'yes'")
        renders = int(browser.evaluate("document.body.dataset.renders"))
        assert browser.evaluate("document.querySelectorAll('section.trial').length") == 1
        write_method_trial(run_dir, "erm", "fn_a", 20, 2,
                           [attempt_row("fn_a", 20, 2, 1, 0.9, 0.85, code="def f(x):\n    return 1\n")])
        browser.wait_for("document.querySelector('section.trial[data-trial=\"2\"]')", timeout=30)
        assert browser.evaluate("window.__sameDocument") == "yes"  # no reload: the same document was redrawn
        assert int(browser.evaluate("document.body.dataset.renders")) > renders
        # the grid follows the run too: the state badge says running while the marker lives
        browser.evaluate("location.hash = '#/run/running'")
        browser.wait_for("document.querySelector('h1 [data-state]') && location.hash === '#/run/running'")
        assert browser.evaluate("document.querySelector('h1 [data-state]').dataset.state") == "running"
        marker.unlink()
        browser.wait_for("document.querySelector('h1 [data-state]').dataset.state === 'complete'", timeout=30)
        assert browser.evaluate("window.__sameDocument") == "yes"
    finally:
        marker.unlink(missing_ok=True)
    assert errors_on_page(browser) == []


def test_two_runs_side_by_side_mark_the_planted_regression(browser, results, viewer):
    shutil.copytree(results / "mm", results / "mm-worse")
    for trial in (1, 2):
        path = method_trial_path(results / "mm-worse", "erm", "fn_a", 24, trial)
        table = pa.parquet.read_table(path)
        index = table.schema.get_field_index("test_acc")
        ledger.write_table(path, table.set_column(index, "test_acc", pc.subtract(table.column("test_acc"), 0.5)))
    open_page(browser, viewer.url, "document.querySelector('form.compare')")
    browser.evaluate("document.querySelector('#baseline').value = 'mm'; document.querySelector('#candidate').value = 'mm-worse'")
    browser.click("form.compare button")
    browser.wait_for("document.querySelector('#compare-verdict')")
    assert browser.evaluate("location.hash") == "#/compare/mm/mm-worse"
    marked = browser.evaluate("""[...document.querySelectorAll('tr.regression')].map(r =>
        r.closest('section').dataset.label + ' ' + r.dataset.target + ' ' + r.dataset.length)""")
    assert marked == ["erm fn_a 24"]
    text = browser.evaluate("document.querySelector('tr.regression').textContent")
    assert "REGRESSION" in text and "test_accuracy" in text
    assert browser.evaluate("document.querySelectorAll('tr[data-regression=\"0\"]').length") == 15
    assert browser.evaluate("document.querySelector('#compare-verdict').textContent").startswith("1 regression")
    assert errors_on_page(browser) == []


def test_a_token_protected_viewer_works_from_its_printed_url(browser, results):
    server = make_server(results, host="127.0.0.1", port=0, token="a-long-enough-secret-token")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        browser.events.clear()
        browser.navigate(base + "#/run/mm")
        assert "missing or wrong token" in browser.evaluate("document.body.innerText")
        open_page(browser, server.url, "document.querySelector('#runs')")
        assert "token" not in browser.evaluate("location.href")  # moved into a cookie
        browser.evaluate("location.hash = '#/run/mm'")
        browser.wait_for("document.querySelectorAll('a.cell').length === 16")
        assert errors_on_page(browser) == []
    finally:
        server.shutdown()
        server.server_close()
