"""Feedback: what `tagbeez export-feedback` wrote, as one more labelled source of training data.

Usage: python -m pipeline.feedback [FILE] [--out work/feedback] [--holdout 20] [--max-chars 5000]
(from model/; `make model FEEDBACK=file.jsonl` runs it after `real` and `prepare`).

FILE holds one JSON object per line, as the export writes them:
  {"feedback_id", "message", "tags", "predicted", "model_version", "conversation_id",
   "message_id", "source", "received_at"}
Every field must be there (`predicted`, `conversation_id`, `message_id` and `source` may be
null); a line that breaks a rule stops the step with its line number, every bad line at once.

What the step does, in order (the counts go to `summary.json` and to the flywheel report;
what happened to each item goes to `decisions.jsonl`, by feedback id, never by text):
1. Validate every line: the tag rules of every other source (`dataset.validate_example`: known
   tags only, no repeats, no empty message), ids and `source` as the service accepts them, the
   service's message length limit, `received_at` in unix seconds. A feedback id on two lines
   is one item exported twice when the lines are equal, and an error when they differ.
2. One label per text. Items whose messages are equal after the pipeline's normalisation
   (`dataset.normalise`) are one text: equal labels are merged; conflicting labels are
   resolved by the latest `received_at` (the later correction wins); two conflicting items
   received in the same second leave the text out (neither is later). A text with no letter or
   digit left after normalisation is left out.
3. Split by a hash of the normalised text: HOLDOUT_PERCENT of the texts are the *feedback
   test* set, the rest train. The text, not the feedback id, decides, so a text stays on its
   side when later exports bring more feedback on it, and a model trained on one export is
   never scored on a text it was trained on by the next.
4. Leakage and overlap with the curated sources (machine-written splits, real splits, the
   external set): a feedback text equal to a curated message is left out (the curated,
   adjudicated label stands; a disagreement is counted for a person to read). Feedback train
   rows that near-duplicate an evaluation message (validation, test, feedback test: character
   4-gram Jaccard >= 0.85; the external set: >= 0.5, the rule the other sources follow) are
   left out of training; feedback test rows that near-duplicate a training message are left
   out of the test (they would measure memory). Same-label near duplicates within each side
   are dropped, as `prepare` drops them.
Writes `train.jsonl` (for `train --feedback`), `test.jsonl` (for the flywheel report),
`summary.json` and `decisions.jsonl` under `work/feedback/` (git-ignored: the texts are
customer messages and never leave the machine). Without FILE it empties `work/feedback/`, so a
later run never trains on an earlier run's feedback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from . import dataset as ds
from . import real

OUT = ds.MODEL_DIR / "work" / "feedback"
FIELDS = ("feedback_id", "message", "tags", "predicted", "model_version", "conversation_id",
          "message_id", "source", "received_at")
# The held-out share of feedback texts, and the salt of their hash (a new salt would reshuffle
# every text between the sides: never change it between rounds).
HOLDOUT_PERCENT = 20
SPLIT_SALT = "tagbeez-feedback-test-v1"
# The service's default MAX_MESSAGE_CHARS: the route refuses longer messages, so a longer one in
# an export was not written by it (raise with --max-chars where the service's limit is higher).
MAX_MESSAGE_CHARS = 5000
# The service's id rules (conversation ids, message ids; feedback ids are uuids) and `source`'s.
ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
SOURCE_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
# Near duplicates of the external set, as the other sources' tests measure them (test_data.py).
EXTERNAL_OVERLAP = 0.5
MAX_ERRORS_SHOWN = 20


class FeedbackError(ValueError):
    """The feedback file has bad lines; the message names each one by line number."""


@dataclass
class Item:
    line: int
    feedback_id: str
    message: str
    tags: list
    received_at: int
    model_version: str
    source: str | None


def _check_list_of_tags(value, field: str, where: str) -> None:
    ds.validate_example({"message": "x", "tags": value}, f"{where}: {field}")


def parse(obj: object, where: str, max_chars: int = MAX_MESSAGE_CHARS) -> Item:
    """One exported line as an `Item`, or ValueError naming `where` and the problem."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a JSON object")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    clean = ds.validate_example({"message": obj["message"], "tags": obj["tags"]}, where)
    if len(obj["message"]) > max_chars:
        raise ValueError(f"{where}: message of {len(obj['message'])} characters, over the limit of {max_chars}")
    fid = obj["feedback_id"]
    if not isinstance(fid, str) or not ID_RE.fullmatch(fid):
        raise ValueError(f"{where}: feedback_id must be 1-128 of [A-Za-z0-9_.:@-], got {fid!r}")
    if obj["predicted"] is not None:
        _check_list_of_tags(obj["predicted"], "predicted", where)
    for field in ("conversation_id", "message_id"):
        v = obj[field]
        if v is not None and (not isinstance(v, str) or not ID_RE.fullmatch(v)):
            raise ValueError(f"{where}: {field} must be null or 1-128 of [A-Za-z0-9_.:@-], got {v!r}")
    if obj["source"] is not None and (not isinstance(obj["source"], str) or not SOURCE_RE.fullmatch(obj["source"])):
        raise ValueError(f"{where}: source must be null or 1-64 of [A-Za-z0-9_.:@-], got {obj['source']!r}")
    if not isinstance(obj["model_version"], str) or not obj["model_version"].strip():
        raise ValueError(f"{where}: model_version must be a non-empty string")
    at = obj["received_at"]
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise ValueError(f"{where}: received_at must be unix seconds (a non-negative integer), got {at!r}")
    return Item(line=0, feedback_id=fid, message=clean["message"], tags=clean["tags"], received_at=at,
                model_version=obj["model_version"], source=obj["source"])


