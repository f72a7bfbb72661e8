"""Files -> a batch of segmented articles (the first step of the annotation loop).

Inputs, by suffix:
  .txt / .md   the first non-blank line is the title, the rest the text
  .html / .htm the main text and its metadata (title, date) extracted by trafilatura,
               a maintained boilerplate remover (navigation, footers and ads dropped)
  .jsonl       one article per line: `text` (required), `title`, `date`, `url`, `id`
Every article needs a date (YYYY-MM-DD): its own, or `default_date` for those
without one. Article ids are stable: `<batch>-<10 hex digits>` from the item's own
`id` when it has one, else from its title and text, so ingesting the same file
again gives the same ids. Every file is read and checked before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline import atomic
from pipeline.annotation.batches import BATCH_FILE, SEGMENTS_FILE, BatchError, check_name, write_jsonl
from pipeline.corpus import ARTICLES_FILE, CorpusError, read_jsonl
from pipeline.segment import clean_text, split_sentences

TEXT_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
JSONL_SUFFIXES = (".jsonl",)
SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, *JSONL_SUFFIXES)
JSONL_FIELDS = {"text": str, "title": str, "date": str, "url": str, "id": (str, int)}


@dataclass(frozen=True)
class IncomingArticle:
    """One article read from a file, before it gets its id."""

    title: str
    text: str
    date: str | None
    source: str
    url: str | None = None
    external_id: str | None = None


def _date(value: Any, where: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise CorpusError(where, None, f"date {value!r} is not YYYY-MM-DD") from None


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(path, None, "no such file") from None
    except IsADirectoryError:
        raise CorpusError(path, None, "is a directory, expected a file") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(path, raw[: err.start].count(b"\n") + 1, f"not valid UTF-8 (byte {err.start})") from None


def read_text_file(path: Path) -> list[IncomingArticle]:
    """A .txt/.md article: first non-blank line the title (a leading '#' is dropped)."""
    lines = _decode(path).splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise CorpusError(path, None, "empty file: expected a title line and the text")
    title = lines[0].strip().lstrip("#").strip()
    text = "\n".join(lines[1:]).strip()
    if not text:
        raise CorpusError(path, 1, "only a title: the article text is missing")
    return [IncomingArticle(title, text, None, str(path))]


def read_html_file(path: Path) -> list[IncomingArticle]:
    """An .html article: main text, title and date extracted by trafilatura."""
    try:
        import trafilatura
    except ImportError:
        raise CorpusError(path, None, "reading HTML needs trafilatura: pip install 'stance[annotation]'") from None
    document = trafilatura.bare_extraction(_decode(path), with_metadata=True, favor_precision=True)
    fields = document.as_dict() if document is not None and hasattr(document, "as_dict") else (document or {})
    text = (fields.get("text") or "").strip()
    if not text:
        raise CorpusError(path, None, "no article text found in the HTML")
    title = (fields.get("title") or "").strip()
    first, _, rest = text.partition("\n")
    if title and first.strip() == title and rest.strip():
        text = rest.strip()  # the headline is repeated as the text's first line
    if not title:
        raise CorpusError(path, None, "no title found in the HTML (<title>, og:title or <h1>)")
    return [IncomingArticle(title, text, fields.get("date"), str(path), fields.get("url"))]


def read_jsonl_file(path: Path) -> list[IncomingArticle]:
    """One article per line: `text` required; `title`, `date`, `url`, `id` optional."""
    out = []
    for number, obj in read_jsonl(path):
        if "text" not in obj:
            raise CorpusError(path, number, "missing field 'text'")
        for name, kind in JSONL_FIELDS.items():
            if obj.get(name) is not None and not isinstance(obj[name], kind):
                raise CorpusError(path, number, f"field {name!r} must be a string, got {type(obj[name]).__name__}")
        if not obj["text"].strip():
            raise CorpusError(path, number, "field 'text' is empty")
        date = _date(obj["date"], f"{path}:{number}") if obj.get("date") is not None else None
        external = str(obj["id"]) if obj.get("id") is not None else None
        out.append(IncomingArticle((obj.get("title") or "").strip(), obj["text"], date, f"{path}:{number}", obj.get("url"), external))
    if not out:
        raise CorpusError(path, None, "no articles")
    return out


def read_file(path: Path) -> list[IncomingArticle]:
    """The articles of one input file, by its suffix."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_text_file(path)
    if suffix in HTML_SUFFIXES:
        return read_html_file(path)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl_file(path)
    raise CorpusError(path, None, f"unknown kind of file {suffix or '(no suffix)'!r}; allowed: {', '.join(SUFFIXES)}")


def article_id(batch: str, article: IncomingArticle) -> str:
    """A stable id: the batch, then 10 hex digits of the item's own id (or its title and text)."""
    key = f"id:{article.external_id}" if article.external_id is not None else f"text:{article.title}\n{article.text}"
    return f"{batch}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:10]}"


def ingest(files: Sequence[Path], name: str, batches: Path, segment: dict[str, Any], default_date: str | None = None) -> dict[str, Any]:
    """Read `files` into the new batch `name` under `batches`; returns batch.json.

    Nothing is written unless every file reads cleanly; the batch directory
    appears whole (a rename) or not at all. An existing batch is never changed.
    """
    check_name(name)
    target = Path(batches) / name
    if target.exists():
        raise BatchError(f"batch {name!r} already exists in {batches}; ingest into a new name")
    if not files:
        raise BatchError("no files to ingest")
    default = _date(default_date, "--date") if default_date else None
    seen: dict[str, str] = {}
    articles, sentences = [], []
    for path in map(Path, files):
        for article in read_file(path):
            date = article.date or default
            if date is None:
                raise CorpusError(article.source, None, "no date: the article has none, so give one with --date YYYY-MM-DD")
            aid = article_id(name, article)
            if aid in seen:
                raise CorpusError(article.source, None, f"the same article as {seen[aid]} (id {aid}); remove one of them")
            seen[aid] = article.source
            text = clean_text(article.text)
            pieces = split_sentences(text, **segment)
            if not pieces:
                raise CorpusError(article.source, None, "the text has no sentences")
            articles.append({"article_id": aid, "date": date, "title": clean_text(article.title).strip(), "text": text,
                             "source": article.source, "url": article.url, "external_id": article.external_id})
            sentences.extend({"id": f"{aid}-{k:02d}", "article_id": aid, "position": k, "text": s} for k, s in enumerate(pieces))
    info = {"name": name, "status": "ingested", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sources": [str(p) for p in files], "articles": len(articles), "sentences": len(sentences)}
    with atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        write_jsonl(tmp / ARTICLES_FILE, articles)
        write_jsonl(tmp / SEGMENTS_FILE, sentences)
        atomic.write_json(tmp / BATCH_FILE, info)
    return info
