"""Run ONNX files in tract, the engine the service ships, through `examples/tract_tool.rs`."""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import dataset as ds

REPO = ds.MODEL_DIR.parent
# The test profile (release optimisation without LTO, see Cargo.toml): one build shared with the
# Rust tests. Latencies compare int8 forms side by side, so the missing LTO affects all alike.
PROFILE = "local"
TOOL = REPO / "target" / PROFILE / "examples" / "tract_tool"


@lru_cache(maxsize=1)
def tool() -> Path:
    """Build the tool once per process (cargo makes a rebuild a no-op when nothing changed).
    With `TAGBEEZ_PREBUILT=1` (`make test`, whose rust-build part built it) cargo is not called:
    it may be holding target/local's lock for the Rust tests running beside this."""
    if os.environ.get("TAGBEEZ_PREBUILT") and TOOL.exists():
        return TOOL
    subprocess.run(["cargo", "build", "--quiet", "--profile", PROFILE, "--example", "tract_tool"], cwd=REPO, check=True)
    return TOOL


def env(form: str) -> dict:
    """The tool's environment with the execution form pinned (`INFERENCE_FORM`). The pipeline
    compares tract with onnxruntime on a graph's own semantics, which is the f32 form; left to
    `auto`, a CPU with int8 dot products would run the int8 form (`pipeline/forms.py` compares
    the two forms on purpose)."""
    return dict(os.environ, INFERENCE_FORM=form)


def logits(path: Path, feeds: list[dict], form: str = "f32") -> list[np.ndarray]:
    """Logits for each padded batch `{"input_ids": [[..]], "attention_mask": [[..]]}`."""
    lines = "".join(json.dumps({k: np.asarray(v).tolist() for k, v in f.items()}) + "\n" for f in feeds)
    out = subprocess.run([str(tool()), "logits", str(path)], input=lines, capture_output=True, text=True,
                         env=env(form))
    if out.returncode != 0:
        raise RuntimeError(f"tract failed on {path.name}: {out.stderr.strip()}")
    return [np.array(json.loads(line)["logits"], dtype=np.float32) for line in out.stdout.splitlines()]


def probabilities(path: Path, tok, messages: list[str], batch: int = 32, form: str = "f32") -> np.ndarray:
    from .train import feeds

    return 1.0 / (1.0 + np.exp(-np.concatenate(logits(path, feeds(tok, messages, batch), form))))


def bench(path: Path, runs: int = 40, form: str = "f32") -> dict:
    out = subprocess.run([str(tool()), "bench", str(path), str(runs)], capture_output=True, text=True,
                         env=env(form))
    if out.returncode != 0:
        raise RuntimeError(f"tract failed on {path.name}: {out.stderr.strip()}")
    return json.loads(out.stdout)
