"""Counterfactual edits: real pool messages changed by an annotator to add or remove a tag's evidence.

A model learns whatever separates its classes. When every positive of a rare tag is
machine-written and the real rows are almost all untagged, it learns the writing style, not
the tag. A counterfactual keeps a real customer's words, spelling and shape and changes only
the evidence ("is this in stock" -> "when will this be back in stock, i'll wait"), so the only
difference between the pair is the tag.

The pool's texts never enter the repository: `data/real/counterfactual.jsonl` keeps, per edit,
the pool id, a short hash of the pool text it was written against, the annotator's own
replacement spans and the tags:

  {"id", "source_sha", "edit": [[start, end, "new text"], ...], "tags", "kind", "target",
   "split", "author"}

  edit:   character spans of the pool text [start, end) replaced by "new text", in order, not
          overlapping; applied when the pipeline joins the pool (`apply`)
  kind:   "add" (the target tag's evidence added), "near-miss" (a trigger word added without
          the tag: a hard negative) or "remove" (a real positive's evidence taken out)
  split:  "train", "validation" or "test". A source row that is labelled for training only
          ever gives training edits; an evaluation row of the real sets never gives any; an
          unlabelled pool row's edits go where `split_for` puts its id, all of them together.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path

from . import dataset as ds
from . import real

EDITS = real.REAL_DIR / "counterfactual.jsonl"
KINDS = ("add", "near-miss", "remove")
SPLITS = ("train", "validation", "test")
# Unlabelled source rows: half of them give training edits, a quarter each the held-out
# validation and test edits (by a hash of the id, so a source's edits never straddle splits).
SPLIT_SALT = "tagbeez-counterfactual-20261207"
TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def source_sha(text: str) -> str:
    """What an edit was written against: a pool text that changes makes the edit fail, loudly."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def diff(original: str, edited: str) -> list[list]:
    """The replacement spans that turn `original` into `edited`, word by word (a word-level diff
    keeps each span to the annotator's own words instead of scattering single letters)."""
    a, b = TOKEN.findall(original), TOKEN.findall(edited)
    starts = [0]
    for tok in a:
        starts.append(starts[-1] + len(tok))
    ops = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            ops.append([starts[i1], starts[i2], "".join(b[j1:j2])])
    return ops


def apply(text: str, edit: list) -> str:
    """`text` with every span replaced; ValueError if the spans do not fit the text."""
    out, at = [], 0
    for op in edit:
        if not (isinstance(op, list) and len(op) == 3 and all(isinstance(x, int) for x in op[:2])
                and isinstance(op[2], str)):
            raise ValueError(f"an edit step must be [start, end, text], got {op!r}")
        start, end, new = op
        if start < at or end < start or end > len(text):
            raise ValueError(f"span [{start}, {end}) does not fit a text of {len(text)} characters after {at}")
        out += [text[at:start], new]
        at = end
    return "".join(out + [text[at:]])


def split_for(pool_id: str) -> str:
    h = int(hashlib.sha256(f"{SPLIT_SALT}:{pool_id}".encode()).hexdigest()[:8], 16) % 4
    return ("train", "train", "validation", "test")[h]


