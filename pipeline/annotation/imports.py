"""Label Studio exports (or the tasks CSV) -> annotator passes, disagreements, gold labels.

`read_export` checks every annotation of a Label Studio JSON export (or a filled-in
tasks.csv) against the batch it came from: a known sentence id, the sentence text
unchanged since export, one choice from the codebook's labels for each of actor and
stance, rule 9, no cancelled (skipped) annotation, no annotator twice on a sentence.
Every problem is collected and reported together, each naming the file, the task
(or CSV line), the annotation and the field; then nothing is written.

`import_labels` writes one pass per annotator and the sentences they disagree on.
With `resolve` it also writes the gold labels (sentences.jsonl, the corpus's format):
unanimous sentences as they are, a sentence labelled by one annotator as `single`,
disputed ones from an adjudication export (`adjudicated`) or, where three or more
annotators labelled them, by strict majority (`majority`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline import atomic
from pipeline.annotation.batches import DISAGREEMENTS_FILE, PASSES_DIR, read_info, segments, write_jsonl, BATCH_FILE
from pipeline.annotation.tasks import ACTOR, STANCE
from pipeline.corpus import SENTENCES_FILE
from pipeline.labels import FIELDS, NONE

MAJORITY = "majority"
# How many problems an error message lists before "and N more".
SHOWN_PROBLEMS = 20
PASS_PREFIX = "annotator_"


class LabelImportError(ValueError):
    """One or more annotations cannot be imported; the message lists each, located."""

    def __init__(self, problems: Sequence[str]) -> None:
        shown = list(problems[:SHOWN_PROBLEMS])
        more = len(problems) - len(shown)
        super().__init__(f"{len(problems)} problem(s), nothing written:\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))
        self.problems = list(problems)


@dataclass(frozen=True)
class Annotation:
    """One annotator's labels for one sentence, and where they came from."""

    sentence_id: str
    annotator: str
    actor: str
    stance: str
    where: str


def annotator_name(completed_by: Any) -> str | None:
    """A file-safe annotator name from Label Studio's `completed_by` (a user id, or a user object)."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("username") or completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by in (None, ""):
        return None
    text = str(completed_by)
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", f"user{text}" if isinstance(completed_by, int) else text)


def _check(annotation: Annotation, known: dict[str, dict[str, Any]], text: str | None, problems: list[str]) -> bool:
    """Append the problems of one annotation; True when it is importable."""
    before = len(problems)
    if annotation.sentence_id not in known:
        problems.append(f"{annotation.where}: field 'sentence_id': {annotation.sentence_id!r} is not a sentence of this batch")
        return False
    if text is not None and text != known[annotation.sentence_id]["text"]:
        problems.append(f"{annotation.where}: field 'text': the sentence {annotation.sentence_id!r} changed since export "
                        f"(now {known[annotation.sentence_id]['text'][:60]!r}); export the tasks again")
    for field, value in ((ACTOR, annotation.actor), (STANCE, annotation.stance)):
        if value not in FIELDS[field]:
            problems.append(f"{annotation.where}: field {field!r}: unknown label {value!r}; allowed: {', '.join(FIELDS[field])}")
    if annotation.actor in FIELDS[ACTOR] and annotation.stance in FIELDS[STANCE] and (annotation.actor == NONE) != (annotation.stance == NONE):
        problems.append(f"{annotation.where}: fields 'actor'/'stance': actor {annotation.actor!r} with stance {annotation.stance!r} "
                        "breaks rule 9 (actor is none exactly when stance is none)")
    return len(problems) == before


def _choices(result: Any, where: str, problems: list[str]) -> dict[str, str]:
    """The single choice of each of actor and stance in a Label Studio `result` list."""
    if not isinstance(result, list):
        problems.append(f"{where}: field 'result': expected a list of results, got {type(result).__name__}")
        return {}
    found: dict[str, list[str]] = {}
    for item in result:
        if not isinstance(item, dict) or item.get("type") != "choices":
            continue
        name = item.get("from_name")
        values = item.get("value", {}).get("choices") if isinstance(item.get("value"), dict) else None
        if name not in (ACTOR, STANCE):
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{where}: field {name!r}: expected value.choices to be a list of labels, got {values!r}")
            continue
        found.setdefault(name, []).extend(values)
    out = {}
    for name in (ACTOR, STANCE):
        values = found.get(name, [])
        if len(values) != 1:
            problems.append(f"{where}: field {name!r}: expected exactly one choice, got {len(values)} ({', '.join(values) or 'none'})")
        else:
            out[name] = values[0]
    return out


def read_label_studio(path: Path, known: dict[str, dict[str, Any]], problems: list[str], ignore_cancelled: bool) -> list[Annotation]:
    """The annotations of a Label Studio JSON export, checked (problems appended)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{path}: cannot be read ({err})")
        return []
    except json.JSONDecodeError as err:
        problems.append(f"{path}:{err.lineno}: not valid JSON ({err.msg})")
        return []
    if not isinstance(tasks, list):
        problems.append(f"{path}: expected a Label Studio JSON export (a list of tasks), got {type(tasks).__name__}")
        return []
    out = []
    for k, task in enumerate(tasks):
        task_id = task.get("id", f"#{k}") if isinstance(task, dict) else f"#{k}"
        where = f"{path}: task {task_id}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(f"{where}: field 'data': missing; not a Label Studio task")
            continue
        sentence_id, text = task["data"].get("sentence_id"), task["data"].get("text")
        if not isinstance(sentence_id, str):
            problems.append(f"{where}: field 'data.sentence_id': missing; export tasks made by `stance export-tasks`")
            continue
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            problems.append(f"{where}: field 'annotations': expected a list, got {type(annotations).__name__}")
            continue
        seen: dict[str, int] = {}
        for j, annotation in enumerate(annotations):
            a_where = f"{where}: annotation {annotation.get('id', j) if isinstance(annotation, dict) else j}"
            if not isinstance(annotation, dict):
                problems.append(f"{a_where}: expected an object")
                continue
            name = annotator_name(annotation.get("completed_by"))
            if name is None:
                problems.append(f"{a_where}: field 'completed_by': missing, so the annotator is unknown")
                continue
            a_where += f" ({name})"
            if annotation.get("was_cancelled"):
                if not ignore_cancelled:
                    problems.append(f"{a_where}: field 'was_cancelled': the annotation was cancelled (skipped); "
                                    "delete it in Label Studio or pass --ignore-cancelled")
                continue
            if name in seen:
                problems.append(f"{a_where}: field 'completed_by': the same annotator twice on this task (also annotation {seen[name]})")
                continue
            seen[name] = annotation.get("id", j)
            chosen = _choices(annotation.get("result"), a_where, problems)
            if len(chosen) == 2:
                item = Annotation(sentence_id, name, chosen[ACTOR], chosen[STANCE], a_where)
                if _check(item, known, text if isinstance(text, str) else None, problems):
                    out.append(item)
    return out


