"""The real shoppers' messages: the pool in `../shared/data/`, and this project's labels for them.

The pool's texts never enter the repository (their licences do not allow it): `data/real/` keeps
only pool ids and our labels, and `join` puts text and labels together when the pipeline runs.

Labelled rows (`data/real/labels.jsonl`), one per pool id:
  {"id", "tags", "part", "split", "round", "annotators", "adjudicated"?}
  part:  "random"  the random evaluation sample (equal share per source, drawn before any
                   model saw the pool; never chosen, filtered or relabelled by model output)
         "slice"   the rare-tag slice of the evaluation sets (annotators' keyword and embedding
                   search, never the model under test)
         "active"  the training part, chosen by active learning in rounds
  split: "validation" | "test" for random and slice rows, "train" for active rows.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path

from . import dataset as ds

REAL_DIR = ds.DATA_DIR / "real"
LABELS = REAL_DIR / "labels.jsonl"
DOUBLE = REAL_DIR / "double.jsonl"
ROUNDS = REAL_DIR / "rounds.json"
PARTS = ("random", "slice", "active")
EVAL_SPLITS = ("validation", "test")
SAMPLE_SEED = 20261201
# 240 of each of the first pool's four sources: 960 rows, an equal share each (the product-question
# source holds 61% of that pool and would otherwise swamp the estimate). The second pool has one
# source (retail support tweets) and the most false alarms: 480 of its 1,678 rows.
PER_SOURCE = 240
PER_SOURCE_OF = {"twcs": 480}
# The pools, each drawn from by its own seeded generator, so adding a pool never moves an
# earlier pool's random sample. `REAL_POOL` / `REAL_POOL_2` point elsewhere.
POOLS = (("REAL_POOL", "real-pool.jsonl"), ("REAL_POOL_2", "real-pool-2.jsonl"))


class PoolMissing(SystemExit):
    """The pool is not where it should be: training on real data cannot run."""


def pool_paths() -> list[Path]:
    folder = ds.MODEL_DIR.parent.parent / "shared" / "data"
    return [Path(os.environ.get(var, folder / name)) for var, name in POOLS]


def pool_path() -> Path:
    """The first pool: where the pools are, for the checks that skip without them."""
    return pool_paths()[0]


def pools_present() -> bool:
    return all(p.exists() for p in pool_paths())


def source_of(pool_id: str) -> str:
    return pool_id.rsplit("-", 1)[0]


def read_pool(path: Path) -> dict[str, dict]:
    if not path.exists():
        raise PoolMissing(
            f"the real-message pool is not at {path} (set REAL_POOL / REAL_POOL_2 to the pools' paths). "
            "Training needs it; the committed model artifacts keep serving and testing without it."
        )
    pool = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                pool[row["id"]] = {**row, "pool": path.name}
    return pool


def load_pool(path: Path | None = None) -> dict[str, dict]:
    """Every pool's rows by id (or one pool's, given its path); each row names its `pool` file."""
    if path is not None:
        return read_pool(path)
    pool = {}
    for p in pool_paths():
        pool.update(read_pool(p))
    return pool


def random_sample(pool: dict[str, dict], per_source: int | None = None, seed: int = SAMPLE_SEED) -> list[str]:
    """The random evaluation sample: from each pool file, with a generator of its own, a fixed
    number of ids per source (`PER_SOURCE_OF`, else `PER_SOURCE`, or `per_source`), uniformly,
    by seed only."""
    picked = []
    by_pool: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pid in sorted(pool):
        by_pool[pool[pid].get("pool", "")][source_of(pid)].append(pid)
    for name in sorted(by_pool, key=lambda n: [f for _, f in POOLS].index(n) if n in [f for _, f in POOLS] else 99):
        rng = random.Random(seed)
        for source, ids in sorted(by_pool[name].items()):
            n = per_source or PER_SOURCE_OF.get(source, PER_SOURCE)
            picked += rng.sample(ids, min(n, len(ids)))
    return picked


def read_labels(path: Path = LABELS) -> list[dict]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_labels(rows: list[dict], path: Path = LABELS) -> None:
    rows = sorted(rows, key=lambda r: (PARTS.index(r["part"]), r["split"], r["id"]))
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def join(labels: list[dict], pool: dict[str, dict]) -> list[dict]:
    """Labelled rows with the pool's `message`, `context` and `source` put back in."""
    out = []
    for r in labels:
        p = pool[r["id"]]
        out.append({**r, "message": p["message"], "context": p["context"], "source": source_of(r["id"])})
    return out


