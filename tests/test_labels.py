import numpy as np
import pytest

from pipeline.labels import ACTORS, STANCES, check_label, decode, encode, joint_probabilities


def random_proba(rng, n, k):
    x = rng.random((n, k)) ** 3
    return x / x.sum(axis=1, keepdims=True)


def test_decode_obeys_rule_9_on_random_probabilities():
    rng = np.random.default_rng(0)
    actor, stance = random_proba(rng, 2000, len(ACTORS)), random_proba(rng, 2000, len(STANCES))
    actors, stances = decode(actor, stance)
    assert all((a == "none") == (s == "none") for a, s in zip(actors, stances))
    # both outcomes occur, so the check above is not vacuous
    assert "none" in stances and set(stances) - {"none"}


def test_joint_probabilities_are_distributions_sharing_p_none():
    rng = np.random.default_rng(1)
    actor, stance = joint_probabilities(random_proba(rng, 50, 6), random_proba(rng, 50, 4))
    np.testing.assert_allclose(actor.sum(axis=1), 1.0)
    np.testing.assert_allclose(actor[:, 0], stance[:, 0])


def test_decoded_labels_follow_the_reported_probabilities():
    rng = np.random.default_rng(2)
    a, s = random_proba(rng, 500, 6), random_proba(rng, 500, 4)
    actors, stances = decode(a, s)
    ja, js = joint_probabilities(a, s)
    assert [STANCES[i] for i in js.argmax(1)] == stances
    # with a stance, the actor is the likeliest actor other than none
    for k, (actor, stance) in enumerate(zip(actors, stances)):
        if stance != "none":
            assert ACTORS[1 + ja[k, 1:].argmax()] == actor


def test_actor_head_all_on_none_still_gives_an_actor():
    actor = np.array([[1.0, 0, 0, 0, 0, 0]])
    stance = np.array([[0.1, 0.9, 0, 0]])
    actors, stances = decode(actor, stance)
    assert stances == ["conciliatory"] and actors[0] != "none"


def test_unknown_label_names_the_choices():
    with pytest.raises(ValueError, match="allowed: none, conciliatory, deterrent, steadfast"):
        check_label("stance", "hostile")
    with pytest.raises(ValueError, match="hostile"):
        encode("stance", ["none", "hostile"])
