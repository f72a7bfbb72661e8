"""The two stance models and the small interface they share.

Both follow the scikit-learn shape: `fit` on a training and a validation split,
`predict_proba` on sentences, `save`/`load` on a directory. Evaluation,
prediction and the benchmarks use only this interface, so they treat the two
alike. Model classes are imported lazily: loading the baseline should not pay
for importing torch.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from pipeline.labels import ACTORS, STANCES, decode
from pipeline.metrics import macro_f1

MODEL_CLASSES = {
    "baseline": ("pipeline.models.baseline", "BaselineModel"),
    "transformer": ("pipeline.models.transformer", "TransformerModel"),
}
MODEL_NAMES = tuple(MODEL_CLASSES)
# Every saved model directory has this file; a transformer's tokenizer and
# encoder config sit in ENCODER_DIR beside its weights.
META_FILE = "meta.json"
ENCODER_DIR = "encoder"


@dataclass(frozen=True)
class Probabilities:
    """Per-sentence probabilities, columns in the order of labels.ACTORS / STANCES."""

    actor: np.ndarray
    stance: np.ndarray


# A batch of sentences: "text" is required; "prev_text" (the sentence before,
# or "") or "title" (the article's) is used by models configured to read context.
Sentences = Mapping[str, Sequence[Any]]

# A transformer's `context` setting: which column, if any, it reads as a second segment.
CONTEXT_COLUMNS = {"none": None, "previous": "prev_text", "title": "title"}


def context_texts(sentences: Sentences, context: str) -> list[str] | None:
    """The second segment each sentence is read with, or None for `context: none`."""
    if context not in CONTEXT_COLUMNS:
        raise ValueError(f"context must be one of {tuple(CONTEXT_COLUMNS)}, got {context!r}")
    column = CONTEXT_COLUMNS[context]
    if column is None:
        return None
    try:
        # Indexing, not `in`: a datasets.Dataset's `in` looks among its rows, not its columns
        # (and it refuses a missing column with ValueError, a dict with KeyError).
        values = sentences[column]
    except (KeyError, ValueError):
        raise ValueError(f"this model reads {column!r} as context (context: {context}), but the sentences have no {column!r}") from None
    return [str(c or "") for c in values]


def padded_batches(lengths: np.ndarray, batch_size: int, multiple: int) -> list[tuple[np.ndarray, int]]:
    """Batches of sentence indices for inference, each with the width it is padded to.

    Sentences are sorted by length (little padding) and padded to their length rounded
    up to `multiple` tokens, never to the longest of their batch: a batch only holds
    sentences of the same rounded length. So the computation of a sentence never depends
    on the other sentences it is predicted with (which batch, how long its neighbours),
    and predict(), the served model and both scoring engines give it the same
    probabilities whatever else they are given with it. (With per-token int8, a padding
    width that depended on the neighbours moved probabilities by up to 0.005.)
    """
    multiple = max(1, int(multiple))
    widths = -(-np.asarray(lengths) // multiple) * multiple
    order = np.argsort(widths, kind="stable")
    out: list[tuple[np.ndarray, int]] = []
    start = 0
    while start < len(order):
        width = widths[order[start]]
        end = start
        while end < len(order) and end - start < batch_size and widths[order[end]] == width:
            end += 1
        out.append((order[start:end], int(width)))
        start = end
    return out


class StanceModel(Protocol):
    def fit(self, train: Sentences, validation: Sentences) -> "StanceModel": ...

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> "StanceModel": ...


def model_class(name: str) -> Any:
    """The class of the model called `name` ("baseline" or "transformer")."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    module, attr = MODEL_CLASSES[name]
    return getattr(importlib.import_module(module), attr)


def load_model(name: str, directory: str | Path, **options: Any) -> StanceModel:
    """Load the saved model `name` from `directory`; `options` go to its `load`."""
    return model_class(name).load(Path(directory), **options)


def read_meta(directory: Path) -> dict[str, Any]:
    """A saved model's meta.json, refusing one whose label maps differ from pipeline.labels."""
    from pipeline.integrity import ModelFileError

    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; the model directory is incomplete") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    for key, labels in (("actors", ACTORS), ("stances", STANCES)):
        if key in meta and meta[key] != list(labels):
            raise ModelFileError(f"{path}: saved {key} {meta[key]} differ from this version's labels {list(labels)} (pipeline/labels.py); "
                                 "the model was trained for another label schema")
    return meta


def validation_scores(proba: Probabilities, data: Sentences) -> dict[str, float]:
    """Validation macro-F1 of both fields, decoded exactly as predictions are."""
    actors, stances = decode(proba.actor, proba.stance)
    return {
        "validation_stance_macro_f1": macro_f1(list(data["stance"]), stances, "stance"),
        "validation_actor_macro_f1": macro_f1(list(data["actor"]), actors, "actor"),
    }
