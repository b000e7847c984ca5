"""Distil: a smaller, faster student from the shipped 6-layer tagger (the teacher).

Usage: python -m pipeline.distill [--layers 0 1 2] [--teacher ../tagger.onnx] [--out work/trained]

- Teacher: the shipped `tagger.onnx` run by onnxruntime at the graph's fp32 semantics (what
  tract runs), so the student learns the calibrated probabilities the service serves today.
- Student: the base encoder (all-MiniLM-L6-v2) cut to `--layers` of its 6 (the bottom three by
  default: consecutive layers keep every junction the pre-training trained; dropping top
  layers is the most robust choice in Sajjad et al., "On the effect of dropping layers of
  pre-trained transformer models", 2023), with the pruned vocabulary of `pipeline.vocab`.
  The fine-tuned teacher's own torch weights are not kept in the repository (only its int8
  ONNX), so the layers start from the base the teacher was tuned from.
- Data: the machine-written training rows and the labelled real training part (target: the
  mean of the label and the teacher's probability), and the unlabelled real pool (target: the
  teacher's probability; distillation needs no label). The pool's evaluation rows (real
  validation and test, random part and slice) are left out, so the student never sees an
  evaluation message's text, not even unlabelled.
- Early stopping, calibration and thresholds exactly as `pipeline.train` (both validation
  sets, hard labels). Writes the same files as `pipeline.train`, plus `encoder/` (the student's
  config, weights and pruned tokenizer), so `export`, `quantize` and `evaluate` run unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import dataset as ds
from . import real, vocab
from .evaluate import onnxruntime_probabilities
from .metrics import micro_f1, tune_thresholds_weighted
from .tagger import Tagger, keep_rows, load_encoder
from .train import (BUCKET, MIN_CALIBRATION_POSITIVES, REAL_DIR, REAL_WEIGHT, SEED, calibration, default_base,
                    encode, fold_temperatures, labels_of, load_tokenizer, logits_of, make_optimizer, Progress,
                    probabilities, read_rows, seed_everything)

# Labelled rows learn from both: the label keeps the student honest where the teacher errs,
# the teacher's probability carries its confidence (the "dark knowledge" of a soft target).
LABEL_WEIGHT = 0.5


def pool_rows_for_distillation() -> list[dict]:
    """Unlabelled pool messages, minus every labelled row (training rows come with labels;
    evaluation rows must stay unseen) and the source rows of held-out counterfactual edits."""
    from . import edits

    labelled = {json.loads(line)["id"] for line in real.LABELS.read_text(encoding="utf-8").splitlines() if line.strip()}
    labelled |= {r["id"] for r in edits.read() if r["split"] != "train"}
    return [{"message": row["message"], "tags": [], "unlabelled": True}
            for pid, row in sorted(real.load_pool().items()) if pid not in labelled]


def student_encoder(base: str, layers: list[int], keep_ids: list[int]) -> nn.Module:
    """The base encoder with only `layers` (in order) and the embedding rows `keep_ids`."""
    encoder = load_encoder(base)
    encoder.encoder.layer = nn.ModuleList([encoder.encoder.layer[i] for i in layers])
    encoder.config.num_hidden_layers = len(layers)
    return keep_rows(encoder, keep_ids)


def soft_targets(rows: list[dict], teacher: np.ndarray) -> torch.Tensor:
    """Per row: the teacher's probabilities, averaged with the label where there is one."""
    hard = np.array([ds.label_vector(r["tags"]) for r in rows], dtype=np.float32)
    labelled = np.array([not r.get("unlabelled") for r in rows])[:, None]
    mixed = np.where(labelled, LABEL_WEIGHT * hard + (1 - LABEL_WEIGHT) * teacher, teacher)
    return torch.tensor(mixed, dtype=torch.float32)


