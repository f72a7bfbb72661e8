"""TF-IDF (word and character n-grams) + logistic regression, for actor and stance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline import integrity
from pipeline.config import BaselineConfig
from pipeline.labels import ACTORS, STANCES
from pipeline.models import META_FILE, Probabilities, Sentences, read_meta, validation_scores
from pipeline.models.fast_tfidf import FastFeatures

MODEL_FILE = "model.skops"
FIELDS = ("actor", "stance")

# The only types a saved baseline may contain. skops refuses anything else, so a
# tampered file cannot run code on load.
TRUSTED_TYPES = [
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.multioutput.MultiOutputClassifier",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "builtins.str",
]


def _tfidf(analyzer: str, ngram_range: tuple[int, int], config: BaselineConfig) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        min_df=config.min_df,
        sublinear_tf=config.sublinear_tf,
        max_features=config.max_features,
        lowercase=True,
    )


def build_pipeline(config: BaselineConfig, c: float) -> Pipeline:
    """The unfitted scikit-learn pipeline for one regularisation strength `c`."""
    features = FeatureUnion(
        [
            ("word", _tfidf("word", config.word_ngram_range, config)),
            # char_wb n-grams stay inside word boundaries: robust to inflection and typos.
            ("char", _tfidf("char_wb", config.char_ngram_range, config)),
        ]
    )
    classifier = LogisticRegression(
        C=c, class_weight=config.class_weight, max_iter=config.max_iter, random_state=config.seed
    )
    return Pipeline([("features", features), ("classifier", MultiOutputClassifier(classifier))])


def _targets(data: Sentences) -> np.ndarray:
    return np.column_stack([np.asarray(data[field], dtype=object) for field in FIELDS])


class BaselineModel:
    """TF-IDF features shared by two logistic regressions (actor, stance).

    `fit` tries every C of the config's grid on the training split and keeps the
    one with the best validation stance macro-F1 (actor macro-F1 breaks ties).
    """

    TRUSTED_TYPES = TRUSTED_TYPES

    def __init__(self, config: BaselineConfig | None = None, word_cache: int = 0) -> None:
        self.config = config
        self.pipeline: Pipeline | None = None
        self.selection: list[dict[str, float]] = []
        self.c: float | None = None
        # Features are computed by FastFeatures (same matrix as the pipeline's own
        # step, several times faster); `word_cache` bounds its per-word cache.
        self.word_cache = word_cache
        self._features: tuple[Pipeline, FastFeatures] | None = None

    def clear_cache(self) -> None:
        """Forget the per-word feature cache (benchmarks measure from a cold start)."""
        self._features = None

    def features(self, texts: list[str]) -> Any:
        """The fitted pipeline's TF-IDF features of `texts` (the fast, equal path)."""
        if self.pipeline is None:
            raise RuntimeError("BaselineModel is not fitted")
        if self._features is None or self._features[0] is not self.pipeline:
            self._features = (self.pipeline, FastFeatures(self.pipeline.named_steps["features"], self.word_cache))
        return self._features[1].transform(texts)

    def fit(self, train: Sentences, validation: Sentences) -> "BaselineModel":
        if self.config is None:
            raise ValueError("BaselineModel needs a BaselineConfig to fit")
        best: tuple[float, float] | None = None
        y_train = _targets(train)
        for c in self.config.c_grid:
            pipeline = build_pipeline(self.config, c).fit(list(train["text"]), y_train)
            self.pipeline = pipeline
            scores = validation_scores(self.predict_proba(validation), validation)
            self.selection.append({"C": c, **scores})
            key = (scores["validation_stance_macro_f1"], scores["validation_actor_macro_f1"])
            if best is None or key > best:
                best, best_pipeline, self.c = key, pipeline, c
        self.pipeline = best_pipeline
        return self

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        if self.pipeline is None:
            raise RuntimeError("BaselineModel is not fitted")
        texts = list(sentences["text"])
        if not texts:
            return Probabilities(np.zeros((0, len(ACTORS))), np.zeros((0, len(STANCES))))
        classifier = self.pipeline.named_steps["classifier"]
        features = self.features(texts)
        per_field = [estimator.predict_proba(features) for estimator in classifier.estimators_]
        out = {}
        for k, (field, labels) in enumerate((("actor", ACTORS), ("stance", STANCES))):
            # scikit-learn orders classes alphabetically; reorder to the schema's order
            # (a label absent from training keeps probability 0).
            classes = list(classifier.estimators_[k].classes_)
            proba = np.zeros((len(texts), len(labels)))
            for j, label in enumerate(classes):
                proba[:, labels.index(label)] = per_field[k][:, j]
            out[field] = proba
        return Probabilities(actor=out["actor"], stance=out["stance"])

    def save(self, directory: Path) -> None:
        if self.pipeline is None:
            raise RuntimeError("BaselineModel is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline, directory / MODEL_FILE)
        meta: dict[str, Any] = {"kind": "baseline", "C": self.c, "selection": self.selection}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        integrity.record(directory, [MODEL_FILE, META_FILE])

    @classmethod
    def load(cls, directory: Path, word_cache: int = 0) -> "BaselineModel":
        """The model saved in `directory`; `word_cache` as in the constructor."""
        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"no baseline model at {path}")
        integrity.verify(directory, [MODEL_FILE, META_FILE])
        model = cls(word_cache=word_cache)
        try:
            untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
        except Exception as err:  # zipfile, JSON and skops errors alike: the file is not a skops file
            raise integrity.ModelFileError(f"{path}: not a readable skops file ({type(err).__name__}: {err})") from None
        if untrusted:
            raise integrity.ModelFileError(f"{path}: holds types outside the trusted list ({', '.join(untrusted)}); refusing to load it")
        model.pipeline = sio.load(path, trusted=TRUSTED_TYPES)
        meta = read_meta(directory)
        model.c, model.selection = meta["C"], meta["selection"]
        return model
