"""The MLflow UI shows a sweep to a person: checked in a real headless Chromium.

A real ``mlflow server`` (the session's ``mlflow_server`` fixture, 127.0.0.1) records a tiny
real sweep: two MLP trials on local Ray, pruned by the curve scheduler (PFN forecaster), run by
``orchestrator.sweep.run_sweep`` exactly as ``sweepcast run`` does. Then Debian's Chromium,
driven by Selenium through the system ChromeDriver (no browser download), opens the MLflow 3.x
UI (a React single-page app: every check waits for its element) and asserts that

* the experiment page lists the sweep's parent run and, expanded, its nested trial runs;
* a pruned trial's page shows its parent, its status and the ``sweepcast.stop_reason`` tag;
* the trial's ``plots/curve.png`` and the parent's ``plots/sweep_curves.png`` render as images
  (decoded by the browser: ``naturalWidth > 0``);
* the trial's metric charts list ``val_accuracy`` and the verdict metric ``p_beat``;
* ``sweepcast report`` reads the sweep back (terminal table, and an HTML file whose embedded
  plots the browser decodes).

Screenshots of each page are saved under ``test-artifacts/`` (gitignored) for a person to look
at. Needs ``apt-get install chromium chromium-driver`` (``make system-deps``).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000",
)
MAX_EPOCHS = 6
WAIT_S = 90  # the SPA's first load on a busy 2-core CI machine


# ------------------------------------------------------------------------------ the sweep
@pytest.fixture(scope="module")
def sweep(mlflow_server: str, ray_local: None, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    """Run the tiny curve-pruned sweep into the real server; return what the UI must show."""
    from mlflow import MlflowClient

    from orchestrator.config import SweepConfig
    from orchestrator.sweep import run_sweep

    name = f"ui-{uuid.uuid4().hex[:6]}"
    tmp = tmp_path_factory.mktemp("browser_sweep")
    cfg = SweepConfig.model_validate({
        "name": name,
        "trainable": "trials.examples.mlp:train",
        "metric": "val_accuracy",
        "mode": "max",
        "max_epochs": MAX_EPOCHS,
        "num_samples": 1,
        "max_concurrent": 1,  # one at a time: the good trial completes before the others start
        "resources": {"cpu": 1, "gpu": 0},
        # lr 1e-5 cannot catch lr 3e-3 within 6 epochs: the curve scheduler stops it
        "search": {"algorithm": "grid", "seed": 0,
                   "space": {"lr": {"type": "grid", "values": [3e-3, 1e-5]}}},
        "pruning": {"scheduler": "curve", "threshold": 0.05, "grace_epochs": 2,
                    "model": "pfn"},
        "tracking": {"experiment": name},
        "storage_path": str(tmp / "results"),
    })
    out = io.StringIO()
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try:
        result = run_sweep(cfg, out=out)
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    assert result.counts["completed"] >= 1 and result.counts["pruned"] >= 1, out.getvalue()

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(result.parent_run_id)
    exp_id = parent.info.experiment_id
    children = client.search_runs(
        [exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    pruned = [r for r in children if r.data.tags.get("sweepcast.status") == "pruned"]
    assert pruned, [r.data.tags for r in children]
    # the plots are artifacts of the runs before any browser looks for them
    assert {f.path for f in client.list_artifacts(pruned[0].info.run_id, "plots")} == {
        "plots/curve.png"}
    assert {"plots/sweep_curves.png", "plots/compute.png"} <= {
        f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert "report.html" in {f.path for f in client.list_artifacts(parent.info.run_id)}
    return {
        "uri": mlflow_server,
        "name": name,
        "experiment_id": exp_id,
        "parent_id": parent.info.run_id,
        "trial_names": sorted(r.info.run_name for r in children),
        "pruned": pruned[0],
    }


# ------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless Debian Chromium through the system ChromeDriver, with a fresh profile."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `apt-get update && apt-get "
                    f"install -y chromium chromium-driver` (or `make system-deps`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path_factory.getbasetemp())
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(repo_root: Path) -> Path:
    out = repo_root / "test-artifacts" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait(driver, cond, what: str, timeout: float = WAIT_S):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(cond)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text[:1500]
        raise AssertionError(f"timed out waiting for {what}; page text:\n{body}") from None


def _visible_xpath(driver, xpath: str, what: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    return _wait(driver, EC.visibility_of_element_located((By.XPATH, xpath)), what)


def _close_assistant(driver) -> None:
    """MLflow 3.x opens an assistant side panel; close it so the page has room (if present)."""
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(
            By.CSS_SELECTOR, 'button[data-component-id="mlflow.assistant.chat_panel.close"]'):
        if b.is_displayed():
            b.click()


def _open(driver, url: str) -> None:
    driver.get(url)
    # same-document hash navigations do not re-render reliably: force a fresh load
    driver.refresh()


def _image_loaded(driver, css: str, what: str):
    from selenium.webdriver.common.by import By

    def loaded(d):
        for img in d.find_elements(By.CSS_SELECTOR, css):
            ok = d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0 "
                "&& arguments[0].getBoundingClientRect().width > 0", img)
            if ok and img.is_displayed():
                return img
        return False

    return _wait(driver, loaded, what)


def _xp(text: str) -> str:
    """An XPath string literal for ``text``."""
    return f"'{text}'" if "'" not in text else f'"{text}"'


# ------------------------------------------------------------------------------ the checks
def test_experiment_page_shows_parent_and_nested_trials(sweep, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    base = sweep["uri"]
    _open(browser, f"{base}/#/experiments/{sweep['experiment_id']}/runs")
    parent_link = _visible_xpath(
        browser, f"//a[contains(@href, '/runs/{sweep['parent_id']}') and "
                 f"normalize-space()={_xp(sweep['name'])}]",
        f"the parent run {sweep['name']!r} in the runs table")
    _close_assistant(browser)
    # nested runs are collapsed under their parent: expand it with the row's +/- button
    row = parent_link.find_element(By.XPATH, "./ancestor::div[@role='row'][1]")
    row.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']").click()
    for trial in sweep["trial_names"]:
        _visible_xpath(browser, f"//a[normalize-space()={_xp(trial)}]",
                       f"nested trial run {trial!r} under the parent")
    time.sleep(0.5)  # let the row animation settle for the screenshot
    assert browser.save_screenshot(str(shots / "1_experiment_runs.png"))


def test_pruned_trial_page_shows_parent_status_and_stop_reason(sweep, browser, shots) -> None:
    run = sweep["pruned"]
    _open(browser, f"{sweep['uri']}/#/experiments/{sweep['experiment_id']}/runs/{run.info.run_id}")
    _visible_xpath(browser, f"//*[normalize-space()={_xp(run.info.run_name)}]",
                   "the trial's run name as the page title")
    _close_assistant(browser)
    _visible_xpath(browser, f"//a[contains(@href, '/runs/{sweep['parent_id']}') and "
                            f"normalize-space()={_xp(sweep['name'])}]",
                   "the 'Parent run' link to the sweep")
    _visible_xpath(browser, "//*[normalize-space()='Killed']", "the run status Killed (pruned)")
    tag = _visible_xpath(browser, "//*[contains(normalize-space(), 'sweepcast.stop_reason')]",
                         "the sweepcast.stop_reason tag")
    reason = run.data.tags["sweepcast.stop_reason"]
    assert reason == "p_beat_low"
    _visible_xpath(browser, f"//*[contains(normalize-space(), 'sweepcast.stop_reason') and "
                            f"contains(normalize-space(), {_xp(reason)})]",
                   "the stop reason value next to its tag")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", tag)
    time.sleep(0.3)
    assert browser.save_screenshot(str(shots / "2_trial_overview_stop_reason.png"))


def test_trial_plot_artifact_renders(sweep, browser, shots) -> None:
    run = sweep["pruned"]
    url = (f"{sweep['uri']}/#/experiments/{sweep['experiment_id']}/runs/{run.info.run_id}"
           "/artifacts/plots/curve.png")
    _open(browser, url)
    img = _image_loaded(browser, "img[alt='plots/curve.png']",
                        "the rendered plots/curve.png preview")
    _close_assistant(browser)
    w, h = browser.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    assert w >= 300 and h >= 200
    time.sleep(0.3)
    assert browser.save_screenshot(str(shots / "3_trial_plot.png"))


def test_sweep_plot_artifact_renders_on_parent(sweep, browser, shots) -> None:
    url = (f"{sweep['uri']}/#/experiments/{sweep['experiment_id']}/runs/{sweep['parent_id']}"
           "/artifacts/plots/sweep_curves.png")
    _open(browser, url)
    _image_loaded(browser, "img[alt='plots/sweep_curves.png']",
                  "the rendered plots/sweep_curves.png preview on the parent run")
    _close_assistant(browser)
    time.sleep(0.3)
    assert browser.save_screenshot(str(shots / "4_sweep_plot.png"))


def test_trial_metric_charts_show_metric_and_verdicts(sweep, browser, shots) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = sweep["pruned"]
    _open(browser, f"{sweep['uri']}/#/experiments/{sweep['experiment_id']}/runs/"
                   f"{run.info.run_id}/model-metrics")
    search = _visible_xpath(browser, "//input[@placeholder='Search metric charts']",
                            "the metric chart search box")
    _close_assistant(browser)
    # charts are rendered lazily (only those in view): filter to the one we look for
    for i, metric in enumerate(("val_accuracy", "p_beat")):
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(Keys.BACKSPACE)
        search.send_keys(metric)
        _wait(browser, lambda d, m=metric: [
            e for e in d.find_elements(By.CSS_SELECTOR, f"h4[title='{m}']") if e.is_displayed()],
            f"the {metric} chart")
        time.sleep(1.0)  # the chart draws after its title
        assert browser.save_screenshot(str(shots / f"{5 + i}_trial_chart_{metric}.png"))


def test_report_command_reads_the_sweep_back(sweep, browser, shots) -> None:
    from click.testing import CliRunner
    from selenium.webdriver.common.by import By

    from orchestrator.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["report", sweep["name"], "--tracking-uri", sweep["uri"]])
    assert res.exit_code == 0, res.output
    text = res.output
    assert f"sweep       {sweep['name']}" in text and "scheduler   curve" in text
    assert "1 completed, 1 pruned" in text
    for trial in sweep["trial_names"]:
        assert trial in text
    assert "p_beat_low" in text
    assert "ranking (scoring):" in text  # the scorer's table, read from scoring/ranking.md

    page = shots / "report.html"
    res = runner.invoke(main, ["report", sweep["parent_id"], "--tracking-uri", sweep["uri"],
                               "--html", str(page)])
    assert res.exit_code == 0, res.output
    assert page.is_file() and "HTML report" in res.output
    _open(browser, page.as_uri())
    n_images = 2 + len(sweep["trial_names"])  # sweep curves, compute, one per trial

    def all_decoded(d):
        imgs = d.find_elements(By.TAG_NAME, "img")
        ok = d.execute_script(
            "return arguments[0].every(i => i.complete && i.naturalWidth > 0)", imgs)
        return len(imgs) == n_images and ok

    _wait(browser, all_decoded, f"{n_images} decoded images in the HTML report", timeout=30)
    _visible_xpath(browser, "//div[@id='ranking']//table", "the ranking table")
    assert browser.save_screenshot(str(shots / "7_report_html.png"))
