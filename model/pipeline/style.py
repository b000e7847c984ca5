"""Style variants of the machine-written positives: the same request as a real customer types it.

The machine-written messages are tidy: full sentences, capitals, no shop names. Real customers
write "new user", "pls notify when back in stock", "Dear team, ... Regards", "@shop ...". Each
variant keeps its original's meaning and evidence and changes only the style, so it teaches the
tag in real words, and measures the *style gap*: recall on the variants of the test split's
positives against recall on their originals, per tag (`gap`).

`data/style/variants.jsonl` (our own writing, so kept as text): one row per variant,
  {"original", "message", "tags", "style", "split"}
where `original` is the machine-written message it rewrites and `split` is that message's
split, so a test message's variant is only ever tested, never trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import dataset as ds

VARIANTS = ds.DATA_DIR / "style" / "variants.jsonl"
STYLES = ("lowercase", "typos", "indian", "british", "american", "button", "email", "tweet")


def read(path: Path = VARIANTS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def check(rows: list[dict], splits: dict[str, list[dict]] | None = None) -> list[str]:
    """Every problem that makes the variants unusable: an original that is not in the split the
    variant names, a variant that repeats another text, a style or tag outside the lists."""
    splits = splits or {name: ds.load_split(name) for name in ds.SPLITS}
    where_is = {ds.normalise(r["message"]): name for name, rows_ in splits.items() for r in rows_}
    problems, seen = [], set(where_is)
    for n, r in enumerate(rows, 1):
        where = f"variants.jsonl:{n}"
        try:
            ds.validate_example(r, where)
        except ValueError as err:
            problems.append(str(err))
            continue
        if r.get("style") not in STYLES:
            problems.append(f"{where}: style {r.get('style')!r} is not one of {STYLES}")
        home = where_is.get(ds.normalise(r.get("original") or ""))
        if home is None:
            problems.append(f"{where}: its original is in no split")
        elif home != r.get("split"):
            problems.append(f"{where}: its original is in {home}, the variant says {r.get('split')}")
        key = ds.normalise(r["message"])
        if key in seen:
            problems.append(f"{where}: the variant repeats another message")
        seen.add(key)
    return problems


def of_split(rows: list[dict], split: str) -> list[dict]:
    return [{"message": r["message"], "tags": r["tags"], "style": r["style"], "original": r["original"],
             "style_variant": True} for r in rows if r["split"] == split]


def gap(variants: list[dict], variant_pred: np.ndarray, original_pred: np.ndarray, originals: list[dict],
        tags: list[str]) -> dict:
    """Per tag: recall on the variants that carry the tag against recall on their originals
    (the same messages before restyling), and the gap between them."""
    out = {}
    for k, tag in enumerate(tags):
        idx = [i for i, (v, o) in enumerate(zip(variants, originals)) if tag in v["tags"] and tag in o["tags"]]
        if not idx:
            out[tag] = {"pairs": 0}
            continue
        r_var = float(variant_pred[idx, k].mean())
        r_orig = float(original_pred[idx, k].mean())
        out[tag] = {"pairs": len(idx), "recall_variants": round(r_var, 4), "recall_originals": round(r_orig, 4),
                    "gap": round(r_orig - r_var, 4)}
    return out
