"""Modules: trainable beta/alpha, per-channel parameters, state_dict, inplace, saved memory,
finiteness, backend choice and every build-time error."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch

from workbench.activations import ActivationError, build_activation, kernel_stats
from workbench.activations.kernels import ENV_BACKEND, resolve_backend


def test_beta_trains_towards_the_target():
    torch.manual_seed(0)
    x = torch.randn(512) * 3
    target = x * torch.sigmoid(2.0 * x)
    act = build_activation("swish")
    assert act.beta.item() == 1.0
    opt = torch.optim.Adam(act.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = ((act(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert abs(act.beta.item() - 2.0) < 0.02


def test_prelu_alpha_trains_per_channel():
    torch.manual_seed(0)
    x = torch.randn(64, 2, 8)
    slopes = torch.tensor([0.1, 0.5]).view(1, 2, 1)
    target = torch.where(x >= 0, x, slopes * x)
    act = build_activation("prelu", channels=2)
    assert torch.equal(act.alpha.detach(), torch.full((2,), 0.25))
    opt = torch.optim.SGD(act.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        ((act(x) - target) ** 2).mean().backward()
        opt.step()
    torch.testing.assert_close(act.alpha.detach(), torch.tensor([0.1, 0.5]), atol=1e-3, rtol=0)


def test_named_parameters_of_a_formula_train():
    torch.manual_seed(0)
    x = torch.randn(256)
    act = build_activation("alpha * x + gamma2 * sin(x)", alpha=0.0, gamma2=0.0)
    assert sorted(act.state_dict()) == ["alpha", "gamma2"]
    opt = torch.optim.SGD(act.parameters(), lr=0.3)
    for _ in range(300):
        opt.zero_grad()
        ((act(x) - (0.5 * x + 2.0 * torch.sin(x))) ** 2).mean().backward()
        opt.step()
    assert abs(act.alpha.item() - 0.5) < 0.02 and abs(act.gamma2.item() - 2.0) < 0.02


@pytest.mark.parametrize(("shape", "channel_dim"), [((2, 3, 4, 5), 1), ((6, 2, 3), -1)])
def test_per_channel_beta(shape, channel_dim):
    torch.manual_seed(0)
    act = build_activation("swish", channels=3, channel_dim=channel_dim).double()
    with torch.no_grad():
        act.beta.copy_(torch.tensor([0.5, 1.0, 2.0]))
    x = torch.randn(shape, dtype=torch.float64)
    g = torch.randn(shape, dtype=torch.float64)
    y = act(x)
    (gb,) = torch.autograd.grad(y, [act.beta], g)
    view = [1] * len(shape)
    view[channel_dim] = 3
    b = act.beta.detach().view(view)
    s = torch.sigmoid(b * x)
    torch.testing.assert_close(y, x * s)
    dims = [d for d in range(len(shape)) if d != channel_dim % len(shape)]
    torch.testing.assert_close(gb, (g * x * x * s * (1 - s)).sum(dims))
    assert act.beta.shape == (3,)


@pytest.mark.parametrize(("shape", "channel_dim"), [((2, 3, 4), 1), ((5, 2, 3), -1)])
def test_per_channel_prelu(shape, channel_dim):
    torch.manual_seed(0)
    act = build_activation("prelu", channels=3, channel_dim=channel_dim, alpha=0.1).double()
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.randn(shape, dtype=torch.float64)
    g = torch.randn(shape, dtype=torch.float64)
    y = act(x)
    (ga,) = torch.autograd.grad(y, [act.alpha], g)
    view = [1] * len(shape)
    view[channel_dim] = 3
    a = act.alpha.detach().view(view)
    torch.testing.assert_close(y, torch.where(x >= 0, x, a * x))
    dims = [d for d in range(len(shape)) if d != channel_dim % len(shape)]
    torch.testing.assert_close(ga, (g * torch.clamp(x, max=0)).sum(dims))


def test_channel_mismatch_is_a_clear_error():
    act = build_activation("swish", channels=4)
    with pytest.raises(ValueError, match=r"channels=4 along dim 1.*shape \(2, 3\)"):
        act(torch.randn(2, 3))


@pytest.mark.parametrize("spec", ["swish", "prelu", "x * sigmoid(beta * x) + alpha"])
def test_state_dict_round_trip(spec):
    torch.manual_seed(0)
    act = build_activation(spec, channels=5)
    with torch.no_grad():
        for p in act.parameters():
            p.uniform_(0.1, 2.0)
    buf = io.BytesIO()
    torch.save(act.state_dict(), buf)
    buf.seek(0)
    fresh = build_activation(spec, channels=5)
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(3, 5, 2)
    torch.testing.assert_close(fresh(x), act(x))
    with pytest.raises(RuntimeError):
        build_activation(spec, channels=6).load_state_dict(act.state_dict())


def test_modules_deepcopy_and_pickle():
    act = build_activation("x * asinh(x)^2 + beta", beta=0.3)
    x = torch.randn(10)
    for clone in (copy.deepcopy(act), pickle.loads(pickle.dumps(act))):
        torch.testing.assert_close(clone(x), act(x))
        assert clone.spec == "x * asinh(x)^2 + beta"


@pytest.mark.parametrize("spec", ["relu", "prelu", "swish", "gelu", "max(x, sigmoid(x))"])
def test_inplace_is_accepted_and_ignored(spec):
    act = build_activation(spec, inplace=True)
    x = torch.randn(4, 3)
    before = x.clone()
    y = act(x)
    assert torch.equal(x, before)
    assert y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("spec", ["x * sigmoid(beta * x)", "max(x, sigmoid(x))", "swiglu"])
@pytest.mark.parametrize("transposed", [False, True])
def test_output_may_be_modified_in_place(spec, transposed):
    # e.g. an in-place dropout or residual add right after the activation
    torch.manual_seed(0)
    act = build_activation(spec, channel_dim=-1, backend="eager").double()
    x = torch.randn(8, 6, dtype=torch.float64)
    x = (x.t().contiguous().t() if transposed else x).requires_grad_(True)
    y = act(x)
    y.mul_(2.0)
    (gx,) = torch.autograd.grad(y.sum(), x)
    (want,) = torch.autograd.grad(act(x).sum() * 2.0, x)
    torch.testing.assert_close(gx, want)


def _saved(act, x):
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        act(x)
    return seen


@pytest.mark.parametrize("spec", ["x * asinh(x)^2", "max(x, sigmoid(x))", "swish", "sinc(x) + x"])
def test_backward_saves_only_input_and_parameters(spec):
    act = build_activation(spec, backend="eager")
    x = torch.randn(64, 32, requires_grad=True)
    saved = _saved(act, x)
    expected = {x.untyped_storage().data_ptr()} | {
        p.untyped_storage().data_ptr() for p in act.parameters()
    }
    assert set(saved) == expected


SEARCH_UNARY = [
    "x", "-x", "abs(x)", "x^2", "x^3", "sqrt(x)", "beta * x", "x + beta",
    "log(abs(x) + eps)", "exp(x)", "sin(x)", "cos(x)", "sinh(x)", "cosh(x)", "tanh(x)",
    "asinh(x)", "atan(x)", "sinc(x)", "max(x, 0)", "min(x, 0)", "sigmoid(x)", "softplus(x)",
    "exp(-x^2)", "erf(x)", "beta", "log(x)", "1 / x", "x^0.5", "x^-1.5", "x^x", "x / (x + eps)",
    "x / (sin(x) + eps)", "exp(-beta * (x - sin(x))^2)", "exp(-beta * abs(x - tanh(x)))",
    "beta * x + (1 - beta) * cos(x)", "sigmoid(x) * sinh(x)",
]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_search_space_functions_stay_finite(dtype):
    """Finite wherever the value fits the dtype: float32/bfloat16 everywhere (polynomials up to
    `big`); float16 overflows to inf, like native ops, exactly where the float32 value is
    beyond 65504 (e.g. 1 / x near 0 is 1e6), and never gives nan."""
    big = 20.0 if dtype == torch.float16 else 1e4
    pts = [0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, -1e-3, 1e-3, 1.0, -1.0, big, -big]
    extreme = [90.0, -90.0] + ([6e4, -6e4] if dtype == torch.float16 else [3e38, -3e38])
    for formula in SEARCH_UNARY:
        polynomial = any(s in formula for s in ("^2", "x^3", "x * ", "* x", "x /"))
        values = pts if polynomial else pts + extreme
        x = torch.tensor(values, dtype=dtype).requires_grad_(True)
        y = build_activation(formula, backend="eager").to(dtype)(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        if dtype != torch.float16:
            assert torch.isfinite(y).all(), (formula, dtype, y)
            assert torch.isfinite(g).all(), (formula, dtype, g)
            continue
        x32 = x.detach().float().requires_grad_(True)
        y32 = build_activation(formula, backend="eager")(x32)
        (g32,) = torch.autograd.grad(y32.sum(), x32)
        for got, ref in ((y, y32), (g, g32)):
            assert not torch.isnan(got).any(), (formula, got)
            overflow = ~torch.isfinite(got)
            assert (ref[overflow].abs() > 65504).all(), (formula, got, ref)
        assert not torch.isfinite(build_activation("1 / x").half()(torch.zeros(1).half())).all()


def test_sinc_is_unnormalised():
    act = build_activation("sinc(x)")
    x = torch.tensor([0.0, math.pi, 1.0])
    torch.testing.assert_close(act(x), torch.tensor([1.0, 0.0, math.sin(1.0)]), atol=1e-7, rtol=0)


def test_documented_guards():
    x = torch.tensor([-4.0, 0.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(
        build_activation("sqrt(x)").double()(x), torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        build_activation("log(x)").double()(x),
        torch.tensor([math.log(1e-6), math.log(1e-6), math.log(4.0)], dtype=torch.float64),
    )
    torch.testing.assert_close(
        build_activation("1 / x").double()(x), torch.tensor([-0.25, 1e6, 0.25], dtype=torch.float64)
    )
    big = torch.tensor([1000.0])
    assert build_activation("exp(x)")(big).item() == pytest.approx(math.exp(88.0), rel=1e-6)
    assert build_activation("exp(x)").half()(big.half()).item() == pytest.approx(
        math.exp(11.0), rel=1e-3
    )


def test_backend_resolution_and_env(monkeypatch):
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    assert resolve_backend("auto") == "auto"
    monkeypatch.setenv(ENV_BACKEND, "eager")
    assert resolve_backend("auto") == "eager"
    assert resolve_backend("compiled") == "compiled"  # an explicit choice wins
    monkeypatch.setenv(ENV_BACKEND, "fast")
    with pytest.raises(ValueError, match=ENV_BACKEND):
        resolve_backend("auto")


def test_auto_backend_stays_eager_for_small_tensors():
    act = build_activation("cos(x) * atan(x) - x")
    x = torch.randn(100, requires_grad=True)
    for _ in range(5):
        act(x).sum().backward()
    assert kernel_stats()["calls"] == {"compiled": 0, "eager": 10, "traced": 0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 2.0}, "unknown parameter gamma for activation 'swish': its parameters are beta"),
        ({"beta": "big"}, "initial value of parameter beta"),
        ({"channels": 0}, "channels must be a positive integer"),
        ({"channels": 2.5}, "channels must be a positive integer"),
        ({"channel_dim": "last"}, "channel_dim must be an integer"),
        ({"backend": "fast"}, "backend must be one of auto, compiled, eager"),
    ],
)
def test_build_errors(kwargs, message):
    with pytest.raises(ActivationError, match=message):
        build_activation("swish", **kwargs)


def test_build_errors_for_names_and_formulas():
    with pytest.raises(ActivationError, match="it has no parameters"):
        build_activation("relu", beta=1.0)
    with pytest.raises(ActivationError, match="unknown name 'foo'.* at position 5"):
        build_activation("x + foo(x)")
