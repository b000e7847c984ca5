"""Any BERT-family base goes through the same export -> quantize -> tract path.

Small randomly initialised DistilBERT and BERT encoders (no download is possible or needed)
are wrapped in the training `Tagger`, exported by the pipeline's exporter, quantized by every
form the pipeline tries, and run in tract (through `examples/tract_tool.rs`, the service's
engine) and in onnxruntime: the logits must agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import quantize, tract
from pipeline.onnxrt import session as ort_session
from pipeline.export import export_onnx
from pipeline.tagger import Tagger, random_encoder

VOCAB = 1200
SIZES = {
    "bert": dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=128),
    "distilbert": dict(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                       max_position_embeddings=128),
}


def batch(rng: np.random.Generator, lengths: list[int]) -> dict:
    """A padded batch of [CLS] ... [SEP] ids with the given lengths."""
    width = max(lengths)
    ids = np.zeros((len(lengths), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(5, VOCAB, n)
        ids[row, 0], ids[row, n - 1] = 101, 102
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module", params=sorted(SIZES))
def exported(request, tmp_path_factory):
    torch.manual_seed(7)
    model = Tagger(random_encoder(request.param, **SIZES[request.param]), 5).eval()
    # Random init gives near-zero logits; a larger head makes disagreements visible.
    with torch.no_grad():
        model.head.weight.mul_(50.0)
    folder = tmp_path_factory.mktemp(request.param)
    fp32 = folder / "tagger.fp32.onnx"
    export_onnx(model, fp32)
    rng = np.random.default_rng(11)
    feeds = [batch(rng, [9, 17, 4]), batch(rng, [12]), batch(rng, [30, 30])]
    return request.param, model, fp32, feeds, rng


def test_export_matches_torch(exported):
    _, model, fp32, feeds, _ = exported
    session = ort_session(fp32)
    for feed in feeds:
        with torch.no_grad():
            expected = model(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])).numpy()
        got = session.run(None, feed)[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(expected).max() > 0.05, "logits too small to tell models apart"


def test_padding_does_not_change_a_message(exported):
    """A message padded inside a batch gets the logits it gets alone (the mask works)."""
    _, _, fp32, feeds, _ = exported
    alone = {k: v[2:3, :4] for k, v in feeds[0].items()}
    got = tract.logits(fp32, [feeds[0], alone])
    np.testing.assert_allclose(got[0][2], got[1][0], atol=1e-4)


@pytest.mark.parametrize("form", ["fp32", *quantize.FORMS])
def test_tract_agrees_with_onnxruntime(exported, form):
    name, _, fp32, feeds, rng = exported
    path = fp32
    if form != "fp32":
        path = fp32.with_name(f"tagger.{form}.onnx")
        calibration = [batch(rng, [int(n) for n in rng.integers(4, 40, 8)]) for _ in range(4)]
        quantize.FORMS[form](fp32, path, calibration)
    session = ort_session(path)
    expected = [session.run(None, feed)[0] for feed in feeds]
    got = tract.logits(path, feeds)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=quantize.AGREEMENT_ATOL, err_msg=f"{name} {form}")
