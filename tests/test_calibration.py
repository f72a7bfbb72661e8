"""Temperature scaling: fitted on validation, saved with the model, used by predict()."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration import CALIBRATION_FILE, Temperatures, expected_calibration_error, fit_temperature, scale
from pipeline.labels import ACTORS, STANCES, decode
from pipeline.models import Probabilities


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z) while the model reports softmax(3 z): too sure by a known factor."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4))
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in true_p])
    reported = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    return reported, labels


def test_the_fitted_temperature_undoes_a_known_overconfidence():
    reported, labels = overconfident()
    assert fit_temperature(reported, labels) == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(scale(reported, 1.0), reported, rtol=1e-9)


def test_scaling_keeps_every_label_and_rows_sum_to_one():
    reported, _ = overconfident(300)
    actor = np.random.default_rng(1).dirichlet(np.ones(len(ACTORS)), 300)
    proba = Probabilities(actor, reported)
    calibrated = Temperatures(actor=0.5, stance=3.0).apply(proba)
    assert decode(calibrated.actor, calibrated.stance) == decode(proba.actor, proba.stance)
    np.testing.assert_allclose(calibrated.stance.sum(1), 1.0, rtol=1e-5)


def test_calibration_lowers_ece_on_held_out_sentences():
    reported, labels = overconfident(6000, seed=2)
    fit, held = slice(0, 3000), slice(3000, 6000)
    actor = np.tile(np.eye(len(ACTORS))[1], (6000, 1))
    gold = {"stance": [STANCES[i] for i in labels], "actor": ["none" if i == 0 else "russia" for i in labels]}
    temperatures = Temperatures.fit(Probabilities(actor[fit], reported[fit]), {k: v[fit] for k, v in gold.items()})
    held_proba = Probabilities(actor[held], reported[held])
    held_gold = {k: v[held] for k, v in gold.items()}
    before = expected_calibration_error(held_proba, held_gold, 10)["stance"]
    after = expected_calibration_error(temperatures.apply(held_proba), held_gold, 10)["stance"]
    assert after < before / 2


def test_saved_temperatures_load_and_bad_files_are_named(tmp_path):
    assert Temperatures.load(tmp_path) is None
    Temperatures(actor=1.5, stance=2.0).save(tmp_path, {"fitted_on": "validation"})
    assert Temperatures.load(tmp_path) == Temperatures(actor=1.5, stance=2.0)
    (tmp_path / "manifest.json").unlink()  # the format check, not the hash, is under test here
    (tmp_path / CALIBRATION_FILE).write_text('{"temperatures": {"actor": -1, "stance": 2}}')
    with pytest.raises(ValueError, match="calibration.json: temperatures must be positive"):
        Temperatures.load(tmp_path)
    (tmp_path / CALIBRATION_FILE).write_text("[]")
    with pytest.raises(ValueError, match="calibration.json: not a calibration file"):
        Temperatures.load(tmp_path)


def test_the_train_stage_calibrates_and_predict_uses_it(project):
    from pipeline.predictor import Predictor
    from pipeline.config import SegmentConfig, load_config

    root, _ = project
    segment = load_config(root / "configs" / "segment.yaml", SegmentConfig)
    for name in ("baseline", "transformer"):
        assert (root / "models" / name / CALIBRATION_FILE).exists(), name
        predictor = Predictor.from_model_dir(root / "models" / name, segment, 16)
        assert predictor.temperatures is not None and predictor.temperatures != Temperatures()
        text = "Moscow rejected the plan. Kyiv said it was ready for talks."
        calibrated, raw = predictor.predict(text), predictor.predict(text, calibrated=False)
        assert [(r.actor, r.stance) for r in calibrated] == [(r.actor, r.stance) for r in raw]
        assert [r.stance_probabilities for r in calibrated] != [r.stance_probabilities for r in raw]
