"""The real labels (`data/real/`): sound, complete, honest about what they measure.

Checks that need the pool's texts skip where `../shared/data/real-pool.jsonl` is absent; the
rest read only ids and labels.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline import annotate, real
from pipeline import dataset as ds
from pipeline.agreement import agreement

LABELS = real.read_labels()
PAIRS = [json.loads(x) for x in real.DOUBLE.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def pool():
    if not real.pools_present():
        pytest.skip("real pools not present")
    return real.load_pool()


def test_labels_are_sound(pool):
    assert real.check_labels(LABELS, pool) == []


def test_sizes_meet_the_issue():
    parts = Counter(r["part"] for r in LABELS)
    assert len(LABELS) >= 3000, parts
    assert parts["random"] >= 900 and parts["active"] >= 2100, parts
    evals = {r["id"] for r in LABELS if r["part"] != "active"}
    assert len(PAIRS) >= 400 and sum(p["id"] in evals for p in PAIRS) >= 200


def test_random_part_is_the_seeded_sample_and_nothing_else(pool):
    """Nothing chose, filtered or dropped random rows: they are exactly the seeded draw."""
    assert {r["id"] for r in LABELS if r["part"] == "random"} == set(real.random_sample(pool))
    per_source = Counter(real.source_of(r["id"]) for r in LABELS if r["part"] == "random")
    assert per_source == {s: real.PER_SOURCE_OF.get(s, real.PER_SOURCE) for s in per_source}
    assert set(per_source) == {real.source_of(pid) for pid in pool}


def test_random_part_is_split_in_halves():
    split = Counter(r["split"] for r in LABELS if r["part"] == "random")
    assert abs(split["validation"] - split["test"]) <= 0.05 * sum(split.values()), split


def test_every_disagreement_is_adjudicated():
    final = {r["id"]: r for r in LABELS}
    for p in PAIRS:
        if p["first"] == p["second"]:
            continue
        row = final[p["id"]]
        if p["pass"] == "CD":
            ws_first, ws_second = (annotate.WS in p["first"]), (annotate.WS in p["second"])
            assert ws_first == ws_second or row.get("adjudicated"), p
        else:
            assert row.get("adjudicated"), p


def test_agreement_is_high_where_the_guide_was_fixed():
    """Kappa per tag is at least 0.8 wherever the tag was seen, after the Window-shopper fix."""
    ab = agreement([p for p in PAIRS if p["pass"] == "AB"])
    cd = agreement([p for p in PAIRS if p["pass"] == "CD"])
    assert ab["micro_f1"] >= 0.95
    for tag, m in ab["per_tag"].items():
        k = cd["per_tag"][tag]["kappa"] if tag == annotate.WS else m["kappa"]
        assert k is None or k >= 0.8, (tag, k)


def _pool(*messages):
    return {f"x-{i:06d}": {"id": f"x-{i:06d}", "message": m, "context": None} for i, m in enumerate(messages)}


def _row(pid, tags, part="active", split="train"):
    return {"id": pid, "tags": tags, "part": part, "split": split, "round": 1, "annotators": ["A"]}


def test_check_catches_an_id_missing_from_the_pool():
    problems = real.check_labels([_row("x-999999", [])], _pool("hello there"))
    assert any("not in the pool" in p for p in problems)


def test_check_catches_an_id_labelled_twice_with_different_tags():
    pool = _pool("ok I will take it")
    problems = real.check_labels([_row("x-000000", ["Hot-buyer"]), _row("x-000000", [])], pool)
    assert any("different tags" in p for p in problems)


def test_check_catches_an_id_in_two_splits():
    pool = _pool("ok I will take it")
    rows = [_row("x-000000", [], "random", "validation"), _row("x-000000", [], "random", "test")]
    assert any("two splits" in p for p in real.check_labels(rows, pool))


def test_check_catches_an_evaluation_row_that_near_duplicates_a_training_row():
    pool = _pool("do you ship to new zealand please", "do you ship to new zealand please!!", "hi")
    rows = [_row("x-000000", [], "random", "test"), _row("x-000001", []), _row("x-000002", [])]
    problems = real.check_labels(rows, pool)
    assert problems == ["evaluation row x-000000 near-duplicates training row x-000001 (1.00)"]


def test_machine_rows_that_copy_a_real_evaluation_row_are_left_out_of_training(pool):
    kept = real.machine_train(LABELS, pool)
    assert real.eval_leaks(kept, LABELS, pool) == set()
    assert len(kept) >= len(ds.load_split("train")) - 20


def test_no_real_training_row_copies_the_external_set(pool):
    from pipeline.evaluate import load_external

    external = load_external()
    if external is None:
        pytest.skip("external evaluation set not present")
    train = [pool[r["id"]]["message"] for r in LABELS if r["part"] == "active"]
    assert real.near_duplicate_pairs(train, [r["message"] for r in external], 0.5) == []


def test_a_missing_pool_stops_with_a_clear_message(tmp_path):
    with pytest.raises(real.PoolMissing, match="REAL_POOL"):
        real.load_pool(tmp_path / "absent.jsonl")