def read_csv(path: Path, known: dict[str, dict[str, Any]], problems: list[str], ignore_cancelled: bool = False) -> list[Annotation]:
    """The filled-in rows of tasks.csv (columns sentence_id, annotator, actor, stance;
    text when present is checked). Rows with neither actor nor stance are not yet labelled."""
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
        header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        problems.append(f"{path}: cannot be read as CSV ({err})")
        return []
    missing = [c for c in ("sentence_id", "annotator", ACTOR, STANCE) if c not in header]
    if missing:
        problems.append(f"{path}:1: missing column(s) {', '.join(missing)}; the header is {', '.join(header) or '(empty)'}")
        return []
    out = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        actor, stance = (row.get(ACTOR) or "").strip(), (row.get(STANCE) or "").strip()
        if not actor and not stance:
            continue
        annotator = (row.get("annotator") or "").strip()
        if not annotator:
            problems.append(f"{where}: field 'annotator': empty, so the annotator is unknown")
            continue
        item = Annotation((row.get("sentence_id") or "").strip(), re.sub(r"[^A-Za-z0-9_.@-]", "_", annotator), actor, stance, f"{where} ({annotator})")
        if _check(item, known, row.get("text") if "text" in header else None, problems):
            out.append(item)
    return out


def read_exports(paths: Sequence[Path], known: dict[str, dict[str, Any]], ignore_cancelled: bool = False) -> list[Annotation]:
    """Every annotation of `paths` (Label Studio JSON, or .csv), all checked together.

    Raises LabelImportError listing every problem, including one annotator labelling
    the same sentence twice across files.
    """
    problems: list[str] = []
    annotations: list[Annotation] = []
    for path in map(Path, paths):
        if not path.is_file():
            problems.append(f"{path}: no such file")
            continue
        reader = read_csv if path.suffix.lower() == ".csv" else read_label_studio
        annotations.extend(reader(path, known, problems, ignore_cancelled))
    first: dict[tuple[str, str], str] = {}
    for a in annotations:
        key = (a.sentence_id, a.annotator)
        if key in first:
            problems.append(f"{a.where}: field 'completed_by': {a.annotator} already labelled sentence {a.sentence_id!r} ({first[key]})")
        first.setdefault(key, a.where)
    if problems:
        raise LabelImportError(problems)
    if not annotations:
        raise LabelImportError([f"{', '.join(map(str, paths))}: no annotations to import"])
    return annotations


