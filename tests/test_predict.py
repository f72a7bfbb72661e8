import pytest
import torch

from pipeline.predictor import ModelNotTrainedError, get_predictor, predict

ARTICLE = (
    "Kremlin rejects the plan\n\n"
    "The Kremlin said on Monday it would not accept the proposal. Peskov called it unacceptable.\n\n"
    "- Kyiv is ready for talks."
)


def test_article_gives_one_result_per_sentence(trained_models):
    out = predict(ARTICLE, model="baseline", models_dir=trained_models)
    assert [r.sentence for r in out] == [
        "Kremlin rejects the plan",
        "The Kremlin said on Monday it would not accept the proposal.",
        "Peskov called it unacceptable.",
        "Kyiv is ready for talks.",
    ]
    for r in out:
        assert (r.actor == "none") == (r.stance == "none")
        assert r.actor_probability == pytest.approx(r.actor_probabilities[r.actor], abs=1e-6)
        assert r.stance_probability == pytest.approx(max(r.stance_probabilities.values()), abs=1e-6)
        assert abs(sum(r.stance_probabilities.values()) - 1) < 1e-4
        assert set(r.to_dict()) >= {"item", "sentence", "actor", "stance", "actor_probability", "stance_probability"}


def test_list_input_keeps_item_index_and_no_split(trained_models):
    out = predict(["One. Two.", "Three."], model="transformer", models_dir=trained_models)
    assert [(r.item, r.sentence) for r in out] == [(0, "One."), (0, "Two."), (1, "Three.")]
    out = predict(["One. Two.", "Three."], model="transformer", split_sentences=False, models_dir=trained_models)
    assert [r.sentence for r in out] == ["One. Two.", "Three."]


def test_champion_resolves_and_model_is_loaded_once(trained_models):
    first = get_predictor("champion", trained_models)
    assert first is get_predictor("baseline", trained_models)
    assert first.name == "baseline"


def test_empty_inputs_give_no_results(trained_models):
    assert predict("", model="baseline", models_dir=trained_models) == []
    assert predict("  \n\t ", model="baseline", models_dir=trained_models) == []
    assert predict([], model="baseline", models_dir=trained_models) == []


def test_bad_items_are_named(trained_models):
    with pytest.raises(TypeError, match="None"):
        predict(None, model="baseline", models_dir=trained_models)
    with pytest.raises(TypeError, match="item 1: expected str"):
        predict(["fine", 3], model="baseline", models_dir=trained_models)
    with pytest.raises(ValueError, match="item 0: bytes are not valid UTF-8"):
        predict(b"\xff\xfe", model="baseline", models_dir=trained_models)
    assert predict("Kyiv agreed.".encode(), model="baseline", models_dir=trained_models)[0].sentence == "Kyiv agreed."


def test_unknown_and_untrained_models(tmp_path, trained_models):
    with pytest.raises(ValueError, match="choose one of: champion, baseline, transformer"):
        predict("x", model="gpt", models_dir=trained_models)
    with pytest.raises(ModelNotTrainedError, match="stance train transformer"):
        predict("x", model="transformer", models_dir=tmp_path)
    with pytest.raises(ModelNotTrainedError, match="make run"):
        predict("x", models_dir=tmp_path)


