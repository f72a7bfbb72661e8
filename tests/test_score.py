"""`stance score`: the local engine (fast) and Spark in local mode (slow), the same answers as predict()."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, free_port, running_server, sh
from pipeline.scoring.inputs import ScoreInputError
from pipeline.scoring.local import score_local
from pipeline.stages import score

JAVA = shutil.which("java")


def corpus_articles(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (CORPUS / "articles.jsonl").read_text().splitlines()[:n]]
    return [{"id": a["article_id"], "date": a["date"], "title": a["title"], "text": a["text"], "outlet": f"outlet{k % 3}"} for k, a in enumerate(rows)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_output(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: (r["article_id"], r["sentence_index"]))


def shipped_predictor(model_dir: Path):
    """A Predictor for `model_dir` with the shipped predict and segment settings."""
    from pipeline.config import PredictConfig, SegmentConfig, load_config
    from pipeline.predictor import Predictor

    from conftest import CONFIGS

    settings = load_config(CONFIGS / "predict.yaml", PredictConfig)
    return Predictor.from_model_dir(model_dir, load_config(CONFIGS / "segment.yaml", SegmentConfig), settings.batch_size,
                                    runtime=settings.transformer_runtime, calibrated=settings.calibrated)


def predicted(model_dir: Path, articles: list[dict]) -> list[dict]:
    """What predict() gives for the same articles, keyed like the scorer's rows."""
    results = shipped_predictor(model_dir).predict([{"text": a["text"], "title": a["title"]} for a in articles])
    return sorted(({"article_id": articles[r.item]["id"], **r.to_dict()} for r in results), key=lambda r: (r["article_id"], r["sentence_index"]))


def assert_same_answers(rows: list[dict], expected: list[dict]) -> None:
    assert [(r["article_id"], r["sentence_index"], r["sentence"], r["actor"], r["stance"]) for r in rows] == \
        [(e["article_id"], e["sentence_index"], e["sentence"], e["actor"], e["stance"]) for e in expected]
    for r, e in zip(rows, expected):
        for label, p in e["stance_probabilities"].items():
            assert abs(r[f"p_stance_{label}"] - p) <= 1e-6
        for label, p in e["actor_probabilities"].items():
            assert abs(r[f"p_actor_{label}"] - p) <= 1e-6


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_the_local_engine_scores_every_sentence_like_predict(trained_models, tmp_path, kind):
    articles = corpus_articles(7)
    source = (write_jsonl if kind == "jsonl" else write_parquet)(tmp_path / f"in.{kind}", articles)
    summary = score.run(source, tmp_path / "out", Path("configs"), "local", str(trained_models / "transformer"), None, progress=False)
    rows = read_output(tmp_path / "out")
    assert summary["articles"] == 7 and summary["sentences"] == len(rows)
    assert_same_answers(rows, predicted(trained_models / "transformer", articles))
    assert {r["outlet"] for r in rows} == {"outlet0", "outlet1", "outlet2"}  # other columns are carried through
    dates = {a["id"]: a["date"] for a in articles}
    assert all(r["date"] == dates[r["article_id"]] and r["model"] == "transformer" for r in rows)
    assert not list(tmp_path.glob(".out.partial"))


