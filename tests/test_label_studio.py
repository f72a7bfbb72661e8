"""The annotation loop against a real Label Studio server on 127.0.0.1 (slow).

Label Studio lives in a virtual environment of its own (`.venv-label-studio`, made here
with pip on first use, or named by LABEL_STUDIO_BIN), started with a throwaway data
directory and SQLite; the admin user and its API token come from environment variables.
Two annotators label the exported tasks through the REST API, an adjudicator resolves
their disagreements in a second project, and the exports go through import-labels,
agreement and a tiny retrain. A browser (playwright with Debian's chromium) opens one
task's labelling page first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, free_port, listening_addresses, running_server, sh

pytestmark = pytest.mark.slow

LABEL_STUDIO_VERSION = "1.23.2"
VENV = ROOT / ".venv-label-studio"
ADMIN = {"LABEL_STUDIO_USERNAME": "admin@example.org", "LABEL_STUDIO_PASSWORD": "admin-pass-123", "LABEL_STUDIO_USER_TOKEN": "admin0token0123456789"}
ANNOTATOR = ("bob@example.org", "bob-pass-12345", "bob0token0123456789")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTICLES = [
    {"id": "a1", "date": "2026-04-01", "title": "Kremlin rejects European troops",
     "text": "The Kremlin rejected any deployment of European troops in Ukraine. Peskov said Moscow would never accept such a plan. "
             "The talks in Geneva ended on Tuesday."},
    {"id": "a2", "date": "2026-04-02", "title": "Washington warns of new sanctions",
     "text": "The United States warned Russia of new sanctions if the offensive continued. Rubio said a deadline had been set. "
             "Kyiv said it was ready for a ceasefire."},
]


def label_studio_bin() -> Path:
    """The label-studio executable: LABEL_STUDIO_BIN, or a venv made here on first use."""
    if os.environ.get("LABEL_STUDIO_BIN"):
        return Path(os.environ["LABEL_STUDIO_BIN"])
    binary = VENV / "bin" / "label-studio"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", f"label-studio=={LABEL_STUDIO_VERSION}"], check=True)
    return binary


class Api:
    """The few REST calls the loop needs, each with a user's legacy API token."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __call__(self, method: str, path: str, token: str, body: object = None) -> object:
        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            raw = reply.read()
        return json.loads(raw) if raw else None

    def project(self, title: str, config: str, instructions: str, model_version: str, tasks: list) -> tuple[int, list[dict]]:
        token = ADMIN["LABEL_STUDIO_USER_TOKEN"]
        project = self("POST", "/api/projects", token, {"title": title, "label_config": config, "expert_instruction": instructions,
                                                        "show_instruction": True, "show_collab_predictions": True, "model_version": model_version})
        self("POST", f"/api/projects/{project['id']}/import", token, tasks)
        listed = self("GET", f"/api/tasks?project={project['id']}&page_size=1000", token)
        return project["id"], listed["tasks"] if isinstance(listed, dict) else listed

    def annotate(self, task_id: int, token: str, actor: str, stance: str) -> None:
        result = [{"from_name": name, "to_name": "sentence", "type": "choices", "value": {"choices": [value]}}
                  for name, value in (("actor", actor), ("stance", stance))]
        self("POST", f"/api/tasks/{task_id}/annotations/", token, {"result": result, "was_cancelled": False})

    def export(self, project_id: int, path: Path) -> Path:
        path.write_text(json.dumps(self("GET", f"/api/projects/{project_id}/export?exportType=JSON", ADMIN["LABEL_STUDIO_USER_TOKEN"])))
        return path


