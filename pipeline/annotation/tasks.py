"""A batch's sentences -> Label Studio tasks, pre-annotated by the champion model.

Each task's `data` holds what an annotator reads (the sentence, its article's title,
the sentence before it) and the ids that bring the label home (`sentence_id`,
`article_id`). Its `predictions` hold the champion's actor and stance as two
choice results, with the model's probability as `score` and its registered
version as `model_version`, so annotators start from the model's guess.

Selection (`select`):
  all          every sentence of the batch, in order
  random       `n` sentences drawn with `seed`
  uncertainty  the `n` sentences the model is least sure of (smallest margin between
               its two likeliest stances, or highest stance entropy), taken from the
               articles in turn, so one confusing article cannot fill the sample
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from pipeline import atomic
from pipeline.annotation.batches import TASKS_DIR, articles, segments, update_info
from pipeline.labels import ACTORS, STANCES

SELECTIONS = ("uncertainty", "random", "all")
UNCERTAINTY = ("margin", "entropy")
TASKS_FILE = "tasks.json"
CSV_FILE = "tasks.csv"
# The names the labelling config gives its parts; imports read results by them.
SENTENCE, ACTOR, STANCE = "sentence", "actor", "stance"
CSV_COLUMNS = ("sentence_id", "article_id", "title", "prev_text", "text", "predicted_actor", "predicted_stance", "score", "annotator", "actor", "stance")
RULE_9 = "Actor is none exactly when stance is none (codebook rule 9): pick both or neither."


def labelling_config() -> str:
    """The Label Studio labelling config: the sentence with its context and two
    single-choice groups holding exactly the codebook's labels (from pipeline.labels)."""

    def choices(name: str, labels: Sequence[str]) -> str:
        options = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
        return f'  <Header value="{name.capitalize()}"/>\n  <Choices name="{name}" toName="{SENTENCE}" choice="single-radio" required="true" showInline="true">\n{options}\n  </Choices>'

    return "\n".join([
        "<View>",
        '  <Header value="$title" size="5"/>',
        '  <Text name="previous" value="$prev_text" granularity="symbol"/>',
        f'  <Text name="{SENTENCE}" value="$text" granularity="word"/>',
        choices(ACTOR, ACTORS),
        choices(STANCE, STANCES),
        f"  <Header value={quoteattr(RULE_9)} size=\"6\"/>",
        "</View>",
        "",
    ])


def instructions() -> str:
    """The project's instructions for annotators (HTML), rule 9 first."""
    return (
        f"<p><b>{escape(RULE_9)}</b></p><p>Label the sentence as it stands, read with its title and the sentence before it "
        "(to resolve &quot;he&quot; or &quot;Moscow&quot;). Actor: whose stance it is, not whom it targets. Stance: conciliatory "
        "(moves toward the other side), deterrent (threatens or imposes costs), steadfast (holds its line), none. "
        "The full codebook: data/corpus/CODEBOOK.md.</p>"
    )


def _margin(stance: np.ndarray) -> np.ndarray:
    top = np.sort(stance, axis=1)
    return top[:, -1] - top[:, -2]


