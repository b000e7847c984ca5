"""Counterfactual edits and style variants: they apply, they stay in their splits, they never
touch an evaluation row, and there are as many as issue 20 asks for.

Checks that need the pools' texts skip where they are absent; the rest read only ids, spans and
labels.
"""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline import dataset as ds
from pipeline import edits, real, style

EDITS = edits.read()
VARIANTS = style.read()
LABELS = real.read_labels()
RARE = ("First-time-visitor", "Wishlist-user", "Window-shopper")


@pytest.fixture(scope="module")
def pool():
    if not real.pools_present():
        pytest.skip("real pools not present")
    return real.load_pool()


def _pool(*messages):
    return {f"x-{i:06d}": {"id": f"x-{i:06d}", "message": m, "context": None} for i, m in enumerate(messages)}


def _edit(pool, pid, edited, tags, split="train", kind="add", target=None):
    text = pool[pid]["message"]
    return {"id": pid, "source_sha": edits.source_sha(text), "edit": edits.diff(text, edited), "tags": tags,
            "kind": kind, "target": target or (tags[0] if tags else None), "split": split, "author": "test"}


def _label(pid, part, split):
    return {"id": pid, "tags": [], "part": part, "split": split, "round": 0, "annotators": ["A"]}


def test_diff_then_apply_gives_the_edited_text_and_keeps_the_rest_out():
    original = "do u have whey protein 2kg"
    edited = "im new user, do u have whey protein 2kg"
    ops = edits.diff(original, edited)
    assert edits.apply(original, ops) == edited
    assert all("whey" not in op[2] for op in ops), ops


def test_the_committed_edits_are_sound(pool):
    assert edits.check(EDITS, pool, LABELS) == []


def test_an_edit_that_does_not_apply_fails():
    pool = _pool("is this in stock")
    row = _edit(pool, "x-000000", "when will this be back in stock, i'll wait", ["Wishlist-user"])
    stale = {**row, "source_sha": edits.source_sha("is this in stock?")}
    assert any("not the one the edit was written against" in p for p in edits.check([stale], pool, []))
    past_end = {**row, "edit": [[0, 99, "x"]]}
    assert any("does not apply" in p for p in edits.check([past_end], pool, []))


def test_a_source_in_two_splits_fails():
    pool = _pool("is this in stock")
    a = _edit(pool, "x-000000", "new user here, is this in stock", ["First-time-visitor"], "train")
    b = _edit(pool, "x-000000", "is this in stock? notify me when back", ["Wishlist-user"], "test")
    assert any("two splits" in p for p in edits.check([a, b], pool, []))


def test_a_counterfactual_of_an_evaluation_row_fails():
    pool = _pool("is this in stock", "where is my parcel")
    rows = [_edit(pool, "x-000000", "is this in stock, just browsing today", ["Window-shopper"], "train")]
    for part, split in (("random", "test"), ("slice", "validation")):
        problems = edits.check(rows, pool, [_label("x-000000", part, split)])
        assert any(f"in the real {split} split" in p for p in problems), problems


def test_a_held_out_edit_of_a_training_row_fails():
    pool = _pool("is this in stock")
    rows = [_edit(pool, "x-000000", "new here, is this in stock", ["First-time-visitor"], "test")]
    problems = edits.check(rows, pool, [_label("x-000000", "active", "train")])
    assert any("must be train" in p for p in problems), problems


def test_an_add_edit_must_carry_its_tag():
    pool = _pool("is this in stock")
    row = _edit(pool, "x-000000", "new user, is this in stock", [], target="First-time-visitor")
    assert any("target tag" in p for p in edits.check([row], pool, []))


def test_a_held_out_edit_that_copies_a_training_text_fails():
    pool = _pool("do you ship to new zealand please", "do you ship to new zealand please!!")
    train = _edit(pool, "x-000000", "first time here, do you ship to new zealand please", ["First-time-visitor"])
    held = _edit(pool, "x-000001", "first time here, do you ship to new zealand please!!", ["First-time-visitor"],
                 "test")
    assert any("near-duplicates a training text" in p for p in edits.check([train, held], pool, []))


def test_edits_are_stored_as_spans_never_as_the_pool_text(pool):
    for r in EDITS:
        text = pool[r["id"]]["message"]
        kept = sum(end - start for start, end, _ in r["edit"])
        assert kept < len(text) or len(text) < 40, r["id"]


def test_there_are_enough_edits_per_tag():
    adds = Counter(r["target"] for r in EDITS if r["kind"] == "add")
    for tag in RARE:
        assert adds[tag] >= 300, adds
    for tag in ("Deal-seeker", "Hot-buyer"):
        assert adds[tag] >= 150, adds
    assert sum(r["kind"] == "remove" for r in EDITS) >= 100
    held = Counter(r["split"] for r in EDITS)
    assert held["test"] >= 200 and held["validation"] >= 200, held


def test_the_committed_variants_are_sound():
    assert style.check(VARIANTS) == []


def test_a_variant_whose_original_is_in_another_split_fails():
    splits = {"train": [{"message": "I'm new here, what do you sell?", "tags": ["First-time-visitor"]}],
              "validation": [], "test": []}
    row = {"original": "I'm new here, what do you sell?", "message": "new here wat u sell", "tags":
           ["First-time-visitor"], "style": "typos", "split": "test"}
    assert any("its original is in train" in p for p in style.check([row], splits))


def test_a_third_of_the_machine_written_rare_positives_have_a_variant():
    rare = [r for name in ds.SPLITS for r in ds.load_split(name) if set(r["tags"]) & set(RARE)]
    varied = {ds.normalise(v["original"]) for v in VARIANTS}
    assert sum(ds.normalise(r["message"]) in varied for r in rare) >= len(rare) / 3
    tested = {ds.normalise(r["message"]) for r in ds.load_split("test") if set(r["tags"]) & set(RARE)}
    assert tested <= varied, "every rare positive of the machine-written test has a variant (the style gap)"


def test_every_held_out_edit_was_checked_blind_and_agrees():
    """The counterfactual test is scored against the writer's tags: a second annotator, who saw
    only the edited text, gave the same tags to every held-out edit (disagreements were
    adjudicated by dropping the edit)."""
    from pipeline.agreement import counterfactual_pairs

    pairs = {(p["id"], tuple(p["first"]), tuple(p["second"])) for p in counterfactual_pairs()}
    held = {(r["id"], tuple(r["tags"]), tuple(r["tags"])) for r in EDITS if r["split"] != "train"}
    assert held == pairs


def test_no_training_edit_or_variant_near_duplicates_an_evaluation_text(pool):
    joined = edits.join(EDITS, pool)
    assert real.training_edit_leaks(joined, VARIANTS, LABELS, pool) == []


def test_a_training_edit_that_comes_near_an_evaluation_row_is_caught():
    # Two pool rows: x-000001 is a real test row; the training edit of x-000000 turns its text
    # into (nearly) that row's text, which would train on an evaluation message.
    pool = _pool("where is my parcel, it was due monday", "hi, is the blue kettle back in stock yet? thanks")
    labels = [_label("x-000001", "random", "test")]
    row = _edit(pool, "x-000000", "hi, is the blue kettle back in stock yet? thanks!", [], kind="remove", target=None)
    joined = edits.join([row], pool)
    leaks = real.training_edit_leaks(joined, [], labels, pool)
    assert leaks == ["edit of x-000000 (remove)"]
    held_out = [{**r, "split": "test"} for r in joined]
    assert real.training_edit_leaks(held_out, [], labels, pool) == []
