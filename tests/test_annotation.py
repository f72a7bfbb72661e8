"""The annotation loop without a server: ingest, export-tasks, import-labels, agreement, prepare."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.annotation import agreement
from pipeline.annotation.batches import BatchError
from pipeline.annotation.imports import LabelImportError
from pipeline.annotation.tasks import labelling_config, select
from pipeline.corpus import CorpusError, load_corpus
from pipeline.labels import ACTORS, STANCES
from pipeline.stages import annotate

from conftest import CONFIGS, CORPUS

HTML = """<html><head><title>Kremlin rejects plan</title>
<meta property="article:published_time" content="2026-03-04T10:00:00Z"></head>
<body><nav>Home | World | Sport</nav><article><h1>Kremlin rejects plan</h1>
<p>The Kremlin rejected the European plan on Tuesday. Peskov said Moscow would not accept foreign troops.</p>
<p>Kyiv welcomed the offer and said it was ready for talks.</p></article>
<footer>Copyright 2026 Example News. All rights reserved.</footer></body></html>"""


def write_inputs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("Trump presses Kyiv\n\nTrump said Ukraine must accept the deal. Zelensky refused to give up land.\n")
    (folder / "b.md").write_text("# EU readies sanctions\nThe EU warned Moscow of new sanctions. Brussels said the package was ready.\n")
    (folder / "c.html").write_text(HTML)
    (folder / "d.jsonl").write_text(
        json.dumps({"id": "x1", "title": "Beijing calls for talks", "date": "2026-02-01", "url": "https://example.org/x1",
                    "text": "China called for a ceasefire. Beijing offered to host a summit."}) + "\n"
        + json.dumps({"text": "Russia vowed to continue the offensive. The Kremlin rejected any truce.", "date": "2026-02-02"}) + "\n"
    )
    return sorted(folder.iterdir())


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
    return digest.hexdigest()


@pytest.fixture()
def batch(tmp_path, trained_models):
    batches, configs = tmp_path / "batches", tmp_path / "task-configs"
    shutil.copytree(CONFIGS, configs)  # export-tasks writes the labelling config there
    annotate.run_ingest(write_inputs(tmp_path / "in"), "news26", batches, configs, "2026-03-01")
    annotate.run_export("news26", batches, configs, "all", None, trained_models)
    return batches / "news26"


def test_ingest_reads_every_kind_with_stable_ids_and_dates(tmp_path):
    files = write_inputs(tmp_path / "in")
    info = annotate.run_ingest(files, "news26", tmp_path / "b1", CONFIGS, "2026-03-01")
    again = annotate.run_ingest(files, "news26", tmp_path / "b2", CONFIGS, "2026-03-01")
    assert info["articles"] == 5 and info["sentences"] >= 10
    first = (tmp_path / "b1" / "news26" / "articles.jsonl").read_text()
    assert first == (tmp_path / "b2" / "news26" / "articles.jsonl").read_text() and again["articles"] == 5
    rows = [json.loads(line) for line in first.splitlines()]
    by_title = {r["title"]: r for r in rows}
    assert by_title["Trump presses Kyiv"]["date"] == "2026-03-01"  # --date for a file without one
    assert by_title["Kremlin rejects plan"]["date"] == "2026-03-04"  # the HTML's own date
    assert "Copyright" not in by_title["Kremlin rejects plan"]["text"] and "Home" not in by_title["Kremlin rejects plan"]["text"]
    assert by_title["Beijing calls for talks"]["url"] == "https://example.org/x1"
    assert all(r["article_id"].startswith("news26-") and len(r["article_id"]) == len("news26-") + 10 for r in rows)
    segments = [json.loads(line) for line in (tmp_path / "b1" / "news26" / "segments.jsonl").read_text().splitlines()]
    texts = {r["article_id"]: r["text"] for r in rows}
    assert all(s["text"] in texts[s["article_id"]] for s in segments)


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", "", r"empty\.txt: empty file"),
    ("title.txt", "Only a title\n", r"title\.txt:1: only a title"),
    ("bad.jsonl", '{"text": "ok."}\n{"title": "x"}\n', r"bad\.jsonl:2: missing field 'text'"),
    ("date.jsonl", '{"text": "ok.", "date": "March 3"}\n', r"date\.jsonl:1: date 'March 3' is not YYYY-MM-DD"),
    ("notes.pdf", "%PDF", r"notes\.pdf: unknown kind of file '\.pdf'"),
    ("type.jsonl", '{"text": 3}\n', r"type\.jsonl:1: field 'text' must be a string"),
])
def test_a_bad_file_is_named_and_nothing_is_written(tmp_path, name, content, message):
    good = write_inputs(tmp_path / "in")
    bad = tmp_path / name
    bad.write_text(content)
    with pytest.raises(CorpusError, match=message):
        annotate.run_ingest([*good, bad], "news26", tmp_path / "batches", CONFIGS, "2026-03-01")
    assert not (tmp_path / "batches" / "news26").exists()


def test_ingest_refuses_undated_articles_bad_names_and_existing_batches(tmp_path):
    files = write_inputs(tmp_path / "in")
    with pytest.raises(CorpusError, match=r"a\.txt: no date"):
        annotate.run_ingest(files, "news26", tmp_path / "batches", CONFIGS, None)
    with pytest.raises(BatchError, match="letters, digits and underscores"):
        annotate.run_ingest(files, "news-26", tmp_path / "batches", CONFIGS, "2026-03-01")
    annotate.run_ingest(files, "news26", tmp_path / "batches", CONFIGS, "2026-03-01")
    with pytest.raises(BatchError, match="already exists"):
        annotate.run_ingest(files, "news26", tmp_path / "batches", CONFIGS, "2026-03-01")


def test_tasks_carry_context_ids_and_the_champions_pre_annotation(batch):
    tasks = json.loads((batch / "tasks" / "tasks.json").read_text())
    segments = [json.loads(line) for line in (batch / "segments.jsonl").read_text().splitlines()]
    assert len(tasks) == len(segments)
    for task in tasks:
        assert {"text", "title", "prev_text", "article_id", "sentence_id"} <= set(task["data"])
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == "local:baseline" and 0.0 <= prediction["score"] <= 1.0
        by_name = {r["from_name"]: r["value"]["choices"][0] for r in prediction["result"]}
        assert by_name["actor"] in ACTORS and by_name["stance"] in STANCES
        assert (by_name["actor"] == "none") == (by_name["stance"] == "none")
    second = [t for t in tasks if t["data"]["prev_text"]][0]
    index = next(i for i, s in enumerate(segments) if s["id"] == second["data"]["sentence_id"])
    assert second["data"]["prev_text"] == segments[index - 1]["text"]
    header = (batch / "tasks" / "tasks.csv").read_text().splitlines()[0]
    assert header.startswith("sentence_id,article_id,title,prev_text,text,predicted_actor,predicted_stance,score,annotator,actor,stance")


def test_the_labelling_config_has_both_choice_groups_and_rule_9():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(labelling_config())
    groups = {c.get("name"): [o.get("value") for o in c.findall("Choice")] for c in root.iter("Choices")}
    assert groups == {"actor": list(ACTORS), "stance": list(STANCES)}
    assert all(c.get("toName") == "sentence" and c.get("choice") == "single-radio" for c in root.iter("Choices"))
    assert any("rule 9" in (h.get("value") or "") for h in root.iter("Header"))
    assert (CONFIGS / "label_studio.xml").read_text() == labelling_config()  # the committed file is the generated one


def test_uncertainty_selection_is_seeded_spread_over_articles_and_least_sure_first():
    rng = np.random.default_rng(0)
    stance = rng.dirichlet(np.ones(4), 40)
    articles = [f"A-{i // 10}" for i in range(40)]
    picked = select(articles, stance, "uncertainty", 8, seed=1)
    assert picked == select(articles, stance, "uncertainty", 8, seed=1)
    assert sorted({articles[i] for i in picked[:4]}) == ["A-0", "A-1", "A-2", "A-3"]  # one per article first
    margin = np.sort(stance, 1)[:, -1] - np.sort(stance, 1)[:, -2]
    first = {a: min((i for i in range(40) if articles[i] == a), key=lambda i: margin[i]) for a in set(articles)}
    assert set(picked[:4]) == set(first.values())
    assert len(select(articles, stance, "random", 5, seed=2)) == 5
    with pytest.raises(ValueError, match="--n must be a positive number"):
        select(articles, stance, "random", None, seed=2)


def label_studio_export(batch: Path, annotators: dict[str, dict[str, tuple[str, str]]], first_id: int = 1) -> list[dict]:
    """A Label Studio JSON export of the batch's tasks, as annotators would leave it."""
    tasks = json.loads((batch / "tasks" / "tasks.json").read_text())
    out = []
    for k, task in enumerate(tasks):
        sid = task["data"]["sentence_id"]
        annotations = []
        for user, (name, labels) in enumerate(annotators.items(), start=1):
            if sid in labels:
                actor, stance = labels[sid]
                annotations.append({"id": 100 * k + user, "completed_by": {"id": user, "email": name}, "was_cancelled": False,
                                    "result": [{"from_name": "actor", "to_name": "sentence", "type": "choices", "value": {"choices": [actor]}},
                                               {"from_name": "stance", "to_name": "sentence", "type": "choices", "value": {"choices": [stance]}}]})
        out.append({"id": first_id + k, "data": task["data"], "annotations": annotations, "predictions": task["predictions"]})
    return out