def near_duplicate_pairs(queries: list[str], corpus: list[str], threshold: float = ds.NEAR_DUPLICATE_JACCARD):
    """(query index, corpus index, similarity) for every pair at or above `threshold`.

    An inverted index over character shingles finds the candidates, so a thousand queries
    against a few thousand rows costs seconds, not a full pairwise scan.
    """
    corpus_sh = [ds.shingles(t) for t in corpus]
    index: dict[str, list[int]] = defaultdict(list)
    for j, sh in enumerate(corpus_sh):
        for g in sh:
            index[g].append(j)
    pairs = []
    for i, text in enumerate(queries):
        q = ds.shingles(text)
        overlap: dict[int, int] = defaultdict(int)
        for g in q:
            for j in index.get(g, ()):
                overlap[j] += 1
        for j, n in overlap.items():
            sim = n / (len(q) + len(corpus_sh[j]) - n)
            if sim >= threshold:
                pairs.append((i, j, sim))
    return pairs


def check_labels(labels: list[dict], pool: dict[str, dict]) -> list[str]:
    """Every problem that makes the real labels unusable; empty when they are sound."""
    problems = []
    seen: dict[str, dict] = {}
    for n, r in enumerate(labels, 1):
        where = f"labels.jsonl:{n} ({r.get('id')})"
        try:
            ds.validate_example({"message": "x", "tags": r.get("tags")}, where)
        except ValueError as err:
            problems.append(str(err))
        if r.get("id") not in pool:
            problems.append(f"{where}: id not in the pool")
        if r.get("part") not in PARTS:
            problems.append(f"{where}: part must be one of {PARTS}")
        wanted = ("train",) if r.get("part") == "active" else EVAL_SPLITS
        if r.get("split") not in wanted:
            problems.append(f"{where}: split {r.get('split')!r} for part {r.get('part')!r}")
        if not r.get("annotators"):
            problems.append(f"{where}: no annotators")
        first = seen.get(r.get("id"))
        if first is None:
            seen[r.get("id")] = r
        elif first["tags"] != r["tags"]:
            problems.append(f"{where}: labelled twice with different tags {first['tags']} / {r['tags']}")
        elif first["split"] != r["split"]:
            problems.append(f"{where}: in two splits, {first['split']} and {r['split']}")
        else:
            problems.append(f"{where}: labelled twice")
    if problems:
        return problems
    evals = [r for r in labels if r["part"] != "active"]
    train = [r for r in labels if r["part"] == "active"]
    for i, j, sim in near_duplicate_pairs([pool[r["id"]]["message"] for r in evals],
                                          [pool[r["id"]]["message"] for r in train]):
        problems.append(f"evaluation row {evals[i]['id']} near-duplicates training row {train[j]['id']} ({sim:.2f})")
    return problems


def eval_leaks(rows: list[dict], labels: list[dict], pool: dict[str, dict]) -> set[int]:
    """Indices of `rows` (machine-written or candidates) that near-duplicate a real evaluation row.

    The machine-written set holds a few stock phrases ("ok thanks") that real shoppers also
    type; training on them would leak into the real evaluation, so training leaves them out.
    """
    return {i for i, _, _ in near_duplicate_pairs([r["message"] for r in rows], evaluation_texts(labels, pool))}


def evaluation_texts(labels: list[dict], pool: dict[str, dict]) -> list[str]:
    """The texts of the real evaluation rows (random and slice, validation and test)."""
    return [pool[r["id"]]["message"] for r in labels if r["part"] != "active"]


