"""A fine-tuned sentence encoder with two heads: actor and stance.

Design: one shared encoder (MiniLM-L6 by default), mean-pooled, feeding two
linear heads trained together on the sum of their losses. One encoder instead of
two models halves training and inference time, and the two tasks help each other:
whether a sentence carries a stance at all is the same question for both heads.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer, get_linear_schedule_with_warmup
from transformers.initialization import no_init_weights

from pipeline import integrity
from pipeline.config import TransformerConfig
from pipeline.encoders import resolve_pretrained
from pipeline.labels import ACTORS, STANCES, encode
from pipeline.models import (
    CONTEXT_COLUMNS,
    ENCODER_DIR,
    META_FILE,
    Probabilities,
    Sentences,
    context_texts,
    padded_batches,
    read_meta,
    validation_scores,
)

WEIGHTS_FILE = "model.safetensors"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# best: the epoch with the best validation stance macro-F1 (early stopping after
# `patience` epochs without gain); last: the final epoch, for training on all data.
CHECKPOINTS = ("best", "last")


def pick_device(setting: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; otherwise the named device."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def _cpu_has(*features: str) -> bool:
    """Whether the CPU has any of `features` ("vnni", "amx_tile", "avx512_bf16").

    The probes are private (torch 2.x); a torch without them answers False, which
    only ever picks the safe, slower form."""
    return any(getattr(torch.cpu, f"_is_{name}_supported", lambda: False)() for name in features)


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device`, or None for plain fp32.

    `auto`: bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX), where
    it is about 2.4x fp32 per step; on CUDA, bfloat16 where the GPU has it, else
    float16; fp32 elsewhere (emulated bf16 is slower than fp32). Weights, gradients
    and optimizer state stay fp32 in every case: autocast only lowers the precision
    of the matrix products.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has("avx512_bf16", "amx_tile") else None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def auto_runtime() -> str:
    """The runtime `auto` means here: "torch" with CUDA; on a CPU, the fastest form
    its instructions compute natively: "torch_int8" with int8 dot products (VNNI or
    AMX), else "torch_bf16" with native bfloat16, else "onnx" (pipeline/predictor.py)."""
    if torch.cuda.is_available():
        return "torch"
    if _cpu_has("vnni", "amx_tile"):
        return "torch_int8"
    return "torch_bf16" if _cpu_has("avx512_bf16") else "onnx"


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a Hugging Face encoder (BERT, MPNet, RoBERTa, DistilBERT)."""
    for path in (("encoder", "layer"), ("transformer", "layer"), ("layers",)):
        module: Any = encoder
        for name in path:
            module = getattr(module, name, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"freeze_layers: cannot find the layer stack of a {type(encoder).__name__}; set freeze_layers: 0")


