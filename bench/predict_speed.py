"""Prediction speed of both models on the corpus's own sentences.

Each system is measured in its own process, so load time and peak memory belong
to it alone. Systems:
  baseline                     the served TF-IDF model (pipeline.predictor)
  transformer                  the served transformer (pipeline.predictor with the runtime
                               configs/predict.yaml names; `auto` is bfloat16 PyTorch on
                               a CPU with native bf16, length-sorted batches)
  transformer_onnx             the same served path on model.onnx (ONNX Runtime, fused fp32)
  transformer_onnx_int8        the same on an int8 export (dynamic quantization of the
                               feed-forward layers), to show what int8 gains and costs
  transformer_fp32_reference   the same weights as plain PyTorch fp32, batches of
                               `reference_batch_size` in input order
Speed-ups are ratios to the reference measured in the same run, and each throughput
is the fastest of `repeats` passes, so that both survive a noisy machine. The baseline's per-word feature cache is emptied before every timed
pass. Each served system also predicts `articles` whole corpus articles through
predict(), sentence segmentation included (`article_sentences_per_s`). Writes
reports/predict_speed.json and prints a table.

    python bench/predict_speed.py [--models models] [--data data/prepared] [--corpus data/corpus] [--out reports/predict_speed.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SYSTEMS = ("baseline", "transformer", "transformer_onnx", "transformer_onnx_int8", "transformer_fp32_reference")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reference_predict(model: Any, items: list[dict[str, str]], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain PyTorch fp32: batches in input order, padded to the longest in each.

    Each item is read as predict() reads a one-sentence item: with its title, and
    no previous sentence.
    """
    import torch

    from pipeline.models import context_texts

    actor, stance = [], []
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            sentences = {"text": [r["text"] for r in chunk], "title": [r["title"] for r in chunk], "prev_text": [""] * len(chunk)}
            context = context_texts(sentences, model.context)
            segments = (sentences["text"],) if context is None else (sentences["text"], context)
            batch = model.tokenizer(*segments, truncation=True, max_length=model.max_length, padding=True, return_tensors="pt")
            a, s = model.network(**batch)
            actor.append(torch.softmax(a, -1).numpy())
            stance.append(torch.softmax(s, -1).numpy())
    return np.concatenate(actor), np.concatenate(stance)


def runtime_name(model: Any) -> str:
    """The model class, and for PyTorch the weights' dtype."""
    network = getattr(model, "network", None)
    return type(model).__name__ + (f" {next(network.parameters()).dtype}" if network is not None else "")


