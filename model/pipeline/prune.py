"""Prune: cut the shipped tagger's word-embedding table to the pieces real traffic uses.

Usage:
  python -m pipeline.prune                     in `make model`: the file quantize shipped and the
                                               trained tokenizer, thresholds from training.json
  python -m pipeline.prune --shipped           the committed model/ files, thresholds from labels.json
                                               (`make prune`; then `evaluate --relabel`)

The int8 table holds 30,522 rows of 384 bytes: half the shipped file, though real messages use
a third of the rows. The kept pieces (`pipeline.vocab`): the special tokens, every character and
its `##` form (so every word the full vocabulary spells is still spelt, in more and shorter
pieces where a long one was dropped), and every piece the full tokenizer produces on the
training texts (the machine-written and real training rows and the unlabelled pool without any
labelled row), and every id under `KEEP_BELOW` (the frequent words). No validation or evaluation text chooses a piece, so validation measures what the
pruning does to messages it has not seen.

Pruning is kept when validation micro-F1 (machine-written and real) moves by at most
`F1_TOLERANCE` and no validation probability moves by more than `MAX_PROBABILITY_SHIFT` on a
message whose pieces did not change (those must be bit-for-bit the same graph: the check that the
rows were gathered right). Otherwise the files are left as they were. Idempotent: the pruned
tokenizer spells the training texts with the same pieces, so a second run keeps every row and
changes nothing, not even the report.

Writes `work/pruning.json` (copied to `reports/` by `evaluate --write` / `--relabel`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from . import dataset as ds
from . import vocab
from .evaluate import onnxruntime_probabilities
from .metrics import micro_f1
from .train import KEEP_BELOW, REAL_DIR, load_real_style, read_rows, vocabulary_texts

WORK = ds.MODEL_DIR / "work"
F1_TOLERANCE = 0.002
# Messages whose pieces are unchanged run the same arithmetic on the same rows.
MAX_PROBABILITY_SHIFT = 1e-6
# KEEP_BELOW (train.py) was chosen on validation (the model card's Vocabulary table).


def training_texts() -> list[str]:
    """Every text training may read: machine-written and real training rows, the training split's
    counterfactual edits and style variants, the unlabelled pool (`train.vocabulary_texts`)."""
    rows = read_rows(REAL_DIR / "machine_train.jsonl") + read_rows(REAL_DIR / "train.jsonl")
    rows += load_real_style("train")
    feedback = WORK / "feedback" / "train.jsonl"
    if feedback.exists():
        rows += read_rows(feedback)
    return vocabulary_texts(rows)


def word_table(model: onnx.ModelProto, rows: int) -> tuple[str, str]:
    """Names of the int8 word-embedding table and its per-row scales (weights-int8 form)."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        table = node.input[0] if node.op_type == "Gather" else ""
        if table.endswith("_int8") and table in inits and inits[table].dims[0] == rows:
            scale = table[: -len("_int8")] + "_scale"
            if scale in inits and inits[scale].dims[0] == rows:
                return table, scale
    raise SystemExit(f"no int8 embedding table of {rows} rows with per-row scales: is this the weights-int8 form?")


def prune_model(model: onnx.ModelProto, rows: int, keep: list[int]) -> onnx.ModelProto:
    """The graph with the word table's rows (and their scales) gathered at `keep`."""
    names = word_table(model, rows)
    index = np.array(keep, dtype=np.int64)
    for init in list(model.graph.initializer):
        if init.name in names:
            cut = numpy_helper.to_array(init)[index]
            model.graph.initializer.remove(init)
            model.graph.initializer.append(numpy_helper.from_array(cut, init.name))
    onnx.checker.check_model(model)
    return model


def changed_messages(full: dict, pruned: dict, keep: list[int], texts: list[str]) -> np.ndarray:
    """Per text: whether the pruned tokenizer spells it with other pieces than the full one."""
    from tokenizers import Tokenizer

    a, b = Tokenizer.from_str(json.dumps(full)), Tokenizer.from_str(json.dumps(pruned))
    old = np.array(keep)
    return np.array([ea.ids != old[eb.ids].tolist()
                     for ea, eb in zip(a.encode_batch(texts), b.encode_batch(texts))], dtype=bool)


