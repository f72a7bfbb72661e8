"""Load and validate the labelled corpus; build the sentence table and its splits.

Every problem in the input is reported as a `CorpusError` naming the file, the
line and the offending value, before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from pipeline.labels import ACTORS, FIELDS, NONE, STANCES
from pipeline.segment import split_sentences

ARTICLES_FILE = "articles.jsonl"
SENTENCES_FILE = "sentences.jsonl"
PASS_FILES = {"a": "passes/annotator_a.jsonl", "b": "passes/annotator_b.jsonl"}
# Every file passes/annotator_<name>.jsonl of a corpus is one annotator's pass.
PASS_GLOB = "passes/annotator_*.jsonl"
# How a gold label was reached: all annotators agreed, an adjudicator decided, a strict
# majority of 3+ annotators, or one annotator alone (user batches, pipeline/annotation).
AGREEMENT_VALUES = ("unanimous", "adjudicated", "majority", "single")
# The segmented sentences of a user batch, labelled or not (the "sentence before" of a
# labelled sentence is its previous segment, labelled or not).
SEGMENTS_FILE = "segments.jsonl"
SPLITS = ("train", "validation", "test")


class CorpusError(ValueError):
    """A problem in the corpus files, located by file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True)
class Article:
    article_id: str
    date: str
    title: str
    text: str


