"""The baseline's fast TF-IDF path gives exactly scikit-learn's matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from pipeline.models.baseline import BaselineModel
from pipeline.models.fast_tfidf import FastFeatures, FastTfidf, supported

from conftest import take, tiny_baseline_config

ODD = [
    "", "   ", "a", "I", "x y", "Ünïcödé ÉCOLE straße", "İstanbul ǅemal ﬁnance", "Москва заявила о переговорах",
    "中文句子 没有空格", "tab\tsep\nnew\x1cline\x0bv", "\u200bzero\u00a0width\u2003space", "e\u0301 combining",
    "a" * 300, "hello  world  hello hello", "'s --- ... 12 1.5 U.S. NATO's", "\ud800 lone surrogate",
]


def assert_same(expected, got) -> None:
    assert expected.shape == got.shape
    diff = abs(expected - got)
    assert diff.nnz == 0 or diff.max() == 0.0


@pytest.mark.parametrize(
    "analyzer, ngram_range, sublinear_tf, norm",
    [("char_wb", (2, 5), True, "l2"), ("char_wb", (1, 3), False, None), ("char_wb", (4, 4), True, "l1"),
     ("word", (1, 2), True, "l2"), ("word", (1, 1), False, "l2"), ("word", (2, 3), True, None)],
)
def test_fast_tfidf_equals_scikit_learn(rows, analyzer, ngram_range, sublinear_tf, norm):
    texts = list(rows["text"])
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, sublinear_tf=sublinear_tf, norm=norm, min_df=2)
    vectorizer.fit(texts[:90])
    fast = FastTfidf(vectorizer, max_words=0)
    # Unseen sentences, odd text, and a second pass (cache warm within a call, cleared between).
    for batch in (texts[90:], ODD, texts[90:]):
        assert_same(vectorizer.transform(batch), fast.transform(batch))
    assert fast.transform([]).shape == (0, len(vectorizer.vocabulary_))  # scikit-learn refuses an empty batch


def test_word_cache_is_bounded_and_does_not_change_results(rows):
    texts = list(rows["text"])
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit(texts)
    small, large = FastTfidf(vectorizer, max_words=10), FastTfidf(vectorizer, max_words=10**6)
    for start in range(0, len(texts), 40):
        batch = texts[start : start + 40]
        assert_same(small.transform(batch), large.transform(batch))
        assert len(small._word_ids) == 0  # over the bound after every batch of 40 sentences: emptied
    assert len(large._word_ids) > 10


def test_unsupported_vectorizers_fall_back_to_their_own_transform(rows):
    texts = list(rows["text"])
    odd_ones = [
        TfidfVectorizer(analyzer="char", ngram_range=(2, 3)),
        TfidfVectorizer(strip_accents="unicode"),
        TfidfVectorizer(lowercase=False),
        TfidfVectorizer(token_pattern=r"\w+"),
    ]
    union = FeatureUnion([(str(i), v) for i, v in enumerate(odd_ones)]).fit(texts[:100])
    assert not any(supported(v) for v in odd_ones)
    assert not supported(TfidfVectorizer())  # not fitted
    with pytest.raises(ValueError, match="FastTfidf"):
        FastTfidf(odd_ones[0], 0)
    assert_same(union.transform(texts[100:]), FastFeatures(union, 0).transform(texts[100:]))


def test_baseline_predictions_equal_the_scikit_learn_pipeline(rows):
    train, validation = take(rows, slice(0, 60)), take(rows, slice(60, 120))
    model = BaselineModel(tiny_baseline_config(), word_cache=5).fit(train, validation)
    texts = list(validation["text"]) + ODD
    ours = model.predict_proba({"text": texts})
    theirs = model.pipeline.predict_proba(texts)
    classifier = model.pipeline.named_steps["classifier"]
    stance_classes = list(classifier.estimators_[1].classes_)
    from pipeline.labels import STANCES

    for j, label in enumerate(stance_classes):
        np.testing.assert_array_equal(ours.stance[:, STANCES.index(label)], theirs[1][:, j])
