"""predict() on text nobody cleaned: huge, odd, foreign."""

from pipeline.predictor import predict
from pipeline.segment import split_sentences

PARAGRAPH = "Officials in Brussels said a deal was close, and Moscow warned of a response. "


def test_one_megabyte_article_and_single_paragraph(trained_models):
    one_paragraph = PARAGRAPH * (1_000_000 // len(PARAGRAPH))
    with_breaks = "\n\n".join([PARAGRAPH * 5] * (len(one_paragraph) // (len(PARAGRAPH) * 5)))
    for text in (one_paragraph, with_breaks):
        out = predict(text, model="baseline", models_dir=trained_models)
        assert len(out) > 10_000
        assert max(len(r.sentence) for r in out) <= 1000


def test_single_5000_word_sentence_is_answered_by_both_models(trained_models):
    sentence = " ".join(["negotiations"] * 5000) + "."
    for model in ("baseline", "transformer"):
        out = predict(sentence, model=model, models_dir=trained_models)
        assert out and all(len(r.sentence) <= 1000 for r in out)
        out = predict([sentence], model=model, split_sentences=False, models_dir=trained_models)
        assert len(out) == 1  # one item, one result: the model truncates its input


def test_non_english_and_odd_unicode_are_answered(trained_models):
    texts = [
        "Кремль отверг мирный план. Киев готов к переговорам.",
        "Le Kremlin a rejeté le plan de paix.",
        "普京拒绝了停火提议。",
        "\x00\x01 Kyiv\u200b rejected\ufeff the plan \U0001F600 \u202e!",
        "\ud800 lone surrogate",
    ]
    for model in ("baseline", "transformer"):
        out = predict(texts, model=model, models_dir=trained_models)
        assert {r.item for r in out} == set(range(len(texts)))
        assert all((r.actor == "none") == (r.stance == "none") for r in out)


def test_generator_input_is_streamed(trained_models):
    from pipeline.predictor import get_predictor

    predictor = get_predictor("baseline", trained_models)
    stream = (f"Kyiv refused deal number {i}." for i in range(2000))
    first = next(predictor.predict_iter(stream, batch_size=16))
    assert first.item == 0  # results arrive before the whole input is read


def test_segmenter_handles_a_megabyte_without_newlines():
    text = PARAGRAPH * 13_000
    out = split_sentences(text, language="en", max_chunk_chars=2000, max_sentence_chars=1000)
    assert len(out) >= 13_000
