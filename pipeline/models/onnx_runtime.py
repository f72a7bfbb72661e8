"""The fine-tuned transformer in its CPU serving form: ONNX Runtime, fp32 by default.

`export` turns a saved transformer directory (safetensors weights, the source of
truth) into `model.onnx` beside it: the network is traced with eager attention so
that ONNX Runtime's optimizer can fuse embeddings, attention, GELU and layer norms
(about 2x plain PyTorch fp32 on 2 cores, same predictions). With `quantize`, the
feed-forward and output projections also get per-channel int8 weights, activations
quantized on the fly: about 1.6x faster again, but the activation ranges are taken
per batch, so a sentence's prediction depends on its batch neighbours, and 3.5% of
test predictions change (bench/predict_speed.py). Attention (Q/K/V) always stays fp32.

`OnnxTransformerModel` serves that file with onnxruntime and the `tokenizers`
library only: a predicting process never imports torch or transformers, which is
most of the transformer's load time and memory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import integrity
from pipeline.labels import ACTORS, STANCES
from pipeline.models import ENCODER_DIR, META_FILE, Probabilities, Sentences, context_texts, padded_batches, read_meta

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = f"{ENCODER_DIR}/tokenizer.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("actor", "stance")
# Linear layers left in fp32 by the int8 pass (their names in BERT-like encoders).
FP32_LAYERS = ("query", "key", "value")
# Encoders whose graphs ONNX Runtime's "bert" optimizer fuses. For MPNet it fuses the
# layer norms (with their residual adds) and GELU, not attention, whose relative
# position bias it does not know (tested: same probabilities as PyTorch).
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "mpnet")

log = logging.getLogger(__name__)


def export(directory: Path, opset: int, quantize: bool) -> Path:
    """Write `directory/model.onnx` from the transformer saved in `directory`.

    The file is written under a temporary name and renamed, so a failed export
    leaves no half-written model behind.
    """
    import tempfile
    import warnings

    import torch

    from pipeline.models.transformer import TransformerModel

    directory = Path(directory)
    model = TransformerModel.load(directory, device="cpu")
    encoder = model.network.encoder
    # SDPA attention traces into a graph the optimizer cannot fuse; eager attention
    # computes the same function in a form it recognises.
    encoder.set_attn_implementation("eager")
    example = model.tokenizer(["Moscow said it was ready for talks.", "Kyiv refused."], padding=True, return_tensors="pt")
    names = [name for name in INPUTS if name in example]
    network = _with_softmax(model.network, names).eval()
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {name: {0: "batch"} for name in OUTPUTS}
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        traced = Path(tmp) / "traced.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            # The tracer warns about Python branches on shapes; for an encoder they only
            # skip padding that never occurs (tested: exported == PyTorch on any batch).
            warnings.simplefilter("ignore")
            torch.onnx.export(network, tuple(example[n] for n in names), str(traced), input_names=names,
                              output_names=list(OUTPUTS), dynamic_axes=axes, opset_version=opset, dynamo=False)
        final = _optimize(traced, Path(tmp) / "optimized.onnx", encoder.config)
        if quantize:
            final = _quantize(final, Path(tmp) / "int8.onnx")
        os.replace(final, directory / ONNX_FILE)
    integrity.record(directory, [ONNX_FILE])
    return directory / ONNX_FILE


def _with_softmax(network: Any, names: list[str]) -> Any:
    """TwoHeadEncoder taking positional inputs `names` and returning probabilities."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            actor, stance = self.network(**dict(zip(names, inputs)))
            return torch.softmax(actor, -1), torch.softmax(stance, -1)

    return Probabilities()


def _optimize(source: Path, target: Path, config: Any) -> Path:
    """Fuse the graph for CPU; an encoder the optimizer does not know is kept as traced."""
    if config.model_type not in BERT_LIKE:
        log.warning("ONNX Runtime's optimizer does not know %s encoders; serving the graph unfused", config.model_type)
        return source
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(target))
    return target


def _quantize(source: Path, target: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    keep_fp32 = [n.name for n in graph.node if n.op_type == "MatMul" and any(f"/{layer}/" in n.name for layer in FP32_LAYERS)]
    quantize_dynamic(
        str(source), str(target), per_channel=True, weight_type=QuantType.QInt8,
        # Only plain MatMuls: a fused Attention node (Q/K/V) stays fp32, as do the heads (Gemm).
        op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_fp32,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return target


class OnnxTransformerModel:
    """Predicts with `model.onnx` (see the module docstring); same interface as TransformerModel."""

    def __init__(self, session: Any, tokenizer: Any, max_length: int, context: str, eval_batch_size: int | None, pad_multiple: int = 1) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.context = context
        self.eval_batch_size = eval_batch_size
        self.pad_multiple = pad_multiple
        self._input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, directory: Path, num_threads: int | None = None) -> "OnnxTransformerModel":
        """Load `directory/model.onnx` with the tokenizer and settings saved beside it."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(directory)
        if not (directory / ONNX_FILE).exists():
            raise FileNotFoundError(f"no ONNX model at {directory / ONNX_FILE}")
        integrity.verify(directory, [ONNX_FILE, META_FILE, TOKENIZER_FILE])
        meta = read_meta(directory)
        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        tokenizer.no_padding()
        tokenizer.enable_truncation(meta["max_length"], strategy="longest_first")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        session = ort.InferenceSession(str(directory / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer, meta["max_length"], meta["context"], meta.get("eval_batch_size"), meta.get("pad_multiple", 1))

    def fit(self, train: Sentences, validation: Sentences) -> "OnnxTransformerModel":
        raise NotImplementedError("the ONNX form only predicts; train a TransformerModel")

    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        n = len(sentences["text"])
        actor = np.zeros((n, len(ACTORS)), dtype=np.float32)
        stance = np.zeros((n, len(STANCES)), dtype=np.float32)
        if n == 0:
            return Probabilities(actor, stance)
        batch_size = batch_size or self.eval_batch_size
        if not batch_size:
            raise ValueError("batch_size is required: this model was saved without an eval_batch_size")
        texts = [str(t) for t in sentences["text"]]
        context = context_texts(sentences, self.context)
        if context is not None:
            encoded = self.tokenizer.encode_batch(list(zip(texts, context)))
        else:
            encoded = self.tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encoded])
        # Length-sorted batches of one padded width each; results go back in input order.
        for idx, width in padded_batches(lengths, batch_size, self.pad_multiple):
            feed = {name: np.zeros((len(idx), width), dtype=np.int64) for name in INPUTS if name in self._input_names}
            for row, i in enumerate(idx):
                size = lengths[i]
                feed["input_ids"][row, :size] = encoded[i].ids
                feed["attention_mask"][row, :size] = 1
                if "token_type_ids" in feed:
                    feed["token_type_ids"][row, :size] = encoded[i].type_ids
            actor[idx], stance[idx] = self.session.run(list(OUTPUTS), feed)
        return Probabilities(actor=actor, stance=stance)