def worker(system: str, models: Path, data: Path, configs: Path, corpus: Path, int8_export: Path) -> dict[str, Any]:
    """Measure one system in this process."""
    import pyarrow.parquet as pq

    from pipeline.config import BenchConfig, PredictConfig, load_config
    from pipeline.labels import decode
    from pipeline.metrics import macro_f1

    bench = load_config(configs / "bench.yaml", BenchConfig)
    served_batch = load_config(configs / "predict.yaml", PredictConfig).batch_size
    # Read with pyarrow alone: a predicting process has no need of `datasets`,
    # which would inflate the memory measured here.
    splits = {name: pq.read_table(data / f"{name}.parquet", columns=["text", "title", "actor", "stance"]).to_pydict() for name in ("train", "validation", "test")}
    test = splits["test"]
    # Items as predict() takes them: a sentence with its article's title.
    corpus_items = [{"text": t, "title": h} for name in ("train", "validation", "test") for t, h in zip(splits[name]["text"], splits[name]["title"])]
    texts = [corpus_items[i % len(corpus_items)] for i in range(bench.sentences)]
    test_items = [{"text": t, "title": h} for t, h in zip(test["text"], test["title"])]

    started = time.perf_counter()
    if system == "transformer_fp32_reference":
        from pipeline.models.transformer import TransformerModel

        model = TransformerModel.load(models / "transformer", device="cpu")

        def run(items: list[dict[str, str]], batch_size: int) -> tuple[list[str], list[str]]:
            return decode(*_reference_predict(model, items, batch_size))

        batch_sizes: tuple[int, ...] = (bench.reference_batch_size,)
        served_batch = bench.reference_batch_size
        loaded = model
    else:
        if system.startswith("transformer_onnx"):
            from pipeline.config import SegmentConfig
            from pipeline.predictor import Predictor

            segment = load_config(configs / "segment.yaml", SegmentConfig)
            source = int8_export if system == "transformer_onnx_int8" else models / "transformer"
            predictor = Predictor.from_model_dir(source, segment, served_batch, system, runtime="onnx")
        else:
            from pipeline.predictor import get_predictor

            predictor = get_predictor(system, models, configs)
        loaded = predictor.model

        def run(items: list[dict[str, str]], batch_size: int) -> tuple[list[str], list[str]]:
            # The whole served path: cleaning, batching, rule 9, result objects.
            results = predictor.predict(items, split_sentences=False, batch_size=batch_size)
            return [r.actor for r in results], [r.stance for r in results]

        batch_sizes = bench.batch_sizes
    load_s = time.perf_counter() - started

    for _ in range(bench.warmup_calls):
        run(texts[:8], 8)
    # Peak memory of a process that loads the model and predicts at the batch size
    # it is configured to use; larger batches are tried afterwards and reported apart.
    run(texts, served_batch)
    peak_served = _peak_rss_mb()
    # The baseline caches per-word features; each timed pass starts with it empty,
    # so repeated sentences from the warm-up do not flatter it.
    clear_cache = getattr(loaded, "clear_cache", lambda: None)
    throughput: dict[int, float] = {}
    for batch_size in batch_sizes:
        for _ in range(bench.repeats):
            clear_cache()
            started = time.perf_counter()
            run(texts, batch_size)
            throughput[batch_size] = max(throughput.get(batch_size, 0.0), len(texts) / (time.perf_counter() - started))
    latencies = []
    clear_cache()
    for i in range(bench.latency_calls):
        started = time.perf_counter()
        run([texts[i % len(texts)]], 1)
        latencies.append((time.perf_counter() - started) * 1000.0)
    actors, stances = run(test_items, served_batch)
    end_to_end: dict[str, Any] = {}
    if system != "transformer_fp32_reference":
        # Whole articles through predict(): sentence segmentation included.
        with open(corpus / "articles.jsonl", encoding="utf-8") as f:
            articles = [{"text": a["text"], "title": a["title"]} for a in map(json.loads, filter(str.strip, f))][: bench.articles]
        clear_cache()
        started = time.perf_counter()
        n = len(predictor.predict(articles, batch_size=served_batch))
        end_to_end = {"articles": len(articles), "article_sentences": n, "article_sentences_per_s": n / (time.perf_counter() - started)}
    return {
        "system": system,
        "sentences_per_s": max(throughput.values()),
        "sentences_per_s_by_batch": {str(k): v for k, v in throughput.items()},
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "load_s": load_s,
        "peak_rss_mb": peak_served,
        "peak_rss_mb_any_batch": _peak_rss_mb(),
        "served_batch_size": served_batch,
        "runtime": runtime_name(loaded),
        "test_stance_macro_f1": macro_f1(list(test["stance"]), stances, "stance"),
        "test_actor_macro_f1": macro_f1(list(test["actor"]), actors, "actor"),
        **end_to_end,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of the results, with speed-up over the fp32 reference."""
    reference = results.get("transformer_fp32_reference", {}).get("sentences_per_s")
    lines = [f"{'system':<28} {'sent/s':>9} {'x ref':>6} {'p50 ms':>7} {'p95 ms':>7} {'load s':>7} {'peak MB':>8} {'stance F1':>9} {'articles sent/s':>15}"]
    for name, r in results.items():
        ratio = r["sentences_per_s"] / reference if reference else float("nan")
        lines.append(
            f"{name:<28} {r['sentences_per_s']:>9.1f} {ratio:>6.2f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
            f"{r['load_s']:>7.2f} {r['peak_rss_mb']:>8.0f} {r['test_stance_macro_f1']:>9.4f} {r.get('article_sentences_per_s', float('nan')):>15.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="models")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--configs", default="configs")
    parser.add_argument("--corpus", default="data/corpus", help="articles.jsonl for the end-to-end pass")
    parser.add_argument("--out", default="reports/predict_speed.json")
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--int8-export", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = [Path(args.models), Path(args.data), Path(args.configs), Path(args.corpus)]
    if args.worker:
        print(json.dumps(worker(args.worker, *paths, Path(args.int8_export))))
        return
    from pipeline.config import TransformerConfig, load_config

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        int8_export = Path(tmp) / "transformer"
        if "transformer_onnx_int8" in args.systems:
            # Exported in a process of its own, so no worker's memory includes torch's export.
            shutil.copytree(Path(args.models) / "transformer", int8_export)
            code = "import sys; from pipeline.models.onnx_runtime import export; export(sys.argv[1], int(sys.argv[2]), True)"
            opset = str(load_config(Path(args.configs) / "transformer.yaml", TransformerConfig).onnx_opset)
            subprocess.run([sys.executable, "-c", code, str(int8_export), opset], check=True, capture_output=True)
        for system in args.systems:
            done = subprocess.run(
                [sys.executable, __file__, "--worker", system, "--models", args.models, "--data", args.data,
                 "--configs", args.configs, "--corpus", args.corpus, "--int8-export", str(int8_export)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                sys.exit(f"{system} failed:\n{done.stderr[-2000:]}")
            results[system] = json.loads(done.stdout.strip().splitlines()[-1])
    from pipeline.atomic import write_json

    write_json(args.out, results)
    print(table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
