"""Pruning the word-embedding table (pipeline.prune) on the shipped model: the rows a message
uses are gathered exactly, and a message whose pieces were dropped still runs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from pipeline import dataset as ds
from pipeline import prune, vocab
from pipeline.evaluate import onnxruntime_probabilities

SHIPPED = ds.MODEL_DIR / "tagger.onnx"
TOKENIZER = json.loads((ds.MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
LABELS = json.loads((ds.MODEL_DIR / "labels.json").read_text())
KEPT_TEXTS = ["do you have this in blue", "any discount code for first orders?", "just browsing thanks"]
# "apology" and "accountant" are single pieces in the shipped vocabulary: pruned to the texts
# above they fall apart into shorter pieces, which changes the message's pieces.
DROPPED = "my apology, the accountant asked for an invoice"


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """The shipped files cut down to the pieces of `KEPT_TEXTS` (plus specials and characters)."""
    folder = tmp_path_factory.mktemp("pruned")
    small_json, keep = vocab.prune(TOKENIZER, KEPT_TEXTS)
    rows = len(TOKENIZER["model"]["vocab"])
    onnx.save(prune.prune_model(onnx.load(str(SHIPPED)), rows, keep), str(folder / "tagger.onnx"))
    vocab.write(folder / "tokenizer.json", small_json)
    return folder, small_json, keep


def probabilities(folder, texts):
    return onnxruntime_probabilities(folder / "tagger.onnx", folder / "tokenizer.json", LABELS["max_tokens"], texts)


def test_the_shipped_pair_has_one_row_per_piece_and_says_so():
    rows = len(TOKENIZER["model"]["vocab"])
    model = onnx.load(str(SHIPPED))
    table, scale = prune.word_table(model, rows)
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    assert dims[table][0] == rows and dims[scale] == [rows, 1]
    assert LABELS["vocabulary"]["pieces"] == rows < LABELS["vocabulary"]["of"]
    report = json.loads((ds.MODEL_DIR / "reports" / "pruning.json").read_text())
    assert report["shipped"] and report["pieces"] == rows
    if report.get("at") == "training":
        # Cut before training (issue 20): the model never had the other rows, nothing to compare.
        assert report["of"] == LABELS["vocabulary"]["of"] and report["keep_below"] > 0
    else:
        assert all(r["messages_with_another_tag_set"] == 0 for r in report["validation"].values())


def test_pruned_rows_give_the_same_probabilities_where_the_pieces_are_kept(pruned):
    folder, small_json, keep = pruned
    assert len(keep) < len(TOKENIZER["model"]["vocab"]) / 2
    changed = prune.changed_messages(TOKENIZER, small_json, keep, KEPT_TEXTS + [DROPPED])
    assert changed.tolist() == [False, False, False, True]
    full = probabilities(ds.MODEL_DIR, KEPT_TEXTS)
    small = probabilities(folder, KEPT_TEXTS)
    np.testing.assert_allclose(small, full, atol=1e-6)


def test_a_message_with_dropped_pieces_still_runs_and_only_shifts(pruned):
    folder, _, _ = pruned
    full, small = probabilities(ds.MODEL_DIR, [DROPPED]), probabilities(folder, [DROPPED])
    assert small.shape == full.shape and np.isfinite(small).all()
    assert not np.allclose(small, full, atol=1e-6)


def test_pruning_keeps_every_row_the_second_time(pruned):
    _, small_json, keep = pruned
    again, keep_again = vocab.prune(small_json, KEPT_TEXTS)
    assert keep_again == list(range(len(keep)))
    assert again["model"]["vocab"] == small_json["model"]["vocab"]


def test_a_graph_without_an_int8_word_table_is_refused():
    model = onnx.load(str(SHIPPED))
    with pytest.raises(SystemExit, match="no int8 embedding table of 12345 rows"):
        prune.word_table(model, 12345)
