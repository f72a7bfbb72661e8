"""Where a batch of user-labelled news lives, and how it is read and written.

    data/batches/<name>/
      batch.json          name, sources, counts, status (ingested | labelled | accepted)
      articles.jsonl      the bundled corpus's article fields (article_id, date, title, text)
                          plus source, url, external_id
      segments.jsonl      every sentence as the segmenter cut it: id, article_id, position, text
      tasks/              export-tasks: tasks.json (Label Studio), tasks.csv
      passes/             import-labels: annotator_<name>.jsonl, one per annotator
      disagreements.jsonl import-labels: sentences the annotators labelled differently
      sentences.jsonl     once resolved: the gold labels, in the corpus's format

A batch with `sentences.jsonl` is accepted: `prepare` reads it as a corpus (passes
may be partial: not every annotator labels every sentence). Every write goes
through a temporary file and a rename.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from pipeline import atomic
from pipeline.corpus import ARTICLES_FILE, SENTENCES_FILE, read_jsonl

BATCH_FILE = "batch.json"
SEGMENTS_FILE = "segments.jsonl"
PASSES_DIR = "passes"
DISAGREEMENTS_FILE = "disagreements.jsonl"
TASKS_DIR = "tasks"
# A batch name is the series of its articles (the part of an id before the last "-").
NAME = re.compile(r"^[A-Za-z0-9_]+$")


class BatchError(ValueError):
    """A batch is missing, misnamed, or not in the state a command needs."""


def check_name(name: str) -> str:
    """`name` if it can name a batch (letters, digits, underscore), else BatchError."""
    if not NAME.match(name or ""):
        raise BatchError(f"batch name {name!r}: use letters, digits and underscores only (it prefixes every article id)")
    return name


def batch_dir(batches: Path, name: str, must_exist: bool = True) -> Path:
    """The directory of batch `name` under `batches`."""
    path = Path(batches) / check_name(name)
    if must_exist and not (path / BATCH_FILE).exists():
        known = sorted(p.parent.name for p in Path(batches).glob(f"*/{BATCH_FILE}"))
        raise BatchError(f"no batch {name!r} in {batches} (run `stance ingest FILES --name {name}`); batches: {', '.join(known) or 'none'}")
    return path


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Atomically write rows as JSON Lines."""
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file (CorpusError names a bad line)."""
    return [obj for _, obj in read_jsonl(path)]


def read_info(directory: Path) -> dict[str, Any]:
    """batch.json of a batch directory."""
    return json.loads((directory / BATCH_FILE).read_text(encoding="utf-8"))


def update_info(directory: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into batch.json and write it back."""
    info = {**read_info(directory), **changes}
    atomic.write_json(directory / BATCH_FILE, info)
    return info


def segments(directory: Path) -> dict[str, dict[str, Any]]:
    """The batch's segmented sentences by id."""
    return {row["id"]: row for row in read_rows(directory / SEGMENTS_FILE)}


def articles(directory: Path) -> dict[str, dict[str, Any]]:
    """The batch's articles by id."""
    return {row["article_id"]: row for row in read_rows(directory / ARTICLES_FILE)}


def accepted(batches: Path) -> list[Path]:
    """Batch directories that hold gold labels (sentences.jsonl), sorted by name."""
    if not Path(batches).is_dir():
        return []
    return sorted(p.parent for p in Path(batches).glob(f"*/{SENTENCES_FILE}") if (p.parent / BATCH_FILE).exists())

