"""The evaluation figures: per-tag precision-recall curves and confusion tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# No timestamps or version strings in the files: the same numbers give the same PNG bytes.
PNG_METADATA = {"Software": None}


def _pr_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-p, kind="stable")
    y = y[order]
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    recall = tp / max(1, y.sum())
    return np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision])


def pr_curves(path: Path, title: str, y, probs, thresholds, tags) -> None:
    fig, axes = plt.subplots(1, len(tags), figsize=(4 * len(tags), 4), sharey=True)
    for i, (ax, tag) in enumerate(zip(np.atleast_1d(axes), tags)):
        recall, precision = _pr_points(y[:, i], probs[:, i])
        ax.plot(recall, precision, lw=1.5)
        pred = probs[:, i] >= thresholds[i]
        tp = int((pred & (y[:, i] == 1)).sum())
        op_p = tp / max(1, pred.sum())
        op_r = tp / max(1, y[:, i].sum())
        ax.plot([op_r], [op_p], "o", color="crimson", label=f"threshold {thresholds[i]:.2f}")
        ax.set_title(f"{tag} (n={int(y[:, i].sum())})")
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    np.atleast_1d(axes)[0].set_ylabel("precision")
    fig.suptitle(f"Precision-recall per tag: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata=PNG_METADATA)
    plt.close(fig)


def confusion(path: Path, title: str, y, pred, tags) -> None:
    """Left: per-tag TP/FP/FN/TN. Right: true tag (rows) x predicted tag (columns), counting
    messages; 'no tag' rows/columns hold messages with an empty true/predicted set."""
    names = list(tags) + ["no tag"]
    y_ext = np.hstack([y, (y.sum(axis=1) == 0)[:, None].astype(int)])
    p_ext = np.hstack([pred, (pred.sum(axis=1) == 0)[:, None].astype(int)])
    cross = y_ext.T @ p_ext
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [1, 1.3]})
    cells = []
    for i, tag in enumerate(tags):
        t, p = y[:, i] == 1, pred[:, i] == 1
        cells.append([int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())])
    left.axis("off")
    table = left.table(cellText=cells, rowLabels=list(tags), colLabels=["TP", "FP", "FN", "TN"], loc="center")
    table.scale(1, 2)
    left.set_title("per tag")
    im = right.imshow(cross, cmap="Blues")
    right.set_xticks(range(len(names)), names, rotation=30, ha="right")
    right.set_yticks(range(len(names)), names)
    right.set_xlabel("predicted")
    right.set_ylabel("true")
    for r in range(len(names)):
        for c in range(len(names)):
            color = "white" if cross[r, c] > cross.max() / 2 else "black"
            right.text(c, r, int(cross[r, c]), ha="center", va="center", color=color)
    fig.colorbar(im, ax=right, fraction=0.046)
    right.set_title("messages: true tag x predicted tag")
    fig.suptitle(f"Confusion: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata=PNG_METADATA)
    plt.close(fig)


def reliability(path: Path, title: str, y, before, after, tags, bins: int = 10) -> None:
    """Reliability diagram over every (message, tag) pair: mean confidence against the share
    that is true, per equal-width bin, before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for probs, name, style in ((before, "before", "s--"), (after, "after", "o-")):
        p, t = probs.ravel(), y.ravel()
        edges = np.linspace(0, 1, bins + 1)
        idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            m = idx == b
            if m.any():
                xs.append(p[m].mean())
                ys.append(t[m].mean())
        ax.plot(xs, ys, style, label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("share with the tag")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Reliability, {len(tags)} tags pooled: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata=PNG_METADATA)
    plt.close(fig)
