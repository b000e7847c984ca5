"""Flywheel: the model that was shipped and the one just trained, side by side.

Usage (from model/; `make model` runs both):
  python -m pipeline.flywheel --keep          copy the shipped tagger.onnx, labels.json and
                                              tokenizer.json to work/previous/ (the first step)
  python -m pipeline.flywheel [--feedback work/feedback]
                                              score both models, print the table, write
                                              reports/flywheel.md and reports/flywheel.json

As Amazon Comprehend's flywheel shows an active and a new model version, the report puts the
OLD model (work/previous/) and the NEW one (model/) next to each other: micro- and macro-F1,
each tag's F1, and the difference (new - old) with a 95% paired-bootstrap interval for the
micro-F1 difference, on
- the held-out feedback test set (`pipeline.feedback`; only with --feedback);
- the machine-written test split;
- real test (overall scores on its random part, per-tag F1 on random part + slice, as the
  model card reports them), when `pipeline.real` joined it;
- the external set (`../shared/eval/external.jsonl`), when present: report only, never
  trained or tuned on.
Each model is scored by onnxruntime with its own thresholds and tokenizer. Nothing is promoted:
a person reads the table and decides; the report says how to roll back. Only counts and scores
are written: no message text.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import dataset as ds
from .metrics import per_tag, predict

WORK = ds.MODEL_DIR / "work"
PREVIOUS = WORK / "previous"
REPORTS = ds.MODEL_DIR / "reports"
FILES = ("tagger.onnx", "labels.json", "tokenizer.json")
BOOTSTRAP = 1000
BOOTSTRAP_SEED = 20261201
ROLLBACK = "git checkout -- model/tagger.onnx model/labels.json model/tokenizer.json"


@dataclass
class Model:
    version: str
    thresholds: np.ndarray
    probabilities: Callable[[list[dict]], np.ndarray]
    sha256: str | None = None


def keep(src: Path = ds.MODEL_DIR, dst: Path = PREVIOUS) -> str | None:
    """Copy the shipped model to `dst` before a run replaces it; its version, or None."""
    if not (src / "labels.json").exists():
        print(f"flywheel: no shipped model in {src}: nothing kept, the report will have no old column")
        return None
    dst.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(src / name, dst / name)
    version = json.loads((dst / "labels.json").read_text())["model_version"]
    print(f"flywheel: kept the shipped model {version} in {dst}")
    return version


def onnx_model(folder: Path) -> Model:
    """A model folder (tagger.onnx, labels.json, tokenizer.json) scored by onnxruntime."""
    from .evaluate import model_inputs, onnxruntime_probabilities

    labels = json.loads((folder / "labels.json").read_text())
    if labels["tags"] != list(ds.TAGS):
        raise SystemExit(f"{folder}: tags {labels['tags']} are not the pipeline's {list(ds.TAGS)}")
    tokenizer = folder / "tokenizer.json"

    def probabilities(rows: list[dict]) -> np.ndarray:
        # Scored in order of length, so that a batch pads to similar lengths (several times
        # faster than the sets' own order); the rows' order is restored after.
        inputs = model_inputs(rows, labels)
        order = sorted(range(len(inputs)), key=lambda i: len(str(inputs[i])))
        probs = onnxruntime_probabilities(folder / "tagger.onnx", tokenizer, labels["max_tokens"],
                                          [inputs[i] for i in order])
        out = np.empty_like(probs)
        out[order] = probs
        return out

    return Model(labels["model_version"], np.array([labels["thresholds"][t] for t in ds.TAGS]), probabilities,
                 labels.get("onnx_sha256"))


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    """Micro-F1, macro-F1 and each tag's F1 (None where a tag, or the set, has no positive and
    no prediction: 0/0 is not a score; macro-F1 averages the tags that have one, as
    `metrics.report` does)."""
    t = per_tag(y.astype(np.int64), pred.astype(np.int64))
    denom = 2 * t["tp"] + t["fp"] + t["fn"]
    defined = denom > 0
    total = denom.sum()
    return {
        "micro_f1": float(2 * t["tp"].sum() / total) if total else None,
        "macro_f1": float(t["f1"][defined].mean()) if defined.any() else None,
        "per_tag": {tag: {"f1": float(t["f1"][i]) if defined[i] else None, "support": int(y[:, i].sum())}
                    for i, tag in enumerate(ds.TAGS)},
    }


def _micro(y: np.ndarray, pred: np.ndarray) -> float:
    tp = (y & pred).sum()
    denom = 2 * tp + ((1 - y) & pred).sum() + (y & (1 - pred)).sum()
    return float(2 * tp / denom) if denom else 0.0


def paired_interval(y: np.ndarray, old: np.ndarray, new: np.ndarray, n: int = BOOTSTRAP,
                    seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95% percentile interval of micro-F1(new) - micro-F1(old), both models scored on the same
    resample of messages each time (a paired bootstrap)."""
    if len(y) < 2:
        return None
    y, old, new = y.astype(np.int64), old.astype(np.int64), new.astype(np.int64)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        diffs.append(_micro(y[i], new[i]) - _micro(y[i], old[i]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _delta(a, b):
    return None if a is None or b is None else b - a


def _round(x):
    return None if x is None else round(x, 4)


def compare(rows: list[dict], old: Model, new: Model, overall: np.ndarray | None = None) -> dict:
    """Both models on one labelled set. `overall`: a mask of the rows that the micro- and
    macro-F1 are computed on (real test: its random part); per-tag F1 uses every row."""
    y = np.array([ds.label_vector(r["tags"]) for r in rows], dtype=np.int64).reshape(len(rows), len(ds.TAGS))
    preds = {}
    for name, m in (("old", old), ("new", new)):
        probs = m.probabilities(rows) if rows else np.zeros((0, len(ds.TAGS)))
        preds[name] = predict(np.asarray(probs), m.thresholds)
    mask = np.ones(len(rows), bool) if overall is None else overall
    out = {"messages": int(len(rows)), "overall_messages": int(mask.sum())}
    both = {}
    for name in ("old", "new"):
        whole, part = scores(y, preds[name]), scores(y[mask], preds[name][mask])
        both[name] = {"micro_f1": part["micro_f1"], "macro_f1": part["macro_f1"], "per_tag": whole["per_tag"]}
    for name, s in both.items():
        out[name] = {"micro_f1": _round(s["micro_f1"]), "macro_f1": _round(s["macro_f1"]),
                     "per_tag": {t: {**v, "f1": _round(v["f1"])} for t, v in s["per_tag"].items()}}
    out["delta"] = {
        "micro_f1": _round(_delta(both["old"]["micro_f1"], both["new"]["micro_f1"])),
        "macro_f1": _round(_delta(both["old"]["macro_f1"], both["new"]["macro_f1"])),
        "micro_f1_interval": paired_interval(y[mask], preds["old"][mask], preds["new"][mask]),
        "per_tag": {t: _round(_delta(both["old"]["per_tag"][t]["f1"], both["new"]["per_tag"][t]["f1"]))
                    for t in ds.TAGS},
    }
    return out


def load_sets(feedback: Path | None) -> list[tuple[str, str, list[dict], np.ndarray | None]]:
    """(key, title, rows, overall mask) of every set the report scores, in the report's order."""
    from .evaluate import load_external, load_real

    sets = []
    if feedback is not None:
        path = feedback / "test.jsonl"
        if not path.exists():
            raise SystemExit(f"no feedback test set at {path}: run `python -m pipeline.feedback FILE` first")
        summary = json.loads((feedback / "summary.json").read_text())
        sets.append(("feedback_test", f"feedback test (held out, {summary['holdout_percent']}% of texts)",
                     ds.read_jsonl(path), None))
    sets.append(("test", "machine-written test", ds.load_split("test"), None))
    real = load_real()
    if real is not None:
        rows = real["test"]
        sets.append(("real_test", "real test (micro/macro: random part; per tag: random + slice)", rows,
                     np.array([r["part"] == "random" for r in rows])))
    external = load_external()
    if external is not None:
        sets.append(("external", "external (report only)", external, None))
    return sets


def run(old: Model, new: Model, sets, feedback_summary: dict | None = None) -> dict:
    result = {
        "old": {"model_version": old.version, "onnx_sha256": old.sha256},
        "new": {"model_version": new.version, "onnx_sha256": new.sha256},
        "feedback": feedback_summary,
        "sets": {},
    }
    for key, title, rows, mask in sets:
        result["sets"][key] = {"title": title, **compare(rows, old, new, mask)}
    return result


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _d(x) -> str:
    if x is None:
        return "n/a"
    return "±0" if x == 0 else f"{x:+.4f}"


def feedback_line(s: dict) -> str:
    """The feedback's counts in one paragraph (counts only, never a text)."""
    from .feedback import SUMMARY_LINES

    text = (f"Feedback: {s['lines']} lines, {s['items']} items; **{s['train']} added to training, "
            f"{s['test']} held out as the feedback test** ({s['holdout_percent']}% of texts, by a hash of "
            f"the normalised text). Conflicting labels for the same text: {s.get('conflicting_texts', 0)} "
            "(the latest `received_at` wins).")
    parts = [f"{what}: {s[key]}" for key, what in SUMMARY_LINES if key != "conflicting_texts" and s.get(key)]
    parts += [f"left out, equal to a message of {what}: {n}" for what, n in s.get("equal_to_curated_dropped", {}).items()]
    if parts:
        text += " " + "; ".join(parts) + "."
    disagree = sum(v for k, v in s.get("equal_to_curated_dropped", {}).items() if k.endswith("different labels"))
    if disagree:
        text += (f" {disagree} feedback item(s) label a curated message differently (the curated label stands): "
                 "their ids are in `model/work/feedback/decisions.jsonl`, for a person to read.")
    return text


def markdown(result: dict) -> str:
    old, new = result["old"], result["new"]
    lines = ["# Flywheel: the shipped model and the retrained one, side by side", "",
             "| | model version | files |", "|---|---|---|",
             f"| old | `{old['model_version']}` | `model/work/previous/` |",
             f"| new | `{new['model_version']}` | `model/` |", ""]
    if old["onnx_sha256"] and old["onnx_sha256"] == new["onnx_sha256"]:
        lines += ["The old and the new model are the same file.", ""]
    if result["feedback"]:
        lines += [feedback_line(result["feedback"]), ""]
    else:
        lines += ["No feedback in this run (`make model FEEDBACK=file.jsonl` adds it): fixed test sets only.", ""]
    lines += ["## Micro- and macro-F1 (Δ = new − old)", "",
              "| set | messages | micro-F1 old | micro-F1 new | Δ micro | Δ micro 95% (paired bootstrap) "
              "| macro-F1 old | macro-F1 new | Δ macro |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for s in result["sets"].values():
        ci = s["delta"]["micro_f1_interval"]
        lines.append(f"| {s['title']} | {s['overall_messages']} | {_f(s['old']['micro_f1'])} | "
                     f"{_f(s['new']['micro_f1'])} | {_d(s['delta']['micro_f1'])} | "
                     f"{'n/a' if ci is None else f'[{ci[0]:+.4f}, {ci[1]:+.4f}]'} | {_f(s['old']['macro_f1'])} | "
                     f"{_f(s['new']['macro_f1'])} | {_d(s['delta']['macro_f1'])} |")
    lines += ["", "## F1 per tag", "", "| set | tag | positives | old | new | Δ |", "|---|---|---:|---:|---:|---:|"]
    for s in result["sets"].values():
        for tag in ds.TAGS:
            lines.append(f"| {s['title']} | {tag} | {s['new']['per_tag'][tag]['support']} | "
                         f"{_f(s['old']['per_tag'][tag]['f1'])} | {_f(s['new']['per_tag'][tag]['f1'])} | "
                         f"{_d(s['delta']['per_tag'][tag])} |")
    lines += ["", "n/a: no positive and no prediction (0/0). A set of a few dozen messages moves by several "
              "hundredths on one message: read the interval, not only the difference.", "",
              "**Nothing was promoted automatically: a person decides whether to ship the new model** "
              "(commit `model/tagger.onnx`, `model/labels.json`, `model/tokenizer.json` and `model/reports/`). "
              f"To roll back to the old one: `{ROLLBACK}` (and `git checkout -- model/reports/` for its "
              "reports), or copy the three files back from `model/work/previous/`."]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> str:
    text = markdown(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flywheel.md").write_text(text)
    (out / "flywheel.json").write_text(json.dumps(result, indent=2) + "\n")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", action="store_true", help="copy the shipped model to --previous and stop")
    p.add_argument("--previous", default=str(PREVIOUS), help="the old model's folder")
    p.add_argument("--current", default=str(ds.MODEL_DIR), help="the new model's folder")
    p.add_argument("--feedback", default=None, help="the feedback step's folder (work/feedback)")
    p.add_argument("--out", default=str(REPORTS), help="where flywheel.md and flywheel.json go")
    args = p.parse_args(argv)
    previous, current = Path(args.previous), Path(args.current)
    if args.keep:
        keep(current, previous)
        return 0
    if not (previous / "labels.json").exists():
        raise SystemExit(f"no old model in {previous}: `python -m pipeline.flywheel --keep` keeps one "
                         "(the first step of `make model`)")
    feedback = Path(args.feedback) if args.feedback else None
    summary = json.loads((feedback / "summary.json").read_text()) if feedback else None
    result = run(onnx_model(previous), onnx_model(current), load_sets(feedback), summary)
    print("\n" + write(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
