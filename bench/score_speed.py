"""Batch scoring speed: the local engine against Spark local[1] and local[2], and how
Spark's time grows with the input (1x, 4x, 16x the corpus's articles).

Every run scores the same input of whole articles (the corpus's, repeated with new
ids) with `stance score` in a process of its own, the model a saved directory. Prints
a table and writes reports/score_speed.json.

    python bench/score_speed.py [--model models/transformer] [--sizes 1 4 16] [--articles 145]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_input(path: Path, articles: list[dict], times: int) -> int:
    with path.open("w", encoding="utf-8") as f:
        for k in range(times):
            for a in articles:
                f.write(json.dumps({"id": f"{a['article_id']}#{k}", "date": a["date"], "title": a["title"], "text": a["text"]}) + "\n")
    return len(articles) * times


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def compare(tmp: Path, articles: list[dict], count: int, model: str) -> dict:
    """Score `count` articles with both engines (one command each) and compare the tables."""
    import pyarrow.parquet as pq

    source = tmp / f"compare{count}.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for k in range(count):
            a = articles[k % len(articles)]
            f.write(json.dumps({"id": f"{a['article_id']}#{k}", "date": a["date"], "title": a["title"], "text": a["text"]}) + "\n")
    tables = {}
    for engine in ("local", "spark"):
        out = tmp / f"compare-{engine}"
        timed([sys.executable, "-m", "pipeline.cli", "score", str(source), "--out", str(out), "--engine", engine, "--model", model, "--quiet"])
        key = lambda r: (r["article_id"], r["sentence_index"])  # noqa: E731
        tables[engine] = sorted(pq.read_table(out).to_pylist(), key=key)
    local, spark = tables["local"], tables["spark"]
    labels = len(local) == len(spark) and all((a["sentence"], a["actor"], a["stance"]) == (b["sentence"], b["actor"], b["stance"]) for a, b in zip(local, spark))
    columns = [c for c in local[0] if c.startswith("p_") or c.endswith("_probability")] if local else []
    worst = max((abs(a[c] - b[c]) for a, b in zip(local, spark) for c in columns), default=0.0)
    return {"articles": count, "sentences": len(local), "labels_equal": labels, "max_probability_difference": worst, "same": labels and worst <= 1e-6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/transformer")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16], help="multiples of --articles for Spark's scaling")
    parser.add_argument("--articles", type=int, default=145, help="corpus articles in the 1x input")
    parser.add_argument("--compare-articles", type=int, default=1000,
                        help="also score this many articles with both engines and compare the tables row by row (0: skip)")
    parser.add_argument("--out", default="reports/score_speed.json")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    articles = [json.loads(line) for line in (ROOT / "data" / "corpus" / "articles.jsonl").read_text().splitlines()][: args.articles]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [("local", None, 1), ("spark", "local[1]", 1), ("spark", "local[2]", 1), *(("spark", "local[2]", s) for s in args.sizes if s != 1)]
        for engine, master, size in plan:
            source = Path(tmp) / f"in{size}.jsonl"
            if not source.exists():
                make_input(source, articles, size)
            out = Path(tmp) / f"out-{engine}-{master}-{size}"
            command = [sys.executable, "-m", "pipeline.cli", "score", str(source), "--out", str(out), "--engine", engine, "--model", args.model, "--quiet",
                       *(["--master", master] if master else [])]
            seconds = timed(command)
            sentences = pq.read_table(out).num_rows
            rows.append({"engine": engine, "master": master, "input": f"{size}x", "articles": len(articles) * size, "sentences": sentences,
                         "seconds": seconds, "sentences_per_s": sentences / seconds})
            print(f"{engine:>6} {master or '':>9} {size:>3}x {sentences:>8} sentences {seconds:>8.1f} s {sentences / seconds:>8.1f} sent/s", flush=True)
        comparison = compare(Path(tmp), articles, args.compare_articles, args.model) if args.compare_articles else None
    from pipeline.atomic import write_json

    write_json(args.out, {"runs": rows, "comparison": comparison})
    if comparison:
        print(f"\n{comparison['articles']} articles, {comparison['sentences']} sentences: local and Spark local[2] tables "
              f"{'identical' if comparison['same'] else 'DIFFER'} (labels equal: {comparison['labels_equal']}, "
              f"largest probability difference {comparison['max_probability_difference']:.2e})")
    print(f"\n{'engine':>6} {'master':>9} {'input':>6} {'articles':>9} {'sentences':>10} {'seconds':>8} {'sent/s':>8}")
    for r in rows:
        print(f"{r['engine']:>6} {r['master'] or '':>9} {r['input']:>6} {r['articles']:>9} {r['sentences']:>10} {r['seconds']:>8.1f} {r['sentences_per_s']:>8.1f}")
    print(f"\nwritten to {args.out} (times include each process's start: Spark's JVM and the model load)")


if __name__ == "__main__":
    main()
