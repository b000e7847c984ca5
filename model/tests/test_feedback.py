"""Feedback into retraining (`pipeline.feedback`): the export format, its checks, the split.

Every message here is invented for the test; none comes from a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import dataset as ds
from pipeline import feedback as fb
from pipeline.train import load_rows


def item(n: int, message: str, tags: list, received_at: int = 1764700000, **extra) -> dict:
    """One line as `tagbeez export-feedback` writes it."""
    return {"feedback_id": f"00000000-0000-4000-8000-{n:012d}", "message": message, "tags": tags,
            "predicted": None, "model_version": "2026.12.01-test", "conversation_id": None,
            "message_id": None, "source": None, "received_at": received_at, **extra}


def write(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


# Curated sets small enough to read: one training, one evaluation and one external message.
CURATED = [
    ("machine-written train", "train", [{"message": "can i pay with a gift card at checkout", "tags": []}]),
    ("machine-written test", "eval", [{"message": "where is my parcel, it is late", "tags": []}]),
    ("external", "external", [{"message": "do u have any promo codes for the red kettle", "tags": ["Deal-seeker"]}]),
]


def test_loader_accepts_the_export_format(tmp_path):
    path = write(tmp_path, [
        item(1, "first visit here, what do you sell?", ["First-time-visitor"]),
        item(2, "ok add the green mug to my cart", ["Hot-buyer"], predicted=["Deal-seeker"],
             conversation_id="conv-7", message_id="m.3", source="demo"),
        "",
        item(3, "just chatting, nothing to buy", [], predicted=[]),
    ])
    items, repeated = fb.load(path)
    assert repeated == 0
    assert [(i.line, i.tags) for i in items] == [(1, ["First-time-visitor"]), (2, ["Hot-buyer"]), (4, [])]
    assert items[1].source == "demo" and items[0].received_at == 1764700000


def test_tags_come_back_in_the_model_order(tmp_path):
    items, _ = fb.load(write(tmp_path, [item(1, "any coupon? I'll order now", ["Hot-buyer", "Deal-seeker"])]))
    assert items[0].tags == ["Deal-seeker", "Hot-buyer"]


@pytest.mark.parametrize("bad, expected", [
    (item(2, "hello", ["Bargain-hunter"]), "unknown tag"),
    (item(2, "   ", []), "empty or missing message"),
    ('{"feedback_id": "x", "message": ', "invalid JSON"),
    ({k: v for k, v in item(2, "hello", []).items() if k != "received_at"}, "missing field(s) ['received_at']"),
    ({k: v for k, v in item(2, "hello", []).items() if k not in ("predicted", "source")},
     "missing field(s) ['predicted', 'source']"),
    (item(2, "hello", "Hot-buyer"), "tags must be a list of strings"),
    (item(2, "hello", ["Hot-buyer", "Hot-buyer"]), "repeated tag"),
    (item(2, "hello", [], predicted=["Nope"]), "predicted: unknown tag"),
    (item(2, "hello", [], received_at="yesterday"), "received_at must be unix seconds"),
    (item(2, "hello", [], conversation_id="has space"), "conversation_id must be null or"),
    (item(2, "hello", [], source=""), "source must be null or"),
    (item(2, "x" * (fb.MAX_MESSAGE_CHARS + 1), []), "over the limit of 5000"),
    ([1, 2], "not a JSON object"),
])
def test_loader_refuses_a_bad_line_naming_its_number(tmp_path, bad, expected):
    path = write(tmp_path, [item(1, "fine line", []), bad, item(3, "another fine line", [])])
    with pytest.raises(fb.FeedbackError) as err:
        fb.load(path)
    assert "feedback.jsonl:2: " in str(err.value) and expected in str(err.value), str(err.value)
    assert ":1:" not in str(err.value) and ":3:" not in str(err.value)


def test_every_bad_line_is_named_at_once(tmp_path):
    path = write(tmp_path, [item(1, "", []), item(2, "fine", []), item(3, "hi", ["Nope"])])
    with pytest.raises(fb.FeedbackError, match=r"2 bad line\(s\)") as err:
        fb.load(path)
    assert "feedback.jsonl:1:" in str(err.value) and "feedback.jsonl:3:" in str(err.value)


def test_a_feedback_id_twice_is_one_item_or_an_error(tmp_path):
    same = item(1, "saving this lamp for later", ["Wishlist-user"])
    items, repeated = fb.load(write(tmp_path, [same, same]))
    assert (len(items), repeated) == (1, 1)
    with pytest.raises(fb.FeedbackError, match="feedback.jsonl:2: feedback_id .* is on line 1 too"):
        fb.load(write(tmp_path, [same, {**same, "tags": []}]))


def test_the_split_is_deterministic_by_text():
    messages = [f"invented message number {i} about a blue sofa" for i in range(2000)]
    first = [fb.held_out(m) for m in messages]
    assert first == [fb.held_out(m) for m in messages]
    # The normalised text decides: case, punctuation and accents do not move a text.
    assert all(fb.held_out(m) == fb.held_out(m.upper() + "!!") for m in messages[:200])
    share = sum(first) / len(first)
    assert 0.17 <= share <= 0.23, share


def _parse_all(records):
    out = []
    for n, r in enumerate(records, 1):
        it = fb.parse(r, f"t:{n}")
        it.line = n
        out.append(it)
    return out


def test_the_split_does_not_depend_on_order_ids_or_other_lines():
    records = [item(i, f"made-up question {i} about socks", []) for i in range(100)]
    train, test, _, _ = fb.build(_parse_all(records), [])
    side = {r["message"]: "test" for r in test} | {r["message"]: "train" for r in train}
    # Reversed, renumbered, with more feedback beside it: every text stays on its side.
    more = [item(1000 + i, f"made-up question {i} about socks", []) for i in reversed(range(100))]
    more += [item(5000 + i, f"other invented line {i} on hats", []) for i in range(50)]
    train2, test2, _, _ = fb.build(_parse_all(more), [])
    side2 = {r["message"]: "test" for r in test2} | {r["message"]: "train" for r in train2}
    assert {m: side2[m] for m in side} == side
    assert 0 < len(test) < 40


def test_conflicting_labels_are_resolved_by_the_latest_and_reported():
    records = [
        item(1, "Is there a discount on the tent?", ["Deal-seeker"], received_at=100),
        item(2, "is there a discount on the tent", [], received_at=300),
        item(3, "IS THERE A DISCOUNT ON THE TENT", ["Deal-seeker"], received_at=200),
        item(4, "show me new arrivals", ["Window-shopper"], received_at=100),
        item(5, "show me new arrivals!", ["Window-shopper"], received_at=150),
        item(6, "buy the red one", ["Hot-buyer"], received_at=500),
        item(7, "Buy the red one.", [], received_at=500),
    ]
    train, test, counts, decisions = fb.build(_parse_all(records), [])
    rows = {ds.normalise(r["message"]): r for r in train + test}
    assert rows["is there a discount on the tent"]["tags"] == []  # the latest (received_at 300) wins
    assert rows["is there a discount on the tent"]["feedback_id"] == item(2, "", [])["feedback_id"]
    assert rows["show me new arrivals"]["feedback_id"] == item(5, "", [])["feedback_id"]
    assert "buy the red one" not in rows  # a same-second conflict: neither is later
    assert counts["conflicting_texts"] == 2
    assert counts["conflict_items_overridden"] == 2 and counts["conflict_ties_dropped"] == 2
    assert counts["duplicates_merged"] == 1
    assert decisions[item(1, "", [])["feedback_id"]]["decision"] == "overridden"


def test_a_message_equal_to_a_test_message_never_reaches_training():
    records = [item(1, "Where is my PARCEL?? it is late", ["Hot-buyer"]),
               item(2, "can I pay with a gift card at checkout!", []),
               item(3, "a brand new invented line about garden chairs", ["Window-shopper"])]
    train, test, counts, decisions = fb.build(_parse_all(records), CURATED)
    kept = [r["message"] for r in train + test]
    assert kept == ["a brand new invented line about garden chairs"]
    assert counts["equal_to_curated_dropped"] == {"machine-written test, different labels": 1,
                                                  "machine-written train, same labels": 1}
    assert decisions[item(1, "", [])["feedback_id"]]["labels_agree"] is False


def test_near_duplicates_of_evaluation_and_external_messages_stay_out_of_training(monkeypatch):
    monkeypatch.setattr(fb, "held_out", lambda message, percent=20: False)  # everything on the train side
    records = [item(1, "where is my parcel, it is late!!!", []),     # the test message (punctuation only)
               item(2, "where is my parcel it is late now", []),    # near it, Jaccard >= 0.85
               item(3, "any promo codes for the red kettle", ["Deal-seeker"]),  # near the external one (>= 0.5)
               item(4, "completely unrelated invented line about a bike", ["Hot-buyer"])]
    train, _, counts, _ = fb.build(_parse_all(records), CURATED)
    assert [r["message"] for r in train] == ["completely unrelated invented line about a bike"]
    assert counts["train_near_external_dropped"] == 1
    assert counts["train_near_evaluation_dropped"] + sum(counts["equal_to_curated_dropped"].values()) == 2


def test_a_test_row_near_a_training_message_is_left_out_of_the_test(monkeypatch):
    monkeypatch.setattr(fb, "held_out", lambda message, percent=20: True)  # everything held out
    records = [item(1, "can i pay with a gift card at checkout pls", []),
               item(2, "an invented question about dog beds", ["First-time-visitor"])]
    _, test, counts, _ = fb.build(_parse_all(records), CURATED)
    assert [r["message"] for r in test] == ["an invented question about dog beds"]
    assert counts["test_near_training_dropped"] == 1


def test_run_writes_counts_and_decisions_by_id_only(tmp_path):
    words = ["lamps", "socks", "kettle", "sofa", "tent", "mug", "rug", "bike", "hat", "desk"]
    lines = [item(i, f"{words[i % 10]} or {words[i // 10]}? invented question {i * 7919}",
                  ["Hot-buyer"] if i % 2 else []) for i in range(40)]
    src = tmp_path / "export.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "work" / "feedback"
    summary = fb.run(src, out, curated=CURATED)
    assert summary["train"] + summary["test"] == 40 and summary["test"] > 0
    assert summary["train_tags"]["Hot-buyer"] + summary["test_tags"]["Hot-buyer"] == 20
    assert len(ds.read_jsonl(out / "train.jsonl")) == summary["train"]
    decisions = (out / "decisions.jsonl").read_text()
    assert "invented" not in decisions and "invented" not in (out / "summary.json").read_text()


def test_training_takes_the_feedback_rows(tmp_path):
    path = tmp_path / "train.jsonl"
    ds.write_jsonl(path, [{"message": "an invented line", "tags": ["Hot-buyer"], "feedback_id": "f-1"}])
    rows, _, _ = load_rows(machine_only=True, feedback=path)
    assert rows[-1]["feedback_id"] == "f-1" and len(rows) == len(ds.load_split("train")) + 1


def test_a_file_inside_the_repository_must_be_git_ignored():
    with pytest.raises(SystemExit, match="not git-ignored"):
        fb.guard_location(ds.MODEL_DIR / "data" / "feedback.jsonl")
    fb.guard_location(ds.MODEL_DIR / "work" / "feedback.jsonl")  # ignored: allowed


def test_no_file_clears_an_earlier_runs_feedback(tmp_path):
    out = tmp_path / "feedback"
    out.mkdir()
    (out / "train.jsonl").write_text("{}\n")
    assert fb.main(["--out", str(out)]) == 0
    assert not out.exists()