def distil(args) -> dict:
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    labelled = read_rows(REAL_DIR / "machine_train.jsonl") + read_rows(REAL_DIR / "train.jsonl")
    unlabelled = pool_rows_for_distillation()
    val_rows, real_val = ds.load_split("validation"), read_rows(REAL_DIR / "validation.jsonl")
    train_rows = labelled + unlabelled
    started = time.time()
    teacher_json = json.loads(Path(args.teacher_tokenizer).read_text(encoding="utf-8"))
    teacher = onnxruntime_probabilities(Path(args.teacher), Path(args.teacher_tokenizer), args.max_tokens,
                                        [r["message"] for r in train_rows])
    print(f"teacher: {len(train_rows)} rows ({len(unlabelled)} unlabelled) in {time.time() - started:.0f}s",
          flush=True)
    # The vocabulary comes from training texts only (machine-written validation included: it is
    # not an evaluation set of this step's choices beyond early stopping, as in `train`).
    pruned, keep_ids = vocab.prune(teacher_json, [r["message"] for r in train_rows + val_rows])
    out = Path(args.out)
    (out / "encoder").mkdir(parents=True, exist_ok=True)
    vocab.write(out / "encoder" / "tokenizer.json", pruned)
    print(f"vocabulary: {len(keep_ids)} of {len(teacher_json['model']['vocab'])} pieces kept", flush=True)
    tok = load_tokenizer(str(out / "encoder"), args.max_tokens)
    model = Tagger(student_encoder(args.base, args.layers, keep_ids), len(ds.TAGS))
    targets = soft_targets(train_rows, teacher)
    steps = args.epochs * math.ceil(len(train_rows) / args.batch_size)
    opt, sched = make_optimizer(model, args.lr, args.head_lr, steps, args.warmup)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = random.Random(args.seed)
    y_val, y_real = labels_of(val_rows), labels_of(real_val)
    progress = Progress(out, args.patience, started)
    half = np.full(len(ds.TAGS), 0.5)
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for messages, target in _soft_batches(train_rows, targets, args.batch_size, rng):
            ids, mask = encode(tok, messages)
            loss = loss_fn(model(ids, mask), target)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(messages), n + len(messages)
        machine_f1 = micro_f1(y_val, probabilities(model, tok, val_rows), half)
        real_f1 = micro_f1(y_real, probabilities(model, tok, real_val), half)
        if not progress.epoch(model, epoch, total / n, machine_f1, real_f1):
            break
    model.load_state_dict(torch.load(out / "state.pt"))
    temperatures = calibration(logits_of(model, tok, real_val), y_real, logits_of(model, tok, val_rows), y_val)
    fold_temperatures(model, temperatures)
    torch.save(model.state_dict(), out / "state.pt")
    model.encoder.save_pretrained(str(out / "encoder"))
    val_probs, real_probs = probabilities(model, tok, val_rows), probabilities(model, tok, real_val)
    thresholds = tune_thresholds_weighted([(y_val, val_probs, 1 - REAL_WEIGHT), (y_real, real_probs, REAL_WEIGHT)])
    tok.save(str(out / "tokenizer.json"))
    summary = {
        "base": str(out / "encoder"),
        "base_name": f"{args.base_name}-student-l{len(args.layers)}",
        "base_config": json.loads((out / "encoder" / "config.json").read_text()),
        "student": {"teacher": str(args.teacher_name), "layers_kept": args.layers, "vocabulary": len(keep_ids),
                    "label_weight": LABEL_WEIGHT, "unlabelled_rows": len(unlabelled),
                    "labelled_rows": len(labelled)},
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "hyperparameters": {k: getattr(args, k) for k in
                            ("epochs", "batch_size", "lr", "head_lr", "warmup", "patience", "threads")},
        "best_epoch": progress.best_epoch,
        "val_micro_f1_at_0.5": round(progress.best, 4),
        "val_micro_f1_tuned": round(micro_f1(y_val, val_probs, thresholds), 4),
        "real_val_micro_f1_tuned": round(micro_f1(y_real, real_probs, thresholds), 4),
        "real_weight": round(REAL_WEIGHT, 4),
        "context": False,
        "temperatures": dict(zip(ds.TAGS, [round(float(x), 4) for x in temperatures])),
        "temperatures_fitted_on": dict(zip(ds.TAGS, [
            "real validation" if n >= MIN_CALIBRATION_POSITIVES else "real + machine-written validation"
            for n in y_real.sum(axis=0)])),
        "thresholds": dict(zip(ds.TAGS, thresholds.tolist())),
        "history": progress.history,
        "train_seconds": round(time.time() - started, 1),
        "train_messages": len(train_rows),
        "real_train_messages": sum("id" in r for r in train_rows),
        "feedback_train_messages": 0,
        "real_validation_messages": len(real_val),
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _soft_batches(rows: list[dict], targets: torch.Tensor, size: int, rng: random.Random):
    """As `train.batches` (shuffled, length-bucketed runs of BUCKET batches), with soft targets."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    span = size * BUCKET
    order = [i for s in range(0, len(order), span)
             for i in sorted(order[s:s + span], key=lambda i: len(rows[i]["message"]))]
    starts = list(range(0, len(order), size))
    rng.shuffle(starts)
    for start in starts:
        part = order[start:start + size]
        yield [rows[i]["message"] for i in part], targets[part]


def score(folder: Path) -> dict:
    """The exported student (`folder/tagger.onnx`, int8 as shipped) on every fixed set, at its
    own thresholds and calibration: micro/macro-F1 beside the shipped model's model card."""
    from . import realeval
    from .evaluate import load_external, load_real
    from .metrics import report

    summary = json.loads((folder / "training.json").read_text())
    tags = list(ds.TAGS)
    th = np.array([summary["thresholds"][t] for t in tags])
    temps = np.array([summary["temperatures"][t] for t in tags])
    onnx, tok = folder / "tagger.onnx", folder / "tokenizer.json"

    def probs(rows):
        return onnxruntime_probabilities(onnx, tok, summary["max_tokens"], [r["message"] for r in rows])

    out = {}
    for name, rows in (("test", ds.load_split("test")), ("external", load_external() or [])):
        if rows:
            y = np.array([ds.label_vector(r["tags"]) for r in rows])
            r = report(y, probs(rows), th, tags)
            out[name] = {"micro_f1": r["micro_f1"], "macro_f1": r["macro_f1"]}
    for split, rows in (load_real() or {}).items():
        r = realeval.real_report(rows, probs(rows), th, temps, tags)["random"]
        out[f"real_{split}_random"] = {"micro_f1": r["micro_f1"], "macro_f1": r["macro_f1"]}
    (folder / "score.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="local BERT-family checkpoint folder (default: MiniLM-L6)")
    p.add_argument("--teacher", default=str(ds.MODEL_DIR / "tagger.onnx"))
    p.add_argument("--teacher-tokenizer", default=str(ds.MODEL_DIR / "tokenizer.json"))
    p.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=str(ds.MODEL_DIR / "work" / "trained"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    args.base_name = Path(args.base).name if args.base else "all-MiniLM-L6-v2"
    args.base = args.base or default_base()
    args.teacher_name = json.loads((Path(args.teacher).parent / "labels.json").read_text()).get("model_version")
    return args


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--score"]:
        print(json.dumps(score(Path(sys.argv[2])), indent=2))
        raise SystemExit(0)
    s = distil(parse_args())
    print(f"best epoch {s['best_epoch']}: val objective {s['val_micro_f1_at_0.5']} at 0.5, "
          f"{s['val_micro_f1_tuned']} tuned, real {s['real_val_micro_f1_tuned']}; {s['train_seconds']}s")