def freeze_bottom(encoder: nn.Module, count: int) -> None:
    """Freeze the embeddings and the lowest `count` layers: no gradient, so backward stops above them."""
    if count <= 0:
        return
    layers = encoder_layers(encoder)
    if count > len(layers):
        raise ValueError(f"freeze_layers: {count}, but the encoder has {len(layers)} layers")
    for module in (getattr(encoder, "embeddings", None), *layers[:count]):
        for parameter in module.parameters() if module is not None else ():
            parameter.requires_grad_(False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run can be repeated exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def saved_files(directory: Path) -> list[str]:
    """What `TransformerModel.save` writes: weights, meta.json and the encoder folder."""
    encoder = sorted(p.relative_to(directory).as_posix() for p in (Path(directory) / ENCODER_DIR).glob("*") if p.is_file())
    return [WEIGHTS_FILE, META_FILE, *encoder]


class TwoHeadEncoder(nn.Module):
    """Encoder -> mean pooling -> dropout -> actor head and stance head."""

    def __init__(self, encoder: nn.Module, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.actor_head = nn.Linear(hidden, len(ACTORS))
        self.stance_head = nn.Linear(hidden, len(STANCES))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence embeddings (what the sentence-transformers checkpoint was trained with)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.embed(input_ids, attention_mask, **extra))
        return self.actor_head(pooled), self.stance_head(pooled)


def contrastive_pairs(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` (anchor, other, same-label) triples, half positive and half negative.

    As in SetFit, positives and negatives are balanced whatever the class sizes;
    a label with a single example yields no positive, so its anchor is drawn again.
    """
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    pairs = []
    while len(pairs) < count:
        anchor = int(rng.integers(len(labels)))
        same = by_label[labels[anchor]]
        if len(pairs) % 2 == 0:
            if len(same) < 2:
                continue
            other = int(rng.choice(same[same != anchor]))
        else:
            other = int(rng.integers(len(labels)))
            if labels[other] == labels[anchor]:
                continue
        pairs.append((anchor, other, int(labels[other] == labels[anchor])))
    return np.array(pairs, dtype=np.int64).reshape(-1, 3)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: int) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples, so padding costs little.

    Examples are shuffled, cut into pools of `group` batches, sorted by length
    within each pool and batched; the batches are then shuffled.
    """
    order = rng.permutation(len(lengths))
    pool = batch_size * group
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


class TransformerModel:
    """Fine-tuned encoder with actor and stance heads (see the module docstring)."""

    # How many batches are sorted together by length when training.
    LENGTH_POOL_BATCHES = 50

    def __init__(self, config: TransformerConfig | None = None) -> None:
        self.config = config
        self.network: TwoHeadEncoder | None = None
        self.tokenizer: Any = None
        self.device = torch.device("cpu")
        self.max_length = config.max_length if config else 0
        self.context = config.context if config else "none"
        self.eval_batch_size = config.eval_batch_size if config else None
        # Inference pads each sentence to its length rounded up to this (models.padded_batches).
        self.pad_multiple = config.pad_multiple if config else 1
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        # The numeric form of the weights: fp32, or bf16 / int8 after to_bfloat16 / to_int8.
        self.form = "fp32"
        # The precision the matrix products trained in (training_dtype); weights stay fp32.
        self.precision = "fp32"

    # -- data -------------------------------------------------------------
    def _encode(self, sentences: Sentences) -> dict[str, list[list[int]]]:
        texts = [str(t) for t in sentences["text"]]
        context = context_texts(sentences, self.context)
        if context is not None:
            return self.tokenizer(texts, context, truncation="longest_first", max_length=self.max_length)
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)

    def _tokenized(self, sentences: Sentences) -> Any:
        # datasets (and pandas, pyarrow) is only needed to train: imported here so a
        # predicting process does not carry it.
        from datasets import Dataset

        columns = {"text": list(sentences["text"])}
        context, column = context_texts(sentences, self.context), CONTEXT_COLUMNS[self.context]
        if context is not None:
            columns[column] = context
        texts = [c for c in ("text", column) if c in columns]
        columns["actor_label"] = encode("actor", sentences["actor"]).tolist()
        columns["stance_label"] = encode("stance", sentences["stance"]).tolist()
        dataset = Dataset.from_dict(columns)
        return dataset.map(lambda b: self._encode(b), batched=True, remove_columns=texts)

    def _batches(self, encoded: dict[str, list[Any]], order: list[np.ndarray], widths: list[int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Tensors of each batch, padded to `widths` (default: each batch's longest)."""
        pad = self.tokenizer.pad_token_id
        for k, idx in enumerate(order):
            rows = {key: [values[i] for i in idx] for key, values in encoded.items()}
            width = widths[k] if widths is not None else max(len(ids) for ids in rows["input_ids"])
            batch: dict[str, torch.Tensor] = {}
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in rows:
                    fill = pad if key == "input_ids" else 0
                    batch[key] = torch.tensor([r + [fill] * (width - len(r)) for r in rows[key]])
            for key in ("actor_label", "stance_label"):
                if key in rows:
                    batch[key] = torch.tensor(rows[key])
            yield {k: v.to(self.device) for k, v in batch.items()}

    # -- training ---------------------------------------------------------
    def _losses(self, weighting: str, data: dict[str, list[Any]]) -> tuple[nn.Module, nn.Module]:
        """Cross-entropy per head, optionally weighted by inverse class frequency."""
        if weighting not in ("none", "balanced"):
            raise ValueError(f"class_weighting must be none or balanced, got {weighting!r}")
        losses = []
        for key, labels in (("actor_label", ACTORS), ("stance_label", STANCES)):
            weight = None
            if weighting == "balanced":
                counts = np.bincount(np.asarray(data[key]), minlength=len(labels)).astype(float)
                # Like scikit-learn's "balanced"; a class absent from training gets weight 0.
                weight = torch.tensor(
                    np.where(counts > 0, counts.sum() / (len(labels) * np.maximum(counts, 1)), 0.0), dtype=torch.float32
                ).to(self.device)
            losses.append(nn.CrossEntropyLoss(weight=weight))
        return losses[0], losses[1]

    def fit(self, train: Sentences, validation: Sentences) -> "TransformerModel":
        config = self.config
        if config is None:
            raise ValueError("TransformerModel needs a TransformerConfig to fit")
        if config.context not in CONTEXT_COLUMNS:
            raise ValueError(f"context must be one of {tuple(CONTEXT_COLUMNS)}, got {config.context!r}")
        if config.checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {config.checkpoint!r}")
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        seed_everything(config.seed)
        source = resolve_pretrained(config.pretrained, config.encoder_cache)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
        self.network = TwoHeadEncoder(encoder, config.dropout)
        freeze_bottom(self.network.encoder, config.freeze_layers)
        self.device = pick_device(config.device)
        self.network.to(self.device)
        dtype = training_dtype(config.precision, self.device)
        self.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        # float16's narrow range needs loss scaling; bfloat16 has fp32's range and does not.
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

        data = self._tokenized(train)[:]
        lengths = np.array([len(ids) for ids in data["input_ids"]])
        rng = np.random.default_rng(config.seed)
        steps_per_epoch = math.ceil(len(lengths) / config.batch_size)
        head_params = [p for n, p in self.network.named_parameters() if not n.startswith("encoder.")]
        optimizer = torch.optim.AdamW(
            [
                {"params": [p for p in self.network.encoder.parameters() if p.requires_grad], "lr": config.learning_rate},
                {"params": head_params, "lr": config.head_learning_rate},
            ],
            weight_decay=config.weight_decay,
            # One fused kernel over all parameters: on 2 CPU cores the step of MPNet's
            # 110M parameters drops from about 0.45 s to 0.05 s (the default loops in Python).
            fused=True,
        )
        total = steps_per_epoch * config.epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
        actor_loss, stance_loss = self._losses(config.class_weighting, data)
        if config.contrastive_pairs > 0:
            self._contrastive_pretrain(data, config, rng)

        best_score, best_state, stale = -1.0, None, 0
        for epoch in range(1, config.epochs + 1):
            self.network.train()
            order = length_grouped_batches(lengths, config.batch_size, rng, self.LENGTH_POOL_BATCHES)
            running = 0.0
            bar = tqdm(self._batches(data, order), total=len(order), desc=f"epoch {epoch}/{config.epochs}", mininterval=2.0)
            for step, batch in enumerate(bar, start=1):
                actor_y, stance_y = batch.pop("actor_label"), batch.pop("stance_label")
                with self._autocast(dtype):
                    actor_logits, stance_logits = self.network(**batch)
                    loss = stance_loss(stance_logits, stance_y) + config.actor_loss_weight * actor_loss(actor_logits, actor_y)
                optimizer.zero_grad()
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                running += loss.item()
                bar.set_postfix(loss=f"{running / step:.4f}")
            # Epochs are compared in the precision they train in (2.4x faster for MPNet);
            # the final scores of the chosen epoch are computed in fp32 by the caller.
            with self._autocast(dtype):
                scores = validation_scores(self.predict_proba(validation, config.eval_batch_size), validation)
            self.history.append({"epoch": epoch, "train_loss": running / max(len(order), 1), **scores})
            if config.checkpoint == "last":
                self.best_epoch = epoch
                continue
            # Best checkpoint by validation stance macro-F1; stop after `patience` epochs without gain.
            if scores["validation_stance_macro_f1"] > best_score:
                best_score, stale, self.best_epoch = scores["validation_stance_macro_f1"], 0, epoch
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.network.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return self

    def _autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision on this model's device, or nothing for fp32."""
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _contrastive_pretrain(self, data: dict[str, list[Any]], config: TransformerConfig, rng: np.random.Generator) -> None:
        """SetFit's first phase: tune the encoder so that sentences with the same
        (actor, stance) label embed close together (cosine-similarity loss)."""
        assert self.network is not None
        joint = np.asarray(data["actor_label"]) * len(STANCES) + np.asarray(data["stance_label"])
        pairs = contrastive_pairs(joint, config.contrastive_pairs, rng)
        optimizer = torch.optim.AdamW(self.network.encoder.parameters(), lr=config.contrastive_learning_rate, weight_decay=config.weight_decay, fused=True)
        steps = math.ceil(len(pairs) / config.batch_size)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * steps), steps)
        self.network.train()
        running = 0.0
        bar = tqdm(range(0, len(pairs), config.batch_size), desc="contrastive", mininterval=2.0)
        for step, start in enumerate(bar, start=1):
            chunk = pairs[start : start + config.batch_size]
            (left,), (right,) = self._batches(data, [chunk[:, 0]]), self._batches(data, [chunk[:, 1]])
            embedded = [self.network.embed(**{k: v for k, v in side.items() if not k.endswith("_label")}) for side in (left, right)]
            similarity = torch.cosine_similarity(*embedded)
            loss = nn.functional.mse_loss(similarity, torch.as_tensor(chunk[:, 2], dtype=similarity.dtype, device=self.device))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.encoder.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}")

    # -- inference --------------------------------------------------------
    @torch.inference_mode()
    def predict_proba(self, sentences: Sentences, batch_size: int | None = None) -> Probabilities:
        if self.network is None:
            raise RuntimeError("TransformerModel is not fitted")
        n = len(sentences["text"])
        if n == 0:
            return Probabilities(np.zeros((0, len(ACTORS))), np.zeros((0, len(STANCES))))
        batch_size = batch_size or self.eval_batch_size
        if not batch_size:
            raise ValueError("batch_size is required: this model was saved without an eval_batch_size")
        was_training = self.network.training
        self.network.eval()
        data = dict(self._encode(sentences))
        lengths = np.array([len(ids) for ids in data["input_ids"]])
        # Length-sorted batches of one padded width each; results go back in input order.
        planned = padded_batches(lengths, batch_size, self.pad_multiple)
        # A batch of one runs as two copies of its row: with a single row PyTorch takes
        # other kernels, and per-token int8 rounding then moved probabilities by up to 0.002.
        batches = [np.repeat(idx, 2) if len(idx) == 1 else idx for idx, _ in planned]
        actor = np.zeros((n, len(ACTORS)), dtype=np.float32)
        stance = np.zeros((n, len(STANCES)), dtype=np.float32)
        for (idx, _), batch in zip(planned, self._batches(data, batches, [width for _, width in planned])):
            actor_logits, stance_logits = self.network(**batch)
            actor[idx] = torch.softmax(actor_logits.float(), -1).cpu().numpy()[: len(idx)]
            stance[idx] = torch.softmax(stance_logits.float(), -1).cpu().numpy()[: len(idx)]
        self.network.train(was_training)
        return Probabilities(actor=actor, stance=stance)

    def to_bfloat16(self) -> "TransformerModel":
        """Cast the weights to bfloat16 for CPU inference (about 2.7x fp32 where the CPU
        has native bf16; test predictions change for at most 0.2% of sentences)."""
        if self.network is None:
            raise RuntimeError("TransformerModel is not fitted")
        self.device = torch.device("cpu")
        self.network.to(device=self.device, dtype=torch.bfloat16).eval()
        self.form = "bf16"
        return self

    def to_int8(self) -> "TransformerModel":
        """Int8 matrix products with a scale per token for CPU inference
        (pipeline/models/int8.py). `save` then refuses; `fit` starts from the pretrained
        encoder as always."""
        if self.network is None:
            raise RuntimeError("TransformerModel is not fitted")
        from pipeline.models.int8 import quantize_encoder

        self.device = torch.device("cpu")
        self.network.to(device=self.device, dtype=torch.float32).eval()
        quantize_encoder(self.network.encoder)
        self.form = "int8"
        return self

    # -- persistence ------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Weights (safetensors), encoder config, tokenizer and label maps; plus
        model.onnx, the CPU serving form, when the config's `onnx_export` is set."""
        if self.form == "int8":
            raise RuntimeError("an int8 model cannot be saved: save the fp32 model it was made from")
        if self.network is None or self.config is None:
            raise RuntimeError("TransformerModel is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        self.network.encoder.config.save_pretrained(directory / ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / ENCODER_DIR)
        meta = {
            "kind": "transformer",
            "actors": list(ACTORS),
            "stances": list(STANCES),
            "max_length": self.max_length,
            "context": self.context,
            "eval_batch_size": self.eval_batch_size,
            "pad_multiple": self.pad_multiple,
            "dropout": self.config.dropout,
            "pretrained": self.config.pretrained,
            "best_epoch": self.best_epoch,
            "training_precision": self.precision,
            "history": self.history,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        integrity.record(directory, saved_files(directory))
        if self.config.onnx_export:
            from pipeline.models import onnx_runtime

            onnx_runtime.export(directory, self.config.onnx_opset, self.config.onnx_quantize)

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> "TransformerModel":
        directory = Path(directory)
        if not (directory / WEIGHTS_FILE).exists():
            raise FileNotFoundError(f"no transformer model at {directory / WEIGHTS_FILE}")
        integrity.verify(directory, [WEIGHTS_FILE, META_FILE], folders=[ENCODER_DIR])
        meta = read_meta(directory)
        model = cls()
        model.max_length, model.context = meta["max_length"], meta["context"]
        model.eval_batch_size = meta.get("eval_batch_size")
        model.pad_multiple = meta.get("pad_multiple", 1)
        model.history, model.best_epoch = meta["history"], meta["best_epoch"]
        try:
            model.tokenizer = AutoTokenizer.from_pretrained(directory / ENCODER_DIR)
        except (OSError, ValueError) as err:
            raise integrity.ModelFileError(f"{directory / ENCODER_DIR}: no usable tokenizer ({str(err).splitlines()[0][:300]})") from None
        # Every weight comes from the file (a strict load checks that), so random
        # initialisation is skipped: for MPNet it took longer than the rest of the load.
        with no_init_weights():
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory / ENCODER_DIR))
            model.network = TwoHeadEncoder(encoder, meta["dropout"])
        # assign: the parameters take the file's (memory-mapped) tensors instead of a copy.
        try:
            model.network.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), assign=True)
        except (SafetensorError, RuntimeError, OSError, ValueError) as err:  # a damaged file; a shape or key mismatch
            raise integrity.ModelFileError(f"{directory / WEIGHTS_FILE}: does not hold this model's weights ({str(err).splitlines()[0][:300]})") from None
        model.device = pick_device(device)
        model.network.to(model.device).eval()
        return model
