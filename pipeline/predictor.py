"""Text in, one result per sentence out. Each model is loaded once per process."""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from pipeline.calibration import Temperatures
from pipeline.config import CONFIG_DIR, PROJECT_ROOT, PredictConfig, SegmentConfig, load_config
from pipeline.labels import ACTORS, STANCES, decode, joint_probabilities
from pipeline.models import META_FILE, MODEL_NAMES, StanceModel, load_model
from pipeline.segment import clean_text, split_sentences

# How the transformer runs (configs/predict.yaml `transformer_runtime`):
#   torch_int8  PyTorch with int8 matrix products, a scale per token (models/int8.py):
#               MPNet 4.6x the fp32 served path on a CPU with int8 dot products (VNNI /
#               AMX), 2.4% of test labels change (docs/results.md, machine A')
#   torch_bf16  PyTorch with bfloat16 weights: MPNet 3.6x the fp32 served path on a CPU
#               with native bf16 (AVX512-BF16 / AMX), no test label changes
#   onnx        model.onnx on ONNX Runtime: fused graph, ~2x, never imports torch
#   torch       PyTorch fp32 (the only one that uses CUDA)
#   auto        CUDA -> torch; else the first of torch_int8, torch_bf16, onnx that
#               the CPU computes natively (transformer.auto_runtime)
RUNTIMES = ("auto", "torch_int8", "torch_bf16", "onnx", "torch")
CHAMPION = "champion"
CHAMPION_FILE = "champion.json"
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
TRAIN_COMMANDS = {
    "baseline": "stance train baseline (or: dvc repro train_baseline)",
    "transformer": "stance train transformer (or: dvc repro train_transformer)",
    CHAMPION: "make run (or: dvc repro evaluate)",
}


class ModelNotTrainedError(FileNotFoundError):
    """The requested model has not been trained (or evaluated) yet."""


