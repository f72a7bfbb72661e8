"""Shared fixtures: a small corpus, tiny configs and tiny trained models."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from pipeline.config import BaselineConfig, TransformerConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
CONFIGS = ROOT / "configs"


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
        load_config(CONFIGS / "transformer.yaml", TransformerConfig), epochs=1, max_length=32, batch_size=8, device="cpu"
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
