"""train_baseline / train_transformer: fit one model, save it, track the run."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import atomic, tracking
from pipeline.calibration import Temperatures, expected_calibration_error
from pipeline.config import BaselineConfig, CalibrationConfig, TransformerConfig, load_config, to_flat_dict
from pipeline.corpus import load_splits
from pipeline.models import model_class, validation_scores
from pipeline.provenance import data_version
from pipeline.stages import provenance_tags, start_tracking
from pipeline.stages.prepare import META_FILE as PREPARED_META

CONFIGS: dict[str, tuple[str, type]] = {
    "baseline": ("baseline.yaml", BaselineConfig),
    "transformer": ("transformer.yaml", TransformerConfig),
}
RUN_FILE = "mlflow_run.json"
# Requirements of the served pyfunc; the environment is the project's own
# (`--env-manager local`), so these document rather than install.
SERVING_REQUIREMENTS = ["mlflow", "scikit-learn", "skops", "onnxruntime", "tokenizers", "torch", "transformers", "pysbd", "pyyaml", "pandas"]
EXAMPLE_TEXT = "The Kremlin rejected the proposal. Kyiv said it was ready for talks."
EXAMPLE_TITLE = "Kremlin rejects peace proposal"
SERVING_PARAMS = {"split_sentences": True}


def input_example(model: Any) -> tuple[Any, dict[str, Any]]:
    """The served model's input example, from which MLflow infers its signature.

    A model that reads titles gets an optional `title` column (the None makes it
    optional). Others get `text` alone, so a server also takes a bare list of
    texts; a title sent to them is dropped with a warning.
    """
    # With the params the model takes, so that the signature declares them (spark_udf
    # and the REST server pass split_sentences=False for tables of one sentence per row).
    if getattr(model, "context", "none") == "title":
        return pd.DataFrame({"text": [EXAMPLE_TEXT, EXAMPLE_TEXT], "title": [EXAMPLE_TITLE, None]}), SERVING_PARAMS
    return pd.DataFrame({"text": [EXAMPLE_TEXT]}), SERVING_PARAMS


def run_name(name: str, config: Any, model: Any) -> str:
    """A readable run name: model, its key parameters, the date."""
    today = dt.date.today().isoformat()
    if name == "baseline":
        return f"baseline C={model.c:g} {today}"
    return f"transformer lr={config.learning_rate:g} ep={model.best_epoch}/{config.epochs} ctx={config.context} {today}"


def data_tags(data_dir: Path) -> dict[str, str]:
    """The corpus version recorded by prepare and the prepared splits' own version."""
    meta = json.loads((data_dir / PREPARED_META).read_text(encoding="utf-8"))
    # data_version: the corpus plus accepted user batches (the corpus's own hash when there are none).
    return {"data_version": meta.get("data_version", meta["corpus_version"]), "prepared_data_version": data_version(data_dir)}


def calibration_metrics(proba: Any, temperatures: Temperatures, data: Any, bins: int) -> dict[str, float]:
    """The temperatures and the validation ECE of each field before and after them."""
    before = expected_calibration_error(proba, data, bins)
    after = expected_calibration_error(temperatures.apply(proba), data, bins)
    return {
        "actor_temperature": temperatures.actor,
        "stance_temperature": temperatures.stance,
        **{f"validation_{field}_ece": value for field, value in before.items()},
        **{f"validation_{field}_ece_calibrated": value for field, value in after.items()},
    }


def run(
    name: str, data_dir: Path, model_dir: Path, reports_dir: Path, config_dir: Path, overrides: dict[str, Any] | None = None
) -> dict[str, float]:
    """Train model `name` on the prepared splits; save it and log it to MLflow.

    `overrides` replace keys of the model's config file for this run only.
    """
    file, cls = CONFIGS[name]
    config = load_config(config_dir / file, cls, overrides)
    splits = load_splits(data_dir)
    started = time.perf_counter()
    model = model_class(name)(config).fit(splits["train"], splits["validation"])
    seconds = time.perf_counter() - started
    validation_proba = model.predict_proba(splits["validation"])
    metrics: dict[str, float] = {**validation_scores(validation_proba, splits["validation"]), "train_seconds": seconds}
    calibration = load_config(config_dir / "calibration.yaml", CalibrationConfig)
    temperatures = Temperatures.fit(validation_proba, splits["validation"]) if calibration.fit else None
    if temperatures is not None:
        metrics.update(calibration_metrics(validation_proba, temperatures, splits["validation"], calibration.ece_bins))

    tracking_config, _ = start_tracking(config_dir)
    tags = {"model": name, **provenance_tags(f"train_{name}", data_tags(data_dir))}
    with atomic.atomic_path(model_dir) as tmp:
        model.save(tmp)
        if temperatures is not None:
            temperatures.save(tmp, {"fitted_on": "validation", "sentences": len(splits["validation"]),
                                    **{k: v for k, v in metrics.items() if "ece" in k or "temperature" in k}})
        with tracking.run(run_name(name, config, model), tags) as run_id:
            tracking.log_params({"model": name, **to_flat_dict(config)})
            if name == "baseline":
                tracking.log_params({"C": model.c})
                for step, row in enumerate(model.selection):
                    tracking.log_metrics({k: v for k, v in row.items() if k != "C"}, step=step)
            else:
                tracking.log_params({"best_epoch": model.best_epoch})
                for row in model.history:
                    tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
            tracking.log_metrics(metrics)
            if name == "baseline":
                tracking.log_sklearn_model(model.pipeline, model.TRUSTED_TYPES, [EXAMPLE_TEXT])
            model_uri = tracking.log_pyfunc_model(
                {"model_dir": tmp, "segment_config": config_dir / "segment.yaml", "predict_config": config_dir / "predict.yaml"},
                input_example=input_example(model),
                pip_requirements=SERVING_REQUIREMENTS,
            )
        atomic.write_json(tmp / RUN_FILE, {"run_id": run_id, "model_uri": model_uri, "registered_model": tracking_config.registered_models[name]})
    atomic.write_json(reports_dir / f"train_{name}.json", metrics)
    return metrics