def read(path: Path = EDITS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write(rows: list[dict], path: Path = EDITS) -> None:
    rows = sorted(rows, key=lambda r: (SPLITS.index(r["split"]), r["id"], r["kind"], r.get("target") or ""))
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def join(rows: list[dict], pool: dict[str, dict]) -> list[dict]:
    """Each edit applied to its pool text: trainable rows with `message`, `context`, `tags`."""
    return [{**{k: v for k, v in r.items() if k not in ("edit", "source_sha")},
             "message": apply(pool[r["id"]]["message"], r["edit"]),
             "context": pool[r["id"]]["context"], "source": real.source_of(r["id"]),
             "counterfactual": True} for r in rows]


def _row_problems(n: int, r: dict, pool: dict[str, dict], labelled: dict[str, dict]) -> list[str]:
    where = f"counterfactual.jsonl:{n} ({r.get('id')})"
    problems = []
    try:
        ds.validate_example({"message": "x", "tags": r.get("tags")}, where)
    except ValueError as err:
        problems.append(str(err))
    if r.get("kind") not in KINDS or r.get("split") not in SPLITS or not r.get("author"):
        problems.append(f"{where}: kind, split and author must be set ({r.get('kind')}, {r.get('split')})")
    if r.get("kind") == "add" and r.get("target") not in (r.get("tags") or []):
        problems.append(f"{where}: an add edit must carry its target tag {r.get('target')!r}")
    src = pool.get(r.get("id"))
    if src is None:
        return problems + [f"{where}: id not in the pool"]
    if r.get("source_sha") != source_sha(src["message"]):
        problems.append(f"{where}: the pool text is not the one the edit was written against")
    else:
        try:
            edited = apply(src["message"], r.get("edit") or [])
            if not r.get("edit") or ds.normalise(edited) == ds.normalise(src["message"]):
                problems.append(f"{where}: the edit changes nothing")
        except ValueError as err:
            problems.append(f"{where}: the edit does not apply: {err}")
    lab = labelled.get(r["id"])
    if lab is not None and lab["part"] != "active":
        problems.append(f"{where}: its source row is in the real {lab['split']} split ({lab['part']})")
    elif lab is not None and r.get("split") != "train":
        problems.append(f"{where}: its source row is a real training row, so the edit must be train")
    return problems


def check(rows: list[dict], pool: dict[str, dict], labels: list[dict]) -> list[str]:
    """Every problem that makes the edits unusable; empty when they are sound."""
    if problems := row_problems(rows, pool, labels):
        return problems
    return [f"held-out counterfactual of {pid} near-duplicates a training text ({sim:.2f})"
            for pid, sim in held_out_near_duplicates(rows, pool, labels)]


def row_problems(rows: list[dict], pool: dict[str, dict], labels: list[dict]) -> list[str]:
    """What is wrong with the rows one by one, and any source in two splits."""
    labelled = {r["id"]: r for r in labels}
    problems, split_of = [], {}
    for n, r in enumerate(rows, 1):
        problems += _row_problems(n, r, pool, labelled)
        first = split_of.setdefault(r.get("id"), r.get("split"))
        if first != r.get("split"):
            problems.append(f"counterfactual.jsonl:{n} ({r.get('id')}): its source is in two splits, "
                            f"{first} and {r.get('split')}")
    return problems


def held_out_near_duplicates(rows: list[dict], pool: dict[str, dict],
                             labels: list[dict]) -> list[tuple[str, float]]:
    """(source id, similarity) of each held-out edit that near-duplicates a training text (a
    training edit or a real training row). The rows must be sound (`row_problems` empty)."""
    joined = join(rows, pool)
    held = [r for r in joined if r["split"] != "train"]
    train = [r["message"] for r in joined if r["split"] == "train"]
    train += [pool[r["id"]]["message"] for r in labels if r["part"] == "active"]
    return [(held[i]["id"], sim) for i, _, sim in real.near_duplicate_pairs([r["message"] for r in held], train)]


def from_annotations(files: list[tuple[Path, str | None, str]], pool: dict[str, dict],
                     labels: list[dict]) -> tuple[list[dict], list[str]]:
    """Edits from writers' files of `{"id", "message" (the edited text), "tags", "kind", "target"?}`
    lines, each file with its target tag (a line's own `target` wins) and author; returns the edits
    and what was left out, and why."""
    labelled = {r["id"]: r for r in labels}
    rows, skipped, seen = [], [], set()
    for path, file_target, author in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            a = json.loads(line)
            pid, kind, target = a["id"], a.get("kind", "add"), a.get("target", file_target)
            where = f"{path.name}:{n} ({pid})"
            src, lab = pool.get(pid), labelled.get(pid)
            if src is None or (lab is not None and lab["part"] != "active"):
                skipped.append(f"{where}: not in the pool, or a real evaluation row")
                continue
            if (pid, kind, target) in seen:
                skipped.append(f"{where}: a second {kind} edit of the same row")
                continue
            tags = [t for t in ds.TAGS if t in a["tags"]]
            edit = diff(src["message"], a["message"].strip())
            if not edit or apply(src["message"], edit) != a["message"].strip():
                skipped.append(f"{where}: changes nothing")
                continue
            if kind == "add" and target not in tags:
                skipped.append(f"{where}: an add edit without its target tag")
                continue
            seen.add((pid, kind, target))
            rows.append({"id": pid, "source_sha": source_sha(src["message"]), "edit": edit, "tags": tags,
                         "kind": kind, "target": target, "split": "train" if lab else split_for(pid),
                         "author": author})
    return rows, skipped


def hold_out_cleanly(rows: list[dict], pool: dict[str, dict], labels: list[dict]) -> list[str]:
    """Sources whose held-out edits near-duplicate a training text are moved, with all their
    edits, to training; returns their ids."""
    if problems := row_problems(rows, pool, labels):
        raise SystemExit("edits unusable:\n  " + "\n  ".join(problems[:30]))
    moved: list[str] = []
    while True:
        # Moving a source to training only removes held-out rows, so each pass shrinks the set
        # and the loop ends.
        bad = {pid for pid, _ in held_out_near_duplicates(rows, pool, labels)}
        if not bad:
            return moved
        for r in rows:
            if r["id"] in bad:
                r["split"] = "train"
        moved += sorted(bad)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.edits import [--append] TARGET:AUTHOR=FILE ...`: the writers' files
    turned into `data/real/counterfactual.jsonl` (TARGET is a tag, or `none` for a file of
    removals). `--append` keeps the committed edits (a later round of writing adds to them; an
    edit of a row, kind and target already there is left out)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("command", choices=("import",))
    p.add_argument("--append", action="store_true", help="keep the committed edits and add these")
    p.add_argument("files", nargs="+", help="TARGET:AUTHOR=FILE")
    args = p.parse_args(argv)
    pool, labels = real.load_pool(), real.read_labels()
    specs = []
    for spec in args.files:
        head, path = spec.split("=", 1)
        target, author = head.split(":", 1)
        specs.append((Path(path), None if target == "none" else target, author))
    rows, skipped = from_annotations(specs, pool, labels)
    if args.append:
        kept = read()
        have = {(r["id"], r["kind"], r["target"]) for r in kept}
        skipped += [f"{r['id']}: a {r['kind']} edit of this row is already committed" for r in rows
                    if (r["id"], r["kind"], r["target"]) in have]
        # A new edit of a source that already has edits joins that source's split, so a
        # source never straddles splits (an earlier import may have moved it to training).
        split_of = {r["id"]: r["split"] for r in kept}
        rows = kept + [{**r, "split": split_of.get(r["id"], r["split"])} for r in rows
                       if (r["id"], r["kind"], r["target"]) not in have]
    moved = hold_out_cleanly(rows, pool, labels)
    write(rows)
    print("\n".join(skipped[:50]))
    print(f"{len(rows)} edits written ({len(skipped)} left out, {len(moved)} sources moved to train as near "
          f"duplicates): " + ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in SPLITS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
