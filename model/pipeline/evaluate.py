"""Evaluate the shipped model on the test split and on the external set of real messages.

Usage:
  python -m pipeline.evaluate            print the tables, redraw model/reports/*.png
  python -m pipeline.evaluate --write    also write the artifacts: labels.json, tokenizer.json,
                                         reports/metrics.json, reports/quantization.json,
                                         reports/pruning.json and the onnxruntime reference
                                         probabilities for the Rust test
  python -m pipeline.evaluate --relabel  the same for model files changed after training
                                         (`make prune`): labels.json keeps its thresholds and
                                         calibration, takes the new hash, version and metrics

Probabilities come from onnxruntime on `model/tagger.onnx`; the Rust test checks that tract
reproduces them. The external set (`../shared/eval/external.jsonl`, or `EXTERNAL_EVAL`) is
read at evaluation time only: it is never trained or tuned on, and never copied here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from . import dataset as ds
from . import plots
from . import realeval, style, targets
from .metrics import report

REPORTS = ds.MODEL_DIR / "reports"
WORK = ds.MODEL_DIR / "work"
ONNX = ds.MODEL_DIR / "tagger.onnx"
LABELS = ds.MODEL_DIR / "labels.json"
TOKENIZER = ds.MODEL_DIR / "tokenizer.json"
REFERENCE = REPORTS / "test_probabilities.onnxruntime.jsonl"


def external_path() -> Path:
    default = ds.MODEL_DIR.parent.parent / "shared" / "eval" / "external.jsonl"
    return Path(os.environ.get("EXTERNAL_EVAL", default))


def load_external() -> list[dict] | None:
    path = external_path()
    if not path.exists():
        print(f"external set not found at {path}: skipped")
        return None
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                rows.append({"message": obj["message"], "tags": [t for t in ds.TAGS if t in obj["tags"]]})
    return rows


def onnxruntime_probabilities(onnx: Path, tokenizer: Path, max_tokens: int, messages: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer

    from .onnxrt import session as ort_session
    from .train import feeds

    tok = Tokenizer.from_file(str(tokenizer))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    session = ort_session(onnx)
    logits = [session.run(None, f)[0] for f in feeds(tok, messages, 32)]
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits)))


def print_report(title: str, r: dict) -> None:
    print(f"\n{title} ({r['messages']} messages)")
    print(f"  {'tag':<20}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for tag, m in r["per_tag"].items():
        print(f"  {tag:<20}{m['precision']:>10.4f}{m['recall']:>8.4f}{m['f1']:>8.4f}{m['support']:>9}")
    print(f"  micro-F1 {r['micro_f1']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
          f"subset accuracy {r['subset_accuracy']:.4f}  hamming loss {r['hamming_loss']:.4f}")


def print_quantization() -> None:
    """The quantization table as `make model` measured it (reports/quantization.json)."""
    path = REPORTS / "quantization.json"
    if not path.exists():
        return
    quant = json.loads(path.read_text())
    print(f"\nquantized forms in tract (shipped: {quant['shipped']})")
    print(f"  {'form':<16}{'MB':>7}{'load ms':>9}{'p50 16/32/64 tokens (ms)':>27}{'peak MB':>9}"
          f"{'val F1':>8}{'test F1':>9}")
    for form, r in quant["forms"].items():
        if "error" in r:
            print(f"  {form:<16} failed: {r['error']}")
            continue
        p50 = " / ".join(f"{r['p50_ms'][k]:.2f}" for k in ("16", "32", "64"))
        print(f"  {form:<16}{r['file_mb']:>7.1f}{r['load_ms']:>9.0f}{p50:>27}{r['peak_rss_mb']:>9.0f}"
              f"{r['validation_micro_f1']:>8.4f}{r['test_micro_f1']:>9.4f}")


def load_real() -> dict[str, list[dict]] | None:
    """Real validation and test, joined from the pool by `python -m pipeline.real` (work/real/)."""
    folder = WORK / "real"
    if not (folder / "test.jsonl").exists():
        print(f"real sets not joined at {folder} (run `python -m pipeline.real`; it needs the pool): skipped")
        return None
    return {name: [json.loads(x) for x in (folder / f"{name}.jsonl").read_text().splitlines() if x.strip()]
            for name in ("validation", "test")}


def model_inputs(rows: list[dict], labels: dict) -> list:
    """Messages, or (message, context) pairs when the model was trained with the context."""
    if labels.get("context"):
        from .train import clip_context

        return [(r["message"], clip_context(r.get("context"))) for r in rows]
    return [r["message"] for r in rows]


def evaluate_real(name: str, rows: list[dict], labels: dict) -> dict:
    tags = labels["tags"]
    thresholds = np.array([labels["thresholds"][t] for t in tags])
    temperatures = np.array([labels.get("temperatures", {}).get(t, 1.0) for t in tags])
    probs = onnxruntime_probabilities(ONNX, TOKENIZER, labels["max_tokens"], model_inputs(rows, labels))
    result = realeval.real_report(rows, probs, thresholds, temperatures, tags)
    realeval.print_real(name, result)
    y = np.array([[int(t in r["tags"]) for t in tags] for r in rows])
    if name == "real_test":
        plots.pr_curves(REPORTS / "pr_curves_real_test.png", "real test (random + slice)", y, probs, thresholds, tags)
        plots.reliability(REPORTS / "reliability_real_test.png", "real test", y,
                          realeval.uncalibrate(probs, temperatures), probs, tags)
        plots.confusion(REPORTS / "confusion_real_test.png", "real test (random + slice)", y,
                        (probs >= thresholds).astype(int), tags)
    return result


def evaluate_set(name, rows, labels, onnx, tokenizer) -> tuple[dict, np.ndarray]:
    tags = labels["tags"]
    thresholds = np.array([labels["thresholds"][t] for t in tags])
    probs = onnxruntime_probabilities(onnx, tokenizer, labels["max_tokens"], [r["message"] for r in rows])
    y = np.array([[int(t in r["tags"]) for t in tags] for r in rows])
    result = report(y, probs, thresholds, tags)
    print_report(name, result)
    plots.pr_curves(REPORTS / f"pr_curves_{name}.png", name, y, probs, thresholds, tags)
    plots.confusion(REPORTS / f"confusion_{name}.png", name, y, (probs >= thresholds).astype(int), tags)
    return result, probs


def model_version(base_name: str, quantization: str, sha: str) -> str:
    return f"{dt.date.today():%Y.%m.%d}-{base_name.lower()}-{quantization}-{sha[:8]}"


def vocabulary() -> dict | None:
    """What `pipeline.prune` did (work/pruning.json), copied to reports/; None if it did not run."""
    path = WORK / "pruning.json"
    if not path.exists():
        return None
    pruning = json.loads(path.read_text())
    (REPORTS / "pruning.json").write_text(json.dumps(pruning, indent=2) + "\n")
    return {"pieces": pruning["pieces"] if pruning["shipped"] else pruning["of"], "of": pruning["of"]}


def relabel() -> dict:
    """labels.json for model files changed after training (`make prune`): same thresholds and
    calibration, the new file's hash and version, the vocabulary; metrics are measured anew."""
    labels = json.loads(LABELS.read_text())
    sha = hashlib.sha256(ONNX.read_bytes()).hexdigest()
    labels.update(onnx_sha256=sha, model_version=model_version(labels["base_encoder"], labels["quantization"], sha))
    if (pieces := vocabulary()) is not None:
        labels["vocabulary"] = pieces
    return labels


