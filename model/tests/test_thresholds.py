"""Thresholds only where real-style positives exist (pipeline.thresholds, issue 20): a tag with
too few of them is not fitted, a fitted one keeps the recall floor, none goes above the cap, and
the shipped thresholds were fitted that way."""

from __future__ import annotations

import json

import numpy as np

from pipeline import dataset as ds
from pipeline import thresholds as th

LABELS = json.loads((ds.MODEL_DIR / "labels.json").read_text())
TRAINING = json.loads((ds.MODEL_DIR / "reports" / "training.json").read_text())


def one_tag(positives: int, negatives: int, pos_p: np.ndarray, neg_p: np.ndarray):
    """Labels and probabilities of one tag: shape (n, 1) each."""
    y = np.array([1] * positives + [0] * negatives).reshape(-1, 1)
    p = np.concatenate([pos_p, neg_p]).reshape(-1, 1)
    return y, p


def test_a_tag_with_too_few_real_style_positives_keeps_the_default_whatever_the_machine_set_says():
    rng = np.random.default_rng(0)
    # Real-style: 10 positives, all scored low; machine-written: 200 clean positives.
    real = one_tag(10, 300, rng.uniform(0.1, 0.3, 10), rng.uniform(0.0, 0.2, 300))
    machine = one_tag(200, 200, rng.uniform(0.7, 1.0, 200), rng.uniform(0.0, 0.3, 200))
    chosen, how = th.tune_thresholds_floor([(*real, 1.0, True), (*machine, 1.0, False)])
    assert chosen.tolist() == [th.UNFITTED_THRESHOLD]
    assert how == [{"positives": 10, "fitted": False}]


def test_a_fitted_threshold_keeps_the_recall_floor_on_real_style_positives_even_at_an_f1_cost():
    rng = np.random.default_rng(1)
    # 100 real-style positives spread over [0.25, 0.95]; negatives crowd [0.2, 0.45], so the best
    # F1 alone would sit near 0.45 and lose a quarter of the positives.
    real = one_tag(100, 400, np.linspace(0.25, 0.95, 100), rng.uniform(0.2, 0.45, 400))
    chosen, how = th.tune_thresholds_floor([(*real, 1.0, True)])
    recall = float((np.linspace(0.25, 0.95, 100) >= chosen[0]).mean())
    assert how[0]["fitted"] and how[0]["floor_met"]
    assert recall >= th.RECALL_FLOOR and how[0]["real_style_recall"] == round(recall, 4)


def test_no_threshold_is_chosen_above_the_cap_however_clean_the_validation_rows_look():
    # Positives all above 0.9, negatives all below 0.6: any cut in (0.6, 0.9] is perfect on these
    # rows, and the old grid would have taken one; the cap keeps it at 0.5 or below.
    real = one_tag(60, 300, np.full(60, 0.95), np.linspace(0.0, 0.6, 300))
    chosen, _ = th.tune_thresholds_floor([(*real, 1.0, True)])
    assert th.GRID.max() <= th.CAP and chosen[0] <= th.CAP


def test_the_policy_choice_is_deterministic_and_names_a_policy():
    rng = np.random.default_rng(2)
    sets = {k: one_tag(60, 200, rng.uniform(0.3, 1.0, 60), rng.uniform(0.0, 0.6, 200))
            for k in ("real", "counterfactual", "style", "machine")}
    objective = {"real": 0.4, "counterfactual": 0.3, "style": 0.15, "machine": 0.15}
    random_rows = np.ones(260, dtype=bool)
    first = th.choose(sets, objective, random_rows)
    assert first == th.choose(sets, objective, random_rows)
    assert first[0] in th.POLICIES and set(first[1]) == set(th.POLICIES)


def test_the_shipped_thresholds_were_fitted_on_enough_real_style_positives_and_under_the_cap():
    assert TRAINING["thresholds"] == LABELS["thresholds"]
    assert TRAINING["threshold_policy"]["chosen"] in th.POLICIES
    for tag, how in TRAINING["thresholds_chosen"].items():
        if how["fitted"]:
            assert how["positives"] >= th.MIN_REAL_STYLE_POSITIVES, tag
            assert how["real_style_recall"] >= th.RECALL_FLOOR or not how["floor_met"], tag
            assert 0.2 <= LABELS["thresholds"][tag] <= th.CAP, tag
        else:
            assert LABELS["thresholds"][tag] == th.UNFITTED_THRESHOLD, tag
