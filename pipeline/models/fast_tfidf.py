"""The fitted baseline's TF-IDF features, computed faster and exactly as scikit-learn does.

scikit-learn's vectorizers build every n-gram of every document in Python and look
each one up in the vocabulary: about 600 character n-grams for a news sentence, and
that loop bounds the baseline's speed. The character n-grams of `char_wb` never
cross a word boundary, so the vocabulary ids one word contributes are always the
same; `FastTfidf` computes them once per distinct word and keeps them, so a
sentence costs one lookup per word. Word n-grams are looked up directly. Counts,
sublinear tf, idf and the l2 norm then follow scikit-learn's own code, so the
matrix equals `vectorizer.transform` (tests check it on the corpus and odd text).

Only the settings the baseline uses are rebuilt here (analyzer "word" with the
default tokenization, or "char_wb"; lowercase; no accent stripping, stop words or
custom callables). Any other vectorizer is left to its own `transform`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize

# The vectorizer settings whose defaults the fast path relies on.
_DEFAULTS = {
    "input": "content",
    "encoding": "utf-8",
    "strip_accents": None,
    "preprocessor": None,
    "tokenizer": None,
    "stop_words": None,
    "binary": False,
    "dtype": np.float64,
    "vocabulary": None,
    "token_pattern": r"(?u)\b\w\w+\b",
}


def supported(vectorizer: Any) -> bool:
    """Whether `vectorizer` is a fitted TfidfVectorizer the fast path reproduces exactly."""
    if type(vectorizer) is not TfidfVectorizer or not hasattr(vectorizer, "vocabulary_"):
        return False
    params = vectorizer.get_params()
    if any(params[key] != value for key, value in _DEFAULTS.items()):
        return False
    return params["analyzer"] in ("word", "char_wb") and params["lowercase"] and params["norm"] in ("l1", "l2", None)


class FastTfidf:
    """`transform(texts)` equal to a fitted TfidfVectorizer's (see the module docstring).

    `max_words` bounds the per-word cache of char n-gram ids: after a call that
    leaves more words than that in it, it is emptied (0 = keep nothing between calls).
    """

    def __init__(self, vectorizer: TfidfVectorizer, max_words: int) -> None:
        if not supported(vectorizer):
            raise ValueError("FastTfidf reproduces only fitted word/char_wb TfidfVectorizers with default tokenization")
        self.vectorizer = vectorizer
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.analyzer: str = vectorizer.analyzer
        self.min_n, self.max_n = vectorizer.ngram_range
        self.token_pattern = re.compile(vectorizer.token_pattern)
        self.max_words = max_words
        self._word_ids: dict[str, np.ndarray] = {}
        self._empty = np.zeros(0, dtype=np.int32)

    def _char_wb_ids(self, word: str) -> np.ndarray:
        """Vocabulary ids of one word's padded char n-grams (scikit-learn's _char_wb_ngrams)."""
        w = " " + word + " "
        w_len = len(w)
        if w_len < self.min_n:  # shorter than every n: counted once, whole, as in scikit-learn
            grams = [w]
        else:
            grams = [w[i : i + n] for n in range(self.min_n, min(self.max_n, w_len) + 1) for i in range(w_len - n + 1)]
        return np.array([i for i in map(self.vocabulary.get, grams) if i is not None], dtype=np.int32)

    def _doc_ids_char_wb(self, doc: str) -> list[np.ndarray]:
        cache = self._word_ids
        out = []
        for word in doc.lower().split():
            ids = cache.get(word)
            if ids is None:
                ids = cache[word] = self._char_wb_ids(word)
            out.append(ids)
        return out

    def _doc_ids_word(self, doc: str) -> list[np.ndarray]:
        tokens = self.token_pattern.findall(doc.lower())
        grams = [
            tokens[i] if n == 1 else " ".join(tokens[i : i + n])
            for n in range(self.min_n, min(self.max_n, len(tokens)) + 1)
            for i in range(len(tokens) - n + 1)
        ]
        return [np.array([i for i in map(self.vocabulary.get, grams) if i is not None], dtype=np.int32)]

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        """The TF-IDF matrix of `texts`, as `vectorizer.transform(texts)` gives it."""
        doc_ids = self._doc_ids_char_wb if self.analyzer == "char_wb" else self._doc_ids_word
        per_doc = [np.concatenate(doc_ids(doc) or [self._empty]) for doc in texts]
        if len(self._word_ids) > self.max_words:
            self._word_ids.clear()
        rows = np.repeat(np.arange(len(per_doc), dtype=np.int32), [len(ids) for ids in per_doc])
        cols = np.concatenate(per_doc) if per_doc else self._empty
        # Duplicates (a repeated n-gram) are summed into counts when the COO form becomes CSR.
        counts = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float64), (rows, cols)), shape=(len(per_doc), len(self.vocabulary))
        )
        counts.sum_duplicates()
        counts.sort_indices()
        return self._weight(counts)

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        # scikit-learn's TfidfTransformer.transform, step for step.
        vectorizer = self.vectorizer
        if vectorizer.sublinear_tf:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        if vectorizer.use_idf:
            counts.data *= vectorizer.idf_[counts.indices]
        if vectorizer.norm is not None and counts.shape[0]:  # normalize refuses an empty matrix
            counts = normalize(counts, norm=vectorizer.norm, copy=False)
        return counts


class FastFeatures:
    """A fitted FeatureUnion of TF-IDF vectorizers with each part made fast where it can be."""

    def __init__(self, union: FeatureUnion, max_words: int) -> None:
        if union.transformer_weights:
            raise ValueError("FastFeatures does not apply FeatureUnion transformer_weights")
        self.parts = [
            FastTfidf(transformer, max_words) if supported(transformer) else transformer
            for _, transformer in union.transformer_list
        ]

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        """The union's features of `texts`, as `union.transform(texts)` gives them."""
        return sp.hstack([part.transform(texts) for part in self.parts], format="csr")
