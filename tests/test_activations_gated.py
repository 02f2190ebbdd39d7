"""Gated activations (issue 13): the `glu(<spec>)` grammar, the registered gated names, and
the fused gate kernel act(a) * b against hand-written eager autograd (values, input and
per-channel parameter gradients, float32 and bfloat16, float64 gradcheck, saved memory)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.activations import (
    GATED_NAMES,
    ActivationError,
    build_activation,
    canonical,
    check_spec,
    evaluate,
    gate_of,
    is_gated,
    list_activations,
)


@pytest.mark.parametrize(
    ("spec", "normal", "gate"),
    [
        ("swiglu", "swiglu", "swish1"),
        ("geglu", "geglu", "gelu"),
        ("reglu", "reglu", "relu"),
        ("bilinear", "bilinear", "identity"),
        ("glu", "glu", "sigmoid"),
        (" glu( swish1 ) ", "glu(swish1)", "swish1"),
        ("glu(x*sigmoid(beta*x))", "glu(x * sigmoid(beta * x))", "x * sigmoid(beta * x)"),
        ("glu (max(x,0))", "glu(max(x, 0))", "max(x, 0)"),
        ("glu(swish)", "glu(swish)", "swish"),
    ],
)
def test_gated_specs_normalise(spec, normal, gate):
    assert check_spec(spec) == normal
    assert check_spec(normal) == normal
    assert is_gated(spec) and gate_of(spec) == gate
    if "(" in spec:
        assert canonical(spec) == normal


def test_elementwise_specs_are_not_gated():
    for spec in ("relu", "swish", "x * sigmoid(x)", "sigmoid"):
        assert not is_gated(spec)
    with pytest.raises(ActivationError, match="'relu' is not a gated activation spec"):
        gate_of("relu")


def test_gated_names_are_listed_and_refused_where_elementwise_is_needed():
    names = list_activations()
    assert set(GATED_NAMES) == {"swiglu", "geglu", "reglu", "bilinear", "glu"}
    assert all(n in names for n in GATED_NAMES)
    assert "Dauphin" in names["glu"] and "Shazeer" in names["swiglu"]
    with pytest.raises(ActivationError, match="is gated; evaluate its gate 'swish1'"):
        evaluate("swiglu", torch.zeros(3))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("glu(glu(relu))", "a gate must be an elementwise activation, but 'glu(relu)' is gated"),
        ("glu(swiglu)", "but 'swiglu' is gated itself"),
        ("x * glu(x)", "'glu' may only wrap a whole spec"),
        ("glu(x) + 1", "glu(...) must be the whole spec"),
        ("glu()", "empty gate"),
        ("glu(x", "unbalanced parentheses"),
        ("glu(foo)", "unknown activation 'foo'"),
        ("glu(x + )", "unexpected end of formula"),
        ("swigl", "did you mean 'swiglu'"),
    ],
)
def test_gated_spec_errors(spec, message):
    with pytest.raises(ActivationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_spec(spec)


def _halves(z, dim):
    return z.chunk(2, dim=dim)


HAND = {
    "reglu": lambda a, b, p: F.relu(a) * b,
    "glu(relu)": lambda a, b, p: F.relu(a) * b,
    "swiglu": lambda a, b, p: F.silu(a) * b,
    "geglu": lambda a, b, p: F.gelu(a) * b,
    "bilinear": lambda a, b, p: a * b,
    "glu": lambda a, b, p: torch.sigmoid(a) * b,
    "glu(x * sigmoid(beta * x))": lambda a, b, p: a * torch.sigmoid(p["beta"] * a) * b,
    "glu(atan(x)^2 - x)": lambda a, b, p: (torch.atan(a) ** 2 - a) * b,
}


def _check(spec, z, channel_dim, channels, dtype, backend, rtol, atol):
    act = build_activation(spec, channels=channels, channel_dim=channel_dim, backend=backend)
    with torch.no_grad():
        for p in act.parameters():
            p.copy_(torch.linspace(0.5, 2.0, p.numel()).view(p.shape))
    act = act.to(dtype)
    z = z.to(dtype).requires_grad_(True)
    y = act(z)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    params = list(act.parameters())
    got = torch.autograd.grad(y, [z, *params], g)
    # eager autograd through hand-written torch ops, in float32 on the same (rounded) values:
    # the kernel computes half precision in float32 and rounds once
    zr = z.detach().float().requires_grad_(True)
    pr = {n: p.detach().float().requires_grad_(True) for n, p in act.named_parameters()}
    a, b = _halves(zr, channel_dim)
    view = [1] * z.ndim
    view[channel_dim] = -1
    want_y = HAND[spec](a, b, {n: p.view(view) for n, p in pr.items()})
    want = torch.autograd.grad(want_y, [zr, *pr.values()], g)
    assert y.shape == want_y.shape and y.dtype == dtype
    assert all(gg.dtype == dtype for gg in got)
    torch.testing.assert_close(y.float(), want_y, rtol=rtol, atol=atol)
    for gg, ww in zip(got, want, strict=True):
        scale = max(1.0, ww.abs().max().item())
        torch.testing.assert_close(gg.float(), ww, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("spec", list(HAND))
@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"), [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 2e-2, 2e-2)]
)
def test_fused_gate_matches_eager_autograd(spec, dtype, rtol, atol):
    torch.manual_seed(0)
    z = torch.randn(6, 5, 16) * 2  # (T, B, 2h) with h = 8, split along -1
    _check(spec, z, -1, 8, dtype, "eager", rtol, atol)
    z = torch.randn(2, 16, 3, 3) * 2  # NCHW, split along the channels
    _check(spec, z, 1, 8, dtype, "eager", rtol, atol)
    zl = z.to(memory_format=torch.channels_last)
    _check(spec, zl, 1, 8, dtype, "eager", rtol, atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_gate_matches_eager_autograd(dtype):
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.manual_seed(0)
    z = torch.randn(64, 8, 32) * 2
    _check("glu(x * sigmoid(beta * x))", z, -1, 16, dtype, "compiled", tol, tol)


def test_glu_of_relu_equals_hand_written_ffn_gate():
    torch.manual_seed(0)
    x = torch.randn(7, 4, 10)
    w = torch.randn(10, 6)
    v = torch.randn(10, 6)
    act = build_activation("glu(relu)", channels=6, channel_dim=-1)
    got = act(torch.cat([x @ w, x @ v], dim=-1))
    assert torch.equal(got, torch.relu(x @ w) * (x @ v))


def test_registered_glu_is_dauphins_glu():
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    act = build_activation("glu", channel_dim=-1)
    # torch's F.glu gates with the *second* half: F.glu([v | g]) = v * sigmoid(g)
    torch.testing.assert_close(act(torch.cat([a, b], -1)), F.glu(torch.cat([b, a], -1), dim=-1))


@pytest.mark.parametrize("spec", ["glu(x * sigmoid(beta * x))", "geglu", "glu(atan(x)^2 - x)"])
def test_gate_gradcheck_float64(spec):
    torch.manual_seed(0)
    act = build_activation(spec, channels=3, channel_dim=1).double()
    with torch.no_grad():
        for p in act.parameters():
            p.copy_(torch.tensor([0.5, 1.0, 1.7], dtype=torch.float64))
    z = (torch.randn(2, 6, 4, dtype=torch.float64) * 2).requires_grad_(True)
    params = list(act.parameters())
    assert torch.autograd.gradcheck(lambda z, *ps: act(z), (z, *params))


def test_gate_saves_only_its_input_and_parameters():
    act = build_activation("glu(x * asinh(x)^2 + beta)", channels=32, channel_dim=-1)
    z = torch.randn(16, 64, requires_grad=True)
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        act(z)
    assert set(seen) == {z.untyped_storage().data_ptr(), act.beta.untyped_storage().data_ptr()}


def test_gate_shape_errors():
    act = build_activation("swiglu", channels=8, channel_dim=-1)
    assert act(torch.randn(3, 16)).shape == (3, 8)
    with pytest.raises(ValueError, match=r"expected 16 there, got an input of shape \(3, 12\)"):
        act(torch.randn(3, 12))
    odd = build_activation("reglu", channel_dim=1)
    with pytest.raises(ValueError, match="expected an even size"):
        odd(torch.randn(2, 5, 3))
    with pytest.raises(ActivationError, match="unknown parameter beta"):
        build_activation("swiglu", beta=2.0)
    swish_gate = build_activation("glu(swish)", channels=4, channel_dim=-1, beta=0.5)
    assert swish_gate.beta.shape == (4,) and float(swish_gate.beta[0]) == 0.5
    assert swish_gate.spec == "glu(swish)" and swish_gate.gate == "swish"
