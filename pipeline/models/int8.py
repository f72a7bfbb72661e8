"""Int8 CPU inference for the fine-tuned encoder, with a scale for every token.

`quantize_encoder` swaps each linear layer of the encoder for an `Int8Linear`:
weights are int8 with one scale per output channel; each token's activations are
quantized to int8 on the fly with their own scale and zero point (asymmetric,
because inputs after GELU are mostly positive); products are summed exactly in
int32 by `torch._int_mm`, which runs at about twice the bf16 rate where the CPU
has int8 dot products (VNNI, AMX). Attention scores, layer norms, GELU and the
classifier heads stay fp32. (Computing query, key and value as one product was
tried: no faster, measured side by side.)

Why a scale per token: dynamic quantization with one activation scale per batch
(ONNX Runtime's, torch.ao's) lets a sentence's neighbours in the batch change its
prediction: ONNX Runtime's changed 6.1% of test predictions, torch.ao's 16.7% of
test stances. Here the other sentences change nothing but float rounding, as with
bf16 (validation: no label moved between batches of 1 and 64), and 1.3% of test
predictions differ from fp32 (bench/predict_speed.py, column "changed").
"""

from __future__ import annotations

import torch
from torch import nn

# A row's range is spread over 253 steps from -127 (give or take half a step from
# rounding the zero point), so values stay inside int8 and no clamp pass is needed.
_STEPS = 253.0
_LOWEST = -127.0
_TINY = 1e-12


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int8 quantization of each row of the 2-D float `x`.

    Returns (q, scale, zero) with x ~= scale * (q - zero); scale and zero are (rows, 1).
    Each row's range is widened to include 0, which keeps 0 exact and the zero point
    within int8 (a constant row would otherwise have a zero point of about 1e12).
    """
    low = x.amin(-1, keepdim=True).clamp_(max=0.0)
    high = x.amax(-1, keepdim=True).clamp_(min=0.0)
    scale = (high - low).div_(_STEPS).clamp_(min=_TINY)
    zero = (low / scale).round_().neg_().add_(_LOWEST)
    # Multiply by the inverse: broadcast addcdiv/addcmul are several times slower on CPU.
    q = x.mul(scale.reciprocal()).add_(zero).round_().to(torch.int8)
    return q, scale, zero


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights (per output channel) and int8 per-token activations."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp(min=_TINY) / 127.0
        q = torch.round(weight / scale[:, None]).to(torch.int8)
        self.out_features = weight.shape[0]
        # _int_mm takes (in, out). After the product come the row scales and a rank-2
        # correction: rows (colsum(W) * scales, bias), see forward.
        self.register_buffer("weight_t", q.t().contiguous())
        self.register_buffer("weight_scale", scale)
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("correction", torch.stack([q.sum(1, dtype=torch.int32).float() * scale, bias]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).float()
        q, scale, zero = quantize_rows(rows)
        # scale*(q - zero) @ W + bias = (scale*(q @ Wq)) * w_scale - (scale*zero) x (colsum(Wq) * w_scale) + 1 x bias.
        # In-place passes only: fused broadcasting ops (addcmul) are much slower here.
        out = torch._int_mm(q, self.weight_t).float().mul_(scale).mul_(self.weight_scale)
        out.addmm_(torch.cat([-(scale * zero), torch.ones_like(scale)], 1), self.correction)
        return out.view(*x.shape[:-1], self.out_features)


def quantize_encoder(encoder: nn.Module) -> nn.Module:
    """Replace every nn.Linear inside `encoder` (in place) with its int8 form; returns it.

    Only for inference: the int8 layers have no gradients. Call on an fp32 encoder.
    """
    for module in list(encoder.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    return encoder