def two_annotators(batch: Path) -> dict[str, dict[str, tuple[str, str]]]:
    ids = [json.loads(line)["id"] for line in (batch / "segments.jsonl").read_text().splitlines()]
    alice = {sid: ("russia", "steadfast") if i % 3 else ("none", "none") for i, sid in enumerate(ids)}
    bob = dict(alice)
    bob[ids[1]] = ("ukraine", "conciliatory")  # two disagreements
    bob[ids[2]] = ("europe", "deterrent")
    del bob[ids[4]]  # bob skipped one sentence: alice's label stands alone
    return {"alice@example.org": alice, "bob@example.org": bob}


def test_import_writes_passes_and_disagreements_then_resolves(batch, tmp_path):
    people = two_annotators(batch)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export(batch, people)))
    summary = annotate.run_import("news26", batch.parent, [export], None, False)
    assert summary["annotators"] == ["alice@example.org", "bob@example.org"] and summary["disagreements"] == 2
    assert (batch / "passes" / "annotator_alice@example.org.jsonl").exists() and not (batch / "sentences.jsonl").exists()
    disputed = [json.loads(line) for line in (batch / "disagreements.jsonl").read_text().splitlines()]
    assert len(disputed) == 2 and set(disputed[0]["labels"]) == set(people)
    with pytest.raises(LabelImportError, match="annotators disagree"):
        annotate.run_import("news26", batch.parent, [export], "majority", False)  # 2 annotators: no majority
    adjudication = tmp_path / "adjudication.json"
    ids = [d["id"] for d in disputed]
    adjudication.write_text(json.dumps(label_studio_export(batch, {"judge@example.org": {ids[0]: ("ukraine", "conciliatory"), ids[1]: ("none", "none")}})))
    summary = annotate.run_import("news26", batch.parent, [export], str(adjudication), False)
    assert summary["resolved"] == {"adjudicated": 2, "single": 1, "unanimous": len(people["alice@example.org"]) - 3}
    corpus = load_corpus(batch, complete=False)
    assert {s.agreement for s in corpus.sentences} == {"adjudicated", "single", "unanimous"}
    assert {s.id: (s.actor, s.stance) for s in corpus.sentences}[ids[0]] == ("ukraine", "conciliatory")


