"""The benchmark scripts run end to end in their quick form (numbers not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_predict_speed_benchmark_runs_on_tiny_settings(project, tmp_path):
    import shutil

    import yaml

    root, env = project
    configs = tmp_path / "configs"
    shutil.copytree(root / "configs", configs)
    bench = yaml.safe_load((configs / "bench.yaml").read_text())
    bench.update(sentences=40, batch_sizes=[8, 32], latency_calls=5, warmup_calls=1)
    (configs / "bench.yaml").write_text(yaml.safe_dump(bench))
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "predict_speed.py"), "--models", str(root / "models"),
         "--data", str(root / "data" / "prepared"), "--configs", str(configs), "--out", str(out)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"baseline", "transformer", "transformer_onnx", "transformer_onnx_int8", "transformer_fp32_reference"}
    assert results["transformer_onnx"]["runtime"] == "OnnxTransformerModel"
    for r in results.values():
        assert {"sentences_per_s", "p50_ms", "p95_ms", "load_s", "peak_rss_mb"} <= set(r)
        assert r["sentences_per_s"] > 0 and r["p50_ms"] <= r["p95_ms"]
