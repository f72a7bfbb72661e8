"""Model files are checked against the sizes and sha256 recorded when they were saved."""

from __future__ import annotations

import shutil

import pytest

from pipeline import integrity
from pipeline.integrity import MANIFEST_FILE, ModelFileError
from pipeline.models import load_model


@pytest.fixture()
def saved(trained_models, tmp_path):
    target = tmp_path / "models"
    shutil.copytree(trained_models, target)
    return target


def test_every_saved_file_is_in_the_manifest(saved):
    import json

    for name in ("baseline", "transformer"):
        listed = set(json.loads((saved / name / MANIFEST_FILE).read_text())["files"])
        on_disk = {p.relative_to(saved / name).as_posix() for p in (saved / name).rglob("*") if p.is_file()} - {MANIFEST_FILE}
        assert listed == on_disk, name


@pytest.mark.parametrize("name, file", [("baseline", "model.skops"), ("transformer", "model.safetensors"), ("transformer", "encoder/tokenizer.json")])
def test_a_truncated_or_flipped_file_is_refused_by_name(saved, name, file):
    path = saved / name / file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=rf"{file}: \d+ bytes, saved as \d+: the file is truncated"):
        load_model(name, saved / name)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ModelFileError, match=rf"{file}: sha256 [0-9a-f]+ differs"):
        load_model(name, saved / name)


def test_a_missing_tokenizer_is_named(saved):
    (saved / "transformer" / "encoder" / "tokenizer.json").unlink()
    with pytest.raises(ModelFileError, match=r"encoder/tokenizer\.json: missing"):
        load_model("transformer", saved / "transformer")


def test_an_onnx_file_from_another_model_is_refused(saved, tmp_path):
    from pipeline.models.onnx_runtime import OnnxTransformerModel

    other = tmp_path / "other.onnx"
    other.write_bytes((saved / "transformer" / "model.onnx").read_bytes() + b"\0")
    shutil.copy(other, saved / "transformer" / "model.onnx")
    with pytest.raises(ModelFileError, match=r"model\.onnx: \d+ bytes, saved as"):
        OnnxTransformerModel.load(saved / "transformer")


def test_a_model_saved_without_a_manifest_still_loads(saved):
    (saved / "baseline" / MANIFEST_FILE).unlink()
    assert load_model("baseline", saved / "baseline").predict_proba({"text": ["Kyiv refused."]}).stance.shape == (1, 4)


def test_record_and_verify_round_trip(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    integrity.record(tmp_path, ["a.bin"])
    integrity.verify(tmp_path, ["a.bin"])
    with pytest.raises(ModelFileError, match="b.bin: not in"):
        integrity.verify(tmp_path, ["b.bin"])
    (tmp_path / MANIFEST_FILE).write_text("{}")
    with pytest.raises(ModelFileError, match="not a model manifest"):
        integrity.verify(tmp_path, ["a.bin"])


def test_a_meta_json_from_another_label_schema_is_named(saved):
    import json

    meta = json.loads((saved / "transformer" / "meta.json").read_text())
    meta["stances"] = ["none", "hawkish", "dovish"]
    (saved / "transformer" / "meta.json").write_text(json.dumps(meta))
    integrity.record(saved / "transformer", ["meta.json"])  # a consistent manifest: the schema check is under test
    with pytest.raises(ModelFileError, match=r"meta\.json: saved stances .* another label schema"):
        load_model("transformer", saved / "transformer")


def test_damaged_weights_without_a_manifest_are_named_not_a_library_traceback(saved):
    (saved / "transformer" / MANIFEST_FILE).unlink()
    weights = saved / "transformer" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"model\.safetensors: does not hold this model's weights"):
        load_model("transformer", saved / "transformer")
    (saved / "baseline" / MANIFEST_FILE).unlink()
    (saved / "baseline" / "model.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelFileError, match=r"model\.skops: not a readable skops file"):
        load_model("baseline", saved / "baseline")


def test_the_cli_reports_a_damaged_model_in_one_line(saved):
    import subprocess
    import sys

    (saved / "baseline" / "model.skops").write_bytes(b"broken")
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", "--text", "Kyiv refused.", "--model", "baseline", "--models", str(saved)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "model.skops" in done.stderr and "Traceback" not in done.stderr
