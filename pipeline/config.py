"""Typed configuration: reads configs/*.yaml into frozen dataclasses.

This is the only module that reads YAML. Every tunable number lives in the YAML
files; the dataclasses below give them names and types but no defaults, so a
value missing from a file is an error rather than a silent fallback.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, TypeVar

import yaml

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"


@dataclass(frozen=True)
class SplitConfig:
    validation: float
    test: float


@dataclass(frozen=True)
class SegmentConfig:
    language: str
    # pysbd is quadratic in the length of what it is given; text is cut into
    # windows of at most this many characters (at a sentence-like break) first.
    max_chunk_chars: int
    # A "sentence" longer than this is cut at whitespace, so no unit is unbounded.
    max_sentence_chars: int


@dataclass(frozen=True)
class PrepareConfig:
    seed: int
    split: SplitConfig
    min_boundary_agreement: float
    max_articles: Optional[int]
    batch_split: str


@dataclass(frozen=True)
class BaselineConfig:
    seed: int
    word_ngram_range: tuple[int, int]
    char_ngram_range: tuple[int, int]
    min_df: int
    sublinear_tf: bool
    max_features: Optional[int]
    c_grid: tuple[float, ...]
    class_weight: Optional[str]
    max_iter: int


@dataclass(frozen=True)
class TransformerConfig:
    pretrained: str
    seed: int
    context: str
    max_length: int
    epochs: int
    batch_size: int
    eval_batch_size: int
    # Inference pads a sentence to its length rounded up to this many tokens.
    pad_multiple: int
    learning_rate: float
    head_learning_rate: float
    weight_decay: float
    warmup_ratio: float
    dropout: float
    # Bottom encoder layers (with the embeddings) kept frozen: a cheaper backward pass.
    freeze_layers: int
    patience: int
    checkpoint: str
    actor_loss_weight: float
    class_weighting: str
    # SetFit-style contrastive pre-training of the encoder before fine-tuning
    # (0 pairs = off): cosine similarity of sentence pairs pulled to 1 for the same
    # (actor, stance) label and to 0 otherwise.
    contrastive_pairs: int
    contrastive_learning_rate: float
    # The CPU serving form written beside the weights (pipeline/models/onnx_runtime.py).
    onnx_export: bool
    onnx_quantize: bool
    onnx_opset: int
    device: str
    num_threads: Optional[int]
    # Mixed precision of the training steps (models/transformer.py training_dtype).
    precision: str
    # Where encoders extracted from split-zip packages are kept (pipeline/encoders.py).
    encoder_cache: str


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int
    confidence: float
    unit: str
    seed: int


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap: BootstrapConfig
    champion_metric: str
    predict_batch_size: int


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    experiment: str
    registered_models: dict[str, str]


@dataclass(frozen=True)
class PredictConfig:
    batch_size: int
    transformer_runtime: str
    baseline_word_cache: int
    # Apply the temperatures saved with the model (pipeline/calibration.py); labels never change.
    calibrated: bool


@dataclass(frozen=True)
class SparkConfig:
    master: str
    app_name: str
    arrow_batch_size: int


@dataclass(frozen=True)
class ScoreConfig:
    model: str
    part_articles: int
    spark: SparkConfig


@dataclass(frozen=True)
class TrendBootstrapConfig:
    resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True)
class TrendsConfig:
    period: str
    by: tuple[str, ...]
    estimators: tuple[str, ...]
    chart_estimator: str
    bootstrap: TrendBootstrapConfig
    check_period: str


@dataclass(frozen=True)
class AnnotationConfig:
    seed: int
    uncertainty: str
    model: str


@dataclass(frozen=True)
class CalibrationConfig:
    fit: bool
    ece_bins: int


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_coerce(v, item, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float:
        # YAML 1.1 reads 1e-4 (no dot) as a string; take it as the number it spells.
        try:
            return float(value) if isinstance(value, str) else _reject(value, hint, where)
        except ValueError:
            _reject(value, hint, where)
    if hint in (int, str, bool) and not isinstance(value, hint) or (
        hint is int and isinstance(value, bool)
    ):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _reject(value: Any, hint: Any, where: str) -> Any:
    raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    missing = [n for n in names if n not in data]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {names}")
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    return cls(**{n: _coerce(data[n], hints[n], f"{where}.{n}") for n in names})


def load_config(path: str | Path, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Read the YAML file at `path` into the dataclass `cls`, checking every key.

    `overrides` replace top-level keys of the file (and are checked the same way).
    Raises ValueError naming the file and the key on a missing, unknown or
    mistyped value, and FileNotFoundError when the file does not exist.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if overrides:
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping, got {data!r}")
        data = {**data, **overrides}
    return _build(cls, data, str(path))


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings into a dict, each VALUE read as YAML (`epochs=3`, `c_grid=[1.0]`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{pair!r}: the value is not valid YAML ({err.problem})") from None
    return out


def to_flat_dict(config: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config dataclass into dotted keys (for MLflow params)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            out.update(to_flat_dict(value, key + "."))
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class BenchConfig:
    sentences: int
    repeats: int
    articles: int
    batch_sizes: tuple[int, ...]
    reference_batch_size: int
    latency_calls: int
    warmup_calls: int
    segment_sizes: tuple[int, ...]
    segment_sizes_windowed_only: tuple[int, ...]


@dataclass(frozen=True)
class RuleConfig:
    actor_aliases: dict[str, list[str]]
    stance_signals: dict[str, list[str]]


@dataclass(frozen=True)
class EmbeddingConfig:
    c_grid: tuple[float, ...]
    max_length: int
    batch_size: int


@dataclass(frozen=True)
class QuickConfig:
    max_articles: int
    seeds: tuple[int, ...]
    learning_curve_fractions: tuple[float, ...]
    transformer: dict[str, Any]
    ideas: tuple[str, ...]
    cross_validation_folds: int


@dataclass(frozen=True)
class CrossValidationConfig:
    folds: int
    seed: int
    # 1 in this many of each fold's training articles validates (early stopping, C).
    validation_folds: int
    systems: tuple[str, ...]
    confidence: float
    resamples: int


@dataclass(frozen=True)
class BenchmarkConfig:
    seeds: tuple[int, ...]
    learning_curve_fractions: tuple[float, ...]
    temporal_cutoff: str
    temporal_validation: float
    calibration_bins: int
    abstention_thresholds: tuple[float, ...]
    error_examples: int
    embedding: EmbeddingConfig
    transformer: dict[str, Any]
    encoders: dict[str, dict[str, Any]]
    ideas: dict[str, dict[str, Any]]
    cross_validation: CrossValidationConfig
    quick: QuickConfig