@pytest.fixture()
def label_studio(tmp_path):
    """A Label Studio server on 127.0.0.1 with an admin (from the environment) and one more annotator."""
    binary = label_studio_bin()
    data = tmp_path / "label-studio"
    env = {**os.environ, **ADMIN, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
    common = ["--data-dir", str(data), "--enable-legacy-api-token"]
    subprocess.run([str(binary), "init", "-q", *common], env=env, check=True, capture_output=True, timeout=600)
    name, password, token = ANNOTATOR
    subprocess.run([str(binary), "init", "-q", *common, "--username", name, "--password", password, "--user-token", token],
                   env={k: v for k, v in env.items() if k not in ADMIN}, check=True, capture_output=True, timeout=600)
    port = free_port()
    command = [str(binary), "start", "--no-browser", *common, "--internal-host", "127.0.0.1", "--port", str(port)]
    with running_server(command, tmp_path, env, "/health", port, timeout_s=300) as base:
        assert listening_addresses(port) == {"127.0.0.1"}
        yield base


def open_task_page(base: str, project_id: int, task_id: int, sentence: str, predicted: dict[str, str], shot: Path) -> None:
    """Log in as the admin, open the task's labelling page and check what an annotator sees."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/user/login")
            page.fill('input[name="email"]', ADMIN["LABEL_STUDIO_USERNAME"])
            page.fill('input[name="password"]', ADMIN["LABEL_STUDIO_PASSWORD"])
            page.get_by_role("button", name="Log in").click()
            page.wait_for_load_state("networkidle", timeout=60_000)
            page.goto(f"{base}/projects/{project_id}/data?task={task_id}")
            page.get_by_text(sentence).first.wait_for(timeout=90_000)
            for label in ("Actor", "Stance"):
                page.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
            for value in predicted.values():
                # The pre-annotation is the selected choice of each group.
                page.locator(f'input[type="radio"][name="{value}"]:checked').first.wait_for(timeout=30_000)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()


def test_the_annotation_loop_through_label_studio(project_copy, label_studio, tmp_path):
    from pipeline.annotation.tasks import instructions

    root, env = project_copy
    api = Api(label_studio)
    started = time.monotonic()
    (tmp_path / "news.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ARTICLES))
    sh(["stance", "ingest", str(tmp_path / "news.jsonl"), "--name", "apr26"], root, env)
    sh(["stance", "export-tasks", "apr26", "--select", "all", "--models", "models"], root, env)
    tasks = json.loads((root / "data" / "batches" / "apr26" / "tasks" / "tasks.json").read_text())
    model_version = tasks[0]["predictions"][0]["model_version"]
    assert model_version.startswith("stance-")  # the registered name and version of the champion
    config = (root / "configs" / "label_studio.xml").read_text()
    project_id, stored = api.project("stance apr26", config, instructions(), model_version, tasks)
    assert len(stored) == len(tasks)

    if CHROMIUM:
        first = stored[0]
        guess = {r["from_name"]: r["value"]["choices"][0] for r in tasks[0]["predictions"][0]["result"]}
        open_task_page(label_studio, project_id, first["id"], first["data"]["text"], guess, tmp_path / "task.png")
        assert (tmp_path / "task.png").stat().st_size > 10_000

    admin_token, bob_token = ADMIN["LABEL_STUDIO_USER_TOKEN"], ANNOTATOR[2]
    gold = {}
    for k, task in enumerate(stored):
        label = ("russia", "steadfast") if "Kremlin" in task["data"]["text"] or "Peskov" in task["data"]["text"] else ("none", "none")
        api.annotate(task["id"], admin_token, *label)
        other = ("united_states", "deterrent") if k == 1 else label  # bob disagrees once
        api.annotate(task["id"], bob_token, *other)
        gold[task["data"]["sentence_id"]] = label
    export = api.export(project_id, tmp_path / "export.json")
    out = sh(["stance", "import-labels", str(export), "--batch", "apr26"], root, env).stdout
    assert "1 disagreements" in out

    out = sh(["stance", "agreement", "--batch", "apr26", "--models", "models", "--out", str(tmp_path / "agreement")], root, env).stdout
    print(out)
    report = json.loads((tmp_path / "agreement" / "agreement.json").read_text())
    assert report["annotators"] == ["user1", "user2"] and report["fields"]["stance"]["pairs"]["user1 vs user2"]["sentences"] == len(stored)

    # The adjudicator resolves the disputed sentence in a project of its own.
    disputed = [json.loads(line) for line in (root / "data" / "batches" / "apr26" / "disagreements.jsonl").read_text().splitlines()]
    to_judge = [t for t in tasks if t["data"]["sentence_id"] in {d["id"] for d in disputed}]
    judge_id, judged = api.project("stance apr26 adjudication", config, instructions(), model_version, to_judge)
    for task in judged:
        api.annotate(task["id"], admin_token, *gold[task["data"]["sentence_id"]])
    adjudication = api.export(judge_id, tmp_path / "adjudication.json")
    out = sh(["stance", "import-labels", str(export), "--batch", "apr26", "--resolve", str(adjudication)], root, env).stdout
    assert "gold labels written" in out

    before = json.loads((root / "data" / "prepared" / "meta.json").read_text())["data_version"]
    sh(["dvc", "repro"], root, env)
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    assert meta["data_version"] != before and meta["batches"]["apr26"]["sentences"] == len(stored)
    import pyarrow.parquet as pq

    train = pq.read_table(root / "data" / "prepared" / "train.parquet").to_pydict()
    assert set(gold) <= set(train["id"])
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("stance").experiment_id], order_by=["attributes.start_time DESC"])
    assert runs[0].data.tags["data_version"] == meta["data_version"]
    print(f"Label Studio loop: {time.monotonic() - started:.0f} s after the server was up")