@dataclass(frozen=True)
class SentencePrediction:
    """The prediction for one sentence of one input item."""

    item: int
    sentence_index: int
    sentence: str
    actor: str
    stance: str
    actor_probability: float
    stance_probability: float
    actor_probabilities: dict[str, float] = field(repr=False)
    stance_probabilities: dict[str, float] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready)."""
        return asdict(self)


def _as_text(item: Any, position: int) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"item {position}: bytes are not valid UTF-8 (at byte {err.start}); decode them first") from None
    raise TypeError(f"item {position}: expected str (or UTF-8 bytes), got {type(item).__name__}")


def _item(item: Any, position: int, title: str | None) -> tuple[str, str]:
    """(text, title) of one input item: a str, UTF-8 bytes, or a mapping with "text" and optional "title"."""
    if isinstance(item, Mapping):
        if "text" not in item:
            raise TypeError(f"item {position}: a mapping needs a 'text' key (and may have a 'title'), got keys {sorted(map(str, item))}")
        own = item.get("title")
        if own is not None and not isinstance(own, str):
            raise TypeError(f"item {position}: 'title' must be a str or None, got {type(own).__name__}")
        return _as_text(item["text"], position), own if own is not None else (title or "")
    return _as_text(item, position), title or ""


def _items(text: Any, title: str | None = None) -> Iterator[tuple[str, str]]:
    if text is None:
        raise TypeError("text must be a str, bytes or an iterable of them, got None")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    if isinstance(text, (str, bytes, bytearray, Mapping)):
        yield _item(text, 0, title)
        return
    try:
        iterator = iter(text)
    except TypeError:
        raise TypeError(f"text must be a str, bytes or an iterable of them, got {type(text).__name__}") from None
    for position, item in enumerate(iterator):
        yield _item(item, position, title)


class Predictor:
    """A loaded model plus the segmentation settings used on new text."""

    def __init__(
        self, model: StanceModel, segment: SegmentConfig, batch_size: int, name: str = "",
        temperatures: Temperatures | None = None, calibrated: bool = True,
    ) -> None:
        self.model = model
        self.segment = segment
        self.batch_size = batch_size
        self.name = name
        # The model's calibration (None: it has none, probabilities are the model's own).
        self.temperatures = temperatures
        self.calibrated = calibrated

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        segment: SegmentConfig,
        batch_size: int,
        name: str = "",
        runtime: str = "torch",
        baseline_word_cache: int = 0,
        calibrated: bool = True,
    ) -> "Predictor":
        """Load whichever model kind is saved in `model_dir`.

        `runtime` picks the transformer's engine (see RUNTIMES). "onnx" falls back
        to PyTorch, with a warning, for a model saved without a model.onnx.
        `baseline_word_cache` bounds the baseline's per-word feature cache.
        `calibrated`: rescale probabilities by the temperatures saved with the model
        (calibration.json), when it has them; labels are the same either way.
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown transformer runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        model_dir = Path(model_dir)
        meta_path = model_dir / META_FILE
        if not meta_path.exists():
            raise ModelNotTrainedError(f"no trained model in {model_dir}")
        kind = json.loads(meta_path.read_text(encoding="utf-8"))["kind"]
        model: StanceModel | None = None
        if kind == "transformer" and runtime == "auto":
            from pipeline.models.transformer import auto_runtime

            runtime = auto_runtime()
        if kind == "transformer" and runtime in ("torch_int8", "torch_bf16"):
            from pipeline.models.transformer import TransformerModel

            cpu_model = TransformerModel.load(model_dir, device="cpu")
            model = cpu_model.to_int8() if runtime == "torch_int8" else cpu_model.to_bfloat16()
        if kind == "transformer" and runtime == "onnx":
            from pipeline.models.onnx_runtime import ONNX_FILE, OnnxTransformerModel

            if (model_dir / ONNX_FILE).exists():
                model = OnnxTransformerModel.load(model_dir)
            else:
                warnings.warn(
                    f"{model_dir} has no {ONNX_FILE} (saved with onnx_export off, or by an older version): "
                    "predicting with PyTorch, which is slower; retrain with `stance train transformer` to get it",
                    stacklevel=2,
                )
        if model is None:
            model = load_model(kind, model_dir, **({"word_cache": baseline_word_cache} if kind == "baseline" else {}))
        return cls(model, segment, batch_size, name or kind, Temperatures.load(model_dir), calibrated)

    def _sentences(self, text: str, split: bool) -> list[str]:
        if not split:
            text = clean_text(text).strip()
            return [text] if text else []
        return split_sentences(
            text,
            language=self.segment.language,
            max_chunk_chars=self.segment.max_chunk_chars,
            max_sentence_chars=self.segment.max_sentence_chars,
        )

    def _flush(self, pending: list[tuple[int, int, str, str, str]], batch_size: int, calibrated: bool) -> Iterator[SentencePrediction]:
        proba = self.model.predict_proba(
            {"text": [p[2] for p in pending], "prev_text": [p[3] for p in pending], "title": [p[4] for p in pending]},
            batch_size=batch_size,
        )
        if calibrated and self.temperatures is not None:
            proba = self.temperatures.apply(proba)
        actors, stances = decode(proba.actor, proba.stance)
        actor_p, stance_p = joint_probabilities(proba.actor, proba.stance)
        # Converted once per batch: per-sentence numpy calls cost more than the baseline's features.
        actor_rows, stance_rows = actor_p.tolist(), stance_p.tolist()
        actor_rounded, stance_rounded = np.round(actor_p, 6).tolist(), np.round(stance_p, 6).tolist()
        for k, (item, index, sentence, _, _) in enumerate(pending):
            yield SentencePrediction(
                item=item,
                sentence_index=index,
                sentence=sentence,
                actor=actors[k],
                stance=stances[k],
                actor_probability=actor_rows[k][ACTORS.index(actors[k])],
                stance_probability=stance_rows[k][STANCES.index(stances[k])],
                actor_probabilities=dict(zip(ACTORS, actor_rounded[k])),
                stance_probabilities=dict(zip(STANCES, stance_rounded[k])),
            )

    def predict_iter(
        self, text: Any, split_sentences: bool = True, batch_size: int | None = None, title: str | None = None,
        calibrated: bool | None = None,
    ) -> Iterator[SentencePrediction]:
        """Like `predict`, but yields results as batches complete (bounded memory)."""
        batch_size = batch_size or self.batch_size
        calibrated = self.calibrated if calibrated is None else calibrated
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        # Sentences are gathered across items into chunks of a few batches, so a
        # stream of short items still fills batches and memory stays bounded.
        chunk = batch_size * 8
        pending: list[tuple[int, int, str, str, str]] = []
        for item, (text_item, item_title) in enumerate(_items(text, title)):
            previous = ""
            item_title = clean_text(item_title).strip()
            for index, sentence in enumerate(self._sentences(text_item, split_sentences)):
                pending.append((item, index, sentence, previous, item_title))
                previous = sentence
                if len(pending) >= chunk:
                    yield from self._flush(pending, batch_size, calibrated)
                    pending = []
        if pending:
            yield from self._flush(pending, batch_size, calibrated)

    def predict_segmented(
        self, sentences: list[str], previous: list[str], titles: list[str], batch_size: int | None = None, calibrated: bool | None = None
    ) -> list[SentencePrediction]:
        """Predict sentences that are already segmented, each with its own context
        (the sentence before it and its article's title), as the corpus gives them.

        Results come in input order, `item` numbering the sentences."""
        if not len(sentences) == len(previous) == len(titles):
            raise ValueError(f"sentences, previous and titles differ in length: {len(sentences)}, {len(previous)}, {len(titles)}")
        batch_size = batch_size or self.batch_size
        calibrated = self.calibrated if calibrated is None else calibrated
        pending = [(k, 0, s, p, t) for k, (s, p, t) in enumerate(zip(sentences, previous, titles))]
        out: list[SentencePrediction] = []
        for start in range(0, len(pending), batch_size * 8):
            out.extend(self._flush(pending[start : start + batch_size * 8], batch_size, calibrated))
        return out

    def predict(
        self, text: Any, split_sentences: bool = True, batch_size: int | None = None, title: str | None = None,
        calibrated: bool | None = None,
    ) -> list[SentencePrediction]:
        """Predict actor and stance for every sentence of `text` (see `pipeline.predict`)."""
        return list(self.predict_iter(text, split_sentences, batch_size, title, calibrated))


