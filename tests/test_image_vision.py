"""torchvision models with the activation swapped in, and the ImageNet-folder recipes (issue 15).

These need torchvision importable beside torch: they run in `.venv-vision`
(scripts/setup_vision.sh; `make test` runs `pytest -m vision` there) and skip elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench import records
from workbench.image.models import activation_sites, build_model
from workbench.recipe import load_recipe
from workbench.runner import execute

try:
    import torchvision  # noqa: F401
except Exception as exc:  # not installed, or built for another torch ("torchvision::nms")
    pytest.skip(
        f"torchvision does not import here ({type(exc).__name__}); these tests run in "
        ".venv-vision: scripts/setup_vision.sh, then .venv-vision/bin/python -m pytest -m vision",
        allow_module_level=True,
    )

pytestmark = pytest.mark.vision
ROOT = Path(__file__).resolve().parents[1]
BODY = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish)


def _betas(model: nn.Module) -> dict[str, int]:
    return {n: m.beta.numel() for n, m in activation_sites(model) if hasattr(m, "beta")}


def test_resnet18_is_fully_swapped_with_per_channel_beta():
    model = build_model("torchvision:resnet18", "swish", 10)
    result = model.swap_result
    assert not any(isinstance(m, BODY) for m in model.modules())
    assert result.functional == [] and not result.missed and not result.shared
    # the stem ReLU, and each BasicBlock's one `self.relu` split into its two calls
    assert len({id(m) for _, m in activation_sites(model)}) == 1 + 8 * 2
    assert _betas(model)["layer1.0.relu_0"] == 64 and _betas(model)["layer4.1.relu_1"] == 512
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10) and model.relu.beta.grad is not None


def test_resnet50_relu_called_at_two_widths_gets_a_beta_per_call():
    model = build_model("torchvision:resnet50", "swish", 10)
    assert model.swap_result.shared == {} and not model.swap_result.not_rewritten
    block = model.layer1[0]
    assert [block.get_submodule(f"relu_{k}").beta.numel() for k in range(3)] == [64, 64, 256]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_vit_b_16_gets_one_beta_per_mlp_feature():
    model = build_model("torchvision:vit_b_16", "swish", 10, image_size=32)
    assert not any(isinstance(m, nn.GELU) for m in model.modules())
    betas = _betas(model)
    assert len(betas) == 12 and set(betas.values()) == {3072}
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_inception_v3_functional_relus_are_rewritten_through_fx():
    model = build_model("torchvision:inception_v3", "swish1", 10)
    result = model.swap_result
    assert result.functional and not result.missed
    assert all(
        s.function == "relu"
        and s.module.endswith(("conv", "_1", "_2", "_3", "a", "b"))
        or s.rewritten
        for s in result.functional
    )
    assert len(result.functional) == 94  # one F.relu in each BasicConv2d
    assert isinstance(model.Conv2d_1a_3x3, torch.fx.GraphModule)
    assert "relu" not in model.Conv2d_1a_3x3.code
    model.eval()
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "gates"),
    [("mobilenet_v3_small", nn.Hardsigmoid), ("efficientnet_b0", nn.Sigmoid)],
)
def test_squeeze_excitation_gates_are_kept(name, gates):
    model = build_model(f"torchvision:{name}", "swish1", 10)
    assert not any(isinstance(m, BODY) for m in model.modules())
    assert any(isinstance(m, gates) for m in model.modules())
    assert not model.swap_result.missed


def test_gated_specs_and_one_channel_data_are_refused():
    with pytest.raises(ValueError, match="has no place for a gated activation"):
        build_model("torchvision:resnet18", "swiglu", 10)
    with pytest.raises(ValueError, match="takes 3-channel images"):
        build_model("torchvision:resnet18", "relu", 10, in_channels=1)
    with pytest.raises(ValueError, match="no classification model 'resnet_x'"):
        build_model("torchvision:resnet_x", "relu", 10)


@pytest.fixture
def fake_imagenet(tmp_path) -> Path:
    """An ImageNet-layout tree: 3 classes, 6 training and 2 val JPEGs each, 40×48 pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    for split, n in (("train", 6), ("val", 2)):
        for c in ("n01440764", "n01443537", "n01484850"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{i}.JPEG")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["imagenet_mobilenet_v2.yaml", "imagenet_resnet50.yaml"])
def test_imagenet_recipes_train_two_steps_on_a_fake_image_folder(
    recipe, fake_imagenet, tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    overrides = [
        f"data.source={fake_imagenet}",
        "data.image_size=32",
        "data.eval_resize=36",
        "data.workers=0",
        "data.val_fraction=0.34",
        "train.steps=2",
        "train.batch_size=4",
        "train.eval_batch_size=4",
        "train.compile=false",
        "activations=[swish]",
        "seeds=[0]",
        "device=cpu",
        "probe.preact_images=2",
        "keep_checkpoint=false",
    ]
    r = load_recipe(ROOT / "recipes" / recipe, overrides)
    run_dir = tmp_path / "run"
    assert execute(r, run_dir, overrides) == 0
    rows = {row["split"]: row for row in records.read_rows(run_dir) if row.get("kind") == "metric"}
    assert set(rows) == {"val", "test"}
    test = rows["test"]
    assert test["status"] == "ok" and test["dataset"] == "imagenet"
    assert test["extra"]["n_test"] == 6 and test["extra"]["n_val"] == 6
    assert test["extra"]["n_train"] == 12 and test["extra"]["steps_run"] == 2
    # 6 test images: top-1 is a multiple of 1/6
    assert round(test["value"] * 6 / 100, 6) == round(test["value"] * 6 / 100)
    betas = test["extra"]["activation_params"]
    stem = "features.0.2" if "mobilenet" in recipe else "relu"
    width = 32 if "mobilenet" in recipe else 64
    assert len(betas[stem]["beta"]) == width, "per-channel β at the stem"


@pytest.mark.slow
def test_cpu_torchvision_resnet18_recipe_runs_on_the_real_cifar_subset(
    shared_data, tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    overrides = [
        "train.steps=2",
        "data.max_train=64",
        "data.val_fraction=0.02",
        "seeds=[0]",
        "activations=[swish1]",
        "probe.preact_images=0",
    ]
    r = load_recipe(ROOT / "recipes" / "cifar10_subset_torchvision_resnet18.yaml", overrides)
    assert execute(r, tmp_path / "tv", overrides) == 0
    test = next(
        row
        for row in records.read_rows(tmp_path / "tv")
        if row.get("kind") == "metric" and row["split"] == "test"
    )
    assert test["model"] == "torchvision:resnet18" and test["extra"]["n_test"] == 1000
    assert test["extra"]["params"] == 11_181_642  # torchvision's resnet18 with 10 classes
    # the stem ReLU and the 2 calls of each of the 8 BasicBlocks' ReLU, nothing missed
    assert test["extra"]["swap"] == {
        "module_sites": 17,
        "functional_sites_rewritten": 0,
        "missed": 0,
    }
