"""The MLflow pyfunc model, logged "from code" (no pickle).

MLflow runs this file when it loads the model: `set_model` hands it an instance
whose `load_context` loads the saved model directory with the project's own
loaders (skops or safetensors). Input: a DataFrame with a `text` column (one
item per row, a sentence or a whole article) or a list of strings. Output: one
row per sentence.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class StancePyfunc(PythonModel):
    """Serves a saved baseline or transformer directory through pipeline.predict."""

    def load_context(self, context: Any) -> None:
        from pipeline.config import PredictConfig, SegmentConfig, load_config
        from pipeline.predictor import Predictor

        segment = load_config(context.artifacts["segment_config"], SegmentConfig)
        settings = load_config(context.artifacts["predict_config"], PredictConfig)
        self.predictor = Predictor.from_model_dir(
            context.artifacts["model_dir"],
            segment,
            settings.batch_size,
            runtime=settings.transformer_runtime,
            baseline_word_cache=settings.baseline_word_cache,
            calibrated=settings.calibrated,
        )

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame):
            column = "text" if "text" in model_input.columns else model_input.columns[0]
            titles = model_input["title"].tolist() if "title" in model_input.columns else [None] * len(model_input)
            # A missing title arrives as None or NaN, depending on the payload.
            texts: list[Any] = [{"text": t, "title": h if isinstance(h, str) else None} for t, h in zip(model_input[column].tolist(), titles)]
        elif isinstance(model_input, str):
            texts = [model_input]
        else:
            texts = list(model_input)
        split = bool((params or {}).get("split_sentences", True))
        rows = []
        for result in self.predictor.predict_iter(texts, split_sentences=split):
            row = result.to_dict()
            actor_p, stance_p = row.pop("actor_probabilities"), row.pop("stance_probabilities")
            row.update({f"p_actor_{k}": v for k, v in actor_p.items()})
            row.update({f"p_stance_{k}": v for k, v in stance_p.items()})
            rows.append(row)
        return pd.DataFrame(rows)


mlflow.models.set_model(StancePyfunc())
