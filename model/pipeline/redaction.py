"""Should the classifier see redacted text? The shipped model on raw and on redacted input, side by side.

    make eval-redaction

The service redacts e-mail addresses, phone, card and IBAN numbers and street addresses before
it stores or logs anything (`src/redact/`, docs/privacy.md). Whether the *model* should also
read the redacted text is a question of accuracy, measured here on every test set the model card
reports (machine test, external, real test and its random part, counterfactual test, style
variants; never training data). Each message goes through `tract_tool redact` (the service's own
code), and for each set this prints how many messages any redaction touched, and micro-F1 and
per-tag F1 at the shipped thresholds on the raw and the redacted text. Only the messages that
changed are run again; the others keep their raw probabilities, so a difference is the
redaction's and not batching noise.

The evaluation texts hold almost no personal data (the pools were scrubbed before they reached
us; see ../shared/data/README.md), so the raw-vs-redacted difference on them mostly measures the
redactor's false positives. The second table asks the other half of the question: every test
message with a line of synthetic personal data appended (a name and one of an e-mail address,
phone number, card, IBAN or street address, in turn), scored raw and redacted. Texts from
../shared are read at run time and never written anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from . import dataset as ds
from . import tract
from .metrics import report

MODEL_DIR = ds.MODEL_DIR
ONNX = MODEL_DIR / "tagger.onnx"
LABELS = MODEL_DIR / "labels.json"
BATCH = 32
# The form the model card's metrics are in (tract's f32 reproduces onnxruntime within 1e-3).
FORM = "f32"
KINDS = ("email", "phone", "card", "iban", "address")
# Appended in turn to every test message for the second table: fictitious data in the shapes
# customers paste (a name on its own line, then the detail), each kind in the redactor's scope.
SYNTHETIC = (
    ("email", "\nJane Doe, jane.doe@example.com"),
    ("phone", "\nJane Doe, +44 7700 900123"),
    ("phone", "\nJane Doe, (555) 123-4567"),
    ("address", "\nJane Doe, 221B Baker Street, London NW1 6XE"),
    ("card", "\nJane Doe, 4111 1111 1111 1111"),
    ("iban", "\nJane Doe, IBAN GB82 WEST 1234 5698 7654 32"),
)


def redact(texts: list[str]) -> list[dict]:
    """`{"text", "counts"}` for each text, from the service's redactor (`tract_tool redact`)."""
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = subprocess.run([str(tract.tool()), "redact"], input=lines, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"tract_tool redact failed: {out.stderr.strip()}")
    results = [json.loads(line) for line in out.stdout.splitlines()]
    if len(results) != len(texts):
        raise RuntimeError(f"tract_tool redact answered {len(results)} lines for {len(texts)} texts")
    return results


def test_sets() -> dict[str, list[dict]]:
    """The test sets the model card reports, as `pipeline.forms` finds them (validation sets
    left out), plus the real test's random part, the card's headline number."""
    from .forms import sets

    found = {name: rows for name, rows in sets().items() if "validation" not in name}
    real = found.get("real test")
    if real is not None and any("part" in r for r in real):
        found["real test (random part)"] = [r for r in real if r.get("part") == "random"]
    return found


def touched(redacted: list[dict]) -> dict:
    """How many messages any redaction changed, and the replacements by kind."""
    kinds = {k: sum(r["counts"][k] for r in redacted) for k in KINDS}
    return {"messages": sum(1 for r in redacted if sum(r["counts"].values()) > 0), "by_kind": kinds}


def splice(raw: np.ndarray, changed: list[int], rerun: np.ndarray) -> np.ndarray:
    """The raw probabilities with the rows of the changed messages replaced by their rerun."""
    out = raw.copy()
    if changed:
        out[np.asarray(changed)] = rerun
    return out


def score(rows: list[dict], probs: np.ndarray, labels: dict) -> dict:
    """Micro-F1 and per-tag F1 of `probs` at the shipped thresholds."""
    tags = labels["tags"]
    thresholds = np.array([labels["thresholds"][t] for t in tags])
    y = np.array([[int(t in r.get("tags", [])) for t in tags] for r in rows])
    r = report(y, probs, thresholds, tags)
    return {"micro_f1": r["micro_f1"] or 0.0, "per_tag": {t: r["per_tag"][t]["f1"] for t in tags}}


def decisions_changed(a: np.ndarray, b: np.ndarray, labels: dict) -> int:
    thresholds = np.array([labels["thresholds"][t] for t in labels["tags"]])
    return int(((a >= thresholds) != (b >= thresholds)).sum())


def by_kind(kinds: list[str], before: np.ndarray, after: np.ndarray, labels: dict) -> dict:
    """Per kind of appended data: its messages, and the tags the redacted text gained and lost
    against the raw text."""
    tags = labels["tags"]
    thresholds = np.array([labels["thresholds"][t] for t in tags])
    a, b = before >= thresholds, after >= thresholds
    out = {}
    for kind in dict.fromkeys(kinds):
        rows = np.array([k == kind for k in kinds])
        out[kind] = {
            "messages": int(rows.sum()),
            "gained": {t: int((b[rows, i] & ~a[rows, i]).sum()) for i, t in enumerate(tags)},
            "lost": {t: int((a[rows, i] & ~b[rows, i]).sum()) for i, t in enumerate(tags)},
        }
    return out


