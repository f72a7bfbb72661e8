import numpy as np
import pytest

from pipeline.metrics import agreement, fold_interval, macro_f1, paired_bootstrap, per_class, score


def test_macro_f1_by_hand():
    gold = ["none", "none", "deterrent", "steadfast"]
    pred = ["none", "deterrent", "deterrent", "none"]
    # none: P=1/2 R=1/2 F=.5; deterrent: P=1/2 R=1 F=2/3; steadfast: 0
    assert macro_f1(gold, pred, "stance") == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert per_class(gold, pred, "stance")["conciliatory"]["support"] == 0


def test_pair_accuracy_needs_both_right():
    s = score(["russia", "none"], ["deterrent", "none"], ["russia", "none"], ["steadfast", "none"])
    assert s["pair_accuracy"] == 0.5 and s["actor_accuracy"] == 1.0 and s["stance_accuracy"] == 0.5


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    gold = rng.choice(["none", "deterrent", "steadfast"], 300)
    good = np.where(rng.random(300) < 0.8, gold, "none")
    bad = np.where(rng.random(300) < 0.4, gold, "none")
    groups = np.repeat(np.arange(30), 10)
    metric = lambda g, p: macro_f1(g, p, "stance")  # noqa: E731
    out = paired_bootstrap(gold, good, bad, groups, metric, resamples=200, confidence=0.95, seed=1)
    assert out["low"] <= out["difference"] <= out["high"] and out["low"] > 0
    same = paired_bootstrap(gold, good, good, groups, metric, resamples=50, confidence=0.95, seed=1)
    assert same["low"] == same["high"] == same["difference"] == 0.0


def test_agreement():
    a = ["none", "russia", "europe", "none"]
    assert agreement(a, a, "actor")["kappa"] == pytest.approx(1.0)
    assert agreement(a, ["none", "russia", "other", "russia"], "actor")["raw_agreement"] == 0.5


def test_fold_interval_is_a_student_t_interval():
    out = fold_interval([0.02, 0.04, 0.06, 0.08, 0.10], confidence=0.95)
    # mean 0.06, sd 0.0316; t(0.975, 4) = 2.776: half-width 2.776 * 0.0316 / sqrt(5) = 0.0393
    assert out["difference"] == pytest.approx(0.06)
    assert out["high"] - out["difference"] == pytest.approx(0.0393, abs=1e-4)
    assert out["low"] > 0 and out["folds"] == 5
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_interval([0.1], confidence=0.95)
