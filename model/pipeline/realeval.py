"""Scores on the real evaluation sets: bootstrap intervals, calibration, per source.

The random part (drawn uniformly per source, before any model saw the pool) estimates real
traffic: overall micro- and macro-F1 come from it alone. The rare-tag slice was searched for
the rare tags, so it only joins the per-tag precision and recall, never the overall scores.
"""

from __future__ import annotations

import numpy as np

from .metrics import per_tag, predict, report

BOOTSTRAP = 1000
BOOTSTRAP_SEED = 20261201
BINS = 10


def interval(values: list[float]) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def bootstrap(y: np.ndarray, pred: np.ndarray, n: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """95% percentile intervals for micro-F1, macro-F1 and each tag's precision and recall,
    resampling messages with replacement."""
    rng = np.random.default_rng(seed)
    micro, macro, prec, rec, f1 = [], [], [], [], []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        t = per_tag(y[i], pred[i])
        tp, fp, fn = t["tp"].sum(), t["fp"].sum(), t["fn"].sum()
        micro.append(2 * tp / max(1, 2 * tp + fp + fn))
        defined = (2 * t["tp"] + t["fp"] + t["fn"]) > 0
        macro.append(t["f1"][defined].mean() if defined.any() else 0.0)
        prec.append(t["precision"])
        rec.append(t["recall"])
        f1.append(t["f1"])
    prec, rec, f1 = np.array(prec), np.array(rec), np.array(f1)
    return {"micro_f1": interval(micro), "macro_f1": interval(macro),
            "precision": [interval(prec[:, k]) for k in range(y.shape[1])],
            "recall": [interval(rec[:, k]) for k in range(y.shape[1])],
            "f1": [interval(f1[:, k]) for k in range(y.shape[1])]}


def false_alarms(y: np.ndarray, pred: np.ndarray) -> dict:
    """The share of untagged messages given any tag: what a shop sees as noise on real traffic."""
    untagged = y.sum(axis=1) == 0
    n = int(untagged.sum())
    flagged = int((pred[untagged].sum(axis=1) > 0).sum())
    return {"untagged": n, "flagged": flagged, "rate": round(flagged / n, 4) if n else None}


def with_intervals(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, tags: list[str]) -> dict:
    """`report` plus 95% bootstrap intervals of every tag's precision, recall and F1."""
    out = report(y, probs, thresholds, tags)
    pred = predict(probs, thresholds)
    ci = bootstrap(y, pred)
    for k, tag in enumerate(tags):
        out["per_tag"][tag]["precision_interval"] = ci["precision"][k]
        out["per_tag"][tag]["recall_interval"] = ci["recall"][k]
        out["per_tag"][tag]["f1_interval"] = ci["f1"][k]
    out["interval"] = {"micro_f1": ci["micro_f1"], "macro_f1": ci["macro_f1"]}
    return out


def ece(y: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error over every (message, tag) pair, equal-width bins."""
    p, t = probs.ravel(), y.ravel().astype(float)
    idx = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - t[m].mean())
    return round(float(total / len(p)), 4)


def uncalibrate(probs: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """The probabilities before temperature scaling: sigmoid(calibrated logit * T)."""
    eps = 1e-7
    p = np.clip(probs, eps, 1 - eps)
    return 1 / (1 + np.exp(-np.log(p / (1 - p)) * temperatures[None, :]))


def real_report(rows: list[dict], probs: np.ndarray, thresholds: np.ndarray, temperatures: np.ndarray,
                tags: list[str]) -> dict:
    """Every number the real-data targets need for one real split (random part + slice)."""
    y = np.array([[int(t in r["tags"]) for t in tags] for r in rows])
    parts = np.array([r["part"] for r in rows])
    rnd = parts == "random"
    pred = predict(probs, thresholds)
    out = {"random": report(y[rnd], probs[rnd], thresholds, tags),
           "random_and_slice": report(y, probs, thresholds, tags)}
    out["random"]["false_alarms"] = false_alarms(y[rnd], pred[rnd])
    ci_rnd, ci_all = bootstrap(y[rnd], pred[rnd]), bootstrap(y, pred)
    out["random"]["interval"] = {"micro_f1": ci_rnd["micro_f1"], "macro_f1": ci_rnd["macro_f1"]}
    for k, tag in enumerate(tags):
        out["random_and_slice"]["per_tag"][tag]["precision_interval"] = ci_all["precision"][k]
        out["random_and_slice"]["per_tag"][tag]["recall_interval"] = ci_all["recall"][k]
    out["by_source"] = {}
    for source in sorted({r["source"] for r in rows}):
        m = rnd & np.array([r["source"] == source for r in rows])
        out["by_source"][source] = report(y[m], probs[m], thresholds, tags)
    before = uncalibrate(probs, temperatures)
    out["calibration"] = {"ece_before": ece(y, before), "ece_after": ece(y, probs),
                          "ece_before_random": ece(y[rnd], before[rnd]), "ece_after_random": ece(y[rnd], probs[rnd])}
    return out


def print_real(title: str, r: dict) -> None:
    rnd, allr = r["random"], r["random_and_slice"]
    print(f"\n{title}: random part {rnd['messages']} messages, with the rare-tag slice {allr['messages']}")
    fa = rnd["false_alarms"]
    print(f"  random part: micro-F1 {rnd['micro_f1']:.4f} {rnd['interval']['micro_f1']}  "
          f"macro-F1 {rnd['macro_f1']:.4f} {rnd['interval']['macro_f1']}  "
          f"false alarms {fa['flagged']} of {fa['untagged']} untagged ({fa['rate']})")
    print(f"  {'tag':<20}{'precision':>10}{'95% interval':>18}{'recall':>8}{'95% interval':>18}{'positives':>10}")
    for tag, m in allr["per_tag"].items():
        print(f"  {tag:<20}{m['precision']:>10.4f}{str(m['precision_interval']):>18}{m['recall']:>8.4f}"
              f"{str(m['recall_interval']):>18}{m['support']:>10}")
    print("  by source (random part): " + ", ".join(
        f"{s} micro-F1 {'n/a' if v['micro_f1'] is None else format(v['micro_f1'], '.4f')} (n={v['messages']})"
        for s, v in r["by_source"].items()))
    c = r["calibration"]
    print(f"  ECE (10 bins, all tags pooled): before scaling {c['ece_before']:.4f}, after {c['ece_after']:.4f}")


def print_with_intervals(title: str, r: dict) -> None:
    print(f"\n{title} ({r['messages']} messages): micro-F1 {r['micro_f1']} {r['interval']['micro_f1']}")
    print(f"  {'tag':<20}{'precision':>10}{'95% interval':>18}{'recall':>8}{'95% interval':>18}"
          f"{'F1':>8}{'95% interval':>18}{'positives':>10}")
    for tag, m in r["per_tag"].items():
        print(f"  {tag:<20}{m['precision']:>10.4f}{str(m['precision_interval']):>18}{m['recall']:>8.4f}"
              f"{str(m['recall_interval']):>18}{m['f1']:>8.4f}{str(m['f1_interval']):>18}{m['support']:>10}")
