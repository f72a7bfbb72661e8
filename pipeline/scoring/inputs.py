"""The input of `stance score`: articles as Parquet or JSON Lines, checked before any scoring.

Required: `id` and `text` (a string); optional `title` and `date`; any other column is
carried through to every sentence row of its article. A problem is a ScoreInputError
naming the file and the row (or column), raised before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pipeline.scoring.records import INPUT_ID, INPUT_TEXT, INPUT_TITLE, NOT_CARRIED

SUFFIXES = (".parquet", ".jsonl", ".json")


class ScoreInputError(ValueError):
    """The articles to score cannot be read; the message names the file and row or column."""


def kind_of(path: Path) -> str:
    """"parquet" or "jsonl", by the suffix (a directory is a Parquet dataset)."""
    if path.is_dir() or path.suffix == ".parquet":
        return "parquet"
    if path.suffix in (".jsonl", ".json"):
        return "jsonl"
    raise ScoreInputError(f"{path}: unknown input kind {path.suffix!r}; give a .parquet file or folder, or a .jsonl file")


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise ScoreInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for name in (INPUT_ID, INPUT_TEXT):
        if row.get(name) is None:
            raise ScoreInputError(f"{where}: no {name!r} (every article needs an id and a text)")
    if not isinstance(row[INPUT_TEXT], str):
        raise ScoreInputError(f"{where}: column 'text' must be a string, got {type(row[INPUT_TEXT]).__name__}")
    if row.get(INPUT_TITLE) is not None and not isinstance(row[INPUT_TITLE], str):
        raise ScoreInputError(f"{where}: column 'title' must be a string or null, got {type(row[INPUT_TITLE]).__name__}")


def check(path: str | Path) -> dict[str, Any]:
    """Read the whole input once to check it; returns its article count and carried columns."""
    path = Path(path)
    if not path.exists():
        raise ScoreInputError(f"{path}: no such file")
    if kind_of(path) == "parquet":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(str(path), format="parquet")
            schema = dataset.schema
        except (pa.ArrowInvalid, OSError) as err:
            raise ScoreInputError(f"{path}: not a readable Parquet file ({err})") from None
        for name in (INPUT_ID, INPUT_TEXT):
            if name not in schema.names:
                raise ScoreInputError(f"{path}: no column {name!r}; the columns are {', '.join(schema.names)}")
        if not pa.types.is_string(schema.field(INPUT_TEXT).type) and not pa.types.is_large_string(schema.field(INPUT_TEXT).type):
            raise ScoreInputError(f"{path}: column 'text' must hold strings, it holds {schema.field(INPUT_TEXT).type}")
        offset = 0
        for batch in dataset.to_batches(columns=[INPUT_ID, INPUT_TEXT]):
            for name in (INPUT_ID, INPUT_TEXT):
                nulls = pc.is_null(batch.column(name))
                if pc.any(nulls).as_py():
                    row = offset + int(pc.index(nulls, True).as_py())
                    raise ScoreInputError(f"{path}: row {row}: no {name!r} (null)")
            offset += batch.num_rows
        return {"articles": offset, "carried": [n for n in schema.names if n not in NOT_CARRIED]}
    carried: list[str] = []
    count = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ScoreInputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                _check_row(row, f"{path}:{number}")
                carried.extend(k for k in row if k not in NOT_CARRIED and k not in carried)
                count += 1
    except UnicodeDecodeError as err:
        raise ScoreInputError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    return {"articles": count, "carried": carried}


def batches(path: str | Path, size: int) -> Iterator[list[dict[str, Any]]]:
    """The input's articles in lists of at most `size` (the input must have passed `check`)."""
    path = Path(path)
    if kind_of(path) == "parquet":
        import pyarrow.dataset as ds

        pending: list[dict[str, Any]] = []
        for batch in ds.dataset(str(path), format="parquet").to_batches(batch_size=size):
            pending.extend(batch.to_pylist())
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if pending:
            yield pending
        return
    chunk: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                chunk.append(json.loads(line))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk
