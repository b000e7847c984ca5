"""The Python team's server, for `make bench-peer` only: FastAPI + uvicorn + onnxruntime int8.

    PEER_ONNX=model.int8.onnx PEER_TOKENIZER=tokenizer.json uvicorn peer_app:app --port N

`POST /classify-message` {"message"} answers the tags' probabilities and the selected ones at
the model's thresholds: the same work per request as tagbeez (tokenize, one inference, JSON).
It is never part of the shipped service.
"""

import json
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel
from tokenizers import Tokenizer

LABELS = json.loads(open(os.environ["PEER_LABELS"], encoding="utf-8").read())
TOKENIZER = Tokenizer.from_file(os.environ["PEER_TOKENIZER"])
TOKENIZER.no_padding()
TOKENIZER.enable_truncation(max_length=LABELS["max_tokens"])
OPTIONS = ort.SessionOptions()
OPTIONS.intra_op_num_threads = 1
OPTIONS.inter_op_num_threads = 1
SESSION = ort.InferenceSession(os.environ["PEER_ONNX"], OPTIONS, providers=["CPUExecutionProvider"])
TAGS = LABELS["tags"]
THRESHOLDS = np.array([LABELS["thresholds"][t] for t in TAGS])

app = FastAPI()


class Message(BaseModel):
    message: str


@app.get("/health")
def health():
    return {"status": "healthy"}


@app.post("/classify-message")
def classify(body: Message):
    ids = np.array([TOKENIZER.encode(body.message).ids], dtype=np.int64)
    logits = SESSION.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
    probs = 1.0 / (1.0 + np.exp(-logits))
    return {"selected": [t for t, p, th in zip(TAGS, probs, THRESHOLDS) if p >= th],
            "all": {t: round(float(p), 4) for t, p in zip(TAGS, probs)}}
