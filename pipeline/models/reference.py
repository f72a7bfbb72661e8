"""Reference systems the two real models are read against (bench/quality.py).

- `MajorityModel`: always the most frequent training labels.
- `RuleModel`: the codebook's signals and an actor alias table (configs/rules.yaml).
- `EmbeddingModel`: frozen MiniLM sentence embeddings + logistic regression, the
  cheap SetFit-like anchor: what fine-tuning adds over the pre-trained encoder.
All follow the StanceModel interface (fit / predict_proba); none is saved.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from pipeline.config import RuleConfig
from pipeline.labels import ACTORS, STANCES, label_index
from pipeline.models import Probabilities, Sentences, validation_scores


class MajorityModel:
    """Predicts the most frequent actor and stance of the training split."""

    def fit(self, train: Sentences, validation: Sentences) -> "MajorityModel":
        self.actor = Counter(train["actor"]).most_common(1)[0][0]
        self.stance = Counter(train["stance"]).most_common(1)[0][0]
        return self

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        n = len(sentences["text"])
        actor, stance = np.zeros((n, len(ACTORS))), np.zeros((n, len(STANCES)))
        actor[:, label_index("actor")[self.actor]] = 1.0
        stance[:, label_index("stance")[self.stance]] = 1.0
        return Probabilities(actor, stance)


class RuleModel:
    """Keyword rules from the codebook: signals decide the stance, aliases the actor."""

    # Codebook rule 6: when signals weigh the same, prefer steadfast.
    TIE_ORDER = ("steadfast", "deterrent", "conciliatory")

    def __init__(self, config: RuleConfig) -> None:
        self.config = config

    def fit(self, train: Sentences, validation: Sentences) -> "RuleModel":
        return self

    @staticmethod
    def _first(text: str, words: list[str]) -> int:
        positions = [text.find(w) for w in words]
        hits = [p for p in positions if p >= 0]
        return min(hits) if hits else -1

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        n = len(sentences["text"])
        actor, stance = np.zeros((n, len(ACTORS))), np.zeros((n, len(STANCES)))
        a_index, s_index = label_index("actor"), label_index("stance")
        for k, raw in enumerate(sentences["text"]):
            text = " " + re.sub(r"\s+", " ", str(raw).lower()) + " "
            counts = {s: sum(text.count(w) for w in words) for s, words in self.config.stance_signals.items()}
            best = max(self.TIE_ORDER, key=lambda s: (counts.get(s, 0), -self.TIE_ORDER.index(s)))
            if counts.get(best, 0) == 0:
                actor[k, 0] = stance[k, 0] = 1.0
                continue
            stance[k, s_index[best]] = 1.0
            found = {a: self._first(text, w) for a, w in self.config.actor_aliases.items()}
            found = {a: p for a, p in found.items() if p >= 0}
            actor[k, a_index[min(found, key=found.get) if found else "other"]] = 1.0
        return Probabilities(actor, stance)


class EmbeddingModel:
    """Frozen encoder, mean-pooled embeddings, one logistic regression per field."""

    def __init__(self, pretrained: str, c_grid: tuple[float, ...], seed: int, max_length: int, batch_size: int, encoder_cache: str) -> None:
        self.pretrained, self.c_grid, self.seed, self.encoder_cache = pretrained, c_grid, seed, encoder_cache
        self.max_length, self.batch_size = max_length, batch_size
        self._encoder: Any = None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence embeddings."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        from pipeline.encoders import resolve_pretrained

        if self._encoder is None:
            source = resolve_pretrained(self.pretrained, self.encoder_cache)
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            self._encoder = AutoModel.from_pretrained(source).eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(texts[i : i + self.batch_size], truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
                hidden = self._encoder(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))

    def fit(self, train: Sentences, validation: Sentences) -> "EmbeddingModel":
        from sklearn.linear_model import LogisticRegression

        x_train, x_val = self.embed(list(train["text"])), self.embed(list(validation["text"]))
        best = None
        for c in self.c_grid:
            self.heads = {
                field: LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=self.seed).fit(x_train, train[field])
                for field in ("actor", "stance")
            }
            score = validation_scores(self._proba(x_val), validation)["validation_stance_macro_f1"]
            if best is None or score > best[0]:
                best = (score, self.heads, c)
        _, self.heads, self.c = best
        return self

    def _proba(self, x: np.ndarray) -> Probabilities:
        out = {}
        for field, labels in (("actor", ACTORS), ("stance", STANCES)):
            head = self.heads[field]
            proba = np.zeros((len(x), len(labels)))
            for j, label in enumerate(head.classes_):
                proba[:, labels.index(label)] = head.predict_proba(x)[:, j] if len(x) else 0
            out[field] = proba
        return Probabilities(out["actor"], out["stance"])

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        return self._proba(self.embed(list(sentences["text"])))