def _by_sentence(annotations: Sequence[Annotation]) -> dict[str, dict[str, tuple[str, str]]]:
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for a in annotations:
        out.setdefault(a.sentence_id, {})[a.annotator] = (a.actor, a.stance)
    return out


def resolve(labels: dict[str, dict[str, tuple[str, str]]], how: str | None, adjudication: Sequence[Annotation]) -> dict[str, tuple[str, str, str]]:
    """Gold (actor, stance, agreement) for every labelled sentence, or LabelImportError
    listing the disputed sentences that `how` leaves unresolved."""
    decided = {a.sentence_id: (a.actor, a.stance) for a in adjudication}
    gold, problems = {}, []
    for sid, by_annotator in sorted(labels.items()):
        pairs = list(by_annotator.values())
        if sid in decided:
            gold[sid] = (*decided[sid], "adjudicated")
        elif len(set(pairs)) == 1:
            gold[sid] = (*pairs[0], "unanimous" if len(pairs) > 1 else "single")
        elif how == MAJORITY:
            (top, count), *rest = Counter(pairs).most_common()
            if len(pairs) < 3:
                problems.append(f"sentence {sid!r}: {len(pairs)} annotators disagree; a majority needs 3 or more (adjudicate it instead)")
            elif count * 2 <= len(pairs):
                problems.append(f"sentence {sid!r}: no strict majority among {len(pairs)} annotators ({dict(Counter(pairs))})")
            else:
                gold[sid] = (*top, MAJORITY)
        else:
            problems.append(f"sentence {sid!r}: annotators disagree ({', '.join(f'{n}: {a}/{s}' for n, (a, s) in sorted(by_annotator.items()))}) "
                            "and the adjudication does not decide it")
    if problems:
        raise LabelImportError(problems)
    return gold


def import_labels(batch: Path, exports: Sequence[Path], resolve_with: str | None = None, ignore_cancelled: bool = False) -> dict[str, Any]:
    """Read `exports` into `batch`: passes, disagreements and, with `resolve_with`
    (an adjudication export, or "majority"), the gold labels. All or nothing."""
    known = segments(batch)
    annotations = read_exports(exports, known, ignore_cancelled)
    labels = _by_sentence(annotations)
    disputed = {sid: by for sid, by in labels.items() if len(set(by.values())) > 1}
    gold = None
    if resolve_with is not None:
        adjudication = [] if resolve_with == MAJORITY else read_exports([Path(resolve_with)], known, ignore_cancelled)
        gold = resolve(labels, resolve_with if resolve_with == MAJORITY else None, adjudication)
    annotators = sorted({a.annotator for a in annotations})
    with atomic.atomic_path(batch) as tmp:
        shutil.copytree(batch, tmp, ignore=shutil.ignore_patterns(PASSES_DIR, DISAGREEMENTS_FILE, SENTENCES_FILE))
        for name in annotators:
            rows = [{"id": sid, "actor": by[name][0], "stance": by[name][1]} for sid, by in sorted(labels.items()) if name in by]
            write_jsonl(tmp / PASSES_DIR / f"{PASS_PREFIX}{name}.jsonl", rows)
        write_jsonl(tmp / DISAGREEMENTS_FILE, [
            {"id": sid, "text": known[sid]["text"], "labels": {n: {"actor": a, "stance": s} for n, (a, s) in sorted(by.items())}}
            for sid, by in sorted(disputed.items())
        ])
        if gold is not None:
            write_jsonl(tmp / SENTENCES_FILE, [
                {"id": sid, "article_id": known[sid]["article_id"], "position": known[sid]["position"], "text": known[sid]["text"],
                 "actor": actor, "stance": stance, "agreement": agreement}
                for sid, (actor, stance, agreement) in sorted(gold.items(), key=lambda kv: (known[kv[0]]["article_id"], known[kv[0]]["position"]))
            ])
        summary = {"annotators": annotators, "annotations": len(annotations), "sentences": len(labels), "disagreements": len(disputed),
                   "resolved": None if gold is None else dict(Counter(g[2] for g in gold.values()))}
        info = {**read_info(tmp), "status": "accepted" if gold is not None else "labelled", "imported": summary}
        atomic.write_json(tmp / BATCH_FILE, info)
    return summary
