"""Property tests (hypothesis): predict() on any text, the corpus loader on any corruption,
the fast TF-IDF on any text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.corpus import CorpusError, load_corpus
from pipeline.labels import NONE
from pipeline.segment import clean_text

from conftest import CORPUS

# Text as found in the wild: any code point (lone surrogates and control characters
# included), runs of whitespace and sentence ends, sometimes huge.
CHARACTERS = st.characters(codec=None, exclude_categories=())
PIECES = st.one_of(st.text(CHARACTERS, max_size=60), st.sampled_from([". ", "! ", "? ", "\n\n", "\u200b", "\x00", "\ud800", "  ", "Kyiv refused. "]))
TEXT = st.one_of(st.lists(PIECES, max_size=30).map("".join), st.builds(lambda p, n: p * n, PIECES, st.integers(100, 2000)))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def predictor(trained_models):
    from pipeline.predictor import get_predictor

    return get_predictor("baseline", trained_models)


@SETTINGS
@given(items=st.lists(TEXT, min_size=1, max_size=4))
def test_predict_on_any_text(predictor, items):
    results = predictor.predict(items)
    for k, text in enumerate(items):
        cleaned = clean_text(text)
        cursor = 0
        for r in (r for r in results if r.item == k):
            found = cleaned.find(r.sentence, cursor)
            assert found >= 0, (r.sentence, cleaned)  # a substring of the cleaned input, in order
            cursor = found + len(r.sentence)
    for r in results:
        assert abs(sum(r.stance_probabilities.values()) - 1.0) < 1e-5 and abs(sum(r.actor_probabilities.values()) - 1.0) < 1e-5
        assert (r.actor == NONE) == (r.stance == NONE)
        assert r.sentence.strip() == r.sentence and r.sentence


@SETTINGS
@given(items=st.lists(TEXT, min_size=1, max_size=6))
def test_one_result_per_item_without_splitting(predictor, items):
    results = predictor.predict(items, split_sentences=False)
    kept = [k for k, t in enumerate(items) if clean_text(t).strip()]
    assert [r.item for r in results] == kept  # blank items give none, every other item exactly one


@SETTINGS
@given(item=st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.integers(), min_size=1, max_size=2).map(tuple), st.binary(max_size=20)))
def test_only_the_documented_errors(predictor, item):
    try:
        predictor.predict([item])
    except (TypeError, ValueError) as err:
        assert "item 0" in str(err)


# The fields each file must have (others, such as an article's `sources`, are optional).
REQUIRED = {"articles.jsonl": ["article_id", "date", "text", "title"], "sentences.jsonl": ["actor", "agreement", "article_id", "id", "position", "stance", "text"],
            "annotator_a.jsonl": ["actor", "id", "stance"]}


def _corrupt(lines: list[str], index: int, how: str, value: str, file: str) -> list[str]:
    line = lines[index]
    obj = json.loads(line)
    required = REQUIRED[Path(file).name]
    if how == "truncate":
        lines[index] = line[: max(1, len(line) // 2)]
    elif how == "drop_key":
        del obj[required[len(value) % len(required)]]
        lines[index] = json.dumps(obj)
    elif how == "bad_label":
        key = "stance" if "stance" in obj else "date"
        obj[key] = "x" + value
        lines[index] = json.dumps(obj)
    elif how == "wrong_type":
        key = required[len(value) % len(required)]
        obj[key] = [value]
        lines[index] = json.dumps(obj)
    elif how == "duplicate":
        lines.insert(index, line)
    elif how == "garbage":
        lines[index] = value + "{" + line
    return lines


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """The first three articles of the corpus, as a corpus of its own."""
    target = tmp_path_factory.mktemp("small") / "corpus"
    (target / "passes").mkdir(parents=True)
    articles = (CORPUS / "articles.jsonl").read_text().splitlines()[:3]
    keep = {json.loads(a)["article_id"] for a in articles}
    (target / "articles.jsonl").write_text("\n".join(articles) + "\n")
    for name in ("sentences.jsonl", "passes/annotator_a.jsonl", "passes/annotator_b.jsonl"):
        rows = [line for line in (CORPUS / name).read_text().splitlines() if json.loads(line)["id"].rpartition("-")[0] in keep]
        (target / name).write_text("\n".join(rows) + "\n")
    load_corpus(target)  # valid as it is
    return target


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(["articles.jsonl", "sentences.jsonl", "passes/annotator_a.jsonl"]), where=st.floats(0, 1, exclude_max=True),
       how=st.sampled_from(["truncate", "drop_key", "bad_label", "wrong_type", "duplicate", "garbage"]), value=st.text("abc?!", min_size=1, max_size=5))
def test_the_corpus_loader_names_file_and_line_for_any_corruption(small_corpus, tmp_path_factory, file, where, how, value):
    from pipeline.stages import prepare

    from conftest import CONFIGS

    corpus = tmp_path_factory.mktemp("c") / "corpus"
    shutil.copytree(small_corpus, corpus)
    path = corpus / file
    lines = path.read_text().splitlines()
    index = int(where * len(lines))
    path.write_text("\n".join(_corrupt(lines, index, how, value, file)) + "\n")
    out = corpus.parent / "prepared"
    with pytest.raises(ValueError) as caught:
        prepare.run(corpus, out, corpus.parent / "reports", CONFIGS)
    assert isinstance(caught.value, CorpusError) and caught.value.path.endswith(Path(file).name)
    assert caught.value.line is not None or "sentence(s) have no label" in str(caught.value) or "no articles" in str(caught.value)
    assert not out.exists() and not (corpus.parent / "reports").exists()


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(st.characters(codec=None), max_size=80), min_size=1, max_size=12))
def test_the_fast_tfidf_equals_scikit_learns_on_any_text(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.models.fast_tfidf import FastTfidf

    fitted = ["Moscow rejected the plan", "Kyiv wants talks", "the plan was rejected in Moscow", "talks talks talks"]
    for analyzer, ngrams in (("char_wb", (2, 5)), ("word", (1, 2))):
        vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True).fit(fitted + texts[:3])
        expected, got = vectorizer.transform(texts), FastTfidf(vectorizer, max_words=0).transform(texts)
        assert expected.shape == got.shape and np.array_equal(expected.toarray(), got.toarray())
