"""Image models: output shapes, published parameter counts, per-channel activation parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.image.models import activation_sites, build_model, count_parameters

# (name, published parameter count in millions, digits it is published with)
PUBLISHED = [
    ("resnet20", 0.27, 2),
    ("resnet32", 0.46, 2),
    ("resnet56", 0.85, 2),
    ("resnet110", 1.7, 1),
    ("preact_resnet164", 1.7, 1),
    ("wrn28_10", 36.5, 1),
    ("densenet_bc_100_12", 0.8, 1),
]


@pytest.mark.parametrize(("name", "millions", "digits"), PUBLISHED)
def test_parameter_counts_match_the_papers(name, millions, digits):
    model = build_model(name, "relu", num_classes=10)
    assert round(count_parameters(model) / 1e6, digits) == millions


@pytest.mark.parametrize(
    ("name", "in_channels", "size", "classes"),
    [
        ("resnet20", 3, 32, 10),
        ("preact_resnet29", 3, 32, 100),
        ("wrn16_2", 3, 32, 10),
        ("densenet_bc_40_12", 3, 32, 100),
        ("small_cnn", 1, 8, 10),
        ("small_cnn", 3, 32, 10),
        ("mlp", 1, 8, 10),
        ("mlp", 3, 32, 10),
    ],
)
def test_output_shapes(name, in_channels, size, classes):
    model = build_model(name, "swish1", num_classes=classes, in_channels=in_channels).eval()
    with torch.no_grad():
        out = model(torch.randn(3, in_channels, size, size))
    assert out.shape == (3, classes)
    assert torch.isfinite(out).all()


def test_depth_and_width_from_name_or_kwargs():
    by_name = build_model("wrn16_4", "relu", 10)
    by_kwargs = build_model("wrn", "relu", 10, depth=16, width=4)
    assert count_parameters(by_name) == count_parameters(by_kwargs)
    assert count_parameters(build_model("resnet", "relu", 10, depth=32)) == count_parameters(
        build_model("resnet32", "relu", 10)
    )


# PReLU on the deep ones: per-channel too, and no kernel compiled for each of DenseNet's widths
@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("resnet20", "swish"),
        ("wrn16_2", "swish"),
        ("preact_resnet29", "prelu"),
        ("densenet_bc_40_12", "prelu"),
    ],
)
def test_per_channel_parameters_sized_for_each_site(name, spec):
    """A trainable activation gets one β (or α) per channel of the tensor its site sees."""
    model = build_model(name, spec, num_classes=10).eval()
    sites = activation_sites(model)
    assert sites
    seen: dict[str, int] = {}
    handles = [
        m.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, args[0].shape[1]))
        for n, m in sites
    ]
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for h in handles:
        h.remove()
    assert set(seen) == {n for n, _ in sites}
    for n, m in sites:
        (beta,) = list(m.parameters())
        assert beta.numel() == seen[n], n
    relu_count = count_parameters(build_model(name, "relu", num_classes=10))
    assert count_parameters(model) == relu_count + sum(seen.values())


def test_factory_gets_the_channel_count():
    widths: list[int] = []

    def factory(channels: int) -> nn.Module:
        widths.append(channels)
        return nn.ReLU()

    model = build_model("resnet20", factory, num_classes=10)
    assert len(widths) == len(activation_sites(model)) == 19
    assert sorted(set(widths)) == [16, 32, 64]


def test_bad_names_and_depths_are_clear_errors():
    with pytest.raises(ValueError, match="unknown image model 'resnet_x'"):
        build_model("resnet_x", "relu", 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        build_model("resnet21", "relu", 10)
    with pytest.raises(ValueError, match="9n\\+2"):
        build_model("preact_resnet21", "relu", 10)
    with pytest.raises(ValueError, match="6n\\+4"):
        build_model("wrn27_10", "relu", 10)
    with pytest.raises(ValueError, match="not a Module"):
        build_model("resnet20", lambda c: "relu", 10)


# --- gated specs (issue 13.5) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "doubled"),
    [
        ("mlp", {"hidden": 16, "depth": 2}, ["net.2", "net.5"]),
        ("preact_resnet20", {}, ["blocks.0.conv1", "blocks.3.conv1"]),
        ("densenet_bc_40_12", {}, ["features.1.conv1"]),
    ],
)
def test_gated_specs_double_the_producing_layer(name, kwargs, doubled):
    from workbench.activations import GATED_NAMES

    assert "swiglu" in GATED_NAMES
    plain = build_model(name, "relu", 10, **kwargs)
    gated = build_model(name, "swiglu", 10, **kwargs)
    for layer in doubled:
        a, b = plain.get_submodule(layer), gated.get_submodule(layer)
        assert b.weight.shape[0] == 2 * a.weight.shape[0], layer
    kinds = {type(m).__name__ for _, m in activation_sites(gated)}
    assert "GatedActivation" in kinds
    if name != "mlp":  # the other sites take the gate's elementwise function (swish1)
        assert len(kinds) == 2
    x = torch.randn(2, 3, 32, 32)
    assert gated.eval()(x).shape == (2, 10)


def test_gated_mlp_equals_a_hand_written_glu():
    torch.manual_seed(0)
    model = build_model("mlp", "reglu", 3, 1, hidden=4, depth=1, pool_to=2).eval()
    x = torch.randn(5, 1, 2, 2)
    lin, bn = model.net[2], model.net[3]
    z = bn(lin(x.flatten(1)))
    expected = model.net[5](torch.relu(z[:, :4]) * z[:, 4:])
    assert torch.allclose(model(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet20", "wrn16_2", "small_cnn"])
def test_models_without_a_place_for_a_gate_refuse_gated_specs(name):
    with pytest.raises(ValueError, match=f"model '{name}' has no place for a gated activation"):
        build_model(name, "glu(swish1)", 10)
