"""The drift baseline shipped with the model: per tag, the share of its calibrated probabilities in ten fixed bins.

    make drift-baseline            (also the last step of `make model`)
    python -m pipeline.drift [--split real_validation] [--form int8] [--out drift-baseline.json]

The service keeps the bins of its last DRIFT_WINDOW messages and exports, per tag, the
population stability index of that window against this file (`src/drift/`, docs/drift.md).

The baseline the service compares against is measured on the model card's **real validation**
set: the real shoppers' messages labelled by this project (`data/real/labels.jsonl`, split
`validation`, random and slice parts, both pools), the same rows as the card's "real validation
(both pools, all parts)". Production traffic is real customers' writing, so that is what its
distribution should be compared with. Their texts are joined with the pools in ../shared/data
at run time (`pipeline.real`) and never written out. The machine-written validation split
(`data/validation.jsonl`) is measured too and kept in the file for comparison only, with the PSI
between the two baselines per tag (how differently the model sees machine-written text).

The top level of the file is what `src/drift/baseline.rs` reads (`model_version`, `split`,
`messages`, `tags[].tag`, `tags[].proportions`): the `--split` baseline. `baselines` (every
split's counts and shares; for real validation also its parts and the PSI of its random part
alone against the whole) and `psi_between_baselines` are for people; the parser ignores them.

The probabilities are the shipped model's (`tagger.onnx`, calibrated: the temperatures are
folded into its last layer) run in tract through `examples/tract_tool.rs`, in the execution form
the Lambda function runs on Graviton (`int8`: arm64's dot-product instructions, see
docs/performance.md; `--form f32` for the other). The bins are the service's: bin i holds
[i/10, (i+1)/10), the last one [0.9, 1.0], computed in float32 as `drift::bin` does. Only bin
counts and proportions are written, never a text or an id.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from . import dataset as ds
from . import tract

MODEL_DIR = ds.MODEL_DIR
ONNX = MODEL_DIR / "tagger.onnx"
LABELS = MODEL_DIR / "labels.json"
OUT = MODEL_DIR / "drift-baseline.json"
BINS = 10
BATCH = 32
FORM = "int8"
# The service's floor on a share before the PSI's logarithm (`drift::FLOOR`).
FLOOR = 1e-4
# The labelled sets a baseline can be measured on, and where their rows come from.
SOURCES = {
    "real_validation": "model/data/real/labels.jsonl, split validation (random + slice parts), "
                       "texts joined at run time from ../shared/data/real-pool.jsonl and real-pool-2.jsonl",
    "machine_validation": "model/data/validation.jsonl",
}
SPLIT = "real_validation"


def bins(probabilities: np.ndarray) -> np.ndarray:
    """The bin (0-9) of each probability, as `drift::bin` in the service: clamped into [0, 1],
    times 10 in float32, floored, the top edge (1.0) in the last bin."""
    p = np.clip(np.asarray(probabilities, dtype=np.float32), np.float32(0), np.float32(1))
    return np.minimum(np.floor(p * np.float32(BINS)), BINS - 1).astype(np.int64)


def histogram(probabilities: np.ndarray, tags: list[str]) -> list[dict]:
    """Per tag (columns in `tags` order): the count and the share of messages in each bin."""
    b = bins(probabilities)
    out = []
    for i, tag in enumerate(tags):
        counts = np.bincount(b[:, i], minlength=BINS)
        out.append({"tag": tag, "counts": [int(c) for c in counts],
                    "proportions": [float(c) / len(b) for c in counts]})
    return out


def psi(actual: list[float], expected: list[float]) -> float:
    """The service's population stability index (`drift::population_stability_index`): both
    shares raised to at least `FLOOR`, not renormalised; Σ (a − e) · ln(a / e). Symmetric."""
    return float(sum((a - e) * np.log(a / e) for a, e in
                     ((max(a, FLOOR), max(e, FLOOR)) for a, e in zip(actual, expected))))


def texts(rows: list[dict]) -> list[str]:
    """The rows' messages; rows that hold only a pool `id` are joined with the pool (read at run
    time from ../shared/data, never copied into the repository)."""
    if all("message" in r for r in rows):
        return [r["message"] for r in rows]
    from . import real

    pool = {}
    for path in real.pool_paths():
        pool.update(real.read_pool(path))
    return [r["message"] if "message" in r else pool[r["id"]]["message"] for r in rows]


def rows_of(split: str) -> list[dict]:
    """The labelled rows of `split`, with their messages (in memory only)."""
    if split == "real_validation":
        # As `python -m pipeline.real` writes work/real/validation.jsonl, which `evaluate` and
        # `forms` read: every labelled row of split `validation`, in labels.jsonl's order.
        from . import real

        return real.splits(real.read_labels(), real.load_pool())["validation"]
    if split == "machine_validation":
        rows = ds.load_split("validation")
        return [{**r, "message": m} for r, m in zip(rows, texts(rows))]
    raise ValueError(f"unknown split {split!r} (one of {sorted(SOURCES)})")


def measure(split: str, form: str, labels: dict, tok) -> dict:
    """One split's baseline: where its rows come from, how many, and per tag the bins."""
    from .evaluate import model_inputs

    rows = rows_of(split)
    probabilities = tract.probabilities(ONNX, tok, model_inputs(rows, labels), BATCH, form)
    out = {"source": SOURCES[split], "messages": len(rows)}
    out["tags"] = histogram(probabilities, labels["tags"])
    if split == "real_validation":
        # The slice part was searched for rare tags, so it over-represents them against live
        # traffic; the PSI of the random part alone against the whole says by how much.
        out["parts"] = dict(sorted(Counter(r["part"] for r in rows).items()))
        random = histogram(probabilities[[r["part"] == "random" for r in rows]], labels["tags"])
        out["psi_random_part_vs_all"] = {r["tag"]: round(psi(r["proportions"], a["proportions"]), 4)
                                         for r, a in zip(random, out["tags"])}
    return out


