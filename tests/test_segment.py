import pytest

from pipeline.segment import split_sentences

OPTS = dict(language="en", max_chunk_chars=2000, max_sentence_chars=1000)


def test_paragraphs_headings_and_bullets():
    text = "Moscow shuts the door\n\nPeskov said no. He added more.\n\n- Kyiv wants talks.\n* Europe agrees."
    assert split_sentences(text, **OPTS) == [
        "Moscow shuts the door",
        "Peskov said no.",
        "He added more.",
        "Kyiv wants talks.",
        "Europe agrees.",
    ]


def test_empty_and_whitespace_give_nothing():
    assert split_sentences("", **OPTS) == []
    assert split_sentences(" \n\t \n", **OPTS) == []


def test_control_characters_and_odd_unicode_do_not_crash():
    text = "Kyiv\x00 rejected\u200b the plan.\x07 Moscow\ufeff agreed \U0001F600. \u202eReversed."
    out = split_sentences(text, **OPTS)
    assert out and all("\x00" not in s and "\u200b" not in s for s in out)


def test_non_string_is_refused():
    with pytest.raises(TypeError, match="must be str"):
        split_sentences(b"bytes", **OPTS)  # type: ignore[arg-type]


def test_one_huge_sentence_is_cut_into_bounded_pieces():
    words = " ".join(f"word{i}" for i in range(5000))
    out = split_sentences(words, **OPTS)
    assert len(out) > 1 and max(map(len, out)) <= 1000
    assert " ".join(out).split() == words.split()  # nothing lost


def test_one_long_paragraph_keeps_every_sentence():
    sentence = "The minister said the talks would continue next week. "
    out = split_sentences(sentence * 400, **OPTS)
    assert len(out) == 400


def test_pysbd_only_ever_sees_bounded_windows(monkeypatch):
    # pysbd is quadratic in what it is given; linear time follows from never giving
    # it more than max_chunk_chars (bench/segment_speed.py measures the times).
    import pysbd

    seen = []
    original = pysbd.Segmenter.segment

    def spy(self, text):
        seen.append(len(text))
        return original(self, text)

    monkeypatch.setattr(pysbd.Segmenter, "segment", spy)
    sentence = "Officials in Brussels said a deal was close. "
    out = split_sentences(sentence * 2000, **OPTS)
    assert len(out) == 2000
    assert len(seen) > 40 and max(seen) <= OPTS["max_chunk_chars"]


def test_faster_span_search_gives_pysbds_sentences():
    import json
    import random

    import pysbd

    from conftest import CORPUS
    from pipeline.segment import sentence_segmenter

    ours, theirs = sentence_segmenter("en"), pysbd.Segmenter(language="en", clean=False)
    assert type(ours) is not pysbd.Segmenter
    sentences = [json.loads(line)["text"] for line in (CORPUS / "sentences.jsonl").read_text(encoding="utf-8").splitlines()[:300]]
    rng = random.Random(0)
    cases = ["Hello. Hello. Hello.", "A.  A.\n A.", "Mr. Smith went to Washington. He said \"no.\" Then left...",
             "U.S. and U.K. officials met. (Really?) Yes!", "", "   ", "x", "Dr. Who? Dr. Who. Dr. Who!", "a.b.c. [x] (y) *z*?"]
    for _ in range(120):
        parts = [rng.choice(sentences) for _ in range(rng.randint(1, 6))]
        parts += parts[: rng.randint(0, 2)]  # repeated sentences: the span search must pick the right copy
        cases.append(rng.choice([" ", "  ", "\t", " \u00a0"]).join(parts))
    for case in cases:
        assert ours.segment(case) == theirs.segment(case), case


def test_span_search_matches_pysbd_on_empty_and_repeated_pieces():
    import pysbd

    from pipeline.segment import sentence_segmenter

    ours, theirs = sentence_segmenter("en"), pysbd.Segmenter(language="en", clean=False)
    for text in ("ab  cd ab", "  x ", "a b", "", "x"):
        for pieces in (["", "ab"], ["ab", "", "cd"], ["", ""], ["a", "", ""], ["ab", "ab", "ab"], ["x", ""]):
            ours.original_text = theirs.original_text = text
            got = [(s.sent, s.start, s.end) for s in ours.sentences_with_char_spans(pieces)]
            assert got == [(s.sent, s.start, s.end) for s in theirs.sentences_with_char_spans(pieces)], (text, pieces)