def write_artifacts() -> dict:
    """Assemble labels.json and the tokenizer from the training run and the quantize step."""
    training = json.loads((WORK / "trained" / "training.json").read_text())
    quant = json.loads((WORK / "quantization.json").read_text())
    shutil.copyfile(WORK / "trained" / "tokenizer.json", TOKENIZER)
    sha = hashlib.sha256(ONNX.read_bytes()).hexdigest()
    base_name = training["base_name"]
    labels = {
        "model_version": model_version(base_name, quant["shipped"], sha),
        "base_encoder": base_name,
        "base_model_type": training["base_config"].get("model_type"),
        "tags": list(ds.TAGS),
        "thresholds": training["thresholds"],
        "temperatures": training.get("temperatures", {t: 1.0 for t in ds.TAGS}),
        "context": bool(training.get("context")),
        "max_tokens": training["max_tokens"],
        "quantization": quant["shipped"],
        "onnx_sha256": sha,
        "metrics": {},
    }
    pruned_at_training = training.get("vocabulary", {})
    if pruned_at_training.get("keep_below"):
        # The vocabulary was pruned before training (train.prune_vocabulary): the prune step
        # found nothing left to cut, and this is the report.
        labels["vocabulary"] = {k: pruned_at_training[k] for k in ("pieces", "of")}
        (REPORTS / "pruning.json").write_text(json.dumps(
            {"shipped": True, "at": "training", **pruned_at_training}, indent=2) + "\n")
    elif (pieces := vocabulary()) is not None:
        labels["vocabulary"] = pieces
    (REPORTS / "quantization.json").write_text(json.dumps(quant, indent=2) + "\n")
    # The report names the base, not this machine's path to it.
    (REPORTS / "training.json").write_text(json.dumps(
        {k: v for k, v in training.items() if k not in ("base", "base_config")}, indent=2) + "\n")
    return labels


def load_real_style() -> tuple[list[dict], list[dict]] | None:
    """The held-out counterfactual edits and the test split's style variants (`pipeline.real`)."""
    folder = WORK / "real"
    if not (folder / "counterfactual_test.jsonl").exists():
        return None
    read = lambda name: [json.loads(x) for x in (folder / name).read_text().splitlines() if x.strip()]  # noqa: E731
    return read("counterfactual_test.jsonl"), read("style_test.jsonl")