def machine_train(labels: list[dict], pool: dict[str, dict]) -> list[dict]:
    rows = ds.load_split("train")
    drop = eval_leaks(rows, labels, pool)
    return [r for i, r in enumerate(rows) if i not in drop]


def splits(labels: list[dict], pool: dict[str, dict]) -> dict[str, list[dict]]:
    """The joined real rows by split: train (active part), validation and test (random + slice)."""
    out: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for row in join(labels, pool):
        out[row["split"]].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    """Join the labels with the pool and check them (the first step of `make model`).
    `--if-present` (for `make eval`): without the pool, say so and carry on."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if "--if-present" in argv and not pools_present():
        print(f"real pools not at {[str(p) for p in pool_paths()]}: the real sets are not joined, "
              "`make eval` skips them")
        return 0
    pool = load_pool()
    labels = read_labels()
    problems = check_labels(labels, pool)
    if problems:
        raise SystemExit("real labels unusable:\n  " + "\n  ".join(problems[:30]))
    work = ds.MODEL_DIR / "work" / "real"
    work.mkdir(parents=True, exist_ok=True)
    parts = splits(labels, pool)
    for name, rows in parts.items():
        ds.write_jsonl(work / f"{name}.jsonl", rows)
    machine = machine_train(labels, pool)
    ds.write_jsonl(work / "machine_train.jsonl", machine)
    dropped = len(ds.load_split("train")) - len(machine)
    print("real: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) + f" joined from {len(pool)} pool rows; "
          f"{dropped} machine-written training rows left out as near duplicates of real evaluation rows")
    write_real_style(work, pool, labels)
    return 0


def training_edit_leaks(joined: list[dict], variants: list[dict], labels: list[dict],
                        pool: dict[str, dict]) -> list[str]:
    """Training counterfactual edits and style variants that near-duplicate (4-gram Jaccard
    >= 0.85) an evaluation text: a real validation or test row, a held-out edit or variant, a
    machine-written validation or test message. `edits.check` looks the other way (held-out
    edits against training texts); an edit of one pool row can still come near another row
    that sits in an evaluation split, and a variant can come near any evaluation text."""
    train = [(f"edit of {r['id']} ({r['kind']})", r["message"]) for r in joined if r["split"] == "train"]
    train += [(f"variant of {v['original'][:30]!r}", v["message"]) for v in variants if v["split"] == "train"]
    evals = evaluation_texts(labels, pool)
    evals += [r["message"] for r in joined if r["split"] != "train"]
    evals += [v["message"] for v in variants if v["split"] != "train"]
    evals += [r["message"] for split in ("validation", "test") for r in ds.load_split(split)]
    pairs = near_duplicate_pairs([t for _, t in train], evals)
    return sorted({train[i][0] for i, _, _ in pairs})


def write_real_style(work: Path, pool: dict[str, dict], labels: list[dict]) -> None:
    """The counterfactual edits applied to their pool texts, and the style variants, by split
    (`work/real/counterfactual_<split>.jsonl`, `style_<split>.jsonl`), after their checks."""
    from . import edits, style

    cf_rows, variants = edits.read(), style.read()
    problems = edits.check(cf_rows, pool, labels) + style.check(variants)
    if problems:
        raise SystemExit("counterfactual edits or style variants unusable:\n  " + "\n  ".join(problems[:30]))
    joined = edits.join(cf_rows, pool)
    if leaks := training_edit_leaks(joined, variants, labels, pool):
        raise SystemExit("training edits or variants near-duplicate an evaluation text:\n  " + "\n  ".join(leaks[:30]))
    for split in edits.SPLITS:
        ds.write_jsonl(work / f"counterfactual_{split}.jsonl", [r for r in joined if r["split"] == split])
        ds.write_jsonl(work / f"style_{split}.jsonl", style.of_split(variants, split))
    print(f"real style: {len(joined)} counterfactual edits, {len(variants)} style variants, by split "
          + ", ".join(f"{s} {sum(r['split'] == s for r in joined)}/{sum(v['split'] == s for v in variants)}"
                      for s in edits.SPLITS))


if __name__ == "__main__":
    raise SystemExit(main())
