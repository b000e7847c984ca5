"""The committed artifacts agree with each other and with the model card."""

from __future__ import annotations

import hashlib
import json

from pipeline import dataset as ds

CARD = (ds.MODEL_DIR / "README.md").read_text()
LABELS = json.loads((ds.MODEL_DIR / "labels.json").read_text())


def test_label_file_describes_the_shipped_onnx():
    onnx = (ds.MODEL_DIR / "tagger.onnx").read_bytes()
    assert LABELS["onnx_sha256"] == hashlib.sha256(onnx).hexdigest()
    assert LABELS["tags"] == list(ds.TAGS)
    assert set(LABELS["thresholds"]) == set(ds.TAGS)
    assert all(0.2 <= t <= 0.8 for t in LABELS["thresholds"].values())
    assert LABELS["quantization"] == json.loads((ds.MODEL_DIR / "reports" / "quantization.json").read_text())["shipped"]


def test_shipped_file_is_int8():
    import onnx

    model = onnx.load(str(ds.MODEL_DIR / "tagger.onnx"))
    int8 = sum(i.data_type == onnx.TensorProto.INT8 for i in model.graph.initializer)
    # Only the head (384 x 5) and the per-row embedding scales may stay fp32 among the matrices.
    big_float = [i.name for i in model.graph.initializer
                 if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2
                 and min(i.dims) > 1 and i.dims[0] * i.dims[1] > 4096]
    assert int8 >= 36 and big_float == []


def test_tokenizer_does_not_pad_and_truncates_at_max_tokens():
    tok = json.loads((ds.MODEL_DIR / "tokenizer.json").read_text())
    assert tok["padding"] is None
    assert tok["truncation"]["max_length"] == LABELS["max_tokens"]


def test_card_states_the_numbers_of_the_label_file():
    test = LABELS["metrics"]["test"]
    assert LABELS["model_version"] in CARD
    for value in (test["micro_f1"], test["macro_f1"], LABELS["metrics"]["validation"]["micro_f1"]):
        assert f"{value:.4f}" in CARD, value
    for tag, m in test["per_tag"].items():
        assert f"| {tag} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |" in CARD
    for tag, threshold in LABELS["thresholds"].items():
        assert f"{tag} {threshold:.2f}" in CARD, tag


def test_card_states_the_real_test_numbers_of_the_label_file():
    real_test = LABELS["metrics"]["real_test"]
    for value in (real_test["random"]["micro_f1"], real_test["random"]["macro_f1"],
                  real_test["calibration"]["ece_before"], real_test["calibration"]["ece_after"]):
        assert f"{value:.4f}" in CARD, value


def test_calibration_temperatures_are_recorded_for_every_tag():
    temperatures = LABELS["temperatures"]
    assert set(temperatures) == set(ds.TAGS)
    assert all(0.25 <= t <= 20.0 for t in temperatures.values())
    training = json.loads((ds.MODEL_DIR / "reports" / "training.json").read_text())
    assert training["temperatures"] == temperatures


def test_the_cards_summary_table_states_the_shipped_models_numbers():
    """The table at the top of the card is what readers quote: its rows must be this model's,
    not those of a run that was measured beside it."""
    m = LABELS["metrics"]
    head = CARD.split("\n## ", 1)[0]
    assert f"| model version | `{LABELS['model_version']}`" in head
    assert f"micro-F1 **{m['real_test']['random']['micro_f1']:.4f}**" in head
    assert f"micro-F1 **{m['test']['micro_f1']:.4f}**, macro-F1 **{m['test']['macro_f1']:.4f}**" in head
    report = json.loads((ds.MODEL_DIR / "reports" / "metrics.json").read_text())
    assert f"micro-F1 **{report['external']['micro_f1']:.4f}**" in head
    assert f"micro-F1 **{m['counterfactual_test']['micro_f1']:.4f}**" in head
    assert f"{LABELS['vocabulary']['pieces']:,} of the base's {LABELS['vocabulary']['of']:,}" in head
