"""The benchmark scripts run end to end in their quick form (numbers not checked)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_quality_benchmark_quick_mode(project, tmp_path):
    root, env = project
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
    assert (tmp_path / "figures" / "learning_curve.png").exists()
    assert "Quality benchmark" in (tmp_path / "benchmark.md").read_text()
