"""A pruned WordPiece vocabulary: the pieces the training texts use, plus every character.

The base's 30,522-row embedding table is most of the model's size and, once tract folds the
int8 table to fp32 at load, most of its memory. Real traffic uses a few thousand of those rows.
`prune` keeps:
- the special tokens (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`);
- every single character and its `##` continuation form, so any word the full vocabulary could
  spell is still spelt (in more, shorter pieces where a long piece was dropped), and a word
  turns into `[UNK]` exactly when it did before;
- every piece that tokenizing the given texts produced.

Kept pieces stay in their original order, so the new ids are the old ids' ranks; `id_map`
gives the old id of each new id, which is how the embedding rows are gathered.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

PREFIX = "##"


def is_character(piece: str) -> bool:
    """A single character, or the `##` form of one."""
    bare = piece[len(PREFIX):] if piece.startswith(PREFIX) else piece
    return len(bare) == 1


def used_ids(tokenizer_json: dict, texts: list[str]) -> set[int]:
    """Ids of every piece the full tokenizer produces for `texts` (no special tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    tok.no_padding()
    tok.no_truncation()
    used: set[int] = set()
    for start in range(0, len(texts), 512):
        for enc in tok.encode_batch(texts[start:start + 512], add_special_tokens=False):
            used.update(enc.ids)
    return used


def prune(tokenizer_json: dict, texts: list[str], keep_below: int = 0) -> tuple[dict, list[int]]:
    """(the pruned tokenizer.json, old id of each new id). Ids under `keep_below` are kept too:
    BERT's WordPiece ids run roughly from frequent to rare, so they are the common words the
    texts happened not to use."""
    vocab: dict[str, int] = tokenizer_json["model"]["vocab"]
    special = {t["content"] for t in tokenizer_json["added_tokens"]}
    used = used_ids(tokenizer_json, texts)
    keep = sorted(i for piece, i in vocab.items() if piece in special or is_character(piece) or i in used or i < keep_below)
    new_id = {old: new for new, old in enumerate(keep)}
    pruned = copy.deepcopy(tokenizer_json)
    pruned["model"]["vocab"] = {piece: new_id[i] for piece, i in vocab.items() if i in new_id}
    for token in pruned["added_tokens"]:
        token["id"] = new_id[token["id"]]
    specials = (pruned.get("post_processor") or {}).get("special_tokens", {})
    for entry in specials.values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    if pruned.get("padding"):
        pruned["padding"]["pad_id"] = new_id[pruned["padding"]["pad_id"]]
    return pruned, keep


def write(path: Path, tokenizer_json: dict) -> None:
    path.write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
