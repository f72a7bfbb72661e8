import numpy as np
import pytest

from pipeline.models import load_model, model_class
from pipeline.models.baseline import MODEL_FILE, BaselineModel
from pipeline.models.transformer import TransformerModel, contrastive_pairs, length_grouped_batches

from conftest import take, tiny_baseline_config, tiny_transformer_config


def test_baseline_fit_picks_c_on_validation_and_is_deterministic(rows):
    train, validation = take(rows, slice(0, 60)), take(rows, slice(60, 90))
    a = BaselineModel(tiny_baseline_config()).fit(train, validation)
    b = BaselineModel(tiny_baseline_config()).fit(train, validation)
    assert a.c in (1.0, 10.0) and len(a.selection) == 2
    np.testing.assert_array_equal(a.predict_proba(validation).stance, b.predict_proba(validation).stance)


def test_saved_models_reload_identically(trained_models, rows):
    sample = take(rows, slice(90, 120))
    for name in ("baseline", "transformer"):
        model = load_model(name, trained_models / name)
        again = load_model(name, trained_models / name)
        p, q = model.predict_proba(sample), again.predict_proba(sample)
        assert p.actor.shape == (30, 6) and p.stance.shape == (30, 4)
        np.testing.assert_allclose(p.stance.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(p.stance, q.stance, rtol=1e-6)


def test_no_pickle_files_are_written(trained_models):
    suffixes = {p.suffix for p in trained_models.rglob("*") if p.is_file()}
    assert not suffixes & {".pkl", ".pickle", ".joblib", ".pt", ".bin"}
    assert (trained_models / "baseline" / MODEL_FILE).exists()
    assert (trained_models / "transformer" / "model.safetensors").exists()


class Smuggled:
    """Not on the baseline's trusted list."""


def test_skops_refuses_untrusted_types(tmp_path):
    import skops.io as sio

    sio.dump(Smuggled(), tmp_path / MODEL_FILE)
    (tmp_path / "meta.json").write_text('{"kind": "baseline", "C": 1.0, "selection": []}')
    from pipeline.integrity import ModelFileError

    with pytest.raises(ModelFileError, match=r"model\.skops: holds types outside the trusted list \(.*Smuggled\)"):
        BaselineModel.load(tmp_path)


def test_transformer_training_is_repeatable(rows):
    train, validation = take(rows, slice(0, 40)), take(rows, slice(40, 60))
    a = TransformerModel(tiny_transformer_config()).fit(train, validation)
    b = TransformerModel(tiny_transformer_config()).fit(train, validation)
    assert a.history == b.history
    np.testing.assert_allclose(a.predict_proba(validation).stance, b.predict_proba(validation).stance, atol=1e-6)


@pytest.mark.parametrize("context, column", [("previous", "prev_text"), ("title", "title")])
def test_transformer_context_modes_read_their_column(rows, context, column):
    import dataclasses

    config = dataclasses.replace(tiny_transformer_config(), context=context)
    model = TransformerModel(config).fit(take(rows, slice(0, 24)), take(rows, slice(24, 36)))
    sample = take(rows, slice(36, 40))
    with_context = model.predict_proba(sample).stance
    sample[column] = [""] * 4
    assert not np.allclose(with_context, model.predict_proba(sample).stance)
    del sample[column]
    with pytest.raises(ValueError, match=f"reads '{column}' as context"):
        model.predict_proba(sample)


def test_length_grouped_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(5, 60, 103)
    batches = length_grouped_batches(lengths, 8, np.random.default_rng(1), group=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert max(map(len, batches)) <= 8


def test_contrastive_pairs_are_balanced_and_labelled_right():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 1)
    pairs = contrastive_pairs(labels, 200, np.random.default_rng(0))
    assert pairs.shape == (200, 3) and pairs[:, 2].sum() == 100
    np.testing.assert_array_equal(pairs[:, 2], labels[pairs[:, 0]] == labels[pairs[:, 1]])
    assert not np.any((pairs[:, 0] == pairs[:, 1]))
    assert not np.any(labels[pairs[:, 0]][pairs[:, 2] == 1] == 2)  # a lone example has no positive


def test_contrastive_pretraining_moves_the_encoder(rows):
    import dataclasses

    train, validation = take(rows, slice(0, 24)), take(rows, slice(24, 36))
    plain = TransformerModel(tiny_transformer_config()).fit(train, validation)
    setfit = TransformerModel(dataclasses.replace(tiny_transformer_config(), contrastive_pairs=16)).fit(train, validation)
    assert not np.allclose(plain.predict_proba(validation).stance, setfit.predict_proba(validation).stance)


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match="baseline, transformer"):
        model_class("bert")


def test_onnx_form_matches_pytorch(trained_models, rows):
    from pipeline.models.onnx_runtime import ONNX_FILE, OnnxTransformerModel

    assert (trained_models / "transformer" / ONNX_FILE).exists()
    sample = take(rows, slice(90, 130))
    fp32 = load_model("transformer", trained_models / "transformer").predict_proba(sample)
    served = OnnxTransformerModel.load(trained_models / "transformer").predict_proba(sample)
    np.testing.assert_allclose(served.stance, fp32.stance, atol=1e-4)
    np.testing.assert_allclose(served.actor, fp32.actor, atol=1e-4)


