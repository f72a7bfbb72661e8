"""Sentence segmentation time: one long paragraph, and the corpus's own articles.

pysbd is quadratic in the length of the text it is given; `pipeline.segment`
cuts text into bounded windows first, so its time grows linearly. On normal
articles, pysbd spends much of its time compiling a regex per sentence, which
`pipeline.segment`'s segmenter avoids: the second table times both on every
paragraph of the corpus and checks they give the same sentences. Prints the
tables and writes reports/segment_speed.json.

    python bench/segment_speed.py [--configs configs] [--corpus data/corpus] [--out reports/segment_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pysbd

from pipeline.atomic import write_json
from pipeline.config import BenchConfig, SegmentConfig, load_config
from pipeline.segment import clean_text, sentence_segmenter, split_sentences

SENTENCE = "Officials in Brussels said on Tuesday that a deal was close, and Moscow warned of a response. "


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="configs")
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--out", default="reports/segment_speed.json")
    args = parser.parse_args()
    bench = load_config(Path(args.configs) / "bench.yaml", BenchConfig)
    segment = load_config(Path(args.configs) / "segment.yaml", SegmentConfig)
    raw = pysbd.Segmenter(language=segment.language, clean=False)
    rows = []
    for size in (*bench.segment_sizes, *bench.segment_sizes_windowed_only):
        text = (SENTENCE * (size // len(SENTENCE) + 1))[:size]
        ours = timed(lambda: split_sentences(text, language=segment.language, max_chunk_chars=segment.max_chunk_chars, max_sentence_chars=segment.max_sentence_chars))
        alone = timed(lambda: raw.segment(text)) if size in bench.segment_sizes else None
        rows.append({"chars": size, "windowed_s": ours, "pysbd_alone_s": alone, "windowed_us_per_char": ours / size * 1e6})
    print(f"{'chars':>9} {'pysbd alone s':>14} {'windowed s':>11} {'windowed us/char':>17}")
    for r in rows:
        alone = f"{r['pysbd_alone_s']:.3f}" if r["pysbd_alone_s"] is not None else "-"
        print(f"{r['chars']:>9} {alone:>14} {r['windowed_s']:>11.3f} {r['windowed_us_per_char']:>17.2f}")

    with open(Path(args.corpus) / "articles.jsonl", encoding="utf-8") as f:
        articles = [json.loads(line)["text"] for line in f if line.strip()]
    paragraphs = [p for text in articles for p in clean_text(text).split("\n") if p.strip()]
    ours_segmenter = sentence_segmenter(segment.language)
    results = {}
    for name, segmenter in (("pysbd", raw), ("ours", ours_segmenter)):
        started = time.perf_counter()
        results[name] = [segmenter.segment(p) for p in paragraphs]
        results[f"{name}_s"] = time.perf_counter() - started
    n_sentences = sum(len(s) for s in results["ours"])
    corpus = {
        "articles": len(articles), "paragraphs": len(paragraphs), "sentences": n_sentences,
        "pysbd_s": results["pysbd_s"], "ours_s": results["ours_s"],
        "pysbd_sentences_per_s": n_sentences / results["pysbd_s"], "ours_sentences_per_s": n_sentences / results["ours_s"],
        "same_sentences": results["pysbd"] == results["ours"],
    }
    print(f"\ncorpus: {len(articles)} articles, {len(paragraphs)} paragraphs, {n_sentences} sentences")
    print(f"{'segmenter':>10} {'s':>7} {'sentences/s':>12}")
    for name in ("pysbd", "ours"):
        print(f"{name:>10} {corpus[name + '_s']:>7.2f} {corpus[name + '_sentences_per_s']:>12.0f}")
    print(f"same sentences: {corpus['same_sentences']}")
    write_json(args.out, {"rows": rows, "max_chunk_chars": segment.max_chunk_chars, "corpus": corpus})
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