@dataclass(frozen=True)
class LabelledSentence:
    id: str
    article_id: str
    position: int
    text: str
    actor: str
    stance: str
    agreement: str
    line: int


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line of a JSON Lines file."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(path, None, "file not found") from None
    except IsADirectoryError:
        raise CorpusError(path, None, "is a directory, expected a file") from None
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as err:
                    raise CorpusError(path, number, f"not valid JSON ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise CorpusError(path, number, f"expected a JSON object, got {raw.strip()[:60]!r}")
                yield number, obj
        except UnicodeDecodeError as err:
            raise CorpusError(path, None, f"not valid UTF-8 ({err.reason})") from None


def _field(obj: dict[str, Any], name: str, kind: type, path: Path, line: int) -> Any:
    if name not in obj:
        raise CorpusError(path, line, f"missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorpusError(path, line, f"field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def _label(obj: dict[str, Any], field: str, path: Path, line: int) -> str:
    value = _field(obj, field, str, path, line)
    if value not in FIELDS[field]:
        allowed = ", ".join(FIELDS[field])
        raise CorpusError(path, line, f"unknown {field} {value!r}; allowed: {allowed}")
    return value


def _unique(seen: dict[str, int], key: str, path: Path, line: int) -> None:
    if key in seen:
        raise CorpusError(path, line, f"duplicate id {key!r} (first on line {seen[key]})")
    seen[key] = line


def load_articles(path: Path) -> dict[str, Article]:
    """Read and validate articles.jsonl into a dict keyed by article id."""
    articles: dict[str, Article] = {}
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(path):
        article_id = _field(obj, "article_id", str, path, line)
        _unique(seen, article_id, path, line)
        date = _field(obj, "date", str, path, line)
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise CorpusError(path, line, f"field 'date' must be YYYY-MM-DD, got {date!r}") from None
        articles[article_id] = Article(
            article_id=article_id,
            date=date,
            title=_field(obj, "title", str, path, line),
            text=_field(obj, "text", str, path, line),
        )
    if not articles:
        raise CorpusError(path, None, "no articles")
    return articles


def _check_rule9(actor: str, stance: str, path: Path, line: int) -> None:
    if (actor == NONE) != (stance == NONE):
        raise CorpusError(
            path, line, f"actor {actor!r} with stance {stance!r}: actor is none exactly when stance is none"
        )


def load_sentences(path: Path, articles: dict[str, Article], contiguous: bool = True) -> list[LabelledSentence]:
    """Read and validate sentences.jsonl against its articles.

    `contiguous`: each article's sentences must be positions 0..n-1 (the bundled
    corpus labels every sentence); otherwise they need only increase (a user batch
    labels a selection)."""
    sentences: list[LabelledSentence] = []
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(path):
        sid = _field(obj, "id", str, path, line)
        _unique(seen, sid, path, line)
        article_id = _field(obj, "article_id", str, path, line)
        if article_id not in articles:
            raise CorpusError(path, line, f"article_id {article_id!r} is not in {ARTICLES_FILE}")
        position = _field(obj, "position", int, path, line)
        prefix, _, suffix = sid.rpartition("-")
        if prefix != article_id or not suffix.isdigit() or int(suffix) != position:
            raise CorpusError(path, line, f"id {sid!r} does not match article_id {article_id!r} and position {position}")
        actor = _label(obj, "actor", path, line)
        stance = _label(obj, "stance", path, line)
        _check_rule9(actor, stance, path, line)
        agreement = _field(obj, "agreement", str, path, line)
        if agreement not in AGREEMENT_VALUES:
            raise CorpusError(path, line, f"unknown agreement {agreement!r}; allowed: {', '.join(AGREEMENT_VALUES)}")
        text = _field(obj, "text", str, path, line)
        if not text.strip():
            raise CorpusError(path, line, "field 'text' is empty")
        sentences.append(LabelledSentence(sid, article_id, position, text, actor, stance, agreement, line))
    _check_in_articles(path, sentences, articles, contiguous)
    return sentences


def _check_in_articles(path: Path, sentences: Sequence[LabelledSentence], articles: dict[str, Article], contiguous: bool) -> None:
    """Each article's sentences must appear in its text, in order (and be 0..n-1 if `contiguous`)."""
    by_article: dict[str, list[LabelledSentence]] = {}
    for s in sentences:
        by_article.setdefault(s.article_id, []).append(s)
    for article_id, group in by_article.items():
        group.sort(key=lambda s: s.position)
        text = articles[article_id].text
        cursor = 0
        for expected, s in enumerate(group):
            if contiguous and s.position != expected:
                raise CorpusError(path, s.line, f"article {article_id!r}: position {s.position}, expected {expected}")
            if expected and s.position == group[expected - 1].position:
                raise CorpusError(path, s.line, f"article {article_id!r}: position {s.position} twice")
            found = text.find(s.text, cursor)
            if found < 0:
                raise CorpusError(
                    path, s.line, f"sentence {s.id!r} is not in the text of article {article_id!r} (after position {expected - 1}): {s.text[:60]!r}"
                )
            cursor = found + len(s.text)


def load_pass(path: Path, sentence_ids: set[str], complete: bool = True) -> dict[str, tuple[str, str]]:
    """Read one annotation pass: sentence id -> (actor, stance); `complete`: it labels every sentence."""
    labels: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(path):
        sid = _field(obj, "id", str, path, line)
        _unique(seen, sid, path, line)
        if sid not in sentence_ids:
            raise CorpusError(path, line, f"id {sid!r} is not in {SENTENCES_FILE}")
        labels[sid] = (_label(obj, "actor", path, line), _label(obj, "stance", path, line))
    missing = sentence_ids - set(labels)
    if missing and complete:
        raise CorpusError(path, None, f"{len(missing)} sentence(s) have no label, e.g. {sorted(missing)[0]!r}")
    return labels


def series_of(article_id: str) -> str:
    """The series an article belongs to: its id without the trailing number."""
    return article_id.rpartition("-")[0] or article_id


@dataclass
class Corpus:
    articles: dict[str, Article]
    sentences: list[LabelledSentence]
    passes: dict[str, dict[str, tuple[str, str]]]
    # The sentence before each labelled sentence, where it is not the previous labelled one.
    previous: dict[str, str] = dataclasses.field(default_factory=dict)


def load_corpus(directory: str | Path, complete: bool = True) -> Corpus:
    """Load and validate a corpus directory (articles, sentences, annotator passes).

    `complete` (the bundled corpus): every sentence of every article is labelled and
    passes a and b both label all of them. Otherwise (a user batch, pipeline/annotation)
    sentences are a selection, passes/annotator_*.jsonl are any number of partial
    passes, and segments.jsonl gives each sentence the one before it.
    """
    directory = Path(directory)
    articles = load_articles(directory / ARTICLES_FILE)
    sentences = load_sentences(directory / SENTENCES_FILE, articles, contiguous=complete)
    ids = {s.id for s in sentences}
    if complete:
        passes = {name: load_pass(directory / rel, ids) for name, rel in PASS_FILES.items()}
        return Corpus(articles, sentences, passes)
    passes = {p.stem[len("annotator_") :]: load_pass(p, ids, complete=False) for p in sorted(directory.glob(PASS_GLOB))}
    previous: dict[str, str] = {}
    if (directory / SEGMENTS_FILE).exists():
        by_position = {(o["article_id"], o["position"]): o["text"] for _, o in read_jsonl(directory / SEGMENTS_FILE)}
        previous = {s.id: by_position.get((s.article_id, s.position - 1), "") for s in sentences}
    return Corpus(articles, sentences, passes, previous)


def merge(corpora: Sequence[tuple[str, Corpus]]) -> Corpus:
    """One corpus from several (name, corpus) pairs; an article id in two of them is an error."""
    merged = Corpus({}, [], {})
    owner: dict[str, str] = {}
    for name, corpus in corpora:
        for article_id, article in corpus.articles.items():
            if article_id in owner:
                raise CorpusError(name, None, f"article {article_id!r} is also in {owner[article_id]}")
            owner[article_id] = name
            merged.articles[article_id] = article
        merged.sentences.extend(corpus.sentences)
        for annotator, labels in corpus.passes.items():
            merged.passes.setdefault(annotator, {}).update(labels)
        merged.previous.update(corpus.previous)
    return merged


def assign_splits(
    article_ids: Sequence[str], *, validation: float, test: float, seed: int
) -> dict[str, str]:
    """Assign whole articles to train/validation/test, stratified by series.

    Articles are shuffled within their series and laid end to end, series after
    series. The test articles are then taken at evenly spaced places along that
    list (one random offset), then the validation articles along what is left:
    every split gets its exact share overall and each series its share to within
    about one article.
    """
    if not 0 < validation < 1 or not 0 < test < 1 or validation + test >= 1:
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got validation={validation}, test={test}")
    rng = np.random.default_rng(seed)
    ordered = _series_order(article_ids, rng)
    n = len(ordered)
    n_test, n_validation = round(n * test), round(n * validation)
    if min(n_test, n_validation, n - n_test - n_validation) < 1:
        raise ValueError(f"{n} articles are too few for validation={validation}, test={test}: a split would be empty")
    splits = {article_id: "train" for article_id in ordered}
    remaining = ordered
    for name, count in (("test", n_test), ("validation", n_validation)):
        offset = rng.random()
        picked = {int((j + offset) * len(remaining) / count) for j in range(count)}
        for k in picked:
            splits[remaining[k]] = name
        remaining = [a for k, a in enumerate(remaining) if k not in picked]
    return splits


def _series_order(article_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Articles shuffled within their series, laid end to end, series after series."""
    ordered: list[str] = []
    for series in sorted({series_of(a) for a in article_ids}):
        members = sorted(a for a in article_ids if series_of(a) == series)
        ordered.extend(members[i] for i in rng.permutation(len(members)))
    return ordered


def assign_folds(article_ids: Sequence[str], folds: int, seed: int) -> dict[str, int]:
    """Assign whole articles to `folds` folds (0 .. folds-1), stratified by series.

    Dealt in turn along the series-ordered list from a random start, so every fold
    gets its share of each series to within one article. Seeded: the same ids,
    folds and seed give the same folds, whatever the order of `article_ids`.
    """
    ids = sorted(set(article_ids))
    if not 2 <= folds <= len(ids):
        raise ValueError(f"folds must be between 2 and the number of articles ({len(ids)}), got {folds}")
    rng = np.random.default_rng(seed)
    ordered = _series_order(ids, rng)
    start = int(rng.integers(folds))
    return {article_id: (start + k) % folds for k, article_id in enumerate(ordered)}


def boundary_matches(segmented: Sequence[str], gold: Sequence[str]) -> list[bool]:
    """For each gold sentence, whether the segmenter produced exactly it (in order)."""
    matcher = difflib.SequenceMatcher(a=list(gold), b=list(segmented), autojunk=False)
    hit = [False] * len(gold)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            hit[block.a + k] = True
    return hit


def build_rows(corpus: Corpus, segment_options: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per labelled sentence, with its context and its segmenter match.

    The training units are the corpus's own sentences, since the labels belong to
    them; the segmenter is run on every article to measure (and record, per row)
    whether it reproduces each boundary, because predict() relies on it.
    """
    by_article: dict[str, list[LabelledSentence]] = {}
    for s in corpus.sentences:
        by_article.setdefault(s.article_id, []).append(s)
    rows: list[dict[str, Any]] = []
    for article_id in sorted(by_article):
        article = corpus.articles[article_id]
        group = sorted(by_article[article_id], key=lambda s: s.position)
        segmented = split_sentences(article.text, **segment_options)
        matches = boundary_matches(segmented, [s.text for s in group])
        previous = ""
        for s, match in zip(group, matches):
            # The first two annotators who labelled the sentence (a and b in the bundled
            # corpus); "" where fewer did.
            labels = [p[s.id] for _, p in sorted(corpus.passes.items()) if s.id in p] + [("", "")] * 2
            (a_actor, a_stance), (b_actor, b_stance) = labels[0], labels[1]
            previous = corpus.previous.get(s.id, previous)
            rows.append(
                {
                    "id": s.id,
                    "article_id": article_id,
                    "series": series_of(article_id),
                    "date": article.date,
                    "position": s.position,
                    "title": article.title,
                    "prev_text": previous,
                    "text": s.text,
                    "actor": s.actor,
                    "stance": s.stance,
                    "agreement": s.agreement,
                    "segmenter_match": bool(match),
                    "actor_a": a_actor,
                    "stance_a": a_stance,
                    "actor_b": b_actor,
                    "stance_b": b_stance,
                }
            )
            previous = s.text
    return rows


def label_counts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts of each actor and stance label in `rows` (every label listed)."""
    counts: dict[str, dict[str, int]] = {}
    for field, labels in (("actor", ACTORS), ("stance", STANCES)):
        counts[field] = {label: 0 for label in labels}
        for row in rows:
            counts[field][row[field]] += 1
    return counts


def split_rows(rows: Sequence[dict[str, Any]], splits: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Group rows by the split of their article."""
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for row in rows:
        grouped[splits[row["article_id"]]].append({**row, "split": splits[row["article_id"]]})
    return grouped


def write_splits(directory: Path, grouped: dict[str, list[dict[str, Any]]]) -> None:
    """Write each split as `<split>.parquet` in `directory` (a Hugging Face layout).

    `datasets.load_dataset("parquet", data_dir=...)`, pandas and DuckDB all read it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    for name, group in grouped.items():
        pq.write_table(pa.Table.from_pylist(group), directory / f"{name}.parquet")


def load_splits(directory: str | Path) -> Any:
    """Read the prepared splits as a `datasets.DatasetDict`, held in memory."""
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    directory = Path(directory)
    missing = [name for name in SPLITS if not (directory / f"{name}.parquet").exists()]
    if missing:
        raise FileNotFoundError(f"{directory}: no prepared split(s) {missing}; run `stance prepare` (or `dvc repro prepare`)")
    return datasets.DatasetDict(
        {
            name: datasets.Dataset(InMemoryTable(pq.read_table(directory / f"{name}.parquet")), split=name)
            for name in SPLITS
        }
    )


def data_report(grouped: dict[str, list[dict[str, Any]]], examples: int) -> dict[str, Any]:
    """Counts per label per split, plus how well the segmenter matched the corpus."""
    all_rows = [row for group in grouped.values() for row in group]
    misses = [row for row in all_rows if not row["segmenter_match"]]
    return {
        "splits": {
            name: {
                "articles": len({row["article_id"] for row in group}),
                "sentences": len(group),
                "dates": [min(r["date"] for r in group), max(r["date"] for r in group)] if group else [],
                "labels": label_counts(group),
            }
            for name, group in grouped.items()
        },
        "total": {"articles": len({r["article_id"] for r in all_rows}), "sentences": len(all_rows), "labels": label_counts(all_rows)},
        "segmenter": {
            "boundary_agreement": 1.0 - len(misses) / max(len(all_rows), 1),
            "sentences_not_reproduced": len(misses),
            "examples": [{"id": r["id"], "text": r["text"]} for r in misses[:examples]],
        },
    }
