"""Quantize: write every int8 form, measure each in tract, ship the fastest that keeps F1.

Usage: python -m pipeline.quantize [--fp32 work/tagger.fp32.onnx]

Forms (fp32 is the baseline):
- `dynamic-int8`: onnxruntime dynamic quantization (DynamicQuantizeLinear + MatMulInteger).
- `qlinear-static`: onnxruntime static quantization in operator form (QLinearMatMul),
  activations calibrated on training messages.
- `qdq-static`: the same calibration in QDQ form (QuantizeLinear/DequantizeLinear pairs).
- `weights-int8`: weights only: every MatMul weight and the word-embedding table stored as
  int8 with a per-channel scale behind `DequantizeLinear`; activations stay fp32.

Each is measured by `examples/tract_tool.rs` (the engine the service ships): load time,
median latency of one 16/32/64-token message, peak memory, and micro-F1 on validation and
test with the thresholds tuned on fp32 validation probabilities. The shipped form is the
fastest int8 form whose validation micro-F1 is within 0.005 of fp32 (chosen on validation, so
the test split stays unseen by every decision). Writes `work/quantization.json` and copies the
chosen file to `model/tagger.onnx`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import dataset as ds
from . import tract
from .metrics import micro_f1

WORK = ds.MODEL_DIR / "work"
F1_TOLERANCE = 0.005
# How closely tract must reproduce onnxruntime's logits on the same file (every form).
AGREEMENT_ATOL = 1e-3
# 7-bit weights for the forms that quantize activations. onnxruntime's u8 x s8 kernels on x86
# hosts without AVX-512-VNNI add pairs of products in 16 bits, which saturates with full 8-bit
# weights: on an AVX2-only AMD EPYC its logits drifted by up to 5 from the graph's semantics
# (and from tract's), while an AVX-512 host agreed within 1e-3. With 7 bits nothing saturates.
REDUCE_RANGE = True


# --- the forms -------------------------------------------------------------------------------

def dynamic_int8(src: Path, dst: Path, calib: list[dict]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     reduce_range=REDUCE_RANGE)


class _Calibration:
    """Feeds padded batches (`{"input_ids", "attention_mask"}`) to onnxruntime's calibrator."""

    def __init__(self, feeds: list[dict]):
        self.feeds = feeds
        self.pos = 0

    def get_next(self):
        if self.pos >= len(self.feeds):
            return None
        self.pos += 1
        return self.feeds[self.pos - 1]

    def rewind(self):
        self.pos = 0


def _static(src: Path, dst: Path, calib: list[dict], fmt) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static

    quantize_static(
        str(src), str(dst), _Calibration(calib), quant_format=fmt,
        op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, reduce_range=REDUCE_RANGE,
    )


def qlinear_static(src: Path, dst: Path, calib: list[dict]) -> None:
    from onnxruntime.quantization import QuantFormat

    _static(src, dst, calib, QuantFormat.QOperator)


def qdq_static(src: Path, dst: Path, calib: list[dict]) -> None:
    from onnxruntime.quantization import QuantFormat

    _static(src, dst, calib, QuantFormat.QDQ)