def evaluate_real_style(labels: dict, results: dict) -> None:
    """The counterfactual test (edited real text, reported as such) and the style gap."""
    got = load_real_style()
    if got is None:
        print("counterfactual and style sets not joined: skipped")
        return
    cf, variants = got
    tags = labels["tags"]
    th = np.array([labels["thresholds"][t] for t in tags])
    if cf:
        probs = onnxruntime_probabilities(ONNX, TOKENIZER, labels["max_tokens"], model_inputs(cf, labels))
        y = np.array([[int(t in r["tags"]) for t in tags] for r in cf])
        results["counterfactual_test"] = realeval.with_intervals(y, probs, th, tags)
        realeval.print_with_intervals("counterfactual test (edited real messages, held out by source)",
                                      results["counterfactual_test"])
    if variants:
        machine = {ds.normalise(r["message"]): r for r in ds.load_split("test")}
        originals = [machine[ds.normalise(v["original"])] for v in variants]
        pv = onnxruntime_probabilities(ONNX, TOKENIZER, labels["max_tokens"], [v["message"] for v in variants])
        po = onnxruntime_probabilities(ONNX, TOKENIZER, labels["max_tokens"], [o["message"] for o in originals])
        results["style_gap"] = style.gap(variants, (pv >= th).astype(int), (po >= th).astype(int), originals, tags)
        print("\nstyle gap (test split: recall on originals -> on their real-style variants)")
        for tag, g in results["style_gap"].items():
            print(f"  {tag:<20} {g}")


def compare_trained(folders: list[str]) -> int:
    """One row per training run (torch, before export): the levers' table of the model card."""
    import torch

    from .export import load_trained
    from .train import probabilities, trained_tokenizer

    torch.set_num_threads(2)
    real, external = load_real() or {}, load_external() or []
    sets = {"test": ds.load_split("test"), "external": external, **{f"real_{k}": v for k, v in real.items()}}
    rows = {}
    for folder in folders:
        model, summary = load_trained(Path(folder))
        tok = trained_tokenizer(Path(folder), summary)
        th = np.array([summary["thresholds"][t] for t in ds.TAGS])
        temps = np.array([summary.get("temperatures", {}).get(t, 1.0) for t in ds.TAGS])
        ctx = bool(summary.get("context"))
        out = {}
        for name, data in sets.items():
            if not data:
                continue
            probs = probabilities(model, tok, data, with_context=ctx)
            if name.startswith("real_"):
                out[name] = realeval.real_report(data, probs, th, temps, list(ds.TAGS))
            else:
                y = np.array([ds.label_vector(r["tags"]) for r in data])
                out[name] = report(y, probs, th, list(ds.TAGS))
        rows[folder] = out
        rt = out.get("real_test", {}).get("random", {})
        print(f"{folder}: real test random micro-F1 {rt.get('micro_f1')} macro-F1 {rt.get('macro_f1')}; "
              f"real val random micro-F1 {out.get('real_validation', {}).get('random', {}).get('micro_f1')}; "
              f"external {out.get('external', {}).get('micro_f1')}; machine test {out['test']['micro_f1']}; "
              f"ECE real test {out.get('real_test', {}).get('calibration')}", flush=True)
        Path(folder, "compare.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="write labels.json and the reports (make model)")
    p.add_argument("--relabel", action="store_true",
                   help="rewrite labels.json's hash, version and metrics for the files as they are (make prune)")
    p.add_argument("--trained", nargs="+", help="score training runs (torch) side by side instead")
    args = p.parse_args(argv)
    if args.trained:
        return compare_trained(args.trained)
    REPORTS.mkdir(exist_ok=True)
    labels = write_artifacts() if args.write else relabel() if args.relabel else json.loads(LABELS.read_text())
    writes = args.write or args.relabel
    results = {}
    for name in ("validation", "test"):
        rows = ds.load_split(name)
        results[name], probs = evaluate_set(name, rows, labels, ONNX, TOKENIZER)
        if name == "test" and writes:
            ds.write_jsonl(REFERENCE, [{"message": r["message"], "tags": r["tags"],
                                        "probabilities": [round(float(x), 6) for x in pr]}
                                       for r, pr in zip(rows, probs)])
    external = load_external()
    if external is not None:
        results["external"], _ = evaluate_set("external", external, labels, ONNX, TOKENIZER)
    real = load_real()
    if real is not None:
        for split, rows in real.items():
            results[f"real_{split}"] = evaluate_real(f"real_{split}", rows, labels)
    evaluate_real_style(labels, results)
    print_quantization()
    results["targets"] = targets.measure(results)
    targets.print_targets(results["targets"])
    if writes:
        labels["metrics"] = {k: results[k] for k in ("validation", "test")}
        if "real_test" in results:
            labels["metrics"]["real_test"] = {k: results["real_test"][k] for k in ("random", "calibration")}
        for k in ("counterfactual_test", "style_gap", "targets"):
            if k in results:
                labels["metrics"][k] = results[k]
        LABELS.write_text(json.dumps(labels, indent=2) + "\n")
        (REPORTS / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
