"""The int8 serving form of the transformer (pipeline/models/int8.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.models import load_model
from pipeline.models.int8 import Int8Linear, quantize_encoder, quantize_rows

from conftest import take


def test_quantize_rows_stays_in_int8_and_within_half_a_step():
    torch.manual_seed(0)
    x = torch.cat([
        torch.randn(8, 384) * 3,
        torch.rand(2, 384) + 5.0,        # all positive (after GELU)
        -torch.rand(2, 384) - 1e6,       # all negative, huge
        torch.full((1, 384), 5.0),       # constant: a naive zero point would be ~1e12
        torch.zeros(1, 384),
        torch.randn(1, 384) * 1e-9,
    ])
    q, scale, zero = quantize_rows(x)
    assert q.dtype == torch.int8 and q.shape == x.shape and scale.shape == zero.shape == (x.shape[0], 1)
    error = (scale * (q.float() - zero) - x).abs()
    assert bool((error <= scale * 0.5 + x.abs() * 1e-6).all())
    # Zero is exact, and a constant row comes back exactly.
    np.testing.assert_array_equal((scale * (q.float() - zero))[-3:-1].numpy(), x[-3:-1].numpy())


def test_int8_linear_matches_float_linear():
    torch.manual_seed(0)
    linear = nn.Linear(384, 96)
    x = torch.randn(3, 7, 384)
    with torch.inference_mode():
        want, got = linear(x), Int8Linear(linear)(x)
    assert got.shape == want.shape == (3, 7, 96)
    assert float((got - want).norm() / want.norm()) < 0.01
    # Each token has its own scale: a token's output does not depend on the others.
    with torch.inference_mode():
        alone = Int8Linear(linear)(x[1:2, 3:4] * 1.0)
    torch.testing.assert_close(alone[0, 0], got[1, 3])


def test_int8_transformer_stays_close_to_fp32_and_refuses_to_save(trained_models, rows, tmp_path):
    sample = take(rows, slice(90, 130))
    fp32 = load_model("transformer", trained_models / "transformer").predict_proba(sample)
    model = load_model("transformer", trained_models / "transformer").to_int8()
    encoder = model.network.encoder
    assert not any(isinstance(m, nn.Linear) for m in encoder.modules())
    int8 = model.predict_proba(sample)
    np.testing.assert_allclose(int8.stance.sum(axis=1), 1.0, rtol=1e-5)
    for got, want in ((int8.stance, fp32.stance), (int8.actor, fp32.actor)):
        assert np.abs(got - want).max() < 0.05 and np.abs(got - want).mean() < 0.01
    # Batching does not move a sentence (float rounding aside).
    one_by_one = model.predict_proba(sample, batch_size=1)
    assert np.abs(one_by_one.stance - int8.stance).max() < 0.01
    with pytest.raises(RuntimeError, match="cannot be saved"):
        model.save(tmp_path / "int8")


def test_auto_runtime_prefers_int8_then_bf16_then_onnx(monkeypatch):
    from pipeline.models import transformer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for vnni, amx, bf16, want in ((True, False, True, "torch_int8"), (False, True, False, "torch_int8"),
                                  (False, False, True, "torch_bf16"), (False, False, False, "onnx")):
        monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda v=vnni: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16: v, raising=False)
        assert transformer.auto_runtime() == want
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert transformer.auto_runtime() == "torch"
