"""The drift baseline shipped with the model (`make drift-baseline`, src/drift/) fits the model it ships with."""

from __future__ import annotations

import json
import math

import numpy as np

from pipeline import dataset as ds
from pipeline import drift, real

BASELINE = json.loads((ds.MODEL_DIR / "drift-baseline.json").read_text())
LABELS = json.loads((ds.MODEL_DIR / "labels.json").read_text())
# The model card's real validation (both pools, all parts): every labelled real row of split
# `validation` (1,024 when this was written). Counted from the ids, so no pool is needed here.
REAL_VALIDATION = [r for r in real.read_labels() if r["split"] == "validation"]


def test_baseline_names_the_models_tags_in_order_and_its_version():
    assert [t["tag"] for t in BASELINE["tags"]] == LABELS["tags"]
    assert BASELINE["model_version"] == LABELS["model_version"]


def test_the_service_compares_with_real_validation():
    assert BASELINE["split"] == "real_validation"
    assert BASELINE["messages"] == len(REAL_VALIDATION)
    assert BASELINE["baselines"]["real_validation"]["parts"] == {
        p: sum(r["part"] == p for r in REAL_VALIDATION) for p in ("random", "slice")}
    # The top level (what src/drift/baseline.rs reads) is the real-validation entry.
    assert BASELINE["tags"] == BASELINE["baselines"]["real_validation"]["tags"]
    assert BASELINE["messages"] == BASELINE["baselines"]["real_validation"]["messages"]


def test_machine_validation_is_kept_for_comparison():
    machine = BASELINE["baselines"]["machine_validation"]
    assert machine["messages"] == LABELS["metrics"]["validation"]["messages"] == len(ds.load_split("validation"))
    assert [t["tag"] for t in machine["tags"]] == LABELS["tags"]
    real_tags = BASELINE["baselines"]["real_validation"]["tags"]
    assert list(BASELINE["psi_between_baselines"]) == LABELS["tags"]
    for r, m in zip(real_tags, machine["tags"]):
        assert BASELINE["psi_between_baselines"][r["tag"]] == round(drift.psi(r["proportions"], m["proportions"]), 4)


def test_each_tags_proportions_are_a_distribution_over_ten_bins():
    for b in (BASELINE, *BASELINE["baselines"].values()):
        for t in b["tags"]:
            p = t["proportions"]
            assert len(p) == drift.BINS, t["tag"]
            assert all(0.0 <= x <= 1.0 and math.isfinite(x) for x in p), t["tag"]
            assert abs(sum(p) - 1.0) <= 1e-6, t["tag"]
            assert sum(t["counts"]) == b["messages"], t["tag"]
            assert all(abs(c / b["messages"] - x) <= 1e-12 for c, x in zip(t["counts"], p)), t["tag"]


def test_no_text_in_the_file():
    # Only numbers, tag names and the fixed descriptive fields: no message, no pool id.
    def keys(x):
        if isinstance(x, dict):
            return set(x) | set().union(*map(keys, x.values()))
        return set().union(*map(keys, x)) if isinstance(x, list) else set()

    assert not keys(BASELINE) & {"message", "text", "id", "ids", "context"}
    text = json.dumps(BASELINE)
    assert not any(r["id"] in text for r in REAL_VALIDATION)


def test_the_psi_is_the_services():
    # drift::population_stability_index: floored at 1e-4, not renormalised, symmetric.
    assert drift.psi([1.0] + [0.0] * 9, [1.0] + [0.0] * 9) == 0.0
    a, e = [0.5, 0.5] + [0.0] * 8, [0.9, 0.1] + [0.0] * 8
    assert math.isclose(drift.psi(a, e), -0.4 * math.log(0.5 / 0.9) + 0.4 * math.log(5.0))
    assert math.isclose(drift.psi(a, e), drift.psi(e, a))
    assert math.isclose(drift.psi([0.0, 1.0] + [0.0] * 8, [1.0] + [0.0] * 9),
                        2 * (1.0 - 1e-4) * math.log(1.0 / 1e-4))


def test_the_bins_are_the_services():
    # drift::bin: [i/10, (i+1)/10), the top edge in the last bin, out-of-range values clamped.
    p = np.array([[0.0, 0.0999, 0.1, 0.55, 0.9, 1.0, -0.2, 1.7]], dtype=np.float32).T
    assert drift.bins(p)[:, 0].tolist() == [0, 0, 1, 5, 9, 9, 0, 9]
    assert [h["counts"] for h in drift.histogram(np.array([[0.05, 0.95], [0.15, 0.95]]), ["a", "b"])] == [
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]]
