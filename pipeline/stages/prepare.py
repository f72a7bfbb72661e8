"""prepare: corpus -> validated sentence table -> train/validation/test splits."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.config import PrepareConfig, SegmentConfig, load_config
from pipeline.annotation.batches import accepted
from pipeline.corpus import (
    ARTICLES_FILE,
    SEGMENTS_FILE,
    SENTENCES_FILE,
    Corpus,
    assign_splits,
    build_rows,
    data_report,
    load_corpus,
    merge,
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


BATCH_SPLITS = ("train", "split")


def read_by_prepare(relpath: str) -> bool:
    """The files of a batch that prepare reads (its labels and text), not its tasks or notes."""
    return relpath in (ARTICLES_FILE, SENTENCES_FILE, SEGMENTS_FILE) or relpath.startswith("passes/")


def combined_version(corpus_version: str, batches: dict[str, str]) -> str:
    """The data version of the corpus plus accepted batches: the corpus's own hash when
    there are none (so it matches dvc.lock's), else a hash of all of them."""
    if not batches:
        return corpus_version
    listing = json.dumps({"corpus": corpus_version, "batches": batches}, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".data"


def run(corpus_dir: Path, out_dir: Path, reports_dir: Path, config_dir: Path, batches_dir: Path | None = None) -> dict:
    """Validate the corpus and every accepted batch in `batches_dir`, split by article,
    write the splits and the data report."""
    config = load_config(config_dir / "prepare.yaml", PrepareConfig)
    if config.batch_split not in BATCH_SPLITS:
        raise ValueError(f"{config_dir / 'prepare.yaml'}: batch_split must be one of {', '.join(BATCH_SPLITS)}, got {config.batch_split!r}")
    segment = load_config(config_dir / "segment.yaml", SegmentConfig)
    corpus = load_corpus(corpus_dir)
    if config.max_articles:
        corpus = subset(corpus, config.max_articles, config.seed)
    # The corpus's own split is made as if there were no batches, so its test split never moves.
    splits = assign_splits(list(corpus.articles), validation=config.split.validation, test=config.split.test, seed=config.seed)
    batches = {path.name: load_corpus(path, complete=False) for path in accepted(batches_dir)} if batches_dir else {}
    for name, batch in batches.items():
        if config.batch_split == "train":
            splits.update({a: "train" for a in batch.articles})
        else:
            splits.update(assign_splits(list(batch.articles), validation=config.split.validation, test=config.split.test, seed=config.seed))
    corpus = merge([(str(corpus_dir), corpus), *((str(Path(batches_dir or "") / name), b) for name, b in batches.items())])
    rows = build_rows(corpus, dataclasses.asdict(segment))
    grouped = split_rows(rows, splits)
    report = data_report(grouped, REPORT_EXAMPLES)
    agreement = report["segmenter"]["boundary_agreement"]
    if agreement < config.min_boundary_agreement:
        raise ValueError(
            f"the segmenter reproduces only {agreement:.4f} of the corpus's sentence boundaries "
            f"(configs/prepare.yaml min_boundary_agreement is {config.min_boundary_agreement})"
        )
    report["corpus_version"] = data_version(corpus_dir)
    report["batches"] = {name: {"version": data_version(Path(batches_dir or "") / name, read_by_prepare), "articles": len(b.articles), "sentences": len(b.sentences),
                                "split": config.batch_split} for name, b in batches.items()}
    report["data_version"] = combined_version(report["corpus_version"], {n: b["version"] for n, b in report["batches"].items()})
    with atomic.atomic_path(out_dir) as tmp:
        write_splits(tmp, grouped)
        atomic.write_json(tmp / META_FILE, {"corpus_version": report["corpus_version"], "data_version": report["data_version"],
                                            "batches": report["batches"], "seed": config.seed})
    atomic.write_json(reports_dir / "data.json", report)
    atomic.write_text(reports_dir / "data.md", data_markdown(report))
    return report
