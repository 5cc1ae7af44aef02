"""The tune step's trials report as a person sees it in the KFP UI: rendered by a real Chromium
in a sandboxed iframe (tests/local/test_reports_in_browser.py's `show`), the best trial first
and marked, a trial name that is HTML shown as text, nothing fetched from outside. The
screenshot is kept in out/screenshots/katib-trials-report.png."""

from __future__ import annotations

from components.tune import katib
from components.tune.report import trials_report
from tests.kube_server import client_for, kube_api
from tests.local import test_reports_in_browser as reports
from tests.local.test_reports_in_browser import screenshot, show
from tests.unit.test_katib_tune import SUCCEEDED, body, katib_trial

pytestmark = reports.pytestmark  # Debian's chromium
browser = reports.browser  # the fixture: one Chromium for the module


def ended_experiment() -> dict:
    return {**body(), "status": SUCCEEDED}


TRIALS = [
    katib_trial("mnist-tune-run-1-aaa", ("0.001", "256", "2"), "0.9710"),
    katib_trial("mnist-tune-run-1-abc", ("0.0213", "128", "5"), "0.9925"),
    katib_trial("mnist-tune-run-1-bbb", ("0.0087", "64", "6"), "0.9902"),
    katib_trial("mnist-tune-run-1-zzz", ("0.05", "64", "8"), None, state="Failed"),
    katib_trial('<img src=x onerror="alert(1)">', ("0.01", "64", "1"), "0.5"),
]


def test_the_trials_report_renders_with_the_best_marked(browser):
    page, frame = show(browser, trials_report(ended_experiment(), TRIALS), "katib-trials")
    title = frame.locator("h1").inner_text()
    assert title == "Katib search: best validation_accuracy 0.9925 (mnist-tune-run-1-abc)"
    rows = frame.locator("#trials tr")
    assert rows.count() == 1 + len(TRIALS)
    best = rows.nth(1)
    assert best.get_attribute("class") == "best"
    assert best.inner_text().split("\t")[:3] == ["★ best", "mnist-tune-run-1-abc", "Succeeded"]
    colour = best.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert colour == "rgb(218, 251, 225)"  # the marked row stands out
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in (2, 3)] == [
        "mnist-tune-run-1-bbb",
        "mnist-tune-run-1-aaa",
    ]  # then by validation accuracy
    assert frame.locator("img").count() == 0  # the hostile name is text, not an element
    assert frame.get_by_text('<img src=x onerror="alert(1)">').count() == 1
    assert "Failed" in rows.last.inner_text() and "—" in rows.last.inner_text()
    screenshot(page, "katib-trials-report")


def test_the_report_the_tune_step_writes_is_the_one_shown(browser, tmp_path):
    """Through the step's own path: the Experiment ends on a Kubernetes API stand-in, its
    trials are listed by label, and the file it writes renders."""
    report = tmp_path / "report.html"
    with kube_api() as (api, url):
        api.script_status("experiments", "mnist-tune-run-1", SUCCEEDED)
        for trial in TRIALS:
            api.put("trials", trial)
        from components.common.kube import Kube

        katib.tune(body(), 30, Kube(client_for(url)), 0.05, report_path=str(report))
    _, frame = show(browser, report.read_text(), "katib-trials-step")
    assert frame.locator("#trials tr").count() == 1 + len(TRIALS)
    assert "algorithm tpe" in frame.locator(".meta").inner_text()
