"""prepare: corpus -> validated sentence table -> train/validation/test splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.config import PrepareConfig, SegmentConfig, load_config
from pipeline.corpus import (
    Corpus,
    assign_splits,
    build_rows,
    data_report,
    load_corpus,
    split_rows,
    write_splits,
)
from pipeline.provenance import data_version
from pipeline.report import data_markdown

REPORT_EXAMPLES = 20
META_FILE = "meta.json"


def subset(corpus: Corpus, max_articles: int, seed: int) -> Corpus:
    """A seeded random subset of `max_articles` articles (for tiny runs)."""
    ids = sorted(corpus.articles)
    keep = {ids[i] for i in np.random.default_rng(seed).permutation(len(ids))[:max_articles]}
    return Corpus(
        {k: v for k, v in corpus.articles.items() if k in keep},
        [s for s in corpus.sentences if s.article_id in keep],
        corpus.passes,
    )


def run(corpus_dir: Path, out_dir: Path, reports_dir: Path, config_dir: Path) -> dict:
    """Validate the corpus, split it by article and write splits and data report."""
    config = load_config(config_dir / "prepare.yaml", PrepareConfig)
    segment = load_config(config_dir / "segment.yaml", SegmentConfig)
    corpus = load_corpus(corpus_dir)
    if config.max_articles:
        corpus = subset(corpus, config.max_articles, config.seed)
    rows = build_rows(corpus, dataclasses.asdict(segment))
    splits = assign_splits(list(corpus.articles), validation=config.split.validation, test=config.split.test, seed=config.seed)
    grouped = split_rows(rows, splits)
    report = data_report(grouped, REPORT_EXAMPLES)
    agreement = report["segmenter"]["boundary_agreement"]
    if agreement < config.min_boundary_agreement:
        raise ValueError(
            f"the segmenter reproduces only {agreement:.4f} of the corpus's sentence boundaries "
            f"(configs/prepare.yaml min_boundary_agreement is {config.min_boundary_agreement})"
        )
    report["corpus_version"] = data_version(corpus_dir)
    with atomic.atomic_path(out_dir) as tmp:
        write_splits(tmp, grouped)
        atomic.write_json(tmp / META_FILE, {"corpus_version": report["corpus_version"], "seed": config.seed})
    atomic.write_json(reports_dir / "data.json", report)
    atomic.write_text(reports_dir / "data.md", data_markdown(report))
    return report
