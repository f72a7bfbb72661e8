"""One smoke test of the whole DVC pipeline on a tiny config, then predict on its models."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from conftest import free_port, running_server, sh


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


def test_champion_is_served_over_http(project):
    """A real `mlflow models serve` on loopback answers POST /invocations."""
    import urllib.request

    root, env = project
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/stance@champion",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, root, env, "/ping", port, timeout_s=120) as base:

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
        # A title column is taken (a model that reads no title drops it).
        titled = post({"dataframe_split": {"columns": ["text", "title"], "data": [["Europe agreed.", "EU deal"], ["Kyiv refused.", None]]}})
        assert [r["sentence"] for r in titled] == ["Europe agreed.", "Kyiv refused."]
