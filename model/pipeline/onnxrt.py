"""onnxruntime sessions as the reference implementation of an ONNX graph."""

from __future__ import annotations

from pathlib import Path


def session(path: Path, threads: int = 2):
    """A CPU session that computes what the graph says.

    Graph optimisation stops at the basic level (constant folding, redundant-node removal):
    the extended level fuses DequantizeLinear + MatMul into onnxruntime's own int8 kernel,
    which quantizes activations too and drifts ~5e-3 in the logits from the graph's fp32
    semantics, the semantics tract implements exactly.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
