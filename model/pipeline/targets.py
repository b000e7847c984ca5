"""The model's targets (issue 20), each measured and printed as met or MISSED by `make eval`.

Each target names the set it is measured on. A target whose set is absent (no pool, no external
file) or too small (a tag with fewer than MIN_REAL_POSITIVES real positives) is printed as not
measured, never as met.
"""

from __future__ import annotations

# A tag's recall on real positives is held to its target only with this many of them: below
# it, one message moves recall by more than five points.
MIN_REAL_POSITIVES = 20


def _row(where: str, measure: str, value, goal: float, at_most: bool = False, note: str = "") -> dict:
    met = None if value is None else (value <= goal if at_most else value >= goal)
    return {"set": where, "measure": measure, "value": value, "goal": f"{'<=' if at_most else '>='} {goal}",
            "met": met, "note": note}


def _real_test(rt: dict) -> list[dict]:
    rnd = rt["random"]
    out = [_row("random real test (both pools)", "micro-F1", rnd["micro_f1"], 0.88),
           _row("random real test (both pools)", "false alarms on untagged", rnd["false_alarms"]["rate"], 0.03,
                at_most=True, note=f"{rnd['false_alarms']['flagged']} of {rnd['false_alarms']['untagged']}")]
    for tag, m in rt["random_and_slice"]["per_tag"].items():
        n = m["support"]
        if n < MIN_REAL_POSITIVES:
            out.append(_row("real positives (random + slice, test)", f"{tag} recall", None, 0.80,
                            note=f"only {n} positives: reported, not held to the target"))
            continue
        out.append(_row("real positives (random + slice, test)", f"{tag} recall", m["recall"], 0.80,
                        note=f"{n} positives"))
        out.append(_row("real positives (random + slice, test)", f"{tag} precision", m["precision"], 0.85,
                        note=f"{n} positives"))
    out.append(_row("real test", "ECE", rt["calibration"]["ece_after"], 0.05, at_most=True))
    return out


def measure(results: dict) -> list[dict]:
    """Every target with its measured value (None where not measured)."""
    rows = []
    if "real_test" in results:
        rows += _real_test(results["real_test"])
    else:
        rows.append(_row("real test", "all real targets", None, 0.0, note="pools absent"))
    cf = results.get("counterfactual_test")
    for tag, m in (cf or {}).get("per_tag", {}).items():
        rows.append(_row("counterfactual test (edited real text)", f"{tag} F1", m["f1"] if m["support"] else None,
                         0.90, note=f"{m['support']} positives"))
    for tag, g in (results.get("style_gap") or {}).items():
        value = g.get("gap")
        rows.append(_row("style gap (test variants vs originals)", f"{tag} recall gap",
                         None if value is None else max(value, 0.0), 0.05, at_most=True,
                         note=f"{g.get('pairs', 0)} pairs; {g.get('recall_originals')} -> {g.get('recall_variants')}"))
    ext = results.get("external")
    if ext:
        rows.append(_row("external (../shared/eval)", "micro-F1", ext["micro_f1"], 0.92))
        for tag, m in ext["per_tag"].items():
            rows.append(_row("external (../shared/eval)", f"{tag} recall", m["recall"], 0.80,
                             note=f"{m['support']} positives"))
    rows.append(_row("machine-written test", "micro-F1", results["test"]["micro_f1"], 0.95))
    return rows


def print_targets(rows: list[dict]) -> None:
    print("\ntargets")
    for r in rows:
        state = "not measured" if r["met"] is None else "met" if r["met"] else "MISSED"
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        note = f" ({r['note']})" if r["note"] else ""
        print(f"  {r['set']:<42} {r['measure']:<32} {value:>7} {r['goal']:<8} {state}{note}")
