"""The MLflow UI as a person sees it: headless Chromium against `stance ui`."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import free_port, listening_addresses, running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Debian's chromium on a machine with no network: no background fetches, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium; .ci/run does)")


@pytest.fixture()
def ui(project):
    root, env = project
    port = free_port()
    with running_server(["stance", "ui", "--port", str(port)], root, env, "/health", port, timeout_s=90) as base:
        assert listening_addresses(port) == {"127.0.0.1"}  # loopback only, unless --expose
        yield base, env


def test_experiment_page_shows_both_runs_and_the_stance_macro_f1_column(ui, tmp_path):
    from playwright.sync_api import sync_playwright

    base, env = ui
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    experiment = client.get_experiment_by_name("stance")
    runs = {r.data.tags["model"]: r for r in client.search_runs([experiment.experiment_id])}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 2200, "height": 900})
            page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs")
            for model in ("baseline", "transformer"):
                page.get_by_text(runs[model].info.run_name).first.wait_for(timeout=60_000)
            if page.get_by_role("button", name="Close").count():
                page.get_by_role("button", name="Close").first.click()  # the assistant side panel
            # Add the stance macro-F1 column the way a person does: Columns, search, tick.
            page.get_by_role("button", name="Columns").click()
            page.get_by_placeholder("Search columns").fill("stance_macro_f1")
            page.get_by_text("test_stance_macro_f1", exact=True).click()
            page.keyboard.press("Escape")
            cells = page.locator('[role="gridcell"][col-id*="test_stance_macro_f1"]')
            cells.first.wait_for(timeout=30_000)
            shown = sorted(float(cells.nth(i).inner_text()) for i in range(cells.count()))
            expected = sorted(r.data.metrics["test_stance_macro_f1"] for r in runs.values())
            assert shown == pytest.approx(expected, abs=1e-6)
            page.screenshot(path=str(tmp_path / "experiment.png"))

            ids = json.dumps([runs["baseline"].info.run_id, runs["transformer"].info.run_id])
            page.goto(f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment.experiment_id])}")
            page.get_by_text("test_actor_macro_f1").first.wait_for(timeout=60_000)
            text = page.content()
            assert runs["baseline"].info.run_name in text and runs["transformer"].info.run_name in text
            page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        finally:
            browser.close()
    for shot in ("experiment.png", "compare.png"):
        assert (tmp_path / shot).stat().st_size > 10_000, f"{shot} looks empty"
