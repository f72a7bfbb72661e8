"""The local engine of `stance score`: streaming, bounded memory, resumable, all or nothing.

Articles are read `part_articles` at a time; each part's sentence rows are written to
`part-NNNNN.parquet` in a work folder beside the output (`.OUTPUT.partial/`) under a
temporary name and renamed. A rerun after an interruption keeps the finished parts
and scores only the rest, provided the input, the model and the part size are the
same (else it starts over). When every part is done the work folder is renamed to
OUTPUT, a Parquet dataset folder like Spark's, so the output appears only complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.scoring import inputs
from pipeline.scoring.records import SENTENCE_COLUMNS, score_rows

STATE_FILE = "_state.json"


def _fingerprint(path: Path, model: str, model_version: str | None, part_articles: int) -> str:
    stat = [(p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return hashlib.sha256(json.dumps([stat, model, model_version, part_articles]).encode()).hexdigest()


def _schema(carried_types: dict[str, Any]) -> Any:
    import pyarrow as pa

    types = {"sentence_index": pa.int32(), **{c: pa.float64() for c in SENTENCE_COLUMNS if c.endswith("probability") or c.startswith("p_")}}
    return pa.schema([*((c, types.get(c, pa.string())) for c in SENTENCE_COLUMNS), *carried_types.items()])


def _carried_types(path: Path, carried: list[str]) -> dict[str, Any]:
    """Arrow types of the carried columns: the input's own (Parquet) or inferred from all values (JSONL)."""
    import pyarrow as pa

    if inputs.kind_of(path) == "parquet":
        import pyarrow.dataset as ds

        schema = ds.dataset(str(path), format="parquet").schema
        return {c: schema.field(c).type for c in carried}
    values: dict[str, list[Any]] = {c: [] for c in carried}
    for chunk in inputs.batches(path, 10_000):
        for row in chunk:
            for c in carried:
                values[c].append(row.get(c))
    return {c: pa.array(v).type if any(x is not None for x in v) else pa.string() for c, v in values.items()}


def score_local(
    source: str | Path, output: str | Path, predictor: Any, model: str, model_version: str | None, part_articles: int, progress: bool = True,
) -> dict[str, Any]:
    """Score every article of `source` into the Parquet dataset folder `output`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    source, output = Path(source), Path(output)
    found = inputs.check(source)
    schema = _schema(_carried_types(source, found["carried"]))
    work = output.parent / f".{output.name}.partial"
    fingerprint = _fingerprint(source, model, model_version, part_articles)
    state = work / STATE_FILE
    if work.exists() and (not state.exists() or json.loads(state.read_text())["fingerprint"] != fingerprint):
        shutil.rmtree(work)  # another input, model or part size: nothing to resume
    work.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": fingerprint, "source": str(source), "model": model, "model_version": model_version}))
    resumed, sentences, index = 0, 0, -1
    with tqdm(total=found["articles"], unit="article", disable=not progress, desc="scoring", mininterval=2.0) as bar:
        for index, chunk in enumerate(inputs.batches(source, part_articles)):
            part = work / f"part-{index:05d}.parquet"
            if part.exists():
                resumed += 1
                sentences += pq.ParquetFile(part).metadata.num_rows
            else:
                rows = score_rows(predictor, chunk, model, model_version, found["carried"])
                tmp = work / f".{part.name}.tmp"
                pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
                os.replace(tmp, part)
                sentences += len(rows)
            bar.update(len(chunk))
    state.unlink()
    if output.exists():
        old = output.parent / f".{output.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        output.rename(old)
        work.rename(output)
        shutil.rmtree(old)
    else:
        work.rename(output)
    return {"articles": found["articles"], "sentences": sentences, "parts": index + 1, "resumed_parts": resumed}