def compare(name: str, rows: list[dict], files: dict, thresholds: np.ndarray, max_tokens: int,
            changed: np.ndarray) -> dict:
    """Micro-F1 of the full and the pruned files on one labelled set, and how far they move."""
    texts = [r["message"] for r in rows]
    full = onnxruntime_probabilities(files["onnx"], files["tokenizer"], max_tokens, texts)
    small = onnxruntime_probabilities(files["out_onnx"], files["out_tokenizer"], max_tokens, texts)
    y = np.array([ds.label_vector(r["tags"]) for r in rows])
    shift = np.abs(full - small).max(axis=1)
    flips = int(((full >= thresholds) != (small >= thresholds)).any(axis=1).sum())
    row = {
        "messages": len(rows),
        "changed_pieces": int(changed.sum()),
        "micro_f1_full": round(micro_f1(y, full, thresholds), 4),
        "micro_f1_pruned": round(micro_f1(y, small, thresholds), 4),
        "messages_with_another_tag_set": flips,
        "max_shift_changed": round(float(shift[changed].max(initial=0.0)), 4),
        "max_shift_unchanged": float(shift[~changed].max(initial=0.0)),
    }
    print(f"{name}: {row}", flush=True)
    return row


def keep_pruned(table: dict) -> bool:
    return all(abs(r["micro_f1_pruned"] - r["micro_f1_full"]) <= F1_TOLERANCE
               and r["max_shift_unchanged"] <= MAX_PROBABILITY_SHIFT for r in table.values())


def validation_sets() -> dict[str, list[dict]]:
    return {"validation": ds.load_split("validation"), "real_validation": read_rows(REAL_DIR / "validation.jsonl")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shipped", action="store_true", help="prune the committed model/ files in place")
    p.add_argument("--keep-below", type=int, default=KEEP_BELOW, help="also keep every id under this")
    p.add_argument("--dry-run", action="store_true", help="measure and report, change nothing")
    args = p.parse_args(argv)
    onnx_path = ds.MODEL_DIR / "tagger.onnx"
    if args.shipped:
        tokenizer, summary = ds.MODEL_DIR / "tokenizer.json", ds.MODEL_DIR / "labels.json"
    else:
        tokenizer, summary = WORK / "trained" / "tokenizer.json", WORK / "trained" / "training.json"
    meta = json.loads(summary.read_text())
    thresholds = np.array([meta["thresholds"][t] for t in ds.TAGS])
    full_json = json.loads(tokenizer.read_text(encoding="utf-8"))
    rows = len(full_json["model"]["vocab"])
    pruned_json, keep = vocab.prune(full_json, training_texts(), args.keep_below)
    if len(keep) == rows:
        # Already pruned (a second run, or a model trained on a pruned vocabulary): the report
        # of the step that pruned stays as it is.
        print(f"vocabulary: every one of its {rows} pieces is kept; nothing to prune")
        if not args.shipped:
            (WORK / "pruning.json").unlink(missing_ok=True)
        return 0
    out = WORK / "pruned"
    out.mkdir(parents=True, exist_ok=True)
    files = {"onnx": onnx_path, "tokenizer": tokenizer,
             "out_onnx": out / "tagger.onnx", "out_tokenizer": out / "tokenizer.json"}
    onnx.save(prune_model(onnx.load(str(onnx_path)), rows, keep), str(files["out_onnx"]))
    vocab.write(files["out_tokenizer"], pruned_json)
    print(f"vocabulary: {len(keep)} of {rows} pieces kept", flush=True)
    table = {}
    for name, labelled in validation_sets().items():
        changed = changed_messages(full_json, pruned_json, keep, [r["message"] for r in labelled])
        table[name] = compare(name, labelled, files, thresholds, meta["max_tokens"], changed)
    shipped = keep_pruned(table)
    report = {
        "shipped": shipped, "pieces": len(keep), "of": rows,
        "file_mb": {"full": round(onnx_path.stat().st_size / 2**20, 2),
                    "pruned": round(files["out_onnx"].stat().st_size / 2**20, 2)},
        "validation": table,
    }
    if shipped and not args.dry_run:
        onnx_path.write_bytes(files["out_onnx"].read_bytes())
        tokenizer.write_bytes(files["out_tokenizer"].read_bytes())
    (WORK / "pruning.json").write_text(json.dumps(report, indent=2) + "\n")
    verdict = "kept" if shipped else "NOT kept (validation moved)"
    print(f"pruned vocabulary {verdict}{' (dry run: nothing written)' if args.dry_run else ''}: "
          f"{onnx_path} {report['file_mb']['full']} -> {report['file_mb']['pruned']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
