"""The shipped model in tract's two execution forms, side by side, on every set the model card reports.

    make eval-forms

The service runs one int8 file in one of two forms (`INFERENCE_FORM`, docs/performance.md):
`f32` widens the int8 weights at load; `int8` keeps them and quantizes each activation row on the
fly, where the CPU has fast int8 dot products. Both run here through `examples/tract_tool.rs`,
on the same messages, and for each set this prints micro-F1 at the shipped thresholds in each
form, the difference, the largest and 99th-percentile change of a probability, and how many
tag decisions differ. `TOLERANCE` is the promise the README makes; `check` enforces it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import dataset as ds
from . import tract
from .metrics import report

MODEL_DIR = ds.MODEL_DIR
ONNX = MODEL_DIR / "tagger.onnx"
LABELS = MODEL_DIR / "labels.json"
WORK = MODEL_DIR / "work"

# What the int8 form may change, per set: micro-F1 by at most F1, and any one probability by at
# most PROBABILITY (measured: at most 0.07 on these sets; the mean change is about 0.001).
TOLERANCE = {"f1": 0.005, "probability": 0.1}
# Padded batches of this many messages (the int8 form's per-row quantization makes the padding
# and the neighbours irrelevant to each row).
BATCH = 32


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def sets() -> dict[str, list[dict]]:
    """Every labelled set the model card reports that is present here: the machine-written
    splits always; the external messages and the real sets when `../shared` and
    `python -m pipeline.real` have put them in place."""
    from .evaluate import load_external

    found = {"machine validation": ds.load_split("validation"), "machine test": ds.load_split("test")}
    external = load_external()
    if external is not None:
        found["external"] = external
    real = WORK / "real"
    for name, file in (("real validation", "validation.jsonl"), ("real test", "test.jsonl"),
                       ("counterfactual test", "counterfactual_test.jsonl"), ("style variants", "style_test.jsonl")):
        if (real / file).exists():
            found[name] = read(real / file)
    return found


def compare(rows: list[dict], labels: dict, tok) -> dict:
    tags = labels["tags"]
    thresholds = np.array([labels["thresholds"][t] for t in tags])
    messages = [r["message"] for r in rows]
    p32, p8 = (tract.probabilities(ONNX, tok, messages, BATCH, form) for form in ("f32", "int8"))
    y = np.array([[int(t in r.get("tags", [])) for t in tags] for r in rows])
    f32 = report(y, p32, thresholds, tags)["micro_f1"] or 0.0
    int8 = report(y, p8, thresholds, tags)["micro_f1"] or 0.0
    delta = np.abs(p32 - p8)
    return {
        "messages": len(rows),
        "micro_f1_f32": round(float(f32), 4),
        "micro_f1_int8": round(float(int8), 4),
        "f1_difference": round(float(int8 - f32), 4),
        "max_probability_change": round(float(delta.max()), 4),
        "p99_probability_change": round(float(np.quantile(delta, 0.99)), 4),
        "mean_probability_change": round(float(delta.mean()), 5),
        "decisions_changed": int(((p32 >= thresholds) != (p8 >= thresholds)).sum()),
        "decisions": int(delta.size),
    }


def check(results: dict[str, dict]) -> list[str]:
    """The sets whose int8 results are outside `TOLERANCE`, with why."""
    out = []
    for name, r in results.items():
        if abs(r["f1_difference"]) > TOLERANCE["f1"]:
            out.append(f"{name}: micro-F1 moved by {r['f1_difference']:+.4f} (> {TOLERANCE['f1']})")
        if r["max_probability_change"] > TOLERANCE["probability"]:
            out.append(f"{name}: a probability moved by {r['max_probability_change']} (> {TOLERANCE['probability']})")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = p.parse_args(argv)
    labels = json.loads(LABELS.read_text())
    from .train import trained_tokenizer

    tok = trained_tokenizer(MODEL_DIR, labels)
    results = {name: compare(rows, labels, tok) for name, rows in sets().items()}
    print("| set | messages | micro-F1 f32 | micro-F1 int8 | difference | max Δp | p99 Δp | mean Δp | decisions changed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['messages']} | {r['micro_f1_f32']:.4f} | {r['micro_f1_int8']:.4f} | "
              f"{r['f1_difference']:+.4f} | {r['max_probability_change']:.4f} | {r['p99_probability_change']:.4f} | "
              f"{r['mean_probability_change']:.5f} | {r['decisions_changed']} of {r['decisions']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    problems = check(results)
    for problem in problems:
        print(f"OUTSIDE THE TOLERANCE: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
