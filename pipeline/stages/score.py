"""`stance score`: an archive of articles -> one Parquet row per sentence, locally or on Spark."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pipeline.config import ScoreConfig, load_config
from pipeline.stages import start_tracking, tracking_uri

ENGINES = ("local", "spark")


def model_identity(reference: str, config_dir: Path) -> tuple[str, str | None, str | None]:
    """(model name, "name:version" if registered, the tracking URI for workers) of a model reference."""
    if reference.startswith("models:/"):
        from pipeline import tracking

        start_tracking(config_dir)
        name = reference[len("models:/") :].split("@")[0].split("/")[0]
        return name, tracking.registered_name_version(reference), tracking_uri(config_dir)
    from pipeline.predictor import registered_version

    path = Path(reference)
    if not path.is_dir():
        raise ValueError(f"--model {reference!r}: neither a models:/ URI nor a saved model directory")
    return path.name, registered_version(path.name, path.parent), None


def local_predictor(reference: str, config_dir: Path, tracking_uri: str | None) -> Any:
    """The predictor the local engine uses (the same loader as each Spark worker's)."""
    from pipeline.scoring.spark import load_predictor

    return load_predictor(reference, tracking_uri, str(config_dir))


def run(source: Path, output: Path, config_dir: Path, engine: str, model: str | None, master: str | None, progress: bool = True) -> dict[str, Any]:
    """Score `source` into `output` with `engine`."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    config = load_config(config_dir / "score.yaml", ScoreConfig)
    reference = model or config.model
    name, version, tracking_uri = model_identity(reference, config_dir)
    if engine == "local":
        from pipeline.scoring.local import score_local

        predictor = local_predictor(reference, config_dir, tracking_uri)
        return score_local(source, output, predictor, name, version, config.part_articles, progress)
    from pyspark.sql import SparkSession

    from pipeline.scoring import inputs
    from pipeline.scoring.spark import score_spark

    if "://" not in str(source):
        inputs.check(source)  # the same checks and messages as the local engine, before Spark starts
    master = master or config.spark.master
    builder = (SparkSession.builder.master(master).appName(config.spark.app_name)
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(config.spark.arrow_batch_size)))
    if master.startswith("local"):
        # Local workers run this interpreter (its environment has the pipeline); a cluster
        # brings its own. PySpark takes the workers' Python from PYSPARK_PYTHON, else `python3`.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    try:
        return score_spark(spark, str(source), str(output), reference, name, version, tracking_uri, str(config_dir))
    finally:
        spark.stop()
