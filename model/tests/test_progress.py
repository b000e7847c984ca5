"""Early stopping shared by train and distill (pipeline.train.Progress)."""

import torch
from torch import nn

from pipeline.train import Progress


def test_keeps_the_best_epoch_and_stops_after_patience(tmp_path):
    model = nn.Linear(2, 1)
    progress = Progress(tmp_path, patience=2, started=0.0)
    assert progress.epoch(model, 1, 0.5, 0.80, 0.70)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    assert progress.epoch(model, 2, 0.4, 0.79, 0.69)       # worse: one bad epoch
    assert not progress.epoch(model, 3, 0.3, 0.78, 0.68)   # worse again: stop
    assert (progress.best_epoch, [h["epoch"] for h in progress.history]) == (1, [1, 2, 3])
    saved = torch.load(tmp_path / "state.pt")
    assert all(torch.equal(saved[k], best[k]) for k in best)


def test_machine_only_runs_have_no_real_score(tmp_path):
    progress = Progress(tmp_path, patience=1, started=0.0)
    assert progress.epoch(nn.Linear(2, 1), 1, 0.5, 0.9, None)
    assert progress.history[0]["real_val_micro_f1"] is None and progress.best == 0.9