def test_int8_onnx_export_and_bfloat16_stay_close_to_fp32(trained_models, rows, tmp_path):
    import shutil

    from pipeline.models.onnx_runtime import OnnxTransformerModel, export

    shutil.copytree(trained_models / "transformer", tmp_path / "transformer")
    export(tmp_path / "transformer", opset=17, quantize=True)
    sample = take(rows, slice(90, 130))
    fp32 = load_model("transformer", tmp_path / "transformer").predict_proba(sample)
    int8 = OnnxTransformerModel.load(tmp_path / "transformer").predict_proba(sample)
    bf16 = load_model("transformer", tmp_path / "transformer").to_bfloat16().predict_proba(sample)
    # Close, not equal. The tiny model's probabilities are near-uniform, so compare
    # them, not argmaxes (bench/predict_speed.py measures the full model's quality).
    for approx in (int8, bf16):
        np.testing.assert_allclose(approx.stance.sum(axis=1), 1.0, rtol=1e-5)
        for got, want in ((approx.stance, fp32.stance), (approx.actor, fp32.actor)):
            assert np.abs(got - want).max() < 0.1 and np.abs(got - want).mean() < 0.02


def test_onnx_tokenization_matches_transformers(trained_models):
    from pipeline.models.onnx_runtime import OnnxTransformerModel

    torch_model = load_model("transformer", trained_models / "transformer")
    served = OnnxTransformerModel.load(trained_models / "transformer")
    texts = ["Moscow's envoy said: «no talks» — yet.", "", "Zelensky " * 300, "Ceasefire? 停火 Прекращение огня"]
    context = ["", "The day before.", "x " * 200, "Kyiv"]
    want = torch_model.tokenizer(texts, truncation=True, max_length=torch_model.max_length)["input_ids"]
    assert [e.ids for e in served.tokenizer.encode_batch(texts)] == want
    want = torch_model.tokenizer(texts, context, truncation="longest_first", max_length=torch_model.max_length)
    got = served.tokenizer.encode_batch(list(zip(texts, context)))
    assert [e.ids for e in got] == want["input_ids"] and [e.type_ids for e in got] == want["token_type_ids"]


def test_frozen_layers_do_not_change_and_the_rest_trains(rows):
    import dataclasses

    import torch

    from pipeline.models.transformer import encoder_layers

    train, validation = take(rows, slice(0, 24)), take(rows, slice(24, 36))
    config = dataclasses.replace(tiny_transformer_config(), freeze_layers=2)
    reference = TransformerModel(dataclasses.replace(config, epochs=1))
    model = reference.fit(train, validation)
    from transformers import AutoModel

    from pipeline.encoders import resolve_pretrained

    pretrained = AutoModel.from_pretrained(resolve_pretrained(config.pretrained, config.encoder_cache))
    layers, original = encoder_layers(model.network.encoder), encoder_layers(pretrained)
    for k in (0, 1):
        for a, b in zip(layers[k].parameters(), original[k].parameters()):
            assert torch.equal(a, b) and not a.requires_grad
    moved = [not torch.equal(a, b) for a, b in zip(layers[-1].parameters(), original[-1].parameters())]
    assert any(moved)
    with pytest.raises(ValueError, match="the encoder has 6 layers"):
        TransformerModel(dataclasses.replace(config, freeze_layers=7)).fit(train, validation)


@pytest.mark.parametrize("form", ["fp32", "int8", "bf16", "onnx"])
def test_a_sentences_probabilities_do_not_depend_on_its_batch(trained_models, rows, form):
    """Alone, in batches of any size, next to any other sentences: the same probabilities
    (what lets predict(), the served model and both scoring engines agree to 1e-6)."""
    from pipeline.models.onnx_runtime import OnnxTransformerModel

    if form == "onnx":
        model = OnnxTransformerModel.load(trained_models / "transformer")
    else:
        model = load_model("transformer", trained_models / "transformer")
        if form == "int8":
            model.to_int8()
        elif form == "bf16":
            model.to_bfloat16()
    texts = list(rows["text"][:60])
    reference = model.predict_proba({"text": texts}, 64).stance
    for batch_size in (1, 2, 5, 16):
        np.testing.assert_allclose(model.predict_proba({"text": texts}, batch_size).stance, reference, atol=1e-6, rtol=0)
    for k in range(0, 60, 7):
        np.testing.assert_allclose(model.predict_proba({"text": [texts[k]]}, 64).stance[0], reference[k], atol=1e-6, rtol=0)
        mixed = model.predict_proba({"text": [texts[k], *texts[k + 1 : k + 9][::-1]]}, 4).stance[0]
        np.testing.assert_allclose(mixed, reference[k], atol=1e-6, rtol=0)