_PREDICTORS: dict[tuple[str, str], Predictor] = {}
_LOCK = threading.Lock()


def registered_version(model: str, models_dir: str | Path | None = None) -> str | None:
    """"<registered name>:<version>" of the evaluated model `model` ("champion",
    "baseline" or "transformer"), from the evaluate stage's champion.json; None
    before the first evaluation."""
    path = (Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR) / CHAMPION_FILE
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    name = record["model"] if model == CHAMPION else model
    entry = record.get("registered", {}).get(name)
    return f"{entry['registered_model']}:{entry['version']}" if entry else None


def resolve_model_name(model: str, models_dir: Path) -> str:
    """Turn "champion" into the model the evaluate stage picked; check the name."""
    if model not in (CHAMPION, *MODEL_NAMES):
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join((CHAMPION, *MODEL_NAMES))}")
    if model != CHAMPION:
        return model
    path = models_dir / CHAMPION_FILE
    if not path.exists():
        raise ModelNotTrainedError(f"no champion picked yet ({path} is missing): run {TRAIN_COMMANDS[CHAMPION]}")
    return json.loads(path.read_text(encoding="utf-8"))["model"]


def get_predictor(model: str = CHAMPION, models_dir: str | Path | None = None, config_dir: str | Path | None = None) -> Predictor:
    """The cached Predictor for `model`, loading it on first use."""
    models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    name = resolve_model_name(model, models_dir)
    key = (name, str((models_dir / name).resolve()))
    with _LOCK:
        if key not in _PREDICTORS:
            segment = load_config(config_dir / "segment.yaml", SegmentConfig)
            settings = load_config(config_dir / "predict.yaml", PredictConfig)
            try:
                _PREDICTORS[key] = Predictor.from_model_dir(
                    models_dir / name, segment, settings.batch_size, name, settings.transformer_runtime, settings.baseline_word_cache,
                    settings.calibrated,
                )
            except ModelNotTrainedError:
                raise ModelNotTrainedError(
                    f"the {name} model has not been trained ({models_dir / name} is empty): run {TRAIN_COMMANDS[name]}"
                ) from None
        return _PREDICTORS[key]


def predict(
    text: str | bytes | Mapping[str, Any] | Iterable[str | bytes | Mapping[str, Any]],
    model: str = CHAMPION,
    split_sentences: bool = True,
    batch_size: int | None = None,
    models_dir: str | Path | None = None,
    title: str | None = None,
    calibrated: bool | None = None,
) -> list[SentencePrediction]:
    """Actor and stance for every sentence of `text`.

    `text` is one string (a sentence or a whole article) or an iterable of them;
    each is split into sentences unless `split_sentences=False`, which treats
    each item as one sentence. An item may also be a mapping {"text": ...,
    "title": ...}: a transformer trained with `context: title` reads every
    sentence with its article's title, and is more accurate when it gets one;
    `title` is the title for items that carry none. Other models ignore titles. `model` is "champion" (the evaluate stage's pick),
    "baseline" or "transformer"; it is loaded once and reused. Results come one
    per sentence, in input order, each naming its source `item`. The actor is
    `none` exactly when the stance is `none`: the stance head decides whether a
    sentence holds a stance, the actor head whose it is (see labels.decode).
    Probabilities are calibrated by the temperatures fitted on validation and
    saved with the model (configs/predict.yaml `calibrated`, or `calibrated=False`
    here for the model's raw probabilities); labels are the same either way.
    """
    return get_predictor(model, models_dir).predict(text, split_sentences, batch_size, title, calibrated)
