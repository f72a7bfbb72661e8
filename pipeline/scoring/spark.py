"""The Spark engine of `stance score`: the same rows as the local engine, on a cluster.

Articles to sentences is one-to-many, so the scoring runs in `mapInPandas` (a scalar
UDF must return one row per input row). Each Python worker loads the model once, on
its first batch, and keeps it for every later batch and task (Spark reuses its Python
workers); the model comes from an MLflow model URI (`models:/stance@champion`) or a
saved model directory. Output: a Parquet dataset, written by Spark's committer (a
folder with `_SUCCESS` appears only when every task succeeded).

For a table that already holds one sentence per row, `sentence_udf` shows the other
shape: `mlflow.pyfunc.spark_udf` with `split_sentences=False`, one struct per row,
expanded by `select("pred.*")`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from pipeline.scoring.records import INPUT_ID, INPUT_TEXT, INPUT_TITLE, NOT_CARRIED, SENTENCE_COLUMNS, score_rows, spark_schema

# The model of this Python worker, loaded on its first batch: {reference: predictor}.
_WORKER_MODELS: dict[str, Any] = {}
LOAD_NOTE = "stance: loaded the model"


def load_predictor(reference: str, tracking_uri: str | None, configs: str | None) -> Any:
    """A Predictor for `reference`: an MLflow model URI or a saved model directory."""
    if reference in _WORKER_MODELS:
        return _WORKER_MODELS[reference]
    if "://" in reference or reference.startswith("models:/"):
        from pipeline import tracking

        if tracking_uri:
            tracking.configure_uri(tracking_uri)
        predictor = tracking.served_predictor(reference)
    else:
        from pipeline.config import PredictConfig, SegmentConfig, load_config
        from pipeline.predictor import Predictor

        configs_dir = Path(configs or "configs")
        settings = load_config(configs_dir / "predict.yaml", PredictConfig)
        predictor = Predictor.from_model_dir(reference, load_config(configs_dir / "segment.yaml", SegmentConfig), settings.batch_size,
                                             runtime=settings.transformer_runtime, baseline_word_cache=settings.baseline_word_cache,
                                             calibrated=settings.calibrated)
    _WORKER_MODELS[reference] = predictor
    # One line per load: how many workers loaded the model shows in the job's log.
    print(f"{LOAD_NOTE} {reference} in process {os.getpid()}", file=sys.stderr, flush=True)
    return predictor


def score_partitions(reference: str, tracking_uri: str | None, configs: str | None, model: str, model_version: str | None, carried: list[str]) -> Any:
    """The function mapInPandas runs on each partition: article frames in, sentence frames out."""

    def run(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd

        predictor = load_predictor(reference, tracking_uri, configs)
        for frame in frames:
            articles = frame.to_dict("records")
            for k, article in enumerate(articles):
                if not isinstance(article.get(INPUT_TEXT), str):
                    raise ValueError(f"article {article.get(INPUT_ID)!r}: column 'text' must be a string, got {type(article.get(INPUT_TEXT)).__name__}")
                if article.get(INPUT_TITLE) is not None and not isinstance(article[INPUT_TITLE], str):
                    article[INPUT_TITLE] = None if pd.isna(article[INPUT_TITLE]) else str(article[INPUT_TITLE])
            rows = score_rows(predictor, articles, model, model_version, carried)
            yield pd.DataFrame(rows, columns=[*SENTENCE_COLUMNS, *carried])

    return run


def read_articles(spark: Any, source: str) -> Any:
    """The input as a DataFrame (Parquet file or folder, or JSON Lines), checked for id and text."""
    from pipeline.scoring.inputs import ScoreInputError, kind_of

    path = Path(source)
    if "://" not in source and not path.exists():
        raise ScoreInputError(f"{source}: no such file")
    frame = spark.read.parquet(source) if kind_of(path) == "parquet" else spark.read.json(source)
    fields = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    for name in (INPUT_ID, INPUT_TEXT):
        if name not in fields:
            raise ScoreInputError(f"{source}: no column {name!r}; the columns are {', '.join(fields)}")
    if fields[INPUT_TEXT] != "string":
        raise ScoreInputError(f"{source}: column 'text' must hold strings, it holds {fields[INPUT_TEXT]}")
    missing = frame.filter(frame[INPUT_TEXT].isNull() | frame[INPUT_ID].isNull()).select(INPUT_ID).limit(1).collect()
    if missing:
        raise ScoreInputError(f"{source}: article {missing[0][INPUT_ID]!r}: no 'id' or no 'text' (null)")
    return frame


def score_spark(
    spark: Any, source: str, output: str, reference: str, model: str, model_version: str | None,
    tracking_uri: str | None = None, configs: str | None = None,
) -> dict[str, Any]:
    """Score `source` into the Parquet dataset `output` with Spark."""
    frame = read_articles(spark, source)
    carried = [(f.name, f.dataType.simpleString()) for f in frame.schema.fields if f.name not in NOT_CARRIED]
    scored = frame.mapInPandas(score_partitions(reference, tracking_uri, configs, model, model_version, [n for n, _ in carried]),
                               spark_schema(carried))
    scored.write.mode("overwrite").parquet(output)
    # Reading takes a glob: an output named like "out[1]" must not be read as a pattern.
    written = spark.read.parquet(re.sub(r"([\[\]{}*?\\])", r"\\\1", output))
    return {"articles": frame.count(), "sentences": written.count()}


def sentence_udf(spark: Any, model_uri: str, result_fields: str) -> Any:
    """`mlflow.pyfunc.spark_udf` over the served model, for tables of one sentence per row:
    `frame.withColumn("pred", udf("text")).select("*", "pred.*")`. `result_fields` is the
    struct's DDL (say "actor string, stance string, stance_probability double")."""
    from pipeline import tracking

    return tracking.spark_udf(spark, model_uri, f"struct<{result_fields}>", {"split_sentences": False})
