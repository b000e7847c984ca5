"""Does the writing style alone predict a tag? A probe on surface features, with no words.

A model learns whatever separates its classes. If every positive of a tag is machine-written
and real rows are almost all untagged, capitals, punctuation and length separate the tag's
positives from its negatives as well as the words do, and the tagger learns the style. This
probe fits, per tag, a logistic regression on surface features only (length, capitals,
punctuation, digits, emoji, sign-offs, @handles; no word, no letter n-gram) and on the row's
origin (machine-written or real), and reports its ROC AUC on held-out rows: 0.5 means style
says nothing about the tag, 1.0 that it gives the tag away.

Usage (from model/, after `python -m pipeline.real`): python -m pipeline.styleprobe
It compares the training set as it was before issue 20 (machine-written + real rows of the
first pool) with today's (plus the second pool, the counterfactual edits and the variants).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from . import dataset as ds

WORK = ds.MODEL_DIR / "work" / "real"
SEED = 20261207


def features(text: str) -> list[float]:
    letters = [c for c in text if c.isalpha()]
    words = text.split()
    return [
        np.log1p(len(text)), np.log1p(len(words)),
        sum(c.isupper() for c in letters) / max(1, len(letters)),
        float(bool(text[:1].isupper())),
        sum(c in ".,;:!?'\"" for c in text) / max(1, len(text)),
        float(text.rstrip()[-1:] in ".!?") if text.strip() else 0.0,
        sum(c.isdigit() for c in text) / max(1, len(text)),
        float(any(ord(c) > 0x2000 for c in text)),
        float("@" in text), float(bool(re.search(r"\[NAME\]|regards|thanks|thank you", text, re.I))),
        float(bool(re.search(r"\b(i|u|ur|pls|plz)\b", text))),
        np.mean([len(w) for w in words]) if words else 0.0,
    ]


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    pos, neg = score[y == 1], score[y == 0]
    if not len(pos) or not len(neg):
        return None
    # The Mann-Whitney statistic: every (positive, negative) pair, ties counting a half.
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def fit(x: np.ndarray, y: np.ndarray, steps: int = 400, lr: float = 0.5) -> np.ndarray:
    """Plain logistic regression by gradient descent (no scikit-learn in the pipeline)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        w -= lr * (x.T @ (p - y) / len(y) + 1e-3 * w)
    return w


def probe(rows: list[dict]) -> dict[str, float | None]:
    """Held-out AUC of style + origin per tag (rows split 70/30 by a seeded shuffle)."""
    x = np.array([features(r["message"]) + [float("id" in r or r.get("counterfactual", False))] for r in rows])
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    x = np.hstack([x, np.ones((len(x), 1))])
    order = np.random.default_rng(SEED).permutation(len(rows))
    cut = int(0.7 * len(rows))
    tr, te = order[:cut], order[cut:]
    out = {}
    for k, tag in enumerate(ds.TAGS):
        y = np.array([int(tag in r["tags"]) for r in rows])
        w = fit(x[tr], y[tr])
        value = auc(y[te], x[te] @ w)
        out[tag] = None if value is None else round(value, 3)
    return out


def read(name: str) -> list[dict]:
    path = WORK / name
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.exists() else []


def training_sets() -> dict[str, list[dict]]:
    machine, real = read("machine_train.jsonl"), read("train.jsonl")
    before = machine + [r for r in real if not r["id"].startswith("twcs-")]
    return {"before issue 20": before,
            "today": machine + real + read("counterfactual_train.jsonl") + read("style_train.jsonl")}


def main() -> int:
    if not (WORK / "train.jsonl").exists():
        raise SystemExit("run `python -m pipeline.real` first (it needs the pools)")
    report = {name: probe(rows) for name, rows in training_sets().items()}
    print(f"{'tag':<20}" + "".join(f"{name:>18}" for name in report))
    for tag in ds.TAGS:
        print(f"{tag:<20}" + "".join(f"{str(report[name][tag]):>18}" for name in report))
    Path(ds.MODEL_DIR / "reports" / "styleprobe.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
