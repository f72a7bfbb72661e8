"""The benchmark scripts run end to end in their quick form (numbers not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def test_quality_benchmark_quick_mode(project, tmp_path):
    root, env = project
    # Its own tracking store: the shared one holds exactly the pipeline's runs.
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--data", str(root / "data" / "prepared"),
         "--configs", str(root / "configs"), "--reports", str(tmp_path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["quick"] is True
    assert {"majority", "rules", "frozen_embeddings_lr", "baseline", "transformer", "baseline+transformer average"} <= set(report["systems"])
    for system in report["systems"].values():
        assert 0.0 <= system["stance_macro_f1"]["mean"] <= 1.0
    assert (tmp_path / "benchmark" / "learning_curve.png").exists()
    assert "Quality benchmark" in (tmp_path / "benchmark.md").read_text()
    cv = report["cross_validation"]
    assert set(cv["systems"]) == {"baseline", "transformer", "transformer_minilm", "train_on_all"} and cv["folds"] == 2
    for system in cv["systems"].values():
        assert len(system["per_fold"]) == 2 and 0.0 <= system["pooled"]["stance_macro_f1"] <= 1.0
    pair = cv["paired"]["baseline - transformer"]
    assert pair["folds"]["low"] <= pair["folds"]["difference"] <= pair["folds"]["high"]
    assert pair["pooled_bootstrap"]["low"] <= pair["pooled_bootstrap"]["high"]
    assert "cross-validation over the development articles" in (tmp_path / "benchmark.md").read_text()


def test_quality_benchmark_runs_only_the_chosen_cross_validation(project, tmp_path):
    root, env = project
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--only-cross-validation", "--data", str(root / "data" / "prepared"),
               "--configs", str(root / "configs"), "--reports", str(tmp_path), "--cv-systems"]
    done = subprocess.run([*command, "baseline"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "benchmark.json").exists()
    cv = json.loads((tmp_path / "cross_validation.json").read_text())
    assert set(cv["systems"]) == {"baseline"} and cv["folds"] == 2 and cv["paired"] == {}
    assert len(cv["systems"]["baseline"]["per_fold"]) == 2
    assert "cross-validation over the development articles" in (tmp_path / "cross_validation.md").read_text()
    wrong = subprocess.run([*command, "baseline", "bert"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert wrong.returncode != 0 and "unknown ['bert']" in wrong.stderr and "choices" in wrong.stderr


def test_quality_benchmark_runs_only_the_chosen_systems(project, tmp_path):
    root, env = project
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--data", str(root / "data" / "prepared"),
               "--configs", str(root / "configs"), "--reports", str(tmp_path), "--only-systems"]
    wrong = subprocess.run([*command, "baseline", "transformer+bert"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert wrong.returncode != 0 and "--only-systems: unknown ['transformer+bert']" in wrong.stderr and "transformer+fp32" in wrong.stderr
    assert not (tmp_path / "systems.json").exists()
    done = subprocess.run([*command, "transformer+fp32"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "benchmark.json").exists()
    table = json.loads((tmp_path / "systems.json").read_text())
    # The idea's reference trains too, so that the idea can be judged.
    assert set(table["systems"]) == {"transformer", "transformer+fp32"}
    idea, plain = table["systems"]["transformer+fp32"], table["systems"]["transformer"]
    assert idea["kept"] in {"yes", "no"} and idea["compared_with"] == "transformer"
    assert idea["validation_differences"] == [idea["validation_stance_macro_f1"] - plain["validation_stance_macro_f1"]]
    assert (idea["kept"] == "yes") == (idea["validation_differences"][0] > 0)
    assert "paired by seed" in (tmp_path / "systems.md").read_text()


def test_predict_speed_benchmark_runs_on_tiny_settings(project, tmp_path):
    import shutil

    import yaml

    root, env = project
    configs = tmp_path / "configs"
    shutil.copytree(root / "configs", configs)
    bench = yaml.safe_load((configs / "bench.yaml").read_text())
    bench.update(sentences=40, repeats=1, articles=2, batch_sizes=[8, 32], latency_calls=5, warmup_calls=1)
    (configs / "bench.yaml").write_text(yaml.safe_dump(bench))
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "predict_speed.py"), "--models", str(root / "models"),
         "--data", str(root / "data" / "prepared"), "--configs", str(configs), "--out", str(out),
         "--extra-encoder", f"small={root / 'models' / 'transformer'}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"baseline", "transformer", "transformer_bf16", "transformer_onnx", "transformer_onnx_int8", "transformer_fp32",
                            "transformer_fp32_reference", "small/transformer", "small/transformer_fp32", "small/transformer_fp32_reference"}
    # Each encoder is compared with its own reference; the same weights give the same predictions.
    assert results["small/transformer"]["test_changed_vs_reference"] == results["transformer"]["test_changed_vs_reference"]
    assert "speedup_vs_reference" in results["small/transformer"]
    # Every served form is also read against the served path in fp32, of its own encoder.
    assert results["small/transformer"]["speedup_vs_served_fp32"] > 0
    assert len(results["transformer_bf16"]["speedup_vs_served_fp32_by_round"]) == 1
    assert "speedup_vs_served_fp32" not in results["transformer_fp32"]
    assert results["transformer_fp32"]["runtime"] == "TransformerModel fp32"
    assert results["transformer_onnx"]["runtime"] == "OnnxTransformerModel"
    assert results["transformer_bf16"]["runtime"] == "TransformerModel bf16"
    assert results["transformer_fp32_reference"]["runtime"] == "TransformerModel fp32"
    for r in results.values():
        assert {"sentences_per_s", "p50_ms", "p95_ms", "load_s", "peak_rss_mb"} <= set(r)
        assert r["sentences_per_s"] > 0 and r["p50_ms"] <= r["p95_ms"]
    assert results["baseline"]["articles"] == 2 and results["baseline"]["article_sentences"] > 2


def test_an_idea_is_kept_only_when_it_beats_its_reference_on_validation():
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality_bench", ROOT / "bench" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)

    def runs(*values):
        return [{"validation": {"validation_stance_macro_f1": v}} for v in values]

    all_runs = {
        "transformer": runs(0.50, 0.52, 0.54),
        "transformer+longer": runs(0.56, 0.56, 0.56),
        "transformer+one_seed": runs(0.51),  # compared with the first seed only (0.50)
        "transformer+both": runs(0.55, 0.55, 0.55),  # beats plain (0.52), not longer (0.56)
    }
    systems = {name: {"kind": "idea", "validation_stance_macro_f1": sum(r["validation"]["validation_stance_macro_f1"] for r in rs) / len(rs)}
               for name, rs in all_runs.items() if name != "transformer"}
    quality.mark_kept(systems, all_runs, {"transformer+both": "transformer+longer"}, confidence=0.95)
    assert systems["transformer+longer"]["kept"] == "yes"
    assert systems["transformer+one_seed"]["kept"] == "yes" and systems["transformer+one_seed"]["validation_reference"] == 0.50
    assert systems["transformer+both"]["kept"] == "no" and systems["transformer+both"]["compared_with"] == "transformer+longer"
    assert quality.kept_cell(systems["transformer+both"]) == "no (vs transformer+longer 0.560)"
    # Paired by seed: each seed's idea against the same seed's reference.
    assert systems["transformer+longer"]["validation_differences"] == pytest.approx([0.06, 0.04, 0.02])
    interval = systems["transformer+longer"]["validation_difference"]
    assert interval["difference"] == pytest.approx(0.04) and interval["low"] < 0.04 < interval["high"]
    assert systems["transformer+one_seed"]["validation_difference"] == {"difference": pytest.approx(0.01)}


def test_title_ablation_runs_and_a_titleless_model_ignores_titles(project, tmp_path):
    root, env = project
    out = tmp_path / "ablation.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "title_ablation.py"), "--models", str(root / "models"),
         "--data", str(root / "data" / "prepared"), "--out", str(out)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert set(results) == {"validation_with_titles", "validation_titles_blanked", "test_with_titles", "test_titles_blanked"}
    if report["model_context"] != "title":
        assert results["test_with_titles"] == results["test_titles_blanked"]