def compare(rows: list[dict], labels: dict, probabilities, inject: bool) -> dict:
    """One set: raw vs redacted, and (with `inject`) synthetic PII appended, raw vs redacted.
    `probabilities(messages) -> array` runs the model."""
    messages = [r["message"] for r in rows]
    red = redact(messages)
    changed = [i for i, r in enumerate(red) if r["text"] != messages[i]]
    raw = probabilities(messages)
    rerun = probabilities([red[i]["text"] for i in changed]) if changed else None
    redacted = splice(raw, changed, rerun)
    out = {
        "messages": len(rows),
        "redacted": touched(red),
        "raw": score(rows, raw, labels),
        "redacted_input": score(rows, redacted, labels),
        "decisions_changed": decisions_changed(raw, redacted, labels),
    }
    if inject:
        appended = [SYNTHETIC[i % len(SYNTHETIC)] for i in range(len(messages))]
        with_pii = [m + line for m, (_, line) in zip(messages, appended)]
        red_pii = redact(with_pii)
        p_raw = probabilities(with_pii)
        p_red = probabilities([r["text"] for r in red_pii])
        out["synthetic"] = {
            "redacted": touched(red_pii),
            "raw": score(rows, p_raw, labels),
            "redacted_input": score(rows, p_red, labels),
            "decisions_changed": decisions_changed(p_raw, p_red, labels),
            "by_kind": by_kind([kind for kind, _ in appended], p_raw, p_red, labels),
        }
    return out


def print_tables(results: dict[str, dict], tags: list[str]) -> None:
    print("\nRaw vs redacted input (the test sets as they are):\n")
    print("| set | messages | messages redacted | replacements | micro-F1 raw | micro-F1 redacted | difference | decisions changed |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, r in results.items():
        kinds = ", ".join(f"{k} {v}" for k, v in r["redacted"]["by_kind"].items() if v) or "none"
        a, b = r["raw"]["micro_f1"], r["redacted_input"]["micro_f1"]
        print(f"| {name} | {r['messages']} | {r['redacted']['messages']} | {kinds} | {a:.4f} | {b:.4f} | "
              f"{b - a:+.4f} | {r['decisions_changed']} of {r['messages'] * len(tags)} |")
    print("\nPer-tag F1, raw → redacted:\n")
    print("| set | " + " | ".join(tags) + " |")
    print("|---|" + "---:|" * len(tags))
    for name, r in results.items():
        cells = [f"{r['raw']['per_tag'][t]:.3f} → {r['redacted_input']['per_tag'][t]:.3f}" for t in tags]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if not all("synthetic" in r for r in results.values()):
        return
    print("\nEvery message with a line of synthetic personal data appended (name + e-mail, phone, card, "
          "IBAN or address, in turn):\n")
    print("| set | micro-F1 as it is | with PII, raw | with PII, redacted | redacted − raw | decisions changed | PII found |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        s = r["synthetic"]
        a, b = s["raw"]["micro_f1"], s["redacted_input"]["micro_f1"]
        print(f"| {name} | {r['raw']['micro_f1']:.4f} | {a:.4f} | {b:.4f} | {b - a:+.4f} | "
              f"{s['decisions_changed']} of {r['messages'] * len(tags)} | {s['redacted']['messages']} of {r['messages']} |")
    print("\nWhat the redacted text changed, by kind of appended data (every set above but the random part, "
          "which real test holds): tags gained / lost against the raw text:\n")
    pooled: dict[str, dict] = {}
    for name, r in results.items():
        if "random part" in name:
            continue
        for kind, k in r["synthetic"]["by_kind"].items():
            p = pooled.setdefault(kind, {"messages": 0, "gained": dict.fromkeys(tags, 0), "lost": dict.fromkeys(tags, 0)})
            p["messages"] += k["messages"]
            for t in tags:
                p["gained"][t] += k["gained"][t]
                p["lost"][t] += k["lost"][t]
    print("| appended | messages | " + " | ".join(tags) + " |")
    print("|---|---:|" + "---:|" * len(tags))
    for kind, p in pooled.items():
        cells = [f"+{p['gained'][t]} / −{p['lost'][t]}" for t in tags]
        print(f"| {kind} | {p['messages']} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic-PII table")
    args = p.parse_args(argv)
    labels = json.loads(LABELS.read_text())
    from .train import trained_tokenizer

    tok = trained_tokenizer(MODEL_DIR, labels)

    def probabilities(messages: list[str]) -> np.ndarray:
        return tract.probabilities(ONNX, tok, messages, BATCH, FORM)

    results = {name: compare(rows, labels, probabilities, not args.no_synthetic)
               for name, rows in test_sets().items()}
    print_tables(results, labels["tags"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
