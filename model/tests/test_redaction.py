"""`make eval-redaction`'s arithmetic on a tiny case, and the tract tool's `redact` as it answers."""

import numpy as np

from pipeline import redaction

LABELS = {"tags": ["A", "B"], "thresholds": {"A": 0.5, "B": 0.5}}


def test_the_tool_redacts_with_the_services_code():
    out = redaction.redact(["mail jane@example.com or call +44 7700 900123", "any discount?", ""])
    assert out[0]["text"] == "mail [EMAIL] or call [PHONE]"
    assert out[0]["counts"] == {"email": 1, "phone": 1, "card": 0, "iban": 0, "address": 0}
    assert out[1] == {"text": "any discount?", "counts": {k: 0 for k in redaction.KINDS}}
    assert out[2]["text"] == ""


def test_touched_counts_messages_and_replacements():
    counts = [{k: 0 for k in redaction.KINDS} for _ in range(3)]
    counts[0]["phone"] = 2
    counts[2]["email"] = 1
    summary = redaction.touched([{"text": "", "counts": c} for c in counts])
    assert summary["messages"] == 2
    assert summary["by_kind"] == {"email": 1, "phone": 2, "card": 0, "iban": 0, "address": 0}


def test_only_the_changed_rows_are_replaced():
    raw = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.6]])
    out = redaction.splice(raw, [1], np.array([[0.3, 0.7]]))
    assert out.tolist() == [[0.1, 0.9], [0.3, 0.7], [0.6, 0.6]]
    assert raw[1].tolist() == [0.8, 0.2]
    assert redaction.splice(raw, [], None).tolist() == raw.tolist()


def test_compare_scores_raw_and_redacted_and_runs_only_what_changed():
    rows = [
        {"message": "call me on 555-123-4567", "tags": ["A"]},
        {"message": "no data here", "tags": ["B"]},
    ]
    seen = []

    def probabilities(messages):
        seen.append(list(messages))
        # "A" only when the raw phone number is there: the redaction loses that one decision.
        return np.array([[0.9 if "555" in m else 0.1, 0.9 if "data" in m else 0.1] for m in messages])

    out = redaction.compare(rows, LABELS, probabilities, inject=False)
    assert seen == [["call me on 555-123-4567", "no data here"], ["call me on [PHONE]"]]
    assert out["redacted"]["messages"] == 1
    assert out["raw"]["micro_f1"] == 1.0
    assert out["redacted_input"]["per_tag"] == {"A": 0.0, "B": 1.0}
    assert round(out["redacted_input"]["micro_f1"], 4) == round(2 / 3, 4)
    assert out["decisions_changed"] == 1
    assert "synthetic" not in out


def test_every_synthetic_line_is_redacted_as_its_kind():
    out = redaction.redact([f"hello{line}" for _, line in redaction.SYNTHETIC])
    for (kind, line), r in zip(redaction.SYNTHETIC, out):
        assert r["counts"] == {k: int(k == kind) for k in redaction.KINDS}, (line, r)
        assert r["text"] == f"hello\nJane Doe, {'IBAN ' if kind == 'iban' else ''}[{kind.upper()}]"


def test_gains_and_losses_by_kind():
    before = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.1]])
    after = np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    out = redaction.by_kind(["card", "email", "card"], before, after, LABELS)
    assert out == {
        "card": {"messages": 2, "gained": {"A": 0, "B": 2}, "lost": {"A": 1, "B": 0}},
        "email": {"messages": 1, "gained": {"A": 0, "B": 0}, "lost": {"A": 0, "B": 0}},
    }
