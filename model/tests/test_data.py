"""The data check: the committed splits are sound, complete, and what `prepare` produces."""

from __future__ import annotations

import itertools

import pytest

from pipeline import dataset as ds
from pipeline import prepare


@pytest.fixture(scope="module")
def splits():
    return {name: ds.load_split(name) for name in ds.SPLITS}


def test_splits_have_no_problems(splits):
    assert ds.check_splits(splits) == []


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"message": "hi", "tags": ["Bargain-hunter"]}, "unknown tag"),
        ({"message": "   ", "tags": []}, "empty or missing message"),
        ({"message": "where is my order", "tags": []}, "duplicate message"),
        ({"message": "Where is my order?!", "tags": []}, "duplicate message"),
    ],
)
def test_check_catches_bad_rows(bad, expected):
    clean = {"train": [{"message": "where is my order", "tags": []}], "test": [bad]}
    problems = ds.check_splits(clean)
    assert any(expected in p for p in problems), problems


def test_check_catches_a_message_in_two_splits():
    row = {"message": "ok I'll take the blue one", "tags": ["Hot-buyer"]}
    problems = ds.check_splits({"train": [row], "validation": [], "test": [dict(row)]})
    assert problems == ["duplicate message \"ok I'll take the blue one\" (in train and test)"]


def test_check_catches_near_duplicates_but_keeps_contrast_pairs():
    a = {"message": "do you have a discount code for new customers please", "tags": ["Deal-seeker"]}
    b = {"message": "do you have a discount code for new customers pls", "tags": ["Deal-seeker"]}
    assert any("near duplicates" in p for p in ds.check_splits({"train": [a], "test": [b]}))
    c = {"message": "no coupon needed, buying now", "tags": ["Hot-buyer"]}
    d = {"message": "coupon needed, buying now", "tags": ["Hot-buyer", "Deal-seeker"]}
    assert ds.check_splits({"train": [c], "test": [d]}) == []


def test_sizes_meet_the_dataset_requirements(splits):
    rows = [r for rows in splits.values() for r in rows]
    assert len(rows) >= 2500
    for tag in ds.TAGS:
        assert sum(tag in r["tags"] for r in rows) >= 350, tag
    assert sum(not r["tags"] for r in rows) >= 600
    assert sum(len(r["tags"]) >= 2 for r in rows) >= 400


def test_every_tag_and_tag_pair_is_in_every_split(splits):
    rows = [r for rows in splits.values() for r in rows]
    pairs = [p for p in itertools.combinations(ds.TAGS, 2)
             if sum(set(p) <= set(r["tags"]) for r in rows) >= 3]
    assert len(pairs) >= 8  # the contradictory pairs (e.g. Window-shopper + Hot-buyer) are rare
    for name, split_rows in splits.items():
        for tag in ds.TAGS:
            assert any(tag in r["tags"] for r in split_rows), (name, tag)
        for pair in pairs:
            assert any(set(pair) <= set(r["tags"]) for r in split_rows), (name, pair)
        assert any(not r["tags"] for r in split_rows), name


def test_committed_splits_are_what_prepare_makes(splits):
    """Nobody edits a split by hand: the raw sources plus the seed reproduce them exactly."""
    rows, _ = prepare.drop_exact_duplicates(prepare.load_raw())
    rows, _ = prepare.drop_near_duplicates(rows)
    made = prepare.stratified_split(rows)
    prepare.relabel(made, prepare.read_relabels())
    for name in ds.SPLITS:
        assert [(r["message"], r["tags"]) for r in made[name]] == [
            (r["message"], r["tags"]) for r in splits[name]
        ], name


