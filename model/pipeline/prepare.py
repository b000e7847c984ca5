"""Prepare: merge the hand-written sources, remove duplicates, split with stratification.

Usage: python -m pipeline.prepare  (from model/)

Reads every `data/raw/*.jsonl`, drops exact duplicates (after normalisation) and same-label near
duplicates, refuses conflicting labels for the same text, then splits 70/15/15 with second-order
iterative stratification (Sechidis et al. 2011, Szymanski & Kajdanowicz 2017): every tag *and*
every tag pair is spread over the splits in proportion, which a random split of ~3k messages
does not guarantee for the rarer pairs.
"""

from __future__ import annotations

import itertools
import json
import random
import sys

from . import dataset as ds

SEED = 20261129
RATIOS = {"train": 0.70, "validation": 0.15, "test": 0.15}


def load_raw() -> list[dict]:
    rows = []
    for path in sorted(ds.RAW_DIR.glob("*.jsonl")):
        for row in ds.read_jsonl(path):
            row["source"] = path.stem
            rows.append(row)
    return rows


def drop_exact_duplicates(rows: list[dict]) -> tuple[list[dict], int]:
    """Keep the first of each normalised text; conflicting labels are a data error."""
    seen: dict[str, dict] = {}
    conflicts = []
    for row in rows:
        key = ds.normalise(row["message"])
        first = seen.get(key)
        if first is None:
            seen[key] = row
        elif first["tags"] != row["tags"]:
            conflicts.append((first, row))
    if conflicts:
        lines = [f"  {a['message']!r} {a['tags']} vs {b['tags']}" for a, b in conflicts]
        raise SystemExit("conflicting labels for the same text:\n" + "\n".join(lines))
    return list(seen.values()), len(rows) - len(seen)


def drop_near_duplicates(rows: list[dict]) -> tuple[list[dict], int]:
    drop = {j for _, j, _ in ds.near_duplicates(rows)}
    return [r for i, r in enumerate(rows) if i not in drop], len(drop)


def strata(tags: list[str]) -> list[str]:
    """The labels and label pairs an example contributes to; 'none' for an untagged one."""
    if not tags:
        return ["none"]
    keys = list(tags)
    keys += ["+".join(p) for p in itertools.combinations(tags, 2)]
    return keys


def stratified_split(rows: list[dict], seed: int = SEED, ratios: dict[str, float] = RATIOS) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    keys = {i: strata(rows[i]["tags"]) for i in order}
    wanted_total = {s: r * len(rows) for s, r in ratios.items()}
    wanted = {}
    for i in order:
        for k in keys[i]:
            for s, r in ratios.items():
                wanted.setdefault((s, k), 0.0)
                wanted[(s, k)] += r
    remaining = set(order)
    assigned: dict[str, list[int]] = {s: [] for s in ratios}
    while remaining:
        counts: dict[str, int] = {}
        for i in remaining:
            for k in keys[i]:
                counts[k] = counts.get(k, 0) + 1
        # The rarest stratum first: its few examples are the hardest to spread evenly.
        rarest = min(counts, key=lambda k: (counts[k], k))
        for i in [i for i in order if i in remaining and rarest in keys[i]]:
            split = max(
                ratios,
                key=lambda s: (wanted[(s, rarest)], wanted_total[s], rng.random()),
            )
            assigned[split].append(i)
            remaining.discard(i)
            wanted_total[split] -= 1
            for k in keys[i]:
                wanted[(split, k)] -= 1
    return {s: [rows[i] for i in sorted(idx)] for s, idx in assigned.items()}


# Machine-written messages whose labels the guide's later rules (21-39) changed: relabelled after
# the split, so that every message stays in the split it was first given and a fix to a label
# never moves a test message into training. Each row: {"message", "tags", "was", "rule"}.
RELABELLED = ds.DATA_DIR / "relabelled.jsonl"


def read_relabels(path: Path = RELABELLED) -> dict[str, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return {ds.normalise(r["message"]): r for r in rows}


def relabel(splits: dict[str, list[dict]], relabels: dict[str, dict]) -> int:
    """Apply the relabels in place; a relabel that matches no message, or whose `was` is not the
    message's current label, stops the step (the data moved under it)."""
    done = set()
    for rows in splits.values():
        for r in rows:
            fix = relabels.get(ds.normalise(r["message"]))
            if fix is None:
                continue
            if [t for t in ds.TAGS if t in fix["was"]] != r["tags"]:
                raise SystemExit(f"relabel of {r['message']!r}: was {fix['was']}, the data says {r['tags']}")
            r["tags"] = [t for t in ds.TAGS if t in fix["tags"]]
            done.add(ds.normalise(r["message"]))
    stale = sorted(set(relabels) - done)
    if stale:
        raise SystemExit(f"relabels that match no message: {stale[:5]}")
    return len(done)


def stats(splits: dict[str, list[dict]]) -> dict:
    out = {}
    for name, rows in splits.items():
        per_key: dict[str, int] = {}
        for r in rows:
            for k in strata(r["tags"]):
                per_key[k] = per_key.get(k, 0) + 1
        out[name] = {"messages": len(rows), "strata": dict(sorted(per_key.items()))}
    return out


def main() -> int:
    rows = load_raw()
    n_raw = len(rows)
    rows, n_exact = drop_exact_duplicates(rows)
    rows, n_near = drop_near_duplicates(rows)
    splits = stratified_split(rows)
    n_relabelled = relabel(splits, read_relabels())
    for name, split_rows in splits.items():
        ds.write_jsonl(ds.split_path(name), [{"message": r["message"], "tags": r["tags"]} for r in split_rows])
    summary = {
        "seed": SEED,
        "raw_messages": n_raw,
        "exact_duplicates_dropped": n_exact,
        "near_duplicates_dropped": n_near,
        "relabelled_after_split": n_relabelled,
        "messages": len(rows),
        "splits": stats(splits),
    }
    (ds.DATA_DIR / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"prepare: {n_raw} raw, -{n_exact} exact dup, -{n_near} near dup -> {len(rows)}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + f"; {n_relabelled} relabelled by later rules"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
