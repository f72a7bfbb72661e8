"""Prediction speed of both models on the corpus's own sentences.

Each system is measured in its own process, so load time and peak memory belong
to it alone. Systems:
  baseline                     the served TF-IDF model (pipeline.predictor)
  transformer                  the served transformer (pipeline.predictor with the runtime
                               configs/predict.yaml names; `auto` is int8 PyTorch with a
                               scale per token on a CPU with int8 dot products,
                               length-sorted batches)
  transformer_bf16             the same served path with bfloat16 weights
  transformer_onnx             the same served path on model.onnx (ONNX Runtime, fused fp32)
  transformer_onnx_int8        the same on an int8 export (dynamic quantization of the
                               feed-forward layers), to show what int8 gains and costs
  transformer_fp32             the same served path in plain PyTorch fp32 (length-sorted
                               batches): its "x ref" is what batching alone gains, and every
                               served form's "x fp32" is what its arithmetic gains over it
  transformer_fp32_reference   the same weights as plain PyTorch fp32, batches of
                               `reference_batch_size` in input order
All processes load first; then `repeats` rounds each time one pass of every system
at every batch size, one system at a time. A throughput is the system's fastest
pass; its speed-up ("x ref") is the median over rounds of its ratio to the
reference's pass in the same round, so a machine that slows down for a while
slows both sides of a ratio; "x fp32" is the same median against transformer_fp32's
best batch size. The baseline's per-word feature cache is emptied
before every timed pass. Each served system also predicts `articles` whole corpus articles through
predict(), sentence segmentation included (`article_sentences_per_s`). Writes
reports/predict_speed.json and prints a table.

`--extra-encoder LABEL=DIR` also times another saved transformer (say MiniLM beside the
default MPNet) as LABEL/transformer, LABEL/transformer_fp32 and LABEL/transformer_fp32_reference,
each compared with its own encoder's fp32 forms.

    python bench/predict_speed.py [--models models] [--data data/prepared] [--corpus data/corpus] [--out reports/predict_speed.json]
    python bench/predict_speed.py --extra-encoder minilm=models/transformer_minilm
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

MARKER = "@@bench "
REFERENCE = "transformer_fp32_reference"
SERVED_FP32 = "transformer_fp32"
SYSTEMS = ("baseline", "transformer", "transformer_bf16", "transformer_onnx", "transformer_onnx_int8", SERVED_FP32, REFERENCE)
# The served path with a runtime other than the configured one.
FIXED_RUNTIMES = {"transformer_bf16": "torch_bf16", "transformer_onnx": "onnx", "transformer_onnx_int8": "onnx", SERVED_FP32: "torch"}
# Each ratio of a result (key) and the system of the same encoder it is taken against.
RATIOS = {"speedup_vs_reference": REFERENCE, "speedup_vs_served_fp32": SERVED_FP32}


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
    """The model class, and for PyTorch the weights' numeric form (fp32, bf16, int8)."""
    form = getattr(model, "form", None)
    return type(model).__name__ + (f" {form}" if form else "")


