"""The `stance` command: pipeline stages, prediction and the MLflow UI."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from pipeline.models import MODEL_NAMES

USAGE_ERROR = 2
FORMATS = ("table", "jsonl", "csv")
TEXT_SUFFIXES = (".txt", ".md")


class InputError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    return {k: Path(v) for k, v in vars(args).items() if k in ("corpus", "data", "out", "reports", "configs", "models")}


def cmd_prepare(args: argparse.Namespace) -> None:
    from pipeline.stages import prepare

    p = _paths(args)
    report = prepare.run(p["corpus"], p["out"], p["reports"], p["configs"])
    total = report["total"]
    print(
        f"prepared {total['sentences']} sentences from {total['articles']} articles; "
        f"segmenter reproduces {report['segmenter']['boundary_agreement']:.4f} of corpus boundaries"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from pipeline.stages import train

    p = _paths(args)
    out = p.get("out") or Path("models") / args.model
    metrics = train.run(args.model, p["data"], out, p["reports"], p["configs"])
    print(json.dumps({args.model: metrics}, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline.stages import evaluate

    p = _paths(args)
    evaluate.run(p["data"], p["models"], p["reports"], p["configs"])
    print((p["reports"] / "comparison.md").read_text(encoding="utf-8"))


def _read_text_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte {err.start})") from None


def _jsonl_items(name: str, text: str, field: str, title_field: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{name}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict) or field not in obj:
            raise InputError(f"{name}:{number}: no {field!r} field")
        if not isinstance(obj[field], str):
            raise InputError(f"{name}:{number}: field {field!r} must be a string, got {type(obj[field]).__name__}")
        title = obj.get(title_field)
        if title is not None and not isinstance(title, str):
            raise InputError(f"{name}:{number}: field {title_field!r} must be a string or null, got {type(title).__name__}")
        yield {"text": obj[field], "title": title}


def read_inputs(
    files: Sequence[str], text: str | None, field: str, stdin: TextIO, title_field: str = "title"
) -> list[tuple[str, dict[str, Any]]]:
    """(source name, {"text", "title"}) for each item: --text, then files (`-` is stdin).

    A .jsonl line's title is its `title_field`, when present; other items have none.

    Everything is read and checked before any prediction, so a bad file fails
    the command before output is written.
    """
    items: list[tuple[str, dict[str, Any]]] = []
    if text is not None:
        items.append(("--text", {"text": text, "title": None}))
    for name in files:
        if name == "-":
            try:
                content = stdin.buffer.read().decode("utf-8") if hasattr(stdin, "buffer") else stdin.read()
            except UnicodeDecodeError as err:
                raise InputError(f"<stdin>: not valid UTF-8 (byte {err.start})") from None
            items.append(("<stdin>", {"text": content, "title": None}))
            continue
        path = Path(name)
        content = _read_text_file(path)
        if path.suffix == ".jsonl":
            items.extend((f"{name}:{k}", t) for k, t in enumerate(_jsonl_items(name, content, field, title_field), start=1))
        else:
            items.append((name, {"text": content, "title": None}))
    if not items:
        raise InputError("nothing to predict: give files, '-' for stdin, or --text")
    return items


def _write_results(results: Iterator[Any], sources: list[str], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "csv":
        writer = None
        for r in results:
            row = {"source": sources[r.item], **r.to_dict()}
            row.update({f"p_actor_{k}": v for k, v in row.pop("actor_probabilities").items()})
            row.update({f"p_stance_{k}": v for k, v in row.pop("stance_probabilities").items()})
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)
            count += 1
    elif fmt == "jsonl":
        for r in results:
            out.write(json.dumps({"source": sources[r.item], **r.to_dict()}, ensure_ascii=False) + "\n")
            count += 1
    else:
        out.write(f"{'source':<16} {'actor':<14} {'p':>5} {'stance':<13} {'p':>5}  sentence\n")
        for r in results:
            sentence = r.sentence if len(r.sentence) <= 90 else r.sentence[:87] + "..."
            source = sources[r.item] if len(sources[r.item]) <= 16 else "..." + sources[r.item][-13:]
            out.write(
                f"{source:<16} {r.actor:<14} {r.actor_probability:5.2f} {r.stance:<13} {r.stance_probability:5.2f}  {sentence}\n"
            )
            count += 1
    return count


def cmd_predict(args: argparse.Namespace) -> None:
    from pipeline import atomic
    from pipeline.predictor import get_predictor

    items = read_inputs(args.files, args.text, args.field, sys.stdin, args.title_field)
    predictor = get_predictor(args.model, args.models)
    sources = [name for name, _ in items]
    results = predictor.predict_iter(
        [item for _, item in items], split_sentences=not args.no_split, batch_size=args.batch_size, title=args.title
    )
    if args.output:
        with atomic.atomic_path(args.output) as tmp, tmp.open("w", encoding="utf-8", newline="") as out:
            _write_results(results, sources, args.format, out)
    else:
        _write_results(results, sources, args.format, sys.stdout)


def cmd_ui(args: argparse.Namespace) -> None:
    from pipeline.config import TrackingConfig, load_config
    from pipeline.stages import TRACKING_URI_ENV

    config = load_config(Path(args.configs) / "tracking.yaml", TrackingConfig)
    uri = os.environ.get(TRACKING_URI_ENV) or config.tracking_uri
    print(f"MLflow UI on http://127.0.0.1:{args.port} (store: {uri}); Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(args.port)]
    raise SystemExit(subprocess.call(command))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `stance` command."""
    parser = argparse.ArgumentParser(prog="stance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--configs", default="configs", help="directory of the YAML configs (default: configs)")
        p.add_argument("--reports", default="reports", help="directory for reports (default: reports)")

    p = sub.add_parser("prepare", help="validate the corpus and write train/validation/test splits")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--out", default="data/prepared")
    common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one model")
    p.add_argument("model", choices=list(MODEL_NAMES))
    p.add_argument("--data", default="data/prepared")
    p.add_argument("--out", default=None, help="model directory (default: models/<model>)")
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="compare both models on the test split")
    p.add_argument("--data", default="data/prepared")
    p.add_argument("--models", default="models")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="actor and stance of every sentence of some text")
    p.add_argument("files", nargs="*", help=".txt/.md (one item per file), .jsonl (one item per line), or - for stdin")
    p.add_argument("--text", help="a literal text to predict")
    p.add_argument("--field", default="text", help="the text field of .jsonl input (default: text)")
    p.add_argument("--title-field", default="title", help="the article-title field of .jsonl input, used when present (default: title)")
    p.add_argument("--title", help="the article title, for items that carry none (a title-reading transformer is more accurate with it)")
    p.add_argument("--model", default="champion", help=f"champion (default) or one of: {', '.join(MODEL_NAMES)}")
    p.add_argument("--models", default=None, help="directory of trained models (default: the project's models/)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", "-o", help="write here (atomically) instead of stdout")
    p.add_argument("--no-split", action="store_true", help="treat each item as one sentence")
    p.add_argument("--batch-size", type=int, default=None)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("ui", help="open the MLflow UI on the project's tracking store (127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stance` console script."""
    from pipeline.corpus import CorpusError
    from pipeline.predictor import ModelNotTrainedError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (InputError, CorpusError, ModelNotTrainedError, ValueError) as err:
        print(f"stance: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
