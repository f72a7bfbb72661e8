"""Work killed with SIGKILL halfway leaves what was there before, and a rerun succeeds (slow)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import CORPUS, sh

pytestmark = pytest.mark.slow


def digest(path: Path) -> str:
    """One hash of a file or of every file under a folder."""
    h = hashlib.sha256()
    for f in sorted([path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())):
        h.update(f.relative_to(path.parent).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def kill_when(args: list[str], cwd: Path, env: dict, ready, timeout_s: float = 600) -> bool:
    """Start `args` in its own process group and SIGKILL the group once `ready(output)` holds.

    Returns False if the command finished before that (nothing was killed)."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = bytearray()
    reader = threading.Thread(target=lambda: [output.extend(chunk) for chunk in iter(lambda: process.stdout.read1(4096), b"")], daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if ready(output.decode("utf-8", "replace")):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return True
            if process.poll() is not None:
                return False
            time.sleep(0.005)
        raise AssertionError(f"{args} never reached the point to kill it:\n{output.decode()[-2000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def set_param(root: Path, file: str, **changes) -> None:
    path = root / "configs" / file
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))


def stage_changed(root: Path, env: dict, stage: str) -> bool:
    status = json.loads(sh(["dvc", "status", "--json", stage], root, env).stdout or "{}")
    return stage in status


def test_killing_train_transformer_mid_epoch(project_copy):
    root, env = project_copy
    model = root / "models" / "transformer"
    before = digest(model)
    set_param(root, "transformer.yaml", epochs=3)
    assert kill_when(["dvc", "repro", "train_transformer"], root, env, lambda out: "epoch 2/3" in out)
    assert digest(model) == before  # the previous model, whole
    from pipeline.models import load_model

    assert load_model("transformer", model).predict_proba({"text": ["Kyiv refused."]}).stance.shape == (1, 4)
    assert stage_changed(root, env, "train_transformer")
    sh(["dvc", "repro", "train_transformer"], root, env)
    assert not stage_changed(root, env, "train_transformer") and digest(model) != before
    assert not list((root / "models").glob(".transformer.*"))  # the killed run's temporary was cleaned up


def test_killing_prepare_while_it_writes(project_copy):
    root, env = project_copy
    prepared = root / "data" / "prepared"
    before = digest(prepared)
    set_param(root, "prepare.yaml", seed=14, max_articles=None)
    writing = lambda out: any((root / "data").glob(".prepared.*"))  # noqa: E731 - its temporary exists: it is writing
    killed = any(kill_when(["stance", "prepare", "--out", "data/prepared"], root, env, writing) for _ in range(5))
    assert killed, "prepare always finished before it could be killed"
    assert digest(prepared) == before
    assert stage_changed(root, env, "prepare")
    sh(["dvc", "repro", "prepare"], root, env)
    assert not stage_changed(root, env, "prepare") and not list((root / "data").glob(".prepared.*"))


def test_killing_predict_with_an_output_file(project_copy, tmp_path):
    root, env = project_copy
    items = tmp_path / "items.jsonl"
    sentences = [json.loads(line)["text"] for line in (CORPUS / "sentences.jsonl").read_text().splitlines()]
    items.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences * 3))
    out = tmp_path / "out.jsonl"
    out.write_text("the previous output\n")
    command = ["stance", "predict", str(items), "--no-split", "--model", "transformer", "--models", "models", "--format", "jsonl", "-o", str(out)]
    started = lambda _: any(p.is_dir() and any(p.iterdir()) for p in tmp_path.glob(".out.jsonl.*"))  # noqa: E731
    assert kill_when(command, root, env, started)
    assert out.read_text() == "the previous output\n"
    sh(command, root, env)
    assert len(out.read_text().splitlines()) == len(sentences) * 3


def test_killing_score_resumes_from_the_finished_parts(project_copy, tmp_path):
    root, env = project_copy
    articles = [json.loads(line) for line in (CORPUS / "articles.jsonl").read_text().splitlines()[:60]]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": a["article_id"], "date": a["date"], "text": a["text"]}) + "\n" for a in articles))
    set_param(root, "score.yaml", part_articles=10)
    command = ["stance", "score", str(source), "--out", str(tmp_path / "out"), "--model", "models/transformer", "--quiet"]
    assert kill_when(command, root, env, lambda _: len(list((tmp_path / ".out.partial").glob("part-*.parquet"))) >= 2)
    assert not (tmp_path / "out").exists()
    done = sh(command, root, env).stdout
    assert "parts kept from an interrupted run" in done
    sh(["stance", "score", str(source), "--out", str(tmp_path / "clean"), "--model", "models/transformer", "--quiet"], root, env)
    import pyarrow.parquet as pq

    key = lambda r: (r["article_id"], r["sentence_index"])  # noqa: E731
    assert sorted(pq.read_table(tmp_path / "out").to_pylist(), key=key) == sorted(pq.read_table(tmp_path / "clean").to_pylist(), key=key)