def worker(system: str, models: Path, data: Path, configs: Path, corpus: Path, int8_export: Path, transformer_dir: Path) -> None:
    """Measure one system in this process, answering the commands on stdin (see `measure`).

    The transformer systems use the model in `transformer_dir`."""
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

        model = TransformerModel.load(transformer_dir, device="cpu")

        def run(items: list[dict[str, str]], batch_size: int) -> tuple[list[str], list[str]]:
            return decode(*_reference_predict(model, items, batch_size))

        batch_sizes: tuple[int, ...] = (bench.reference_batch_size,)
        served_batch = bench.reference_batch_size
        loaded = model
    else:
        if system == "baseline":
            from pipeline.predictor import get_predictor

            predictor = get_predictor(system, models, configs)
        else:
            from pipeline.config import SegmentConfig
            from pipeline.predictor import Predictor

            segment = load_config(configs / "segment.yaml", SegmentConfig)
            source = int8_export if system == "transformer_onnx_int8" else transformer_dir
            runtime = FIXED_RUNTIMES.get(system, load_config(configs / "predict.yaml", PredictConfig).transformer_runtime)
            predictor = Predictor.from_model_dir(source, segment, served_batch, system, runtime=runtime)
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
    reply({"load_s": load_s, "peak_rss_mb": peak_served, "served_batch_size": served_batch, "batch_sizes": list(batch_sizes),
           "runtime": runtime_name(loaded)})
    # Timed passes, one per "pass BATCH" line, until "finish".
    for line in sys.stdin:
        command = line.split()
        if command[0] != "pass":
            break
        clear_cache()
        started = time.perf_counter()
        run(texts, int(command[1]))
        reply({"sentences_per_s": len(texts) / (time.perf_counter() - started)})
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
    reply({
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "peak_rss_mb_any_batch": _peak_rss_mb(),
        "test_stance_macro_f1": macro_f1(list(test["stance"]), stances, "stance"),
        "test_actor_macro_f1": macro_f1(list(test["actor"]), actors, "actor"),
        "test_predictions": [f"{a} {s}" for a, s in zip(actors, stances)],
        **end_to_end,
    })


def reply(message: dict[str, Any]) -> None:
    """A worker's answer: one marked JSON line on stdout (libraries may print there too)."""
    print(MARKER + json.dumps(message), flush=True)


class Worker:
    """One system measured in a process of its own, driven one command at a time."""

    def __init__(self, system: str, args: list[str], log: Path) -> None:
        self.system = system
        self.log = log
        # stderr to a file: progress bars and warnings could fill an unread pipe.
        with open(log, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=stderr, text=True)


    def ask(self, command: str | None = None) -> dict[str, Any]:
        """Send `command` (None: only wait for the next answer) and return the answer."""
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER):])
        self.process.wait()
        sys.exit(f"{self.system} failed:\n{self.log.read_text()[-2000:]}")


def group_of(key: str) -> str:
    """The encoder a result belongs to: "" for the default models, else the label before "/"."""
    return key.split("/", 1)[0] if "/" in key else ""


def reference_key(key: str, reference: str = REFERENCE) -> str:
    """The system `reference` of `key`'s own encoder, which `key` is compared with."""
    group = group_of(key)
    return f"{group}/{reference}" if group else reference