def _entropy(stance: np.ndarray) -> np.ndarray:
    p = np.clip(stance, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def select(article_ids: Sequence[str], stance: np.ndarray, how: str, n: int | None, seed: int, uncertainty: str = "margin") -> list[int]:
    """Indices of the sentences to label (see the module docstring), in the order chosen."""
    if how not in SELECTIONS:
        raise ValueError(f"unknown selection {how!r}; choose one of: {', '.join(SELECTIONS)}")
    total = len(article_ids)
    if how == "all":
        return list(range(total))
    if n is None or n < 1:
        raise ValueError(f"--n must be a positive number of sentences for --select {how}, got {n}")
    rng = np.random.default_rng(seed)
    if how == "random":
        return sorted(rng.permutation(total)[: min(n, total)].tolist())
    if uncertainty not in UNCERTAINTY:
        raise ValueError(f"unknown uncertainty {uncertainty!r}; choose one of: {', '.join(UNCERTAINTY)}")
    # Most uncertain first; a seeded random key breaks ties.
    doubt = -_margin(stance) if uncertainty == "margin" else _entropy(stance)
    order = np.lexsort((rng.random(total), -doubt))
    queues: dict[str, list[int]] = {}
    for i in order:
        queues.setdefault(article_ids[i], []).append(int(i))
    picked: list[int] = []
    # Round-robin over articles, the article whose best candidate is most uncertain first.
    while len(picked) < min(n, total):
        for article in [a for a in queues if queues[a]]:
            picked.append(queues[article].pop(0))
            if len(picked) == min(n, total):
                break
    return picked


def _result(name: str, label: str, score: float) -> dict[str, Any]:
    return {"from_name": name, "to_name": SENTENCE, "type": "choices", "value": {"choices": [label]}, "score": round(float(score), 6)}


def build_tasks(batch: Path, predictor: Any, how: str, n: int | None, seed: int, uncertainty: str, model_version: str) -> list[dict[str, Any]]:
    """Label Studio tasks for the selected sentences of `batch`, with pre-annotations."""
    rows = sorted(segments(batch).values(), key=lambda r: (r["article_id"], r["position"]))
    by_article = articles(batch)
    previous = [rows[k - 1]["text"] if k and rows[k - 1]["article_id"] == r["article_id"] else "" for k, r in enumerate(rows)]
    titles = [by_article[r["article_id"]]["title"] for r in rows]
    results = predictor.predict_segmented([r["text"] for r in rows], previous, titles)
    stance = np.array([[r.stance_probabilities[s] for s in STANCES] for r in results])
    chosen = select([r["article_id"] for r in rows], stance, how, n, seed, uncertainty)
    tasks = []
    for i in chosen:
        r, p = rows[i], results[i]
        tasks.append({
            "data": {"text": r["text"], "title": titles[i], "prev_text": previous[i], "article_id": r["article_id"], "sentence_id": r["id"],
                     "date": by_article[r["article_id"]]["date"]},
            "predictions": [{"model_version": model_version, "score": round(float(p.stance_probability), 6),
                             "result": [_result(ACTOR, p.actor, p.actor_probability), _result(STANCE, p.stance, p.stance_probability)]}],
        })
    return tasks


def tasks_csv(tasks: Sequence[dict[str, Any]]) -> str:
    """The tasks as a spreadsheet: one row per sentence, blank annotator/actor/stance to fill in."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for task in tasks:
        data, prediction = task["data"], task["predictions"][0]
        guess = {r["from_name"]: r["value"]["choices"][0] for r in prediction["result"]}
        writer.writerow({"sentence_id": data["sentence_id"], "article_id": data["article_id"], "title": data["title"],
                         "prev_text": data["prev_text"], "text": data["text"], "predicted_actor": guess[ACTOR],
                         "predicted_stance": guess[STANCE], "score": prediction["score"], "annotator": "", "actor": "", "stance": ""})
    return buffer.getvalue()


def export_tasks(batch: Path, predictor: Any, how: str, n: int | None, seed: int, uncertainty: str, model_version: str, config_path: Path) -> dict[str, Any]:
    """Write tasks.json and tasks.csv into the batch's tasks/ and the labelling config to `config_path`."""
    tasks = build_tasks(batch, predictor, how, n, seed, uncertainty, model_version)
    atomic.write_text(batch / TASKS_DIR / TASKS_FILE, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    atomic.write_text(batch / TASKS_DIR / CSV_FILE, tasks_csv(tasks))
    atomic.write_text(config_path, labelling_config())
    update_info(batch, exported={"tasks": len(tasks), "select": how, "n": n, "seed": seed, "model_version": model_version})
    return {"tasks": len(tasks), "json": str(batch / TASKS_DIR / TASKS_FILE), "csv": str(batch / TASKS_DIR / CSV_FILE), "config": str(config_path)}