def load(path: Path, max_chars: int = MAX_MESSAGE_CHARS) -> tuple[list[Item], int]:
    """Every item of an export and how many lines repeated an earlier one exactly.
    Raises FeedbackError naming every bad line (`file:line: problem`)."""
    items: list[Item] = []
    by_id: dict[str, tuple[int, dict]] = {}
    errors: list[str] = []
    repeated = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                errors.append(f"{where}: invalid JSON ({err})")
                continue
            try:
                item = parse(obj, where, max_chars)
            except ValueError as err:
                errors.append(str(err))
                continue
            item.line = lineno
            first = by_id.get(item.feedback_id)
            if first is not None:
                if first[1] == obj:
                    repeated += 1
                else:
                    errors.append(f"{where}: feedback_id {item.feedback_id} is on line {first[0]} too, "
                                  "with different content")
                continue
            by_id[item.feedback_id] = (lineno, obj)
            items.append(item)
    if errors:
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise FeedbackError(f"{path}: {len(errors)} bad line(s):\n  " + "\n  ".join(errors[:MAX_ERRORS_SHOWN]) + more)
    return items, repeated


def held_out(message: str, percent: int = HOLDOUT_PERCENT) -> bool:
    """True for the feedback test side: a fixed hash of the normalised text, nothing random."""
    digest = hashlib.sha256((SPLIT_SALT + "\0" + ds.normalise(message)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def resolve(items: list[Item], decisions: dict[str, dict]) -> tuple[list[Item], dict]:
    """One item per normalised text: the latest correction wins a conflict; a same-second
    conflict, or a text with nothing left after normalisation, is left out."""
    groups: dict[str, list[Item]] = defaultdict(list)
    counts = Counter()
    for it in items:
        key = ds.normalise(it.message)
        if not key:
            decisions[it.feedback_id] = {"decision": "dropped", "reason": "no letter or digit after normalisation"}
            counts["no_words"] += 1
            continue
        groups[key].append(it)
    kept = []
    for key, group in groups.items():
        group.sort(key=lambda it: (it.received_at, it.line))
        winner = group[-1]
        labels = {tuple(it.tags) for it in group}
        if len(labels) == 1:
            for it in group[:-1]:
                decisions[it.feedback_id] = {"decision": "merged", "reason": "same text and labels as a later item",
                                             "kept": winner.feedback_id}
                counts["duplicates_merged"] += 1
            kept.append(winner)
            continue
        counts["conflicting_texts"] += 1
        rivals = [it for it in group if it.received_at == winner.received_at and it.tags != winner.tags]
        if rivals:
            for it in group:
                decisions[it.feedback_id] = {"decision": "dropped", "reason": "conflicting labels received in the same second",
                                             "conflict_with": [o.feedback_id for o in group if o is not it]}
            counts["conflict_ties_dropped"] += len(group)
            continue
        for it in group[:-1]:
            if it.tags == winner.tags:
                decisions[it.feedback_id] = {"decision": "merged", "reason": "same text and labels as a later item",
                                             "kept": winner.feedback_id}
                counts["duplicates_merged"] += 1
            else:
                decisions[it.feedback_id] = {"decision": "overridden", "kept": winner.feedback_id,
                                             "reason": "a later item labels the same text differently",
                                             "tags": it.tags, "kept_tags": winner.tags}
                counts["conflict_items_overridden"] += 1
        kept.append(winner)
    kept.sort(key=lambda it: it.line)
    return kept, counts


def curated_sets() -> list[tuple[str, str, list[dict]]]:
    """(name, role, rows) of every curated source the pipeline trains or evaluates on: role
    `train`, `eval` or `external`. Real sets only where `pipeline.real` joined them."""
    from .evaluate import load_external

    sets = [("machine-written train", "train", ds.load_split("train")),
            ("machine-written validation", "eval", ds.load_split("validation")),
            ("machine-written test", "eval", ds.load_split("test"))]
    work_real = ds.MODEL_DIR / "work" / "real"
    for split, role in (("train", "train"), ("validation", "eval"), ("test", "eval")):
        path = work_real / f"{split}.jsonl"
        if path.exists():
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
            sets.append((f"real {split}", role, rows))
        else:
            print(f"feedback: {path} absent (no real pool joined): not checked against real {split}")
    external = load_external()
    if external is not None:
        sets.append(("external", "external", external))
    return sets


def build(items: list[Item], curated: list[tuple[str, str, list[dict]]], percent: int = HOLDOUT_PERCENT):
    """(train rows, test rows, counts, decisions) from validated items and the curated sets."""
    decisions: dict[str, dict] = {}
    kept, counts = resolve(items, decisions)
    # 4a. Equal to a curated message: the curated label stands.
    owner: dict[str, tuple[str, list]] = {}
    for name, _, rows in curated:
        for r in rows:
            owner.setdefault(ds.normalise(r["message"]), (name, r["tags"]))
    equal_to = Counter()
    sides: dict[str, list[Item]] = {"train": [], "test": []}
    for it in kept:
        hit = owner.get(ds.normalise(it.message))
        if hit is not None:
            agree = [t for t in ds.TAGS if t in hit[1]] == it.tags
            decisions[it.feedback_id] = {"decision": "dropped", "reason": f"equal to a message of {hit[0]}",
                                         "labels_agree": agree, "curated_tags": hit[1]}
            equal_to[f"{hit[0]}, {'same' if agree else 'different'} labels"] += 1
            continue
        sides["test" if held_out(it.message, percent) else "train"].append(it)
    # 4b. Near duplicates across the train/evaluation line.
    evals = [r["message"] for _, role, rows in curated if role == "eval" for r in rows]
    evals += [it.message for it in sides["test"]]
    external = [r["message"] for _, role, rows in curated if role == "external" for r in rows]
    training = [r["message"] for _, role, rows in curated if role == "train" for r in rows]
    train_msgs = [it.message for it in sides["train"]]
    leak = {i for i, _, _ in real.near_duplicate_pairs(train_msgs, evals)}
    leak_ext = {i for i, _, _ in real.near_duplicate_pairs(train_msgs, external, EXTERNAL_OVERLAP)} - leak
    memo = {i for i, _, _ in real.near_duplicate_pairs([it.message for it in sides["test"]], training)}
    for i in leak:
        decisions[sides["train"][i].feedback_id] = {"decision": "dropped", "reason": "train row near-duplicates an evaluation message"}
    for i in leak_ext:
        decisions[sides["train"][i].feedback_id] = {"decision": "dropped", "reason": "train row near-duplicates an external message"}
    for i in memo:
        decisions[sides["test"][i].feedback_id] = {"decision": "dropped", "reason": "test row near-duplicates a training message"}
    counts["train_near_evaluation_dropped"] = len(leak)
    counts["train_near_external_dropped"] = len(leak_ext)
    counts["test_near_training_dropped"] = len(memo)
    sides["train"] = [it for i, it in enumerate(sides["train"]) if i not in leak | leak_ext]
    sides["test"] = [it for i, it in enumerate(sides["test"]) if i not in memo]
    # 4c. Same-label near duplicates within each side, as prepare drops them.
    for side in ("train", "test"):
        rows = [{"message": it.message, "tags": it.tags} for it in sides[side]]
        drop = {j for _, j, _ in ds.near_duplicates(rows)}
        for j in drop:
            decisions[sides[side][j].feedback_id] = {"decision": "dropped", "reason": f"same-label near duplicate within feedback {side}"}
        counts[f"{side}_near_duplicates_dropped"] = len(drop)
        sides[side] = [it for j, it in enumerate(sides[side]) if j not in drop]
    for side, rows in sides.items():
        for it in rows:
            decisions[it.feedback_id] = {"decision": side}
    out = {side: [{"message": it.message, "tags": it.tags, "feedback_id": it.feedback_id,
                   "received_at": it.received_at} for it in rows] for side, rows in sides.items()}
    counts = {k: int(v) for k, v in sorted(counts.items())}
    counts["equal_to_curated_dropped"] = dict(sorted(equal_to.items()))
    return out["train"], out["test"], counts, decisions


def tag_counts(rows: list[dict]) -> dict:
    c = Counter(t for r in rows for t in r["tags"])
    return {**{t: c[t] for t in ds.TAGS}, "no tag": sum(not r["tags"] for r in rows)}


def guard_location(path: Path) -> None:
    """Customer messages are never committed: a file inside the repository must be git-ignored."""
    repo = ds.MODEL_DIR.parent.resolve()
    path = path.resolve()
    if repo not in path.parents:
        return
    try:
        code = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=repo, capture_output=True).returncode
    except OSError:
        code = None
    # 0: ignored, 1: not ignored; anything else (no git, not a checkout): only model/work/ is
    # known to be ignored.
    ignored = code == 0 if code in (0, 1) else (ds.MODEL_DIR / "work").resolve() in path.parents
    if not ignored:
        raise SystemExit(f"{path} is inside the repository and not git-ignored: feedback holds customer "
                         "messages, keep the export outside the repository or in model/work/")


def run(path: Path, out: Path, percent: int = HOLDOUT_PERCENT, max_chars: int = MAX_MESSAGE_CHARS,
        curated: list | None = None) -> dict:
    guard_location(path)
    items, repeated = load(path, max_chars)
    curated = curated_sets() if curated is None else curated
    train, test, counts, decisions = build(items, curated, percent)
    line_of = {it.feedback_id: it.line for it in items}
    summary = {
        "holdout_percent": percent,
        "split_rule": f"sha256 of the normalised text (salt {SPLIT_SALT!r}) mod 100 < {percent}: feedback test",
        "conflict_rule": "latest received_at wins; a same-second conflict leaves the text out",
        "lines": len(items) + repeated,
        "repeated_lines": repeated,
        "items": len(items),
        **counts,
        "train": len(train),
        "test": len(test),
        "train_tags": tag_counts(train),
        "test_tags": tag_counts(test),
        "model_versions": dict(sorted(Counter(it.model_version for it in items).items())),
    }
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ds.write_jsonl(out / "train.jsonl", train)
    ds.write_jsonl(out / "test.jsonl", test)
    ds.write_jsonl(out / "decisions.jsonl", [{"feedback_id": fid, "line": line_of[fid], **d}
                                             for fid, d in sorted(decisions.items(), key=lambda kv: line_of[kv[0]])])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


SUMMARY_LINES = (
    ("repeated_lines", "lines repeating an earlier line exactly"),
    ("duplicates_merged", "duplicates merged into a later item (same text, same labels)"),
    ("conflicting_texts", "texts with conflicting labels"),
    ("conflict_items_overridden", "items overridden by a later, different label"),
    ("conflict_ties_dropped", "items left out: conflicting labels received in the same second"),
    ("no_words", "items left out: no letter or digit after normalisation"),
    ("train_near_evaluation_dropped", "left out of training: near duplicates of an evaluation message"),
    ("train_near_external_dropped", "left out of training: near duplicates of an external message"),
    ("test_near_training_dropped", "left out of the feedback test: near duplicates of a training message"),
    ("train_near_duplicates_dropped", "same-label near duplicates dropped from feedback train"),
    ("test_near_duplicates_dropped", "same-label near duplicates dropped from feedback test"),
)


def print_summary(s: dict, out: Path) -> None:
    print(f"feedback: {s['lines']} lines, {s['items']} items -> {s['train']} train, {s['test']} feedback test "
          f"({s['holdout_percent']}% of texts held out by hash)")
    for key, what in SUMMARY_LINES:
        if s.get(key):
            print(f"  {what}: {s[key]}")
    for what, n in s["equal_to_curated_dropped"].items():
        print(f"  left out, equal to a message of {what}: {n}")
    if s.get("conflicting_texts") or s["equal_to_curated_dropped"]:
        print(f"  what happened to each item, by feedback id and line: {out / 'decisions.jsonl'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="the JSONL that `tagbeez export-feedback` wrote (none: no feedback)")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--holdout", type=int, default=HOLDOUT_PERCENT, help="percent of texts held out as feedback test")
    p.add_argument("--max-chars", type=int, default=MAX_MESSAGE_CHARS, help="the service's MAX_MESSAGE_CHARS")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not args.file:
        if out.exists():
            shutil.rmtree(out)
        print("feedback: no FEEDBACK file, training on the curated sources only")
        return 0
    path = Path(args.file)
    if not path.exists():
        raise SystemExit(f"feedback file not found: {path}")
    try:
        summary = run(path, out, args.holdout, args.max_chars)
    except FeedbackError as err:
        raise SystemExit(str(err)) from None
    print_summary(summary, out)
    if summary["train"] == 0:
        print("feedback: no feedback row is left for training", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