def measure(jobs: dict[str, list[str]], repeats: int, logs: Path) -> dict[str, dict[str, Any]]:
    """Load every system (one after another), time `repeats` rounds of passes, then finish each.

    In each round every system predicts the same sentences once at each of its batch
    sizes, one system at a time, so a round's ratios to the reference are measured
    minutes apart at most. A system's throughput is its fastest pass; its speed-up
    is the median over rounds of its best batch size's ratio to the reference.
    """
    workers: dict[str, Worker] = {}
    systems = list(jobs)
    try:
        ready = {}
        for system in systems:
            workers[system] = Worker(system, jobs[system], logs / f"{system.replace('/', '_')}.log")
            ready[system] = workers[system].ask()
        passes: dict[str, dict[int, list[float]]] = {system: {b: [] for b in ready[system]["batch_sizes"]} for system in systems}
        for _ in range(repeats):
            for system in systems:
                for batch_size in passes[system]:
                    passes[system][batch_size].append(workers[system].ask(f"pass {batch_size}")["sentences_per_s"])
        results = {}
        for system in systems:
            by_batch = {b: max(v) for b, v in passes[system].items()}
            best = max(by_batch, key=by_batch.__getitem__)
            results[system] = {"system": system, "sentences_per_s": by_batch[best], "best_batch_size": best,
                               "sentences_per_s_by_batch": {str(b): v for b, v in by_batch.items()},
                               **{k: v for k, v in ready[system].items() if k != "batch_sizes"}, **workers[system].ask("finish")}
            # A process tearing down would slow the next system's latency calls.
            workers[system].process.wait()
    finally:
        for w in workers.values():
            if w.process.poll() is None:
                w.process.kill()
            w.process.wait()
    for system, result in results.items():
        ref = reference_key(system)
        # Only the reference's own weights in other forms are compared prediction by prediction.
        if ref in results and system.split("/")[-1].startswith("transformer"):
            pairs = zip(result["test_predictions"], results[ref]["test_predictions"])
            result["test_changed_vs_reference"] = float(np.mean([a != b for a, b in pairs]))
        for field, reference in RATIOS.items():
            against = reference_key(system, reference)
            if against in results and system != against:
                ratios = [a / b for a, b in zip(passes[system][result["best_batch_size"]], passes[against][results[against]["best_batch_size"]])]
                result[field] = float(np.median(ratios))
                result[f"{field}_by_round"] = ratios
    for result in results.values():
        result.pop("test_predictions", None)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of the results. "x ref" is the median per-round speed-up over
    the fp32 reference, "x fp32" over the served path in fp32; "changed" the share of
    test sentences whose actor or stance differs from the reference's."""
    lines = [f"{'system':<34} {'sent/s':>9} {'x ref':>6} {'x fp32':>6} {'p50 ms':>7} {'p95 ms':>7} {'load s':>7} {'peak MB':>8} "
             f"{'stance F1':>9} {'changed':>8} {'articles sent/s':>15}"]
    nan = float("nan")
    for name, r in results.items():
        lines.append(
            f"{name:<34} {r['sentences_per_s']:>9.1f} {r.get('speedup_vs_reference', nan):>6.2f} {r.get('speedup_vs_served_fp32', nan):>6.2f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
            f"{r['load_s']:>7.2f} {r['peak_rss_mb']:>8.0f} {r['test_stance_macro_f1']:>9.4f} "
            f"{100 * r.get('test_changed_vs_reference', nan):>7.1f}% {r.get('article_sentences_per_s', nan):>15.1f}"
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
    parser.add_argument("--extra-encoder", action="append", default=[], metavar="LABEL=DIR",
                        help="also time the transformer saved in DIR (another encoder), as LABEL/SYSTEM for each of --extra-systems")
    parser.add_argument("--extra-systems", nargs="*", default=["transformer", SERVED_FP32, REFERENCE], choices=[s for s in SYSTEMS if s != "baseline"])
    parser.add_argument("--worker", nargs=3, metavar=("SYSTEM", "TRANSFORMER_DIR", "INT8_EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = [Path(args.models), Path(args.data), Path(args.configs), Path(args.corpus)]
    if args.worker:
        system, transformer_dir, int8_export = args.worker
        worker(system, *paths, Path(int8_export), Path(transformer_dir))
        return
    from pipeline.config import BenchConfig, TransformerConfig, load_config

    bench = load_config(Path(args.configs) / "bench.yaml", BenchConfig)
    encoders = {"": (Path(args.models) / "transformer", args.systems)}
    for spec in args.extra_encoder:
        label, _, directory = spec.partition("=")
        if not label or not directory or "/" in label:
            parser.error(f"--extra-encoder takes LABEL=DIR (a label without '/'), got {spec!r}")
        encoders[label] = (Path(directory), args.extra_systems)
    common = ["--models", args.models, "--data", args.data, "--configs", args.configs, "--corpus", args.corpus]
    opset = str(load_config(Path(args.configs) / "transformer.yaml", TransformerConfig).onnx_opset)
    with tempfile.TemporaryDirectory() as tmp:
        jobs: dict[str, list[str]] = {}
        for label, (directory, systems) in encoders.items():
            int8_export = Path(tmp) / (label or "default") / "transformer"
            if "transformer_onnx_int8" in systems:
                # Exported in a process of its own, so no worker's memory includes torch's export.
                shutil.copytree(directory, int8_export)
                code = "import sys; from pipeline.models.onnx_runtime import export; export(sys.argv[1], int(sys.argv[2]), True)"
                subprocess.run([sys.executable, "-c", code, str(int8_export), opset], check=True, capture_output=True)
            for system in systems:
                jobs[f"{label}/{system}" if label else system] = [system, str(directory), str(int8_export), *common]
        results = measure(jobs, bench.repeats, Path(tmp))
    from pipeline.atomic import write_json

    write_json(args.out, results)
    print(table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
