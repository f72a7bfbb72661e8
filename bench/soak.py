"""Soak: many sentences through `stance predict`, memory sampled every few seconds.

Runs `stance predict ITEMS --no-split --format jsonl -o OUT` on `sentences` corpus
sentences (repeated) in a child process and samples its resident memory (with its
children) every `interval_s`. Memory should rise while the model loads and warms up,
then stay flat: the peak after warm-up against the peak of the last quarter of the
run tells. Prints a table, writes reports/soak.json.

    python bench/soak.py [--sentences 100000] [--model champion] [--interval 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(process: psutil.Process) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def soak(sentences: int, model: str, models: str | None, interval_s: float, warmup_share: float) -> dict:
    """Run the soak and return its samples and summary."""
    corpus = [json.loads(line)["text"] for line in (ROOT / "data" / "corpus" / "sentences.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        items = Path(tmp) / "items.jsonl"
        with items.open("w", encoding="utf-8") as f:
            for i in range(sentences):
                f.write(json.dumps({"text": corpus[i % len(corpus)]}) + "\n")
        command = [sys.executable, "-m", "pipeline.cli", "predict", str(items), "--no-split", "--format", "jsonl", "-o", str(Path(tmp) / "out.jsonl"),
                   "--model", model, *(["--models", models] if models else [])]
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        process = psutil.Process(child.pid)
        samples = []
        while child.poll() is None:
            samples.append((time.perf_counter() - started, rss_mb(process)))
            time.sleep(interval_s)
        _, stderr = child.communicate()
        if child.returncode != 0:
            sys.exit(f"stance predict failed:\n{stderr[-2000:]}")
        elapsed = time.perf_counter() - started
        written = sum(1 for _ in (Path(tmp) / "out.jsonl").open())
    after = [m for t, m in samples if t >= warmup_share * elapsed]
    last = [m for t, m in samples if t >= 0.75 * elapsed]
    return {
        "sentences": sentences, "written": written, "model": model, "seconds": elapsed, "sentences_per_s": sentences / elapsed,
        "interval_s": interval_s, "samples": [{"t": round(t, 2), "rss_mb": round(m, 1)} for t, m in samples],
        "peak_mb": max(m for _, m in samples), "peak_after_warmup_mb": max(after) if after else None,
        "peak_last_quarter_mb": max(last) if last else None,
        "growth_after_warmup_mb": (max(last) - max(after[: max(1, len(after) // 4)])) if len(after) >= 4 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=100_000)
    parser.add_argument("--model", default="champion")
    parser.add_argument("--models", default=None)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--warmup-share", type=float, default=0.1, help="the first share of the run counted as warm-up")
    parser.add_argument("--out", default="reports/soak.json")
    args = parser.parse_args()
    result = soak(args.sentences, args.model, args.models, args.interval, args.warmup_share)
    from pipeline.atomic import write_json

    write_json(args.out, result)
    print(f"{'sentences':>10} {'written':>8} {'s':>7} {'sent/s':>8} {'peak MB':>8} {'peak after warm-up':>19} {'peak last quarter':>18} {'growth MB':>10}")
    growth = result["growth_after_warmup_mb"]
    print(f"{result['sentences']:>10} {result['written']:>8} {result['seconds']:>7.1f} {result['sentences_per_s']:>8.0f} {result['peak_mb']:>8.0f} "
          f"{result['peak_after_warmup_mb'] or float('nan'):>19.0f} {result['peak_last_quarter_mb'] or float('nan'):>18.0f} "
          f"{growth if growth is not None else float('nan'):>10.1f}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