def test_relabels_keep_every_message_in_its_split_and_stop_when_stale():
    rows, _ = prepare.drop_exact_duplicates(prepare.load_raw())
    rows, _ = prepare.drop_near_duplicates(rows)
    made = prepare.stratified_split(rows)
    before = {name: [r["message"] for r in made[name]] for name in ds.SPLITS}
    assert prepare.relabel(made, prepare.read_relabels()) == len(prepare.read_relabels())
    assert {name: [r["message"] for r in made[name]] for name in ds.SPLITS} == before
    stale = {"no such message": {"message": "no such message", "tags": [], "was": ["Hot-buyer"], "rule": "27"}}
    with pytest.raises(SystemExit, match="match no message"):
        prepare.relabel(prepare.stratified_split(rows), stale)
    one = made["test"][0]
    moved = {ds.normalise(one["message"]): {"message": one["message"], "tags": [], "was": ["Wishlist-user"] if
                                             one["tags"] != ["Wishlist-user"] else ["Hot-buyer"], "rule": "x"}}
    with pytest.raises(SystemExit, match="the data says"):
        prepare.relabel(made, moved)


FIXES = [
    # The reference system's targeted fixes: (pattern, the labels its examples must carry).
    (r"\b(without|no|dont need( a)?|don t need( a)?)\b.*\b(discount|coupon|promo)", ["Hot-buyer"]),
    (r"window shopping|(browsing|looking) for (ideas|inspiration|inspo)", ["Window-shopper"]),
    (r"\bsav(e|ed|ing)\b.*\b(paid|payday|paycheck|pay day|salary)\b", ["Wishlist-user"]),
]


@pytest.mark.parametrize("pattern, tags", FIXES)
def test_reference_fixes_are_taught_by_the_training_data(splits, pattern, tags):
    """Each fix has at least ten training examples carrying exactly its labels (the reference
    system needed 7-25 targeted examples per fix; the model test checks the behaviour)."""
    import re

    hits = [r for r in splits["train"] if re.search(pattern, ds.normalise(r["message"]))]
    exact = [r for r in hits if r["tags"] == tags]
    assert len(exact) >= 10, (pattern, len(exact), len(hits))


# Shingle overlap above which a dataset message counts as a copy of an external one.
EXTERNAL_OVERLAP = 0.5


def test_no_message_copies_the_external_evaluation_set(splits):
    """The external set measures generalisation only if none of its messages (or a near copy)
    is in our data. Skipped where the external set is not present."""
    from pipeline.evaluate import load_external

    external = load_external()
    if external is None:
        pytest.skip("external evaluation set not present")
    ext = [ds.shingles(r["message"]) for r in external]
    copies = []
    for rows in splits.values():
        for r in rows:
            sh = ds.shingles(r["message"])
            best = max(ds.jaccard(sh, e) for e in ext)
            if best >= EXTERNAL_OVERLAP:
                copies.append((round(best, 2), r["message"]))
    assert copies == []


# Words that suggest a tag. A message that uses them but does not carry the tag is a hard
# negative: a negation ("no coupon needed") or a near miss ("where is my discounted order").
TRIGGERS = {
    "First-time-visitor": r"\b(first|new|never)\b",
    "Wishlist-user": r"\b(wishlist|wish list|save|saved|saving|favourites?|favorites?|later)\b",
    "Deal-seeker": r"\b(discount\w*|coupons?|promo|codes?|sale|deals?|cheap\w*|offers?|price)\b",
    "Window-shopper": r"\b(brows\w*|looking|window|just looking|ideas?)\b",
    "Hot-buyer": r"\b(buy\w*|order\w*|checkout|check out|cart|purchase\w*|take it)\b",
}


def test_hard_negatives_are_plentiful(splits):
    import re

    rows = [r for rows in splits.values() for r in rows]
    hard = set()
    for tag, pattern in TRIGGERS.items():
        misses = [i for i, r in enumerate(rows)
                  if re.search(pattern, ds.normalise(r["message"])) and tag not in r["tags"]]
        assert len(misses) >= 50, (tag, len(misses))
        hard.update(misses)
    assert len(hard) >= 250, len(hard)
