"""Multi-label metrics and per-tag threshold tuning (numpy only, no torch)."""

from __future__ import annotations

import numpy as np

# Thresholds are searched in [0.2, 0.8]. A fine-tuned encoder puts most validation
# probabilities near 0 or 1, so F1 is flat over a wide range and a handful of messages can pull
# the best value to an extreme (0.09 for Hot-buyer in the first run), where any unseen phrasing
# that leaves the model a little unsure flips the decision.
THRESHOLD_GRID = np.round(np.arange(0.20, 0.801, 0.01), 2)
# F1 is averaged over neighbouring thresholds (+-SMOOTH grid steps) before picking the best:
# a lone spike on ~450 validation messages is noise, a plateau is signal.
SMOOTH = 2


def predict(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return (probs >= thresholds[None, :]).astype(np.int64)


def per_tag(y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    tp = (y & pred).sum(axis=0).astype(float)
    fp = ((1 - y) & pred).sum(axis=0).astype(float)
    fn = (y & (1 - pred)).sum(axis=0).astype(float)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def report(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, tags: list[str]) -> dict:
    """Every number the model card and `make eval` print, for one labelled set."""
    y = y.astype(np.int64)
    pred = predict(probs, thresholds)
    t = per_tag(y, pred)
    tp, fp, fn = t["tp"].sum(), t["fp"].sum(), t["fn"].sum()
    micro_p = tp / (tp + fp) if tp + fp else 0.0
    micro_r = tp / (tp + fn) if tp + fn else 0.0
    micro_f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    # A tag with no positive and no prediction in this set has no F1 (0/0); macro-F1 averages
    # the tags that have one. On real traffic a rare tag can be absent from a whole sample, and
    # counting it as 0 would measure the sample, not the model.
    defined = (2 * t["tp"] + t["fp"] + t["fn"]) > 0
    macro_f1 = float(t["f1"][defined].mean()) if defined.any() else 0.0
    return {
        "messages": int(len(y)),
        "micro_precision": round(float(micro_p), 4),
        "micro_recall": round(float(micro_r), 4),
        # None where the set has no positive and the model no prediction: nothing to score.
        "micro_f1": round(float(micro_f1), 4) if (2 * tp + fp + fn) else None,
        "macro_f1": round(macro_f1, 4),
        "macro_f1_tags": int(defined.sum()),
        "subset_accuracy": round(float((pred == y).all(axis=1).mean()), 4),
        "hamming_loss": round(float((pred != y).mean()), 4),
        "per_tag": {
            tag: {
                "precision": round(float(t["precision"][i]), 4),
                "recall": round(float(t["recall"][i]), 4),
                "f1": round(float(t["f1"][i]), 4),
                "support": int(y[:, i].sum()),
            }
            for i, tag in enumerate(tags)
        },
    }


def micro_f1(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> float:
    t = per_tag(y.astype(np.int64), predict(probs, thresholds))
    denom = 2 * t["tp"].sum() + t["fp"].sum() + t["fn"].sum()
    return float(2 * t["tp"].sum() / denom) if denom else 0.0


def _f1_curve(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """F1 of one tag at every threshold of the grid."""
    f1s = []
    for th in THRESHOLD_GRID:
        pred = (p >= th).astype(np.int64)
        tp = int((y & pred).sum())
        fp = int(((1 - y) & pred).sum())
        fn = int((y & (1 - pred)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
    return np.array(f1s)


def tune_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per tag, the threshold with the best smoothed F1 on (validation) data."""
    return tune_thresholds_weighted([(y, probs, 1.0)])


def tune_thresholds_weighted(sets: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """Per tag, the threshold with the best smoothed weighted F1 over several validation sets
    `(labels, probabilities, weight)`; a set with no positive of a tag leaves that tag to the
    others (its F1 is 0 at every threshold and would only favour the highest one)."""
    chosen = []
    for i in range(sets[0][0].shape[1]):
        f1s, total = np.zeros(len(THRESHOLD_GRID)), 0.0
        for y, probs, w in sets:
            y = y.astype(np.int64)
            if y[:, i].sum() == 0:
                continue
            f1s, total = f1s + w * _f1_curve(y[:, i], probs[:, i]), total + w
        f1s = f1s / max(total, 1e-12)
        kernel = np.ones(2 * SMOOTH + 1) / (2 * SMOOTH + 1)
        smooth = np.convolve(np.pad(f1s, SMOOTH, mode="edge"), kernel, mode="valid")
        best = np.flatnonzero(smooth >= smooth.max() - 1e-12)
        # Among equally good thresholds, the one nearest 0.5: least extreme, least surprising.
        pick = best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]
        chosen.append(float(THRESHOLD_GRID[pick]))
    return np.array(chosen, dtype=np.float64)

