"""Temperature scaling: probabilities that mean what they say.

A fine-tuned transformer is over-confident (its stance ECE was 0.158 on test); the
sum of probabilities is an unbiased count only when they are calibrated. One
temperature per head, fitted on validation by minimising the negative
log-likelihood of softmax(log p / T), rescales the probabilities without changing
any label: the argmax of each head, and so the rule-9 decoding, stays the same.
It works on any model that gives probabilities (the log-probabilities act as
logits, which softmax leaves unchanged up to a constant), so the baseline, the
transformer and every runtime of it share it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import atomic, integrity
from pipeline.labels import FIELDS, decode, encode, joint_probabilities
from pipeline.metrics import calibration
from pipeline.models import Probabilities

CALIBRATION_FILE = "calibration.json"
# Probabilities are clipped here before the log: a hard 0 would make log p infinite.
_FLOOR = 1e-12
# The temperature is searched on log T within these bounds (far beyond what models need).
_LOG_BOUNDS = (np.log(0.05), np.log(20.0))


def scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row."""
    logits = np.log(np.clip(np.asarray(proba, np.float64), _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def nll(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the integer `labels` under `proba`."""
    picked = np.asarray(proba)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, _FLOOR, 1.0)).mean())


def fit_temperature(proba: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL of `labels` (bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda t: nll(scale(proba, float(np.exp(t))), labels), bounds=_LOG_BOUNDS, method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(proba: Probabilities, gold: dict[str, Sequence[str]], bins: int) -> dict[str, float]:
    """ECE of the confidence of each field's decoded label (after the rule-9 joint step)."""
    actors, stances = decode(proba.actor, proba.stance)
    joint = dict(zip(("actor", "stance"), joint_probabilities(proba.actor, proba.stance)))
    predicted = {"actor": actors, "stance": stances}
    return {
        field: calibration(joint[field].max(axis=1), np.asarray(predicted[field]) == np.asarray(gold[field]), bins)["ece"]
        for field in FIELDS
    }


@dataclass(frozen=True)
class Temperatures:
    """One temperature per head; 1.0 leaves probabilities as the model gave them."""

    actor: float = 1.0
    stance: float = 1.0

    @classmethod
    def fit(cls, proba: Probabilities, data: dict[str, Sequence[str]]) -> "Temperatures":
        """Fit both temperatures on `proba` of the sentences whose gold labels are in `data`."""
        return cls(
            actor=fit_temperature(proba.actor, encode("actor", data["actor"])),
            stance=fit_temperature(proba.stance, encode("stance", data["stance"])),
        )

    def apply(self, proba: Probabilities) -> Probabilities:
        """The calibrated probabilities (same labels, rescaled confidence)."""
        return Probabilities(
            actor=scale(proba.actor, self.actor).astype(np.float32),
            stance=scale(proba.stance, self.stance).astype(np.float32),
        )

    def save(self, directory: Path, report: dict[str, Any]) -> None:
        """Write calibration.json into a saved model's directory, with how it was fitted."""
        atomic.write_json(Path(directory) / CALIBRATION_FILE, {"temperatures": asdict(self), **report})
        integrity.record(directory, [CALIBRATION_FILE])

    @classmethod
    def load(cls, directory: Path) -> "Temperatures | None":
        """The temperatures saved with the model in `directory`, or None if it has none."""
        path = Path(directory) / CALIBRATION_FILE
        if not path.exists():
            return None
        integrity.verify(directory, [CALIBRATION_FILE])
        try:
            values = json.loads(path.read_text(encoding="utf-8"))["temperatures"]
            temperatures = cls(actor=float(values["actor"]), stance=float(values["stance"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a calibration file ({type(err).__name__}: {err})") from None
        if not all(np.isfinite(t) and t > 0 for t in (temperatures.actor, temperatures.stance)):
            raise ValueError(f"{path}: temperatures must be positive numbers, got {values}")
        return temperatures
