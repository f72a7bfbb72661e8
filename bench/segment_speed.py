"""Sentence segmentation time on one long paragraph: pysbd alone vs our windowed use.

pysbd is quadratic in the length of the text it is given; `pipeline.segment`
cuts text into bounded windows first, so its time grows linearly. Prints a table
and writes reports/segment_speed.json.

    python bench/segment_speed.py [--configs configs] [--out reports/segment_speed.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pysbd

from pipeline.atomic import write_json
from pipeline.config import BenchConfig, SegmentConfig, load_config
from pipeline.segment import split_sentences

SENTENCE = "Officials in Brussels said on Tuesday that a deal was close, and Moscow warned of a response. "


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="configs")
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
    write_json(args.out, {"rows": rows, "max_chunk_chars": segment.max_chunk_chars})
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