def _int8_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per slice along `axis` (zero point 0)."""
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.abs(w).max(axis=reduce) / 127.0
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def weights_int8(src: Path, dst: Path, calib: list[dict]) -> None:
    """fp32 MatMul weights and embedding tables to int8 with per-channel scales.

    MatMul weights go behind `DequantizeLinear` (tract folds it at load: fp32 speed, int8
    file). Embedding tables are dequantized *after* the lookup (Gather the int8 rows and their
    scales, then multiply): dequantizing the whole 30k-row table on every run costs ~30 ms in
    tract, the gathered rows cost nothing.
    """
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    matmul_weights = {n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    tables = {n.input[0] for n in graph.node if n.op_type == "Gather" and n.input[0] in inits
              and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].dims[0] > 2}
    front, nodes = [], []
    for name in sorted(matmul_weights | tables):
        axis = 1 if name in matmul_weights else 0  # per output column / per table row
        q, scale = _int8_per_channel(numpy_helper.to_array(inits[name]), axis)
        graph.initializer.remove(inits[name])
        graph.initializer.append(numpy_helper.from_array(q, name + "_int8"))
        if name in matmul_weights:
            graph.initializer.extend([
                numpy_helper.from_array(scale, name + "_scale"),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), name + "_zero"),
            ])
            front.append(helper.make_node(
                "DequantizeLinear", [name + "_int8", name + "_scale", name + "_zero"], [name],
                axis=axis, name=name + "_dequantize"))
        else:
            graph.initializer.append(numpy_helper.from_array(scale[:, None], name + "_scale"))
    for node in graph.node:
        if node.op_type == "Gather" and node.input[0] in tables:
            nodes.extend(_gather_then_dequantize(node))
        else:
            nodes.append(node)
    del graph.node[:]
    # The dequantized weights keep the initializers' names, so consumers need no rewiring;
    # they only have to come first in topological order.
    graph.node.extend(front + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def _gather_then_dequantize(node) -> list:
    table, ids = node.input[0], node.input[1]
    out, tag = node.output[0], node.name or node.output[0]
    return [
        helper.make_node("Gather", [table + "_int8", ids], [tag + "_rows_int8"], axis=0),
        helper.make_node("Cast", [tag + "_rows_int8"], [tag + "_rows"], to=TensorProto.FLOAT),
        helper.make_node("Gather", [table + "_scale", ids], [tag + "_row_scales"], axis=0),
        helper.make_node("Mul", [tag + "_rows", tag + "_row_scales"], [out]),
    ]


FORMS = {
    "dynamic-int8": dynamic_int8,
    "qlinear-static": qlinear_static,
    "qdq-static": qdq_static,
    "weights-int8": weights_int8,
}


# --- measuring -------------------------------------------------------------------------------

def measure(path: Path, tok, splits: dict[str, list[dict]], thresholds: np.ndarray) -> dict:
    bench = tract.bench(path)
    row = {
        "file_mb": round(path.stat().st_size / 2**20, 2),
        "load_ms": round(bench["load_ms"], 1),
        "p50_ms": {k: round(v, 2) for k, v in bench["p50_ms"].items()},
        "peak_rss_mb": round(bench["peak_rss_mb"], 1),
    }
    for name, rows in splits.items():
        probs = tract.probabilities(path, tok, [r["message"] for r in rows])
        y = np.array([ds.label_vector(r["tags"]) for r in rows])
        row[f"{name}_micro_f1"] = round(micro_f1(y, probs, thresholds), 4)
    return row


def choose(table: dict[str, dict]) -> str:
    base = table["fp32"]["validation_micro_f1"]
    ok = [f for f in FORMS if f in table and abs(table[f]["validation_micro_f1"] - base) <= F1_TOLERANCE]
    if not ok:
        raise SystemExit(f"no int8 form keeps validation micro-F1 within {F1_TOLERANCE} of fp32: {table}")
    return min(ok, key=lambda f: sum(table[f]["p50_ms"].values()))


def main(argv=None) -> int:
    from .train import feeds, trained_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fp32", default=str(WORK / "tagger.fp32.onnx"))
    p.add_argument("--trained", default=str(WORK / "trained"))
    p.add_argument("--ship", default=str(ds.MODEL_DIR / "tagger.onnx"))
    p.add_argument("--forms", nargs="+", choices=list(FORMS), default=list(FORMS),
                   help="the int8 forms to build and measure (default: all four)")
    args = p.parse_args(argv)
    summary = json.loads((Path(args.trained) / "training.json").read_text())
    thresholds = np.array([summary["thresholds"][t] for t in ds.TAGS])
    tok = trained_tokenizer(Path(args.trained), summary)
    splits = {"validation": ds.load_split("validation"), "test": ds.load_split("test")}
    calib = feeds(tok, [r["message"] for r in ds.load_split("train")[:256]], 16)
    fp32 = Path(args.fp32)
    table = {"fp32": measure(fp32, tok, splits, thresholds)}
    print(f"fp32: {table['fp32']}", flush=True)
    for name in args.forms:
        build = FORMS[name]
        out = WORK / "quant" / f"tagger.{name}.onnx"
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            build(fp32, out, calib)
            table[name] = measure(out, tok, splits, thresholds)
        except Exception as err:  # a form tract cannot run is a result, not a crash
            table[name] = {"error": str(err).strip().splitlines()[-1][:300]}
        print(f"{name}: {table[name]}", flush=True)
    shipped = choose({k: v for k, v in table.items() if "error" not in v})
    shutil.copyfile(WORK / "quant" / f"tagger.{shipped}.onnx", args.ship)
    (WORK / "quantization.json").write_text(json.dumps({"shipped": shipped, "forms": table}, indent=2) + "\n")
    print(f"shipped: {shipped} -> {args.ship}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