def test_majority_resolves_with_three_annotators(batch, tmp_path):
    people = two_annotators(batch)
    carol = dict(people["alice@example.org"])
    people["carol@example.org"] = carol
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export(batch, people)))
    summary = annotate.run_import("news26", batch.parent, [export], "majority", False)
    assert summary["resolved"]["majority"] == 2


def test_csv_round_trip(batch, tmp_path):
    import csv

    rows = list(csv.DictReader((batch / "tasks" / "tasks.csv").open()))
    for row in rows:
        row.update(annotator="dana", actor=row["predicted_actor"], stance=row["predicted_stance"])
    path = tmp_path / "filled.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = annotate.run_import("news26", batch.parent, [path], None, False)
    assert summary["annotators"] == ["dana"] and summary["sentences"] == len(rows)


def _damage(kind: str, tasks: list[dict]) -> str:
    """Break a good export in one way; returns the message expected."""
    first = tasks[0]["annotations"][0]
    if kind == "unknown label":
        first["result"][0]["value"]["choices"] = ["rusia"]
        return r"task 1: annotation \d+ \(alice@example.org\): field 'actor': unknown label 'rusia'; allowed: none, russia"
    if kind == "rule 9":
        first["result"][0]["value"]["choices"], first["result"][1]["value"]["choices"] = ["russia"], ["none"]
        return r"task 1: .*fields 'actor'/'stance': actor 'russia' with stance 'none' breaks rule 9"
    if kind == "unknown sentence":
        tasks[0]["data"] = {**tasks[0]["data"], "sentence_id": "news26-0000000000-00"}
        return r"task 1: .*field 'sentence_id': 'news26-0000000000-00' is not a sentence of this batch"
    if kind == "cancelled":
        first["was_cancelled"] = True
        return r"task 1: annotation \d+ \(alice@example.org\): field 'was_cancelled': the annotation was cancelled"
    if kind == "same annotator twice":
        tasks[0]["annotations"].append(json.loads(json.dumps(first)))
        return r"task 1: .*field 'completed_by': the same annotator twice on this task"
    if kind == "text changed":
        tasks[0]["data"] = {**tasks[0]["data"], "text": tasks[0]["data"]["text"] + " (edited)"}
        return r"task 1: .*field 'text': the sentence .* changed since export"
    if kind == "two choices":
        first["result"][1]["value"]["choices"] = ["steadfast", "deterrent"]
        return r"task 1: .*field 'stance': expected exactly one choice, got 2"
    if kind == "no stance":
        first["result"] = first["result"][:1]
        return r"task 1: .*field 'stance': expected exactly one choice, got 0"
    if kind == "no annotator":
        del first["completed_by"]
        return r"task 1: annotation \d+: field 'completed_by': missing"
    if kind == "no sentence id":
        tasks[0]["data"] = {k: v for k, v in tasks[0]["data"].items() if k != "sentence_id"}
        return r"task 1: field 'data.sentence_id': missing"
    if kind == "result not a list":
        first["result"] = {"choices": ["russia"]}
        return r"task 1: .*field 'result': expected a list of results"
    raise AssertionError(kind)


