"""Export: the trained tagger to ONNX, fp32, with symbolic `batch` and `sequence`.

Usage: python -m pipeline.export [--trained work/trained] [--out work/tagger.fp32.onnx]

Inputs `input_ids`, `attention_mask` (int64, [batch, sequence]); output `logits` ([batch, tags]).
The TorchScript exporter is used with the wrapper's additive 4-D mask (see tagger.Tagger): the
graph it emits loads in tract with both dimensions symbolic. The dim_param names are the
symbols tract sees.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import dataset as ds
from .tagger import Tagger, keep_rows, load_encoder

OPSET = 17
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    "logits": {0: "batch"},
}


def export_onnx(model: Tagger, path: Path) -> None:
    model.eval()
    # Example ids only trace the graph; kept below 1000 so any vocabulary (even a test's tiny
    # one) has them.
    ids = torch.tensor([[101, 200, 300, 400, 500, 102], [101, 600, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes=DYNAMIC_AXES,
        opset_version=OPSET,
        dynamo=False,
    )


def check_against_torch(model: Tagger, path: Path, tok, messages: list[str]) -> float:
    """Largest |logit difference| between torch and onnxruntime on real messages."""
    from .onnxrt import session as ort_session
    from .train import encode

    session = ort_session(path)
    ids, mask = encode(tok, messages)
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    return float(np.abs(expected - got).max())


def load_trained(trained: Path) -> tuple[Tagger, dict]:
    summary = json.loads((trained / "training.json").read_text())
    encoder = load_encoder(summary["base"])
    if (trained / "vocabulary.json").exists():
        # Trained on a pruned vocabulary (`train.prune_vocabulary`): the same rows, in order.
        encoder = keep_rows(encoder, json.loads((trained / "vocabulary.json").read_text())["keep_ids"])
    model = Tagger(encoder, len(ds.TAGS))
    model.load_state_dict(torch.load(trained / "state.pt"))
    return model.eval(), summary


def main(argv=None) -> int:
    from .train import trained_tokenizer

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trained", default=str(ds.MODEL_DIR / "work" / "trained"))
    p.add_argument("--out", default=str(ds.MODEL_DIR / "work" / "tagger.fp32.onnx"))
    args = p.parse_args(argv)
    model, summary = load_trained(Path(args.trained))
    export_onnx(model, Path(args.out))
    tok = trained_tokenizer(Path(args.trained), summary)
    messages = [r["message"] for r in ds.load_split("validation")[:64]]
    diff = check_against_torch(model, Path(args.out), tok, messages)
    print(f"export: {args.out}, max |torch - onnxruntime| logit difference {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit("export does not match torch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
