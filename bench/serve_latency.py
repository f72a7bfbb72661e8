"""Latency of the served model under concurrent requests.

Starts `stance serve` (MLflow's scoring server for models:/stance@champion) on
127.0.0.1, sends `requests` one-sentence requests from `concurrency` threads, and
reports p50 / p95 / max latency, throughput and failures. Prints a table, writes
reports/serve_latency.json.

    python bench/serve_latency.py [--requests 200] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the model server exited before answering")
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"the model server did not answer within {timeout_s} s")


def run(base: str, sentences: list[str], requests: int, concurrency: int) -> dict:
    def ask(k: int) -> tuple[float, bool]:
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[sentences[k % len(sentences)]]]}}).encode()
        request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                ok = reply.status == 200 and len(json.loads(reply.read())["predictions"]) >= 1
        except OSError:
            ok = False
        return (time.perf_counter() - started) * 1000.0, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(ask, range(requests)))
    elapsed = time.perf_counter() - started
    latencies = np.array([ms for ms, _ in results])
    return {"concurrency": concurrency, "requests": requests, "failures": sum(not ok for _, ok in results),
            "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)), "max_ms": float(latencies.max()),
            "requests_per_s": requests / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--model", default="models:/stance@champion")
    parser.add_argument("--out", default="reports/serve_latency.json")
    args = parser.parse_args()
    sentences = [json.loads(line)["text"] for line in (ROOT / "data" / "corpus" / "sentences.jsonl").read_text().splitlines()[:500]]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--model", args.model, "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, 180)
        run(base, sentences, 10, 1)  # warm-up
        rows = [run(base, sentences, args.requests, c) for c in args.concurrency]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    from pipeline.atomic import write_json

    write_json(args.out, rows)
    print(f"{'concurrency':>11} {'requests':>8} {'failures':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'req/s':>7}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['failures']:>8} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['requests_per_s']:>7.1f}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