def baseline(split: str, form: str) -> dict:
    """The file: `split`'s baseline at the top level (what the service reads), every split's
    under `baselines`, and per tag the PSI between the real and the machine-written one."""
    labels = json.loads(LABELS.read_text())
    from .train import trained_tokenizer

    tok = trained_tokenizer(MODEL_DIR, labels)
    measured = {name: measure(name, form, labels, tok) for name in SOURCES}
    served = measured[split]
    real, machine = measured["real_validation"], measured["machine_validation"]
    return {
        "model_version": labels["model_version"],
        "split": split,
        "source": served["source"],
        "messages": served["messages"],
        "form": form,
        "bins": [round(i / BINS, 1) for i in range(BINS + 1)],
        "tags": served["tags"],
        "baselines": measured,
        "psi_between_baselines": {
            r["tag"]: round(psi(r["proportions"], m["proportions"]), 4)
            for r, m in zip(real["tags"], machine["tags"])
        },
    }


def dumps(doc: dict) -> str:
    """Indented JSON with each list of numbers on one line (a tag's ten bins read as a row)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return re.sub(r"\[\s+([-0-9.e+,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def table(tags: list[dict]) -> list[str]:
    return (["| tag | " + " | ".join(f"{i / BINS:.1f}" for i in range(BINS)) + " |", "|---|" + "---:|" * BINS]
            + [f"| {t['tag']} | " + " | ".join(f"{x:.3f}" for x in t["proportions"]) + " |" for t in tags])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default=SPLIT, choices=sorted(SOURCES),
                   help="the baseline the service compares against (the file's top level)")
    p.add_argument("--form", default=FORM, choices=("int8", "f32"), help="tract's execution form")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    doc = baseline(args.split, args.form)
    args.out.write_text(dumps(doc))
    print(f"{args.out.name}: {doc['messages']} {doc['split']} messages, {doc['model_version']} ({doc['form']})")
    for name, b in doc["baselines"].items():
        print(f"\n{name} ({b['messages']} messages{', the served baseline' if name == doc['split'] else ''}):")
        print("\n".join(table(b["tags"])))
    print("\nPSI between the two baselines: "
          + ", ".join(f"{tag} {v:.4f}" for tag, v in doc["psi_between_baselines"].items()))
    random = doc["baselines"]["real_validation"]["psi_random_part_vs_all"]
    print("PSI of real validation's random part alone against all of it: "
          + ", ".join(f"{tag} {v:.4f}" for tag, v in random.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
