import io
import json

import pytest

from pipeline.cli import main


@pytest.fixture()
def run(trained_models, capsys):
    def invoke(*args: str, stdin: bytes | None = None, monkeypatch=None):
        code = main(["predict", "--models", str(trained_models), "--model", "baseline", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def test_text_table_jsonl_and_csv(run, tmp_path):
    code, out, _ = run("--text", "Moscow rejected the plan. Kyiv wants talks.")
    assert code == 0 and "Moscow rejected the plan." in out and "stance" in out.splitlines()[0]
    code, out, _ = run("--text", "Moscow rejected the plan.", "--format", "jsonl")
    row = json.loads(out.splitlines()[0])
    assert row["source"] == "--text" and row["actor"] in row["actor_probabilities"]
    code, out, _ = run("--text", "Moscow rejected the plan.", "--format", "csv")
    header = out.splitlines()[0].split(",")
    assert code == 0 and {"source", "sentence", "actor", "stance", "p_stance_none"} <= set(header)


def test_files_of_each_kind_and_output_file(run, tmp_path):
    (tmp_path / "a.txt").write_text("Putin warned Washington. It was cold.")
    (tmp_path / "b.md").write_text("# Heading\n\nEurope agreed.")
    (tmp_path / "c.jsonl").write_text('{"text": "Trump offered talks."}\n\n{"text": "Kyiv refused."}\n')
    target = tmp_path / "out.jsonl"
    code, _, _ = run(str(tmp_path / "a.txt"), str(tmp_path / "b.md"), str(tmp_path / "c.jsonl"), "--format", "jsonl", "-o", str(target))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert code == 0 and len(rows) == 6
    assert rows[-1]["source"].endswith("c.jsonl:2")


def test_stdin(run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("Kyiv refused the deal.".encode())))
    code, out, _ = run("-")
    assert code == 0 and "Kyiv refused the deal." in out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.txt", "missing.txt: no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "bad.txt").write_bytes(b"ok\n\xff\xfe") and d / "bad.txt", "bad.txt:2: not valid UTF-8"),
        (lambda d: (d / "x.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n') and d / "x.jsonl", "x.jsonl:2: no 'text' field"),
        (lambda d: (d / "y.jsonl").write_text('{"text": "a"}\n{oops\n') and d / "y.jsonl", "y.jsonl:2: not valid JSON"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, tmp_path, make, message):
    target = tmp_path / "out.csv"
    code, out, err = run(str(make(tmp_path)), "-o", str(target))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and out == ""


def test_untrained_and_unknown_model(tmp_path, capsys):
    assert main(["predict", "--models", str(tmp_path), "--model", "transformer", "--text", "x"]) == 2
    assert "stance train transformer" in capsys.readouterr().err
    assert main(["predict", "--models", str(tmp_path), "--model", "gpt", "--text", "x"]) == 2
    assert "choose one of" in capsys.readouterr().err


def test_nothing_to_predict(run):
    code, _, err = run()
    assert code == 2 and "nothing to predict" in err


def test_titles_from_jsonl_and_the_title_option(run, tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "Trump offered talks.", "title": "Talks offered"}\n{"text": "Kyiv refused.", "title": null}\n')
    code, out, _ = run(str(tmp_path / "t.jsonl"), "--format", "jsonl", "--title", "Default title")
    assert code == 0 and len(out.splitlines()) == 2
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "title": 5}\n')
    code, out, err = run(str(tmp_path / "bad.jsonl"))
    assert code == 2 and "bad.jsonl:1: field 'title' must be a string or null" in err
