"""Dataset rules shared by the prepare step, the trainer and the data check.

One place says what a valid example is, how text is normalised for duplicate detection, and
where the splits live, so the data check tests exactly what `prepare` enforces.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = MODEL_DIR / "data"
RAW_DIR = DATA_DIR / "raw"
SPLITS = ("train", "validation", "test")

# Output order of the model's logits. The Rust service reads this order from labels.json;
# it is fixed here only because the training data is labelled with these names.
TAGS = (
    "First-time-visitor",
    "Wishlist-user",
    "Deal-seeker",
    "Window-shopper",
    "Hot-buyer",
)

# Two messages whose character shingles overlap this much are the same message written twice
# (a changed emoji, a typo, one extra word). Contrast pairs ("I'm new" / "I'm not new") differ in
# labels and are kept on purpose, see `near_duplicates`.
NEAR_DUPLICATE_JACCARD = 0.85
SHINGLE = 4


def normalise(text: str) -> str:
    """Lowercase, strip accents, punctuation and emoji, collapse whitespace."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return " ".join(text.split())


def shingles(text: str) -> frozenset[str]:
    norm = normalise(text)
    if len(norm) <= SHINGLE:
        return frozenset({norm})
    return frozenset(norm[i : i + SHINGLE] for i in range(len(norm) - SHINGLE + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def validate_example(obj: object, where: str) -> dict:
    """Return a clean `{message, tags}` or raise ValueError naming the problem and its place."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: not a JSON object")
    message, tags = obj.get("message"), obj.get("tags")
    if not isinstance(message, str) or not message.strip():
        raise ValueError(f"{where}: empty or missing message")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"{where}: tags must be a list of strings")
    unknown = sorted(set(tags) - set(TAGS))
    if unknown:
        raise ValueError(f"{where}: unknown tag(s) {unknown}")
    if len(set(tags)) != len(tags):
        raise ValueError(f"{where}: repeated tag in {tags}")
    ordered = [t for t in TAGS if t in tags]
    return {"message": message.strip(), "tags": ordered}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path.name}:{lineno}: invalid JSON ({err})") from err
            rows.append(validate_example(obj, f"{path.name}:{lineno}"))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def split_path(name: str) -> Path:
    return DATA_DIR / f"{name}.jsonl"


def load_split(name: str) -> list[dict]:
    return read_jsonl(split_path(name))


def label_vector(tags: list[str]) -> list[int]:
    return [int(t in tags) for t in TAGS]


def near_duplicates(rows: list[dict]) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity), i < j, of same-label messages that are near duplicates.

    Messages are bucketed by label set first: only same-label pairs count as duplicates, which
    also keeps the pairwise scan small.
    """
    by_labels: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        by_labels.setdefault(tuple(row["tags"]), []).append(i)
    sh = [shingles(r["message"]) for r in rows]
    pairs = []
    for members in by_labels.values():
        for a_pos, i in enumerate(members):
            for j in members[a_pos + 1 :]:
                # Cheap length bound before the set arithmetic.
                small, large = sorted((len(sh[i]), len(sh[j])))
                if large and small / large < NEAR_DUPLICATE_JACCARD:
                    continue
                sim = jaccard(sh[i], sh[j])
                if sim >= NEAR_DUPLICATE_JACCARD:
                    pairs.append((i, j, sim))
    return pairs


def check_splits(splits: dict[str, list[dict]]) -> list[str]:
    """Every problem that makes a set of splits unusable; empty when the data is sound.

    Checks the rows themselves (tags, empty text), exact duplicates after normalisation within
    and across splits (a message in two splits leaks test data into training), and same-label
    near duplicates.
    """
    problems = []
    owner: dict[str, str] = {}
    rows_all = []
    for name, rows in splits.items():
        for n, row in enumerate(rows, 1):
            try:
                validate_example(row, f"{name}:{n}")
            except ValueError as err:
                problems.append(str(err))
                continue
            key = normalise(row["message"])
            if key in owner:
                where = "twice in " + name if owner[key] == name else f"in {owner[key]} and {name}"
                problems.append(f"duplicate message {row['message']!r} ({where})")
            else:
                owner[key] = name
                rows_all.append(row)
    for i, j, sim in near_duplicates(rows_all):
        problems.append(
            f"near duplicates ({sim:.2f}): {rows_all[i]['message']!r} / {rows_all[j]['message']!r}"
        )
    return problems
