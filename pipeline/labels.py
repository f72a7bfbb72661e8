"""The label schema, defined once: actors, stances and the `none` rule.

Every other module imports its label lists from here so that index order (and so
every saved model's output layout) is the same everywhere.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NONE = "none"

ACTORS: tuple[str, ...] = ("none", "russia", "united_states", "ukraine", "europe", "other")
STANCES: tuple[str, ...] = ("none", "conciliatory", "deterrent", "steadfast")

FIELDS: dict[str, tuple[str, ...]] = {"actor": ACTORS, "stance": STANCES}


def label_index(field: str) -> dict[str, int]:
    """Map each label of `field` ("actor" or "stance") to its column index."""
    return {label: i for i, label in enumerate(FIELDS[field])}


def check_label(field: str, value: object) -> str:
    """Return `value` if it is a known label of `field`; raise ValueError naming the choices."""
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; allowed: {', '.join(FIELDS)}")
    if value not in FIELDS[field]:
        raise ValueError(
            f"unknown {field} label {value!r}; allowed: {', '.join(FIELDS[field])}"
        )
    return value  # type: ignore[return-value]


def joint_probabilities(
    actor_proba: np.ndarray, stance_proba: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Make actor and stance probabilities agree on `none` (codebook rule 9).

    The stance head decides *whether* a sentence carries a stance; the actor head
    decides *whose* it is. So P(actor=none) is set to P(stance=none), and the other
    actors share the remaining mass in proportion to the actor head's scores: each
    reads as "the probability that this actor holds the sentence's stance".
    """
    actor_proba = np.asarray(actor_proba, dtype=np.float64)
    stance_proba = np.asarray(stance_proba, dtype=np.float64)
    p_none = stance_proba[:, 0:1]
    others = actor_proba[:, 1:]
    total = others.sum(axis=1, keepdims=True)
    # A head that puts all its mass on `none` gives no preference among actors.
    share = np.where(total > 0, others / np.where(total > 0, total, 1.0), 1.0 / others.shape[1])
    actor = np.concatenate([p_none, (1.0 - p_none) * share], axis=1)
    return actor, stance_proba


def decode(actor_proba: np.ndarray, stance_proba: np.ndarray) -> tuple[list[str], list[str]]:
    """Turn joint probabilities into labels that obey rule 9.

    Stance is the argmax of its distribution. When it is `none` the actor is `none`;
    otherwise the actor is the most probable actor other than `none` (the argmax
    of the actor distribution given that the sentence holds a stance).
    """
    actor_proba, stance_proba = joint_probabilities(actor_proba, stance_proba)
    stance_idx = stance_proba.argmax(axis=1)
    actor_idx = actor_proba[:, 1:].argmax(axis=1) + 1
    actor_idx = np.where(stance_idx == 0, 0, actor_idx)
    return [ACTORS[i] for i in actor_idx], [STANCES[i] for i in stance_idx]


def encode(field: str, values: Sequence[str]) -> np.ndarray:
    """Label strings of `field` to integer indices (raises on an unknown label)."""
    index = label_index(field)
    return np.array([index[check_label(field, v)] for v in values], dtype=np.int64)