DAMAGES = ["unknown label", "rule 9", "unknown sentence", "cancelled", "same annotator twice", "text changed", "two choices",
           "no stance", "no annotator", "no sentence id", "result not a list"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_malformed_export_is_named_and_leaves_the_batch_untouched(batch, tmp_path, kind):
    tasks = label_studio_export(batch, two_annotators(batch))
    message = _damage(kind, tasks)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    before = tree_digest(batch)
    with pytest.raises(LabelImportError, match=message):
        annotate.run_import("news26", batch.parent, [export], None, False)
    assert tree_digest(batch) == before


@pytest.mark.parametrize("content, message", [
    ("{not json", r"export\.json:1: not valid JSON"),
    ('{"tasks": []}', r"expected a Label Studio JSON export \(a list of tasks\), got dict"),
    ("[]", r"no annotations to import"),
])
def test_an_unreadable_export_is_named(batch, tmp_path, content, message):
    export = tmp_path / "export.json"
    export.write_text(content)
    before = tree_digest(batch)
    with pytest.raises(LabelImportError, match=message):
        annotate.run_import("news26", batch.parent, [export], None, False)
    assert tree_digest(batch) == before


def test_the_same_annotator_in_two_files_and_csv_problems_are_named(batch, tmp_path):
    tasks = label_studio_export(batch, two_annotators(batch))
    for name in ("one.json", "two.json"):
        (tmp_path / name).write_text(json.dumps(tasks))
    with pytest.raises(LabelImportError, match=r"two\.json: task 1: .*alice@example.org already labelled sentence"):
        annotate.run_import("news26", batch.parent, [tmp_path / "one.json", tmp_path / "two.json"], None, False)
    (tmp_path / "bad.csv").write_text("sentence_id,actor\nx,russia\n")
    with pytest.raises(LabelImportError, match=r"bad\.csv:1: missing column\(s\) annotator, stance"):
        annotate.run_import("news26", batch.parent, [tmp_path / "bad.csv"], None, False)


def test_agreement_reproduces_the_corpus_figures():
    from pipeline.metrics import agreement as kappa_of

    corpus = load_corpus(CORPUS)
    report = agreement.compute(corpus.passes)
    ids = sorted(corpus.passes["a"])
    for k, field in enumerate(("actor", "stance")):
        expected = kappa_of([corpus.passes["a"][i][k] for i in ids], [corpus.passes["b"][i][k] for i in ids], field)["kappa"]
        assert report["fields"][field]["pairs"]["a vs b"]["kappa"] == pytest.approx(expected)
        # Two complete raters: nominal alpha and kappa differ only by a small-sample term.
        assert report["fields"][field]["krippendorff_alpha"] == pytest.approx(expected, abs=0.01)
    assert report["sentences"] == 3292


def nominal_alpha(units: list[tuple]) -> float:
    """Krippendorff's nominal alpha from its definition (coincidence matrix), for reference."""
    from collections import Counter
    from itertools import permutations

    coincidences: Counter = Counter()
    for values in units:
        present = [v for v in values if v is not None]
        if len(present) < 2:
            continue
        for a, b in permutations(range(len(present)), 2):
            coincidences[(present[a], present[b])] += 1 / (len(present) - 1)
    n_c: Counter = Counter()
    for (a, _), w in coincidences.items():
        n_c[a] += w
    n = sum(n_c.values())
    observed = sum(w for (a, b), w in coincidences.items() if a != b)
    expected = sum(n_c[a] * n_c[b] for a in n_c for b in n_c if a != b) / (n - 1)
    return 1 - observed / expected


def test_agreement_handles_partial_passes_and_matches_alpha_by_definition():
    # 3 raters, 8 units, one rating missing.
    units = [("1", "1", None), ("2", "2", "2"), ("3", "3", "3"), ("3", "3", "3"), ("2", "2", "2"), ("1", "2", "1"), ("4", "4", "4"), ("1", "1", "2")]
    names = {"1": "none", "2": "conciliatory", "3": "deterrent", "4": "steadfast"}
    passes = {r: {f"u{u}": ("russia" if names[v] != "none" else "none", names[v]) for u, row in enumerate(units) if (v := row[k]) is not None}
              for k, r in enumerate(("x", "y", "z"))}
    report = agreement.compute(passes)
    matrix = agreement.reliability_matrix(passes, "stance", sorted({s for p in passes.values() for s in p}))
    assert np.isnan(matrix).sum() == 1
    assert report["fields"]["stance"]["pairs"]["x vs z"]["sentences"] == 7
    assert report["fields"]["stance"]["krippendorff_alpha"] == pytest.approx(nominal_alpha(units))
    assert report["fields"]["stance"]["per_label"]["steadfast"]["specific_agreement"] == 1.0
    assert "Krippendorff" in agreement.markdown(report, "test")


def test_prepare_adds_an_accepted_batch_to_train_and_changes_the_data_version(batch, tmp_path):
    from pipeline.stages import prepare

    people = two_annotators(batch)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export(batch, people)))
    adjudication = tmp_path / "adjudication.json"
    disputed = [i for i in people["alice@example.org"] if people["bob@example.org"].get(i, people["alice@example.org"][i]) != people["alice@example.org"][i]]
    adjudication.write_text(json.dumps(label_studio_export(batch, {"judge": {i: people["alice@example.org"][i] for i in disputed}})))
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / "prepare.yaml").write_text((configs / "prepare.yaml").read_text().replace("max_articles: null", "max_articles: 8"))
    before = prepare.run(CORPUS, tmp_path / "p0", tmp_path / "r0", configs, batch.parent)
    annotate.run_import("news26", batch.parent, [export], str(adjudication), False)
    after = prepare.run(CORPUS, tmp_path / "p1", tmp_path / "r1", configs, batch.parent)
    assert before["data_version"] == before["corpus_version"] and after["data_version"] != before["data_version"]
    assert after["batches"]["news26"]["sentences"] == len(people["alice@example.org"])
    assert after["splits"]["train"]["sentences"] == before["splits"]["train"]["sentences"] + len(people["alice@example.org"])
    assert after["splits"]["test"] == before["splits"]["test"]
    import pyarrow.parquet as pq

    train = pq.read_table(tmp_path / "p1" / "train.parquet").to_pydict()
    assert sum(a.startswith("news26-") for a in train["article_id"]) > 0
    assert "news26" in (tmp_path / "r1" / "data.md").read_text()


def test_the_cli_names_a_bad_file_and_exits_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "bad.jsonl").write_text('{"title": "no text"}\n')
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", str(tmp_path / "bad.jsonl"), "--name", "b1",
                           "--batches", str(tmp_path / "batches"), "--date", "2026-01-01"], capture_output=True, text=True)
    assert done.returncode == 2 and "bad.jsonl:1: missing field 'text'" in done.stderr and not (tmp_path / "batches" / "b1").exists()
