"""Assemble annotators' files into `data/real/labels.jsonl` and `data/real/double.jsonl`.

Usage (from model/):
  python -m pipeline.annotate batch --ids FILE --out FILE      an annotation batch (texts from the pool)
  python -m pipeline.annotate merge --dir DIR --adjudicated FILE --slice FILE --round N=FILE ...
  python -m pipeline.annotate extend --dir DIR --adjudicated FILE --pool real-pool-2.jsonl --round-number 4

An annotation batch is `{"id", "context", "message"}` per line; it lives outside the repository
(texts stay in the pool). Each annotator writes `DIR/out/<batch>.<letter>.jsonl` with
`{"id", "tags"}` per line, blind to the others:
  A   the first annotation of every row
  B   an independent second annotation (the double-annotated rows)
  C/D an independent re-annotation pair after a guide fix (here: Window-shopper, rule 37);
      for those rows C and D decide Window-shopper, the other tags stay as A/B decided
Where two annotators disagree, `--adjudicated` (`{id: tags}`) decides; a disagreement without
an adjudication stops the merge. Evaluation rows keep the split they were first given; new
ones are split 50/50 by iterative stratification, random and slice rows separately.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from . import dataset as ds
from . import real
from .prepare import stratified_split

EVAL_RATIOS = {"validation": 0.5, "test": 0.5}
WS = "Window-shopper"


def read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def annotations(folder: Path) -> dict[str, dict[str, list[str]]]:
    """id -> annotator letter -> tags, from every `out/*.<letter>.jsonl`."""
    out: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for path in sorted((folder / "out").glob("*.jsonl")):
        letter = path.suffixes[-2].lstrip(".")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                tags = ds.validate_example({"message": "x", "tags": row["tags"]}, f"{path.name} {row['id']}")["tags"]
                out[row["id"]][letter] = tags
    return out


def decide(pid: str, ann: dict[str, list[str]], adjudicated: dict[str, list[str]]) -> tuple[list[str], bool]:
    """The final tags of one row and whether an adjudication decided them."""
    if pid in adjudicated:
        tags = [t for t in ds.TAGS if t in adjudicated[pid]]
        return tags, True
    first = ann["A"]
    if "B" in ann and ann["B"] != first:
        raise SystemExit(f"{pid}: A {first} and B {ann['B']} disagree and no adjudication decides")
    if "C" in ann:
        c, d = WS in ann["C"], WS in ann.get("D", ann["C"])
        if c != d:
            raise SystemExit(f"{pid}: C and D disagree on {WS} and no adjudication decides")
        first = [t for t in ds.TAGS if (t in first and t != WS) or (t == WS and c)]
    return first, False


def split_evaluation_parts(new_eval: dict[str, list[dict]]) -> None:
    """Each evaluation part's new rows halved into validation and test by the same iterative
    stratification (and seed) as every other evaluation row, in place."""
    for group in new_eval.values():
        for split, members in stratified_split(group, seed=real.SAMPLE_SEED, ratios=EVAL_RATIOS).items():
            for row in members:
                row["split"] = split


def merge(args) -> int:
    pool = real.load_pool()
    ann = annotations(args.dir)
    adjudicated = json.loads(args.adjudicated.read_text()) if args.adjudicated else {}
    random_ids = set(real.random_sample(pool))
    slice_ids = set(read_ids(args.slice)) if args.slice else set()
    rounds = {}
    for spec in args.round:
        n, path = spec.split("=", 1)
        for pid in read_ids(Path(path)):
            rounds[pid] = int(n)
    before = {r["id"]: r for r in real.read_labels()}
    rows, new_eval = [], {"random": [], "slice": []}
    for pid, a in sorted(ann.items()):
        tags, adj = decide(pid, a, adjudicated)
        part = "random" if pid in random_ids else "slice" if pid in slice_ids else "active"
        row = {"id": pid, "tags": tags, "part": part, "split": "train", "round": rounds.get(pid, 0),
               "annotators": sorted(a)}
        if part == "active" and pid not in rounds:
            raise SystemExit(f"{pid}: annotated, but in no evaluation part and no round")
        if adj:
            row["adjudicated"] = True
        if part != "active":
            row["round"] = 0
            if pid in before and before[pid]["split"] in real.EVAL_SPLITS:
                row["split"] = before[pid]["split"]
            else:
                new_eval[part].append(row)
        rows.append(row)
    split_evaluation_parts(new_eval)
    real.REAL_DIR.mkdir(parents=True, exist_ok=True)
    real.write_labels(rows)
    pairs = []
    for pid, a in sorted(ann.items()):
        for x, y in (("A", "B"), ("C", "D")):
            if x in a and y in a:
                pairs.append({"id": pid, "pass": x + y, "first": a[x], "second": a[y]})
    with real.DOUBLE.open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p) + "\n")
    write_rounds(rows)
    counts = defaultdict(int)
    for r in rows:
        counts[(r["part"], r["split"])] += 1
    print(f"merged {len(rows)} rows ({len(pairs)} double-annotated pairs): {dict(counts)}")
    return 0


# How each group of rows was chosen (the model card's active-learning table).
CHOSEN_BY = {
    "random": "seeded uniform draw, 240 per source, before any model saw the pool",
    "slice": "annotators' keyword and base-encoder embedding search for the rare tags, then a "
             "read-through of every unlabelled simmc, mgshop and hint3 message for them",
    1: "the shipped (machine-data) model: probability near a threshold, First-time-visitor or "
       "Wishlist-user probability; 64 embedding clusters capped at 2x their share, 35% cap per source",
    2: "the round-1 model (machine data + round 1): as round 1, plus disagreement with the shipped model",
    3: "no model: a third of the candidates that annotators found by reading every unlabelled amzqa "
       "message for the rare tags (the other two thirds went to the slice)",
    4: "no model: every row of the second pool (retail support tweets) outside its random draw and "
       "its rare-tag positives (those went to the slice), all labelled",
}
RARE = ("First-time-visitor", "Wishlist-user", "Window-shopper")


def write_rounds(rows: list[dict]) -> None:
    groups: dict = defaultdict(list)
    for r in rows:
        groups[r["part"] if r["part"] != "active" else r["round"]].append(r)
    out = []
    for key in ("random", "slice", *sorted(k for k in groups if isinstance(k, int))):
        members = groups.get(key, [])
        out.append({"round": key, "rows": len(members), "chosen_by": CHOSEN_BY.get(key, ""),
                    "positives": {t: sum(t in r["tags"] for r in members) for t in ds.TAGS},
                    "no_tag": sum(not r["tags"] for r in members),
                    "by_source": dict(sorted(Counter(real.source_of(r["id"]) for r in members).items()))})
    real.ROUNDS.write_text(json.dumps(out, indent=2) + "\n")


def external_copies(pool: dict[str, dict], ids: set[str]) -> set[str]:
    """Rows that come near an external evaluation message (4-gram Jaccard >= 0.5): never
    trained on, as active learning skips them too."""
    from .evaluate import load_external

    external = load_external() or []
    ids = sorted(ids)
    pairs = real.near_duplicate_pairs([pool[i]["message"] for i in ids], [e["message"] for e in external], 0.5)
    return {ids[i] for i, _, _ in pairs}


def extend(args) -> int:
    """Add a whole new pool, every row labelled (`--pool real-pool-2.jsonl`): its random draw is
    the random part, its other rare-tag positives the slice (the annotators read every row, so
    the read-through is the search), the rest training rows of round `--round`. Rows already
    labelled keep their labels; disagreements need `--adjudicated`, which is merged into
    `data/real/adjudicated.json`."""
    pool = real.load_pool()
    ann = {pid: a for pid, a in annotations(args.dir).items() if pool.get(pid, {}).get("pool") == args.pool}
    adjudicated = json.loads(args.adjudicated.read_text()) if args.adjudicated else {}
    random_ids = set(real.random_sample(pool))
    before = real.read_labels()
    known = {r["id"] for r in before} | external_copies(pool, set(ann) - random_ids)
    rows, new_eval = [], {"random": [], "slice": []}
    for pid, a in sorted(ann.items()):
        if pid in known:
            continue
        tags, adj = decide(pid, a, adjudicated)
        rare = any(t in tags for t in RARE)
        part = "random" if pid in random_ids else "slice" if rare else "active"
        row = {"id": pid, "tags": tags, "part": part, "split": "train",
               "round": 0 if part != "active" else args.round_number, "annotators": sorted(a)}
        if adj:
            row["adjudicated"] = True
        if part != "active":
            new_eval[part].append(row)
        rows.append(row)
    split_evaluation_parts(new_eval)
    all_rows = before + rows
    real.write_labels(all_rows)
    with real.DOUBLE.open("a", encoding="utf-8") as fh:
        for pid, a in sorted(ann.items()):
            if pid not in known and "A" in a and "B" in a:
                fh.write(json.dumps({"id": pid, "pass": "AB", "first": a["A"], "second": a["B"]}) + "\n")
    path = real.REAL_DIR / "adjudicated.json"
    merged = {**json.loads(path.read_text()), **{k: [t for t in ds.TAGS if t in v] for k, v in adjudicated.items()}}
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    write_rounds(all_rows)
    print(f"added {len(rows)} rows of {args.pool}: " + ", ".join(
        f"{p} {sum(r['part'] == p for r in rows)}" for p in real.PARTS))
    return 0


def batch(args) -> int:
    pool = real.load_pool()
    with args.out.open("w", encoding="utf-8") as fh:
        for pid in read_ids(args.ids):
            p = pool[pid]
            fh.write(json.dumps({"id": pid, "context": p["context"], "message": p["message"]}, ensure_ascii=False) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("merge", "batch", "extend"))
    p.add_argument("--pool", default="real-pool-2.jsonl", help="extend: the pool file whose rows are added")
    p.add_argument("--round-number", type=int, default=4, help="extend: the round of its training rows")
    p.add_argument("--dir", type=Path)
    p.add_argument("--adjudicated", type=Path)
    p.add_argument("--slice", type=Path)
    p.add_argument("--round", action="append", default=[], help="N=FILE of the ids chosen in round N")
    p.add_argument("--ids", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    return {"merge": merge, "batch": batch, "extend": extend}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