class FailsOnce:
    """A predictor that breaks on its second part, as a killed run would stop."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.calls, self.fail_at = inner, 0, fail_at

    def predict_iter(self, items):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("interrupted")
        return self.inner.predict_iter(items)


def test_an_interrupted_run_leaves_no_output_and_resumes(trained_models, tmp_path):
    from pipeline.scoring.spark import load_predictor

    source = write_jsonl(tmp_path / "in.jsonl", corpus_articles(9))
    predictor = load_predictor(str(trained_models / "baseline"), None, "configs")
    with pytest.raises(KeyboardInterrupt):
        score_local(source, tmp_path / "out", FailsOnce(predictor, fail_at=2), "baseline", None, part_articles=3, progress=False)
    assert not (tmp_path / "out").exists() and len(list((tmp_path / ".out.partial").glob("part-*.parquet"))) == 1
    summary = score_local(source, tmp_path / "out", predictor, "baseline", None, part_articles=3, progress=False)
    assert summary["resumed_parts"] == 1 and summary["parts"] == 3
    score_local(source, tmp_path / "clean", predictor, "baseline", None, part_articles=3, progress=False)
    assert read_output(tmp_path / "out") == read_output(tmp_path / "clean")
    # Another part size (or input, or model) never reuses old parts.
    with pytest.raises(KeyboardInterrupt):
        score_local(source, tmp_path / "again", FailsOnce(predictor, fail_at=2), "baseline", None, part_articles=3, progress=False)
    assert score_local(source, tmp_path / "again", predictor, "baseline", None, part_articles=4, progress=False)["resumed_parts"] == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: write_jsonl(p / "a.jsonl", [{"id": "x", "body": "no text"}]), r"a\.jsonl:1: no 'text'"),
    (lambda p: write_jsonl(p / "a.jsonl", [{"id": "x", "text": "ok."}, {"id": "y", "text": 5}]), r"a\.jsonl:2: column 'text' must be a string, got int"),
    (lambda p: write_parquet(p / "a.parquet", [{"id": "x", "body": "no text"}]), r"a\.parquet: no column 'text'; the columns are id, body"),
    (lambda p: write_parquet(p / "a.parquet", [{"id": "x", "text": 3}]), r"a\.parquet: column 'text' must hold strings, it holds int64"),
    (lambda p: write_parquet(p / "a.parquet", [{"id": "x", "text": "ok."}, {"id": "y", "text": None}]), r"a\.parquet: row 1: no 'text' \(null\)"),
    (lambda p: (p / "a.parquet").write_bytes(b"not parquet") and p / "a.parquet", r"a\.parquet: not a readable Parquet file"),
    (lambda p: p / "missing.jsonl", r"missing\.jsonl: no such file"),
])
def test_bad_input_is_named_and_nothing_is_written(trained_models, tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(ScoreInputError, match=message):
        score.run(source, tmp_path / "out", Path("configs"), "local", str(trained_models / "baseline"), None, progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_the_cli_names_bad_input_with_exit_status_2(trained_models, tmp_path):
    source = write_jsonl(tmp_path / "a.jsonl", [{"id": "x"}])
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "score", str(source), "--out", str(tmp_path / "out"),
                           "--model", str(trained_models / "baseline")], capture_output=True, text=True)
    assert done.returncode == 2 and "a.jsonl:1: no 'text'" in done.stderr


spark_only = pytest.mark.skipif(JAVA is None, reason="no Java found (Spark 4 needs Java 17+: apt-get install openjdk-17-jre-headless)")


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is an optional extra: pip install 'stance[spark]'")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers' Python: this one, with the pipeline
    session = (SparkSession.builder.master("local[2]").appName("stance tests")
               .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "4").getOrCreate())
    yield session
    session.stop()


@pytest.mark.slow
@spark_only
def test_spark_gives_the_local_engines_rows_and_loads_the_model_once_per_worker(spark, project, tmp_path):
    from pipeline.scoring.spark import LOAD_NOTE

    root, env = project
    articles = corpus_articles(24)
    write_parquet(tmp_path / "in.parquet", articles)
    spark.read.parquet(str(tmp_path / "in.parquet")).repartition(8).write.parquet(str(tmp_path / "in8.parquet"))  # 8 partitions
    set_arrow_batch = tmp_path / "configs"
    shutil.copytree(root / "configs", set_arrow_batch)
    score_yaml = set_arrow_batch / "score.yaml"
    score_yaml.write_text(score_yaml.read_text().replace("arrow_batch_size: 64", "arrow_batch_size: 2"))  # many batches per partition
    done = sh(["stance", "score", str(tmp_path / "in8.parquet"), "--out", str(tmp_path / "spark_out"), "--engine", "spark", "--master", "local[2]",
               "--model", str(root / "models" / "transformer"), "--configs", str(set_arrow_batch), "--quiet"], root, env)
    rows = read_output(tmp_path / "spark_out")
    assert {r["article_id"] for r in rows} == {a["id"] for a in articles}
    loads = [line.rsplit(" ", 1)[-1] for line in (done.stdout + done.stderr).splitlines() if LOAD_NOTE in line]
    # One load per Python worker: never per batch (dozens) or per partition (8).
    assert 1 <= len(loads) < 8 and len(loads) == len(set(loads)), loads
    assert_same_answers(rows, predicted(root / "models" / "transformer", articles))
    assert (tmp_path / "spark_out" / "_SUCCESS").exists()


@pytest.mark.slow
@spark_only
def test_every_path_gives_the_same_answers(spark, project, tmp_path):
    """stance score (both engines, the model from the MLflow registry), predict() and the REST server."""
    import urllib.request

    root, env = project
    articles = corpus_articles(5)
    source = write_jsonl(tmp_path / "in.jsonl", articles)
    # Brackets in the output's name: Spark reads paths as globs, the scorer must not.
    for engine in ("local", "spark"):
        sh(["stance", "score", str(source), "--out", str(tmp_path / f"{engine}[1]"), "--engine", engine, "--quiet"], root, env)
    local, on_spark = read_output(tmp_path / "local[1]"), read_output(tmp_path / "spark[1]")
    # The registry's champion, not models/champion.json: the alias moves only when a model
    # beats the one it holds, so after a weaker rerun (an earlier `dvc exp run`) they differ.
    expected = predicted(registered_model_dir(env, "models:/stance@champion", tmp_path / "registry"), articles)
    assert_same_answers(local, expected)
    assert_same_answers(on_spark, expected)
    assert {r["model_version"] for r in local} == {f"stance:{_alias_version(env)}"}
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/stance@champion", "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, root, env, "/ping", port, timeout_s=120) as base:
        payload = {"dataframe_split": {"columns": ["text", "title"], "data": [[a["text"], a["title"]] for a in articles]}}
        request = urllib.request.Request(f"{base}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            served = json.loads(reply.read())["predictions"]
    served = sorted(({**r, "article_id": articles[r["item"]]["id"]} for r in served), key=lambda r: (r["article_id"], r["sentence_index"]))
    assert_same_answers(served, expected)


def registered_model_dir(env: dict, model_uri: str, dest: Path) -> Path:
    """The saved model directory inside the pyfunc model at `model_uri`, downloaded to `dest`."""
    import mlflow

    from pipeline.predictor import META_FILE

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dest)))
    (meta,) = (local / "artifacts").rglob(META_FILE)
    return meta.parent


def _alias_version(env: dict) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    return MlflowClient().get_model_version_by_alias("stance", "champion").version


@pytest.mark.slow
@spark_only
def test_spark_udf_on_one_sentence_per_row(spark, project, tmp_path):
    """mlflow.pyfunc.spark_udf with split_sentences=False; the struct expanded by select("pred.*")."""
    import mlflow

    from pipeline.scoring.spark import sentence_udf

    root, env = project
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    sentences = ["Moscow rejected the plan. It said no.", "Kyiv wants talks.", "Europe agreed."]
    frame = spark.createDataFrame([(t,) for t in sentences], "text string")
    udf = sentence_udf(spark, "models:/stance@champion", "actor string, stance string, stance_probability double")
    rows = frame.withColumn("pred", udf("text")).select("text", "pred.*").collect()
    assert [r["text"] for r in rows] == sentences  # one row per row: the first is not split
    champion_dir = registered_model_dir(env, "models:/stance@champion", tmp_path / "registry")
    expected = predicted(champion_dir, [{"id": str(k), "text": t, "title": None} for k, t in enumerate(sentences)])
    direct = shipped_predictor(champion_dir).predict(sentences, split_sentences=False)
    assert [(r["actor"], r["stance"]) for r in rows] == [(d.actor, d.stance) for d in direct]
    assert all(abs(r["stance_probability"] - d.stance_probability) <= 1e-6 for r, d in zip(rows, direct))
    assert len(expected) > len(sentences)  # predict() with splitting would have given more rows
