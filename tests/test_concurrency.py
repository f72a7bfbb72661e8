"""predict() from many threads at once, and the served model under many concurrent requests."""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import CONFIGS, CORPUS, free_port, listening_addresses, running_server

RUNTIMES = [("baseline", "torch"), ("transformer", "torch"), ("transformer", "torch_int8"), ("transformer", "torch_bf16"), ("transformer", "onnx")]


def texts(n: int) -> list[str]:
    articles = [json.loads(line)["text"] for line in (CORPUS / "articles.jsonl").read_text().splitlines()[:n]]
    return articles + ["Kyiv refused.", "", "Moscow warned Washington. Brussels agreed to talks."]


def answers(results) -> list[tuple]:
    return [(r.item, r.sentence_index, r.sentence, r.actor, r.stance, tuple(r.actor_probabilities.values()), tuple(r.stance_probabilities.values()))
            for r in results]


@pytest.mark.parametrize("name, runtime", RUNTIMES, ids=[f"{n}-{r}" for n, r in RUNTIMES])
def test_eight_threads_get_exactly_the_sequential_results(trained_models, name, runtime):
    from pipeline.config import SegmentConfig, load_config
    from pipeline.predictor import Predictor

    predictor = Predictor.from_model_dir(trained_models / name, load_config(CONFIGS / "segment.yaml", SegmentConfig), 16, runtime=runtime,
                                         baseline_word_cache=200)
    inputs = [texts(4)[k:] + texts(4)[:k] for k in range(8)]  # each thread its own order of the same texts
    expected = [answers(predictor.predict(items)) for items in inputs]
    barrier = threading.Barrier(8)
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                got.setdefault(k, []).append(answers(predictor.predict(inputs[k])))
        except BaseException as err:  # noqa: BLE001 - reported below with its thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for k in range(8):
        assert got[k] == [expected[k]] * 3, f"thread {k}"


@pytest.mark.slow
def test_the_served_model_answers_200_concurrent_requests(project):
    """`mlflow models serve` on 127.0.0.1: every one of 200 concurrent requests answered, and correctly."""
    import urllib.request

    from pipeline import predict

    root, env = project
    samples = [t for t in texts(10) if t.strip()]
    expected = {k: [(r.sentence, r.actor, r.stance) for r in predict(text, models_dir=root / "models")] for k, text in enumerate(samples)}
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/stance@champion", "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, root, env, "/ping", port, timeout_s=120) as base:
        assert listening_addresses(port) == {"127.0.0.1"}

        def ask(k: int) -> tuple[int, list, float]:
            text = samples[k % len(samples)]
            body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[text]]}}).encode()
            request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=120) as reply:
                rows = json.loads(reply.read())["predictions"]
            return k, [(r["sentence"], r["actor"], r["stance"]) for r in rows], time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            replies = list(pool.map(ask, range(200)))
        elapsed = time.perf_counter() - started
    assert len(replies) == 200 and elapsed < 600
    for k, rows, _ in replies:
        assert rows == expected[k % len(samples)], k
