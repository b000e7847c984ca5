"""Agreement between independent annotators on the double-annotated real rows.

Usage: python -m pipeline.agreement   (from model/; needs no pool: ids and labels only)

`data/real/double.jsonl` holds, per double-annotated row and pass, both annotators' labels
before adjudication: pass "AB" is the first double annotation, pass "CD" the re-annotation of
the Window-shopper candidates after the guide's rule 37 was added (kappa 0.73 before it).
`data/real/counterfactual_double.jsonl` holds the held-out counterfactual edits' tags as their
writer gave them and as a blind checker, who saw only the edited text, gave them.
"""

from __future__ import annotations

import json

import numpy as np

from . import dataset as ds
from . import real


def kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two binary label vectors; None when both are constant and agree."""
    po = float((a == b).mean())
    pe = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return None if pe >= 1.0 else round((po - pe) / (1 - pe), 4)


def agreement(pairs: list[dict]) -> dict:
    a = np.array([ds.label_vector(p["first"]) for p in pairs])
    b = np.array([ds.label_vector(p["second"]) for p in pairs])
    tp = int((a & b).sum())
    return {
        "rows": len(pairs),
        "micro_f1": round(2 * tp / max(1, int(a.sum() + b.sum())), 4),
        "disagreements": int((a != b).any(axis=1).sum()),
        "per_tag": {t: {"kappa": kappa(a[:, i], b[:, i]), "first": int(a[:, i].sum()), "second": int(b[:, i].sum())}
                    for i, t in enumerate(ds.TAGS)},
    }


def by_pass(pairs: list[dict]) -> dict:
    labels = {r["id"]: r for r in real.read_labels()}
    out = {}
    for name in sorted({p["pass"] for p in pairs}):
        group = [p for p in pairs if p["pass"] == name]
        out[name] = agreement(group)
        if name == "AB":
            evals = [p for p in group if labels.get(p["id"], {}).get("part") in ("random", "slice")]
            out["AB, evaluation rows"] = agreement(evals)
            out["AB, second pool (retail tweets)"] = agreement([p for p in group if p["id"].startswith("twcs-")])
    return out


CF_DOUBLE = real.REAL_DIR / "counterfactual_double.jsonl"


def counterfactual_pairs() -> list[dict]:
    """The held-out counterfactual edits: the writer's tags against a blind checker's."""
    if not CF_DOUBLE.exists():
        return []
    rows = [json.loads(x) for x in CF_DOUBLE.read_text().splitlines() if x.strip()]
    return [{"id": r["id"], "pass": "CF", "first": r["writer"], "second": r["checker"]} for r in rows]


def main() -> int:
    pairs = [json.loads(x) for x in real.DOUBLE.read_text().splitlines() if x.strip()]
    passes = by_pass(pairs)
    if cf := counterfactual_pairs():
        passes["held-out counterfactual edits, writer vs blind checker"] = agreement(cf)
    for name, r in passes.items():
        print(f"\npass {name}: {r['rows']} rows, micro-F1 {r['micro_f1']:.4f}, {r['disagreements']} disagreements")
        for tag, m in r["per_tag"].items():
            print(f"  {tag:<20} kappa {m['kappa']}  positives {m['first']} / {m['second']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
