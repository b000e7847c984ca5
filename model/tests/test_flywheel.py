"""The flywheel report (`pipeline.flywheel`): old and new model side by side, right numbers.

The messages are invented for the test. One test scores the shipped model as both old and new
through onnxruntime (every difference must be zero); the others stub the predictions so the
arithmetic can be checked by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import dataset as ds
from pipeline import flywheel as fw

TAGS = ds.TAGS
FTV, WISH, DEAL, WIN, HOT = TAGS

ROWS = [
    {"message": "invented one", "tags": [HOT]},
    {"message": "invented two", "tags": [HOT, DEAL]},
    {"message": "invented three", "tags": [DEAL]},
    {"message": "invented four", "tags": []},
]


def stub(version: str, predictions: list[list[str]]) -> fw.Model:
    """A model that predicts exactly `predictions` (probability 1 or 0, thresholds 0.5)."""
    probs = np.array([[float(t in p) for t in TAGS] for p in predictions])
    return fw.Model(version, np.full(len(TAGS), 0.5), lambda rows: probs[: len(rows)])


def test_the_side_by_side_numbers_are_right():
    # old: finds both Hot-buyer, misses both Deal-seeker, one false Window-shopper.
    old = stub("old", [[HOT], [HOT], [], [WIN]])
    # new: finds both Hot-buyer and one Deal-seeker, no false alarm.
    new = stub("new", [[HOT], [HOT, DEAL], [], []])
    r = fw.compare(ROWS, old, new)
    # old: tp 2, fp 1, fn 2 -> micro 4/7; new: tp 3, fp 0, fn 1 -> micro 6/7.
    assert r["old"]["micro_f1"] == round(4 / 7, 4) and r["new"]["micro_f1"] == round(6 / 7, 4)
    assert r["delta"]["micro_f1"] == round(6 / 7 - 4 / 7, 4)
    # Per tag: Hot-buyer 1 -> 1; Deal-seeker 0 -> 2/3; Window-shopper 0 (a false alarm) -> n/a
    # (no positive, no prediction); First-time-visitor and Wishlist-user n/a in both.
    assert r["old"]["per_tag"][HOT]["f1"] == 1.0 and r["new"]["per_tag"][HOT]["f1"] == 1.0
    assert r["old"]["per_tag"][DEAL]["f1"] == 0.0 and r["new"]["per_tag"][DEAL]["f1"] == round(2 / 3, 4)
    assert r["old"]["per_tag"][WIN]["f1"] == 0.0 and r["new"]["per_tag"][WIN]["f1"] is None
    assert r["delta"]["per_tag"][DEAL] == round(2 / 3, 4) and r["delta"]["per_tag"][WIN] is None
    assert r["old"]["per_tag"][FTV]["f1"] is None and r["delta"]["per_tag"][FTV] is None
    # Macro averages the defined tags: old (1 + 0 + 0) / 3, new (1 + 2/3) / 2.
    assert r["old"]["macro_f1"] == round(1 / 3, 4) and r["new"]["macro_f1"] == round(5 / 6, 4)
    assert r["delta"]["macro_f1"] == round(5 / 6 - 1 / 3, 4)
    assert r["new"]["per_tag"][DEAL]["support"] == 2 and r["messages"] == 4
    lo, hi = r["delta"]["micro_f1_interval"]
    assert lo <= r["delta"]["micro_f1"] <= hi


def test_overall_scores_can_come_from_a_part_of_the_set():
    """Real test: micro/macro on the random part only, per-tag F1 on every row."""
    old = stub("old", [[HOT], [HOT], [], [WIN]])
    new = stub("new", [[HOT], [HOT, DEAL], [], []])
    r = fw.compare(ROWS, old, new, overall=np.array([True, True, False, False]))
    # Random part = rows 1-2: old tp 2, fn 1 -> 0.8; new tp 3 -> 1.0.
    assert (r["old"]["micro_f1"], r["new"]["micro_f1"], r["overall_messages"]) == (0.8, 1.0, 2)
    assert r["new"]["per_tag"][DEAL]["support"] == 2  # per tag still counts rows 3-4


def test_the_report_says_a_person_decides_and_how_to_roll_back(tmp_path):
    old = stub("v-old", [[HOT], [HOT], [], [WIN]])
    new = stub("v-new", [[HOT], [HOT, DEAL], [], []])
    summary = {"lines": 5, "items": 5, "train": 3, "test": 1, "holdout_percent": 20, "conflicting_texts": 1,
               "conflict_items_overridden": 1, "equal_to_curated_dropped": {"machine-written test, different labels": 1}}
    result = fw.run(old, new, [("feedback_test", "feedback test", ROWS, None)], summary)
    text = fw.write(result, tmp_path)
    assert "| feedback test | 4 | 0.5714 | 0.8571 | +0.2857 |" in text
    assert "| feedback test | Deal-seeker | 2 | 0.0000 | 0.6667 | +0.6667 |" in text
    assert "| feedback test | First-time-visitor | 0 | n/a | n/a | n/a |" in text
    assert "`v-old`" in text and "`v-new`" in text and "Conflicting labels for the same text: 1" in text
    last = text.strip().splitlines()[-1]
    assert "a person decides whether to ship" in last and fw.ROLLBACK in last
    saved = json.loads((tmp_path / "flywheel.json").read_text())
    assert saved["sets"]["feedback_test"]["delta"]["micro_f1"] == round(6 / 7 - 4 / 7, 4)
    assert "invented" not in text and "invented" not in (tmp_path / "flywheel.json").read_text()


def test_the_shipped_model_against_itself_differs_by_nothing(tmp_path):
    pytest.importorskip("onnxruntime")
    rows = [{"message": "hi, first time on this shop, what do you sell?", "tags": [FTV]},
            {"message": "ok I'll take the blue kettle, how do I pay?", "tags": [HOT]},
            {"message": "got a coupon code for the lamp?", "tags": [DEAL]},
            {"message": "where is my parcel", "tags": []}]
    model = fw.onnx_model(ds.MODEL_DIR)
    r = fw.compare(rows, model, model)
    assert r["old"] == r["new"] and r["new"]["micro_f1"] is not None
    assert r["delta"]["micro_f1"] == 0 and r["delta"]["micro_f1_interval"] == [0.0, 0.0]
    assert all(d in (0, None) for d in r["delta"]["per_tag"].values())
    assert "±0" in fw.markdown(fw.run(model, model, [("test", "synthetic", rows, None)]))


def test_keep_copies_the_three_files(tmp_path):
    dst = tmp_path / "previous"
    version = fw.keep(ds.MODEL_DIR, dst)
    assert version == json.loads((ds.MODEL_DIR / "labels.json").read_text())["model_version"]
    for name in fw.FILES:
        assert (dst / name).read_bytes() == (ds.MODEL_DIR / name).read_bytes()