def test_onnx_runtime_does_not_import_torch(trained_models):
    import subprocess
    import sys

    code = (
        "import sys; from pipeline.config import CONFIG_DIR, SegmentConfig, load_config; "
        "from pipeline.predictor import Predictor; "
        "segment = load_config(CONFIG_DIR / 'segment.yaml', SegmentConfig); "
        f"p = Predictor.from_model_dir({str(trained_models / 'transformer')!r}, segment, 8, runtime='onnx'); "
        "p.predict('Kyiv refused.'); "
        "print(type(p.model).__name__, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["OnnxTransformerModel", "False", "False"], done.stderr[-2000:]


def test_transformer_without_onnx_file_falls_back_to_pytorch(trained_models, tmp_path):
    import shutil

    from pipeline.config import CONFIG_DIR, SegmentConfig, load_config
    from pipeline.models.onnx_runtime import ONNX_FILE
    from pipeline.models.transformer import TransformerModel
    from pipeline.predictor import Predictor

    shutil.copytree(trained_models / "transformer", tmp_path / "transformer")
    (tmp_path / "transformer" / ONNX_FILE).unlink()
    segment = load_config(CONFIG_DIR / "segment.yaml", SegmentConfig)
    with pytest.warns(UserWarning, match="retrain with `stance train transformer`"):
        predictor = Predictor.from_model_dir(tmp_path / "transformer", segment, 8, runtime="onnx")
    assert isinstance(predictor.model, TransformerModel)
    with pytest.raises(ValueError, match="auto, torch_int8, torch_bf16, onnx, torch"):
        Predictor.from_model_dir(tmp_path / "transformer", segment, 8, runtime="tensorrt")
    bf16 = Predictor.from_model_dir(tmp_path / "transformer", segment, 8, runtime="torch_bf16")
    assert next(bf16.model.network.parameters()).dtype == torch.bfloat16
    assert bf16.predict("Kyiv refused. Moscow warned.")[1].sentence == "Moscow warned."
    int8 = Predictor.from_model_dir(tmp_path / "transformer", segment, 8, runtime="torch_int8")
    assert int8.model.form == "int8"
    assert [r.sentence for r in int8.predict("Kyiv refused. Moscow warned.")] == ["Kyiv refused.", "Moscow warned."]


def test_titles_reach_a_title_reading_transformer_and_are_checked(rows, trained_models, tmp_path):
    import dataclasses

    from conftest import take, tiny_transformer_config
    from pipeline.config import SegmentConfig, load_config
    from pipeline.models.transformer import TransformerModel
    from pipeline.predictor import Predictor

    config = dataclasses.replace(tiny_transformer_config(), context="title")
    TransformerModel(config).fit(take(rows, slice(0, 24)), take(rows, slice(24, 36))).save(tmp_path / "transformer")
    from conftest import CONFIGS

    predictor = Predictor.from_model_dir(tmp_path / "transformer", load_config(CONFIGS / "segment.yaml", SegmentConfig), 8, runtime="onnx")
    text = "The Kremlin said it would not accept the proposal. Kyiv is ready for talks."
    bare = predictor.predict(text)
    titled = predictor.predict({"text": text, "title": "Moscow rejects ceasefire plan"})
    assert [r.sentence for r in bare] == [r.sentence for r in titled]
    assert [r.stance_probabilities for r in bare] != [r.stance_probabilities for r in titled]
    # `title=` is the default for items without one; an item's own title wins.
    default = predictor.predict([text, {"text": text, "title": ""}], title="Moscow rejects ceasefire plan")
    assert [r.stance_probabilities for r in default[:2]] == [r.stance_probabilities for r in titled]
    assert [r.stance_probabilities for r in default[2:]] == [r.stance_probabilities for r in bare]
    with pytest.raises(TypeError, match="item 1: a mapping needs a 'text' key"):
        predictor.predict(["ok", {"title": "no text"}])
    with pytest.raises(TypeError, match="item 0: 'title' must be a str"):
        predictor.predict({"text": "x", "title": 3})
    with pytest.raises(TypeError, match="title must be a str"):
        predictor.predict("x", title=["a"])
    # Models that do not read titles give the same results with or without one.
    baseline = predict(text, model="baseline", models_dir=trained_models)
    assert baseline == predict(text, model="baseline", models_dir=trained_models, title="Anything")


def test_served_signature_has_a_title_column_only_for_title_reading_models():
    from types import SimpleNamespace

    from mlflow.models import infer_signature

    from pipeline.stages.train import input_example

    frame, params = input_example(SimpleNamespace(context="title"))
    titled = infer_signature(frame, params=params)
    assert [(c["name"], c["required"]) for c in titled.inputs.to_dict()] == [("text", True), ("title", False)]
    assert [p.name for p in titled.params] == ["split_sentences"]  # spark_udf and REST callers may turn splitting off
    for model in (SimpleNamespace(context="none"), SimpleNamespace()):
        assert [c["name"] for c in infer_signature(input_example(model)[0]).inputs.to_dict()] == ["text"]


def test_the_served_transformer_path_imports_no_scikit_learn():
    """sklearn and scipy are a large share of the served transformer's load time, and it needs neither."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys, pipeline, pipeline.predictor, pipeline.models.transformer, pipeline.models.int8, pipeline.models.onnx_runtime; "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
