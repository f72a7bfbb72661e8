"""The annotation verbs: ingest, export-tasks, import-labels, agreement (thin: config in,
library calls, outputs written). See pipeline/annotation for what each does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from pipeline import atomic, tracking
from pipeline.annotation import agreement, ingest, tasks
from pipeline.annotation.batches import PASSES_DIR, articles, batch_dir, read_rows, segments
from pipeline.annotation.imports import PASS_PREFIX, import_labels
from pipeline.config import AnnotationConfig, SegmentConfig, load_config
from pipeline.corpus import load_corpus
from pipeline.stages import provenance_tags, start_tracking

LABEL_CONFIG = "label_studio.xml"


def run_ingest(files: Sequence[Path], name: str, batches: Path, config_dir: Path, date: str | None) -> dict[str, Any]:
    """`stance ingest`: files -> a new batch."""
    segment = load_config(config_dir / "segment.yaml", SegmentConfig)
    return ingest.ingest(files, name, batches, dataclasses.asdict(segment), date)


def _predictor(config: AnnotationConfig, models_dir: Path | None) -> Any:
    from pipeline.predictor import get_predictor

    return get_predictor(config.model, models_dir)


def model_version(config: AnnotationConfig, models_dir: Path | None) -> str:
    """The registered name and version of the pre-annotating model, or its local name before any evaluation."""
    from pipeline.predictor import registered_version, resolve_model_name, DEFAULT_MODELS_DIR

    version = registered_version(config.model, models_dir)
    return version or f"local:{resolve_model_name(config.model, Path(models_dir or DEFAULT_MODELS_DIR))}"


def run_export(name: str, batches: Path, config_dir: Path, how: str, n: int | None, models_dir: Path | None) -> dict[str, Any]:
    """`stance export-tasks`: a batch's sentences -> Label Studio tasks, CSV, labelling config."""
    config = load_config(config_dir / "annotation.yaml", AnnotationConfig)
    directory = batch_dir(batches, name)
    return tasks.export_tasks(directory, _predictor(config, models_dir), how, n, config.seed, config.uncertainty,
                              model_version(config, models_dir), config_dir / LABEL_CONFIG)


def run_import(name: str, batches: Path, exports: Sequence[Path], resolve: str | None, ignore_cancelled: bool) -> dict[str, Any]:
    """`stance import-labels`: exports -> passes, disagreements and (resolved) gold labels."""
    return import_labels(batch_dir(batches, name), exports, resolve, ignore_cancelled)


def batch_passes(directory: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """The annotator passes of a batch directory."""
    return {
        p.stem[len(PASS_PREFIX) :]: {r["id"]: (r["actor"], r["stance"]) for r in read_rows(p)}
        for p in sorted((directory / PASSES_DIR).glob(f"{PASS_PREFIX}*.jsonl"))
    }


def run_agreement(
    config_dir: Path, out_dir: Path, corpus: Path | None = None, batches: Path | None = None, name: str | None = None,
    models_dir: Path | None = None, with_model: bool = True,
) -> dict[str, Any]:
    """`stance agreement`: the figures of the bundled corpus (`corpus`) or of batch `name`,
    written as agreement.{json,md} in `out_dir` and logged to MLflow."""
    config = load_config(config_dir / "annotation.yaml", AnnotationConfig)
    if name is not None:
        directory = batch_dir(Path(batches or "data/batches"), name)
        passes, by_article = batch_passes(directory), articles(directory)
        sentences = {sid: {"text": row["text"], "title": by_article[row["article_id"]]["title"]} for sid, row in segments(directory).items()}
        title = f"batch {name}"
    else:
        loaded = load_corpus(corpus or "data/corpus")
        passes = loaded.passes
        sentences = {s.id: {"text": s.text, "title": loaded.articles[s.article_id].title} for s in loaded.sentences}
        title = f"corpus {corpus}"
    model = None
    if with_model:
        ids = sorted({sid for labels in passes.values() for sid in labels})
        results = _predictor(config, models_dir).predict([sentences[sid] for sid in ids], split_sentences=False)
        model = {sid: (r.actor, r.stance) for sid, r in zip(ids, results)}
    report = agreement.compute(passes, model)
    report["source"] = title
    atomic.write_json(out_dir / "agreement.json", report)
    atomic.write_text(out_dir / "agreement.md", agreement.markdown(report, title))
    _, _ = start_tracking(config_dir)
    with tracking.run(f"agreement {title}", {"model": "agreement", **provenance_tags("agreement", {"source": title})}) as run_id:
        tracking.log_metrics({f"{field}_krippendorff_alpha": r["krippendorff_alpha"] for field, r in report["fields"].items()})
        tracking.log_metrics({f"{field}_kappa_{pair.replace(' ', '_')}": v["kappa"] for field, r in report["fields"].items()
                              for pair, v in r["pairs"].items() if "kappa" in v})
        tracking.add_to_run(run_id, {}, {}, {"agreement": [out_dir / "agreement.json", out_dir / "agreement.md"]})
    return report
