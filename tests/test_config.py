from pathlib import Path

import pytest

from pipeline.config import (
    BenchmarkConfig,
    RuleConfig,
    BenchConfig,
    BaselineConfig,
    EvaluateConfig,
    PredictConfig,
    PrepareConfig,
    SegmentConfig,
    TrackingConfig,
    TransformerConfig,
    load_config,
    to_flat_dict,
)

from conftest import CONFIGS

ALL = {
    "prepare.yaml": PrepareConfig,
    "segment.yaml": SegmentConfig,
    "baseline.yaml": BaselineConfig,
    "transformer.yaml": TransformerConfig,
    "evaluate.yaml": EvaluateConfig,
    "tracking.yaml": TrackingConfig,
    "predict.yaml": PredictConfig,
    "bench.yaml": BenchConfig,
    "rules.yaml": RuleConfig,
    "benchmark.yaml": BenchmarkConfig,
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_config_file_loads(name):
    config = load_config(CONFIGS / name, ALL[name])
    assert to_flat_dict(config)


def test_every_yaml_in_configs_is_known():
    assert {p.name for p in CONFIGS.glob("*.yaml")} == set(ALL)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_missing_unknown_and_mistyped_keys_are_named(tmp_path):
    good = (CONFIGS / "segment.yaml").read_text()
    with pytest.raises(ValueError, match=r"c\.yaml: missing key\(s\) \['max_sentence_chars'\]"):
        load_config(write(tmp_path, good.replace("max_sentence_chars", "#")), SegmentConfig)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['colour'\]"):
        load_config(write(tmp_path, good + "colour: red\n"), SegmentConfig)
    with pytest.raises(ValueError, match=r"c\.yaml\.max_chunk_chars: expected int"):
        load_config(write(tmp_path, good.replace("max_chunk_chars: 2000", "max_chunk_chars: lots")), SegmentConfig)
