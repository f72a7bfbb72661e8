"""One smoke test of the whole DVC pipeline on a tiny config, then predict on its models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

TINY = {
    "prepare.yaml": {"max_articles": 8},
    "baseline.yaml": {"c_grid": [1.0], "min_df": 1},
    "transformer.yaml": {"epochs": 1, "max_length": 32, "batch_size": 16, "device": "cpu"},
    "evaluate.yaml": {"bootstrap": {"resamples": 50, "confidence": 0.95, "unit": "article", "seed": 13}},
}


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A temporary copy of the project with tiny configs, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, root / name)
    for name in ("configs", "pipeline", "data/corpus"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", root / ".dvc" / "config")
    for file, changes in TINY.items():
        path = root / "configs" / file
        config = yaml.safe_load(path.read_text())
        config.update(changes)
        path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "tiny"], root, env)
    sh(["dvc", "repro"], root, env)
    return root, env


def test_repro_writes_every_output(project):
    root, _ = project
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    details = json.loads((root / "reports" / "details.json").read_text())
    for name in ("baseline", "transformer"):
        assert 0.0 <= metrics[name]["stance_macro_f1"] <= 1.0
        assert set(details["per_class"][name]["stance"]) == {"none", "conciliatory", "deterrent", "steadfast"}
        assert (root / "reports" / "figures" / f"confusion_{name}_stance.png").exists()
    assert metrics["champion"] in ("baseline", "transformer")
    assert metrics["human"]["stance_kappa"] > 0.5
    t = metrics["transformer_minus_baseline"]
    assert t["low"] <= t["difference"] <= t["high"]
    assert "Champion" in (root / "reports" / "comparison.md").read_text()
    assert json.loads((root / "models" / "champion.json").read_text())["model"] == metrics["champion"]


def test_second_repro_does_nothing(project):
    root, env = project
    out = sh(["dvc", "repro"], root, env).stdout
    assert "Running stage" not in out
    assert "up to date" in sh(["dvc", "status"], root, env).stdout


def test_dvc_metrics_and_plots_show(project):
    root, env = project
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], root, env).stdout)
    assert "stance_macro_f1" in json.dumps(shown)
    sh(["dvc", "plots", "show", "-o", str(root / "dvc_plots")], root, env)
    assert (root / "dvc_plots" / "index.html").exists()


def test_runs_are_tracked_with_provenance(project):
    root, env = project
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    experiment = client.get_experiment_by_name("stance")
    runs = client.search_runs([experiment.experiment_id])
    by_model = {r.data.tags["model"]: r for r in runs}
    assert set(by_model) == {"baseline", "transformer", "human"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    corpus_hash = next(d["md5"] for d in lock["stages"]["prepare"]["deps"] if d["path"] == "data/corpus")
    commit = sh(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    for run in by_model.values():
        assert "test_stance_macro_f1" in run.data.metrics
        assert run.data.tags["data_version"] == corpus_hash
        assert run.data.tags["git_commit"].startswith(commit)
    assert client.get_model_version_by_alias("stance", "champion").version


def test_predict_on_the_trained_pipeline(project):
    root, _ = project
    from pipeline import predict

    out = predict("Moscow rejected the ceasefire. Kyiv said it was ready to talk.", models_dir=root / "models")
    assert len(out) == 2 and all((r.actor == "none") == (r.stance == "none") for r in out)


@pytest.mark.slow
def test_exp_run_on_a_baseline_param_reruns_only_its_dependents(project):
    root, env = project
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "lock"], root, env)
    out = sh(["dvc", "exp", "run", "-S", "configs/baseline.yaml:c_grid=[3.0]"], root, env).stdout
    assert "Running stage 'train_baseline'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'train_transformer'" not in out and "Running stage 'prepare'" not in out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_champion_is_served_over_http(project):
    """A real `mlflow models serve` on loopback answers POST /invocations."""
    import time
    import urllib.request

    root, env = project
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/stance@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "server did not start in 120 s"
            time.sleep(1)

        def post(payload: dict) -> list[dict]:
            request = urllib.request.Request(
                f"{base}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as reply:
                return json.loads(reply.read())["predictions"]

        rows = post({"dataframe_split": {"columns": ["text"], "data": [["Moscow rejected the plan. Kyiv wants talks."], ["Europe agreed."]]}})
        assert [(r["item"], r["sentence"]) for r in rows] == [
            (0, "Moscow rejected the plan."), (0, "Kyiv wants talks."), (1, "Europe agreed.")
        ]
        for r in rows:
            assert (r["actor"] == "none") == (r["stance"] == "none")
            assert abs(sum(v for k, v in r.items() if k.startswith("p_stance_")) - 1) < 1e-3
        assert len(post({"inputs": ["One sentence only."]})) == 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
