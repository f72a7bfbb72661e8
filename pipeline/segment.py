"""Text to sentences, in time linear in the length of the text.

pysbd does the sentence splitting. It is quadratic on one long paragraph, so the
text is first cut at line breaks (paragraphs, sub-headings and bullets stand on
their own lines in the corpus) and any line longer than `max_chunk_chars` is cut
into windows at a sentence-like break before pysbd sees it. Each window costs at
most a constant, so the whole text costs time proportional to its length.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import unicodedata
from typing import Iterator

import pysbd
from pysbd.utils import TextSpan

_BULLET = re.compile(r"^\s*[-*\u2022]\s+")
# A window boundary is best placed after sentence-final punctuation and a space.
_SENTENCE_BREAK = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s")
_WHITESPACE = re.compile(r"\s")
_TRAILING_WHITESPACE = re.compile(r"\s*")


class _Segmenter(pysbd.Segmenter):
    """pysbd's Segmenter, finding each sentence in the text with str.find.

    pysbd locates every sentence with a regex built from that sentence. Compiling
    one per sentence took about half of segmentation's time and flushed Python's
    regex cache, so pysbd's own abbreviation patterns were compiled over and over.
    This gives the same spans as pysbd's `re.finditer(escape(sent) + "\\s*")`:
    the first occurrence, scanning left to right without overlap, that ends after
    the previous sentence's span (tests compare both).
    """

    def sentences_with_char_spans(self, sentences: list[str]) -> list[TextSpan]:
        text, spans, prior_end = self.original_text, [], 0
        for sent in sentences:
            if not sent:  # pysbd's regex is then "\\s*" alone, which also matches empty strings
                match = next((m for m in _TRAILING_WHITESPACE.finditer(text) if m.end() > prior_end), None)
                if match:
                    spans.append(TextSpan(match.group(), match.start(), match.end()))
                    prior_end = match.end()
                continue
            start = text.find(sent)
            while start >= 0:
                end = _TRAILING_WHITESPACE.match(text, start + len(sent)).end()
                if end > prior_end:
                    spans.append(TextSpan(text[start:end], start, end))
                    prior_end = end
                    break
                start = text.find(sent, end)
        return spans


_LOCAL = threading.local()


def sentence_segmenter(language: str) -> pysbd.Segmenter:
    """This thread's pysbd segmenter for `language`, with the faster span search.

    One per thread: a pysbd Segmenter keeps the text it is segmenting on itself
    (`original_text`), so one shared by threads mixed their sentences up (found by
    tests/test_concurrency.py: 8 threads got sentences of each other's articles).
    """
    cache = _LOCAL.__dict__.setdefault("segmenters", {})
    if language not in cache:
        cache[language] = _Segmenter(language=language, clean=False)
    return cache[language]


_UNWANTED_CATEGORIES = ("Cc", "Cf", "Cs")


@functools.lru_cache(maxsize=1)
def _unwanted() -> re.Pattern[str]:
    """One character class of every control, format and surrogate code point
    except newline and tab, as ranges (built once: a scan of Unicode, ~0.1 s)."""
    points = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in _UNWANTED_CATEGORIES and chr(c) not in "\n\t"]
    ranges, start = [], points[0]
    for previous, current in zip(points, points[1:] + [-1]):
        if current != previous + 1:
            ranges.append(f"\\U{start:08x}-\\U{previous:08x}")
            start = current
    return re.compile(f"[{''.join(ranges)}]")


def clean_text(text: str) -> str:
    """Replace control and format characters and lone surrogates with spaces.

    NUL, zero-width joiners, BOMs and unpaired surrogates carry no meaning for the
    task, and the tokenizers downstream refuse or mangle some of them. Newlines
    and tabs are kept: they mark paragraphs.
    """
    return _unwanted().sub(" ", text)


def _last_match_end(pattern: re.Pattern[str], text: str, lo: int, hi: int) -> int:
    end = -1
    for match in pattern.finditer(text, lo, hi):
        end = match.end()
    return end


def _windows(line: str, max_chars: int) -> Iterator[str]:
    """Cut `line` into pieces of at most `max_chars`, preferring sentence breaks."""
    start = 0
    while len(line) - start > max_chars:
        hi = start + max_chars
        lo = start + max_chars // 2
        cut = _last_match_end(_SENTENCE_BREAK, line, lo, hi)
        if cut <= start:
            cut = _last_match_end(_WHITESPACE, line, lo, hi)
        if cut <= start:
            cut = hi
        yield line[start:cut]
        start = cut
    yield line[start:]


def split_sentences(
    text: str, *, language: str, max_chunk_chars: int, max_sentence_chars: int
) -> list[str]:
    """Split `text` into sentences, stripped and non-empty, in reading order.

    A line that starts with a bullet marker (`- `, `* `, `\u2022 `) loses the marker.
    A sentence longer than `max_sentence_chars` is cut at whitespace into pieces
    no longer than that, so every unit handed to a model is bounded.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    segmenter = sentence_segmenter(language)
    sentences: list[str] = []
    for line in clean_text(text).split("\n"):
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        for window in _windows(line, max_chunk_chars):
            for sentence in segmenter.segment(window):
                sentence = sentence.strip()
                if not sentence:
                    continue
                for piece in _windows(sentence, max_sentence_chars):
                    piece = piece.strip()
                    if piece:
                        sentences.append(piece)
    return sentences
