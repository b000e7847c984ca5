"""Active learning over the real pool: which unlabelled messages annotators label next.

Usage (from model/):
  python -m pipeline.active embed                      base-encoder embeddings of the pool -> work/
  python -m pipeline.active select --round N --size K --current ONNX [--previous ONNX]
      --out FILE   ids (one per line) for round N, chosen from what is not labelled yet

A round mixes three signals, then spreads its picks for diversity:
  uncertainty   the current model's probability near its threshold, on any tag
  disagreement  the current model against the model of the previous round (round >= 2)
  rare tags     the current model gives First-time-visitor or Wishlist-user some weight: real
                positives of the two rarest tags are a few per thousand, and uncertainty alone
                would hardly ever reach them
Diversity: k-means clusters of base-encoder embeddings, with a cap per cluster, and a cap per
source (the product-question source is 61% of the pool). The evaluation ids are never eligible.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from . import dataset as ds
from . import real

WORK = ds.MODEL_DIR / "work"
EMBEDDINGS = WORK / "pool_embeddings.npz"
CLUSTERS = 64
SOURCE_SHARE_CAP = 0.35
RARE = ("First-time-visitor", "Wishlist-user")


def embed(messages: list[str], batch: int = 128) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (the base, not a tagger)."""
    import torch

    from .tagger import load_encoder
    from .train import default_base, encode, load_tokenizer

    base = default_base()
    tok, enc = load_tokenizer(base, 128), load_encoder(base).eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(messages), batch):
            ids, mask = encode(tok, messages[s : s + batch])
            hidden = enc(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask[:, :, None].float()
            v = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(v, dim=1).numpy())
    return np.concatenate(out)


def pool_embeddings(pool: dict[str, dict]) -> tuple[list[str], np.ndarray]:
    if EMBEDDINGS.exists():
        data = np.load(EMBEDDINGS)
        return list(data["ids"]), data["vectors"]
    ids = sorted(pool)
    vectors = embed([pool[i]["message"] for i in ids])
    WORK.mkdir(exist_ok=True)
    np.savez(EMBEDDINGS, ids=np.array(ids), vectors=vectors)
    return ids, vectors


def kmeans(x: np.ndarray, k: int, seed: int = real.SAMPLE_SEED, iters: int = 25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), k, replace=False)]
    for _ in range(iters):
        assign = np.argmax(x @ centres.T, axis=1)
        for c in range(k):
            members = x[assign == c]
            if len(members):
                v = members.mean(0)
                centres[c] = v / max(np.linalg.norm(v), 1e-9)
    return np.argmax(x @ centres.T, axis=1)


def margin(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """1 at a threshold, falling to 0 as the logit moves 4 away from it, max over tags."""
    eps = 1e-6
    logit = np.log(np.clip(probs, eps, 1 - eps) / np.clip(1 - probs, eps, 1 - eps))
    th = np.log(thresholds / (1 - thresholds))
    return np.clip(1 - np.abs(logit - th[None, :]) / 4.0, 0, 1).max(axis=1)


def scores(current: np.ndarray, previous: np.ndarray | None, thresholds: np.ndarray) -> np.ndarray:
    s = margin(current, thresholds)
    if previous is not None:
        s = np.maximum(s, np.abs((current >= thresholds).astype(float) - (previous >= thresholds)).max(1))
        s = np.maximum(s, np.abs(current - previous).max(1))
    rare = [ds.TAGS.index(t) for t in RARE]
    return np.maximum(s, np.clip(current[:, rare].max(1) * 3, 0, 1))


def select(ids, score, cluster, size: int, seed: int) -> list[str]:
    """Highest score first, within a cap per cluster and per source; ties broken at random."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(ids)), -score))
    per_cluster_cap = math.ceil(2 * size / CLUSTERS)
    per_source_cap = math.ceil(SOURCE_SHARE_CAP * size)
    taken, by_cluster, by_source = [], Counter(), Counter()
    for i in order:
        src = real.source_of(ids[i])
        if by_cluster[cluster[i]] >= per_cluster_cap or by_source[src] >= per_source_cap:
            continue
        taken.append(ids[i])
        by_cluster[cluster[i]] += 1
        by_source[src] += 1
        if len(taken) == size:
            break
    return taken


# A training row this close to an external evaluation message (character 4-gram Jaccard) counts
# as a copy of it: the bar the machine-written data is held to (tests/test_data.py).
EXTERNAL_OVERLAP = 0.5


def leaking(ids: list[str], keep: list[int], pool: dict[str, dict]) -> set[int]:
    """Positions in `keep` whose message near-duplicates a real evaluation row or copies an
    external evaluation message: labelling them for training would leak into evaluation."""
    from .evaluate import load_external

    rows = [{"message": pool[ids[i]]["message"]} for i in keep]
    out = real.eval_leaks(rows, real.read_labels(), pool)
    external = load_external() or []
    out |= {i for i, _, _ in real.near_duplicate_pairs([r["message"] for r in rows],
                                                     [r["message"] for r in external], EXTERNAL_OVERLAP)}
    return out


def model_probabilities(onnx: Path, messages: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and thresholds of a model: an ONNX file with labels.json beside it, or a
    training run's folder (state.pt + training.json), run in torch."""
    if onnx.is_dir():
        import torch

        from .export import load_trained
        from .train import probabilities, trained_tokenizer

        torch.set_num_threads(2)
        model, summary = load_trained(onnx)
        tok = trained_tokenizer(onnx, summary)
        probs = probabilities(model, tok, [{"message": m, "tags": []} for m in messages], 128)
        return probs, np.array([summary["thresholds"][t] for t in ds.TAGS])
    from .evaluate import onnxruntime_probabilities

    labels = json.loads((onnx.parent / "labels.json").read_text())
    tokenizer = onnx.parent / "tokenizer.json"
    probs = onnxruntime_probabilities(onnx, tokenizer, labels["max_tokens"], messages)
    return probs, np.array([labels["thresholds"][t] for t in ds.TAGS])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("embed", "select"))
    p.add_argument("--round", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--current", type=Path, help="ONNX of the current model (labels.json beside it)")
    p.add_argument("--previous", type=Path, help="ONNX of the previous round's model")
    p.add_argument("--exclude", type=Path, action="append", default=[], help="files of ids to leave out")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    pool = real.load_pool()
    ids, vectors = pool_embeddings(pool)
    if args.command == "embed":
        print(f"embedded {len(ids)} pool messages -> {EMBEDDINGS}")
        return 0
    taken = {r["id"] for r in real.read_labels()}
    taken |= set(real.random_sample(pool))
    for f in args.exclude:
        taken |= {line.strip() for line in f.read_text().splitlines() if line.strip()}
    keep = [i for i, pid in enumerate(ids) if pid not in taken]
    leaks = leaking(ids, keep, pool)
    keep = [i for n, i in enumerate(keep) if n not in leaks]
    cand = [ids[i] for i in keep]
    cluster = kmeans(vectors, CLUSTERS)[keep]
    messages = [pool[pid]["message"] for pid in cand]
    current, thresholds = model_probabilities(args.current, messages)
    previous = model_probabilities(args.previous, messages)[0] if args.previous else None
    picked = select(cand, scores(current, previous, thresholds), cluster, args.size, real.SAMPLE_SEED + args.round)
    args.out.write_text("\n".join(picked) + "\n")
    print(f"round {args.round}: {len(picked)} of {len(cand)} candidates; by source "
          f"{dict(Counter(real.source_of(x) for x in picked))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
