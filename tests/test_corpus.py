import json
from pathlib import Path

import pytest

from pipeline.corpus import CorpusError, assign_folds, assign_splits, boundary_matches, load_corpus, series_of
from pipeline.stages import prepare

from conftest import CONFIGS, CORPUS


def rewrite_line(path: Path, number: int, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = change(lines[number - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def edit_json(key, value):
    def change(line):
        obj = json.loads(line)
        if value is KeyError:
            del obj[key]
        else:
            obj[key] = value
        return json.dumps(obj)

    return change


def test_real_corpus_loads():
    corpus = load_corpus(CORPUS)
    assert len(corpus.articles) == 145 and len(corpus.sentences) == 3292


@pytest.mark.parametrize(
    "file, line, change, message",
    [
        ("sentences.jsonl", 7, lambda l: l[:-3], r"sentences\.jsonl:7: not valid JSON"),
        ("sentences.jsonl", 9, edit_json("stance", KeyError), r"sentences\.jsonl:9: missing field 'stance'"),
        ("sentences.jsonl", 4, edit_json("actor", "nato"), r"sentences\.jsonl:4: unknown actor 'nato'; allowed: none, russia"),
        ("sentences.jsonl", 5, edit_json("stance", "angry"), r"sentences\.jsonl:5: unknown stance 'angry'; allowed: none, conciliatory"),
        ("sentences.jsonl", 3, edit_json("id", "S1-01-01"), r"sentences\.jsonl:3: duplicate id 'S1-01-01' \(first on line 2\)"),
        ("sentences.jsonl", 6, edit_json("text", "Putin surrendered unconditionally."), r"sentences\.jsonl:6: sentence 'S1-01-05' is not in the text"),
        ("sentences.jsonl", 2, edit_json("position", "1"), r"sentences\.jsonl:2: field 'position' must be int"),
        ("articles.jsonl", 2, edit_json("date", "yesterday"), r"articles\.jsonl:2: field 'date' must be YYYY-MM-DD"),
        ("articles.jsonl", 3, edit_json("article_id", "S1-01"), r"articles\.jsonl:3: duplicate id 'S1-01'"),
        ("passes/annotator_b.jsonl", 11, edit_json("stance", "meh"), r"annotator_b\.jsonl:11: unknown stance 'meh'"),
    ],
)
def test_bad_input_is_named_by_file_and_line(corpus_copy, file, line, change, message):
    rewrite_line(corpus_copy / file, line, change)
    with pytest.raises(CorpusError, match=message):
        load_corpus(corpus_copy)


def test_rule_9_violation_is_refused(corpus_copy):
    # line 1 is labelled russia/steadfast; an actor without a stance breaks rule 9
    rewrite_line(corpus_copy / "sentences.jsonl", 1, edit_json("stance", "none"))
    with pytest.raises(CorpusError, match=r"sentences\.jsonl:1: actor 'russia' with stance 'none'"):
        load_corpus(corpus_copy)


def test_bad_corpus_writes_nothing(corpus_copy, tmp_path):
    rewrite_line(corpus_copy / "sentences.jsonl", 10, edit_json("actor", "mars"))
    out, reports = tmp_path / "prepared", tmp_path / "reports"
    with pytest.raises(CorpusError):
        prepare.run(corpus_copy, out, reports, CONFIGS)
    assert not out.exists() and not reports.exists()


def test_splits_are_by_article_seeded_and_stratified():
    ids = sorted(load_corpus(CORPUS).articles)
    a = assign_splits(ids, validation=1 / 6, test=1 / 6, seed=13)
    assert a == assign_splits(ids, validation=1 / 6, test=1 / 6, seed=13)
    assert a != assign_splits(ids, validation=1 / 6, test=1 / 6, seed=14)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "validation", "test")}
    assert counts == {"train": 97, "validation": 24, "test": 24}
    for series in {series_of(i) for i in ids}:
        members = [i for i in ids if series_of(i) == series]
        if len(members) >= 6:
            assert {a[i] for i in members} == {"train", "validation", "test"}, series


def test_folds_are_by_article_seeded_balanced_and_stratified():
    ids = sorted(load_corpus(CORPUS).articles)
    folds = assign_folds(ids, 5, seed=13)
    assert folds == assign_folds(list(reversed(ids)), 5, seed=13)  # input order does not matter
    assert folds != assign_folds(ids, 5, seed=14)
    sizes = sorted(sum(f == k for f in folds.values()) for k in range(5))
    assert set(folds) == set(ids) and sizes == [29, 29, 29, 29, 29]
    for series in {series_of(i) for i in ids}:
        members = [folds[i] for i in ids if series_of(i) == series]
        counts = [members.count(k) for k in range(5)]
        assert max(counts) - min(counts) <= 1, series
    with pytest.raises(ValueError, match="folds must be between 2 and the number of articles"):
        assign_folds(ids[:3], 4, seed=1)


def test_too_few_articles_is_a_clear_error():
    with pytest.raises(ValueError, match="too few"):
        assign_splits(["A-1", "A-2"], validation=0.2, test=0.2, seed=1)


def test_boundary_matches_aligns_in_order():
    gold = ["A.", "B.", "C.", "D."]
    assert boundary_matches(["A.", "B. C.", "D."], gold) == [True, False, False, True]
