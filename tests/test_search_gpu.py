"""The paper's child (ResNet-20) on a GPU: a candidate activation trains and gets a reward."""

from __future__ import annotations

import pytest

from search.child import evaluate_candidate


@pytest.mark.gpu
def test_resnet20_child_on_cuda(shared_data):
    child = {
        "model": "resnet20",
        "model_args": {},
        "data": str(shared_data / "cifar10-subset" / "cifar10_subset.npz"),
        "val_fraction": 0.1,
        "train": {"steps": 60, "batch_size": 128, "lr": 0.1},
        "augment": {"enabled": True},
    }
    res = evaluate_candidate({"formula": "x * sigmoid(beta * x)", "child": child, "device": "cuda"})
    assert res["status"] == "ok", res.get("error")
    # 60 steps of 128 images: well above chance (10% on 10 balanced classes, 400 val images)
    assert res["reward"] > 15.0 and res["reward"] == res["val_accuracy"]
    assert res["beta_mean"] != 1.0  # beta was trained
