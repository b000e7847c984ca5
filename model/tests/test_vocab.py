"""The pruned vocabulary (pipeline.vocab) spells every word the full one spells, and never fails."""

import json
import random

from tokenizers import Tokenizer

from pipeline import vocab
from pipeline.train import default_base

FULL = json.loads((__import__("pathlib").Path(default_base()) / "tokenizer.json").read_text(encoding="utf-8"))
TEXTS = ["do you have this in blue", "any discount code for first orders?", "just browsing thanks"]


def tokenizers():
    pruned, keep = vocab.prune(FULL, TEXTS)
    full, small = Tokenizer.from_str(json.dumps(FULL)), Tokenizer.from_str(json.dumps(pruned))
    for tok in (full, small):
        tok.no_padding()
        tok.no_truncation()
    return full, small, pruned, keep


def spelt(tok, text):
    """The words a tokenization spells: pieces joined back, [UNK] kept as such."""
    return tok.decode(tok.encode(text).ids, skip_special_tokens=False)


def random_text(rng):
    alphabet = "abcdefghijklmnopqrstuvwxyzé!?.,'0123456789 €£¥ßçñøü日本語😀\t\n-_/@#"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))


def test_the_pruned_vocabulary_keeps_specials_characters_and_used_pieces():
    full, small, pruned, keep = tokenizers()
    assert len(keep) < len(FULL["model"]["vocab"]) / 2
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        assert small.token_to_id(token) is not None
    assert small.token_to_id("[PAD]") == 0
    for text in TEXTS:
        assert small.encode(text).tokens == full.encode(text).tokens


def test_arbitrary_text_tokenizes_and_spells_the_same_words():
    full, small, _, _ = tokenizers()
    rng = random.Random(20261203)
    for _ in range(2000):
        text = random_text(rng)
        enc = small.encode(text)
        assert enc.ids[0] == small.token_to_id("[CLS]") and enc.ids[-1] == small.token_to_id("[SEP]")
        assert spelt(small, text) == spelt(full, text), text
