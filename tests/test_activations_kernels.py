"""Kernels: the float32 fast functions, compiled vs eager (counted: the compiled path really
ran), the auto rule, compile failures, float16 inf/nan and overflow, and CUDA (marked gpu).
Compiled tests are few and small: each compilation costs seconds."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from workbench.activations import PAPER_FUNCTIONS, build_activation, kernel_stats, reset_kernels
from workbench.activations import fast as fast_fns
from workbench.activations.kernels import AUTO_MIN_NUMEL


def _points() -> torch.Tensor:
    mags = torch.logspace(-30, 38, 3000, dtype=torch.float64)
    return torch.cat(
        [torch.linspace(-30, 30, 60001, dtype=torch.float64), mags, -mags,
         torch.tensor([0.0, 0.125, -0.125, math.tan(math.pi / 8), math.tan(3 * math.pi / 8)],
                      dtype=torch.float64)]
    ).float()  # fmt: skip


@pytest.mark.parametrize(
    ("fast", "reference"),
    [
        (fast_fns.tanh, math.tanh),
        (fast_fns.asinh, math.asinh),
        (fast_fns.atan, math.atan),
    ],
)
def test_fast_float32_functions_are_accurate_and_finite(fast, reference):
    x = _points()
    got = fast(x)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    want = torch.tensor([reference(v) for v in x.double().tolist()], dtype=torch.float64)
    rel = (got.double() - want).abs() / want.abs().clamp(min=1e-35)
    assert rel.max().item() < 2e-6  # a few float32 ulps
    assert torch.equal(got[x == 0], torch.zeros_like(got[x == 0]))


def test_fast_dtanh_matches_closed_form():
    x = torch.linspace(-20, 20, 4001)
    want = 1 - torch.tanh(x.double()) ** 2
    assert (fast_fns.dtanh(x).double() - want).abs().max().item() < 1e-6


def _run(act, x):
    x = x.clone().requires_grad_(True)
    y = act(x)
    g = torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view_as(y)
    grads = torch.autograd.grad(y, [x, *act.parameters()], g)
    return y.detach(), grads


FORMULA = "x * asinh(x)^2 + atan(beta * x) - tanh(x) + max(x, sigmoid(x))"


def test_compiled_matches_eager_and_really_ran_compiled():
    torch.manual_seed(0)
    channels = 4
    x = torch.randn(AUTO_MIN_NUMEL // (channels * 64), channels, 64) * 3
    eager = build_activation(FORMULA, channels=channels, backend="eager")
    compiled = build_activation(FORMULA, channels=channels, backend="compiled")
    with torch.no_grad():
        for m in (eager, compiled):
            m.beta.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    want_y, want_g = _run(eager, x)
    assert kernel_stats()["calls"] == {"compiled": 0, "eager": 2, "traced": 0}
    y, grads = _run(compiled, x)
    stats = kernel_stats()
    # forward and backward each ran the compiled kernel: no fallback, no recompilation
    assert stats["calls"] == {"compiled": 2, "eager": 2, "traced": 0}
    assert stats["fallbacks"] == 0 and stats["recompiles"] == 0
    assert stats["formulas_compiled"] == [FORMULA] and stats["formulas_failed"] == []
    torch.testing.assert_close(y, want_y, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, want_g, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    # A small tensor of another rank and a channels_last input reuse the compiled kernel.
    small = build_activation(FORMULA, channels=channels, backend="compiled")
    small.load_state_dict(compiled.state_dict())
    for xs in (x[:3], x[:4].reshape(4, channels, 8, 8).to(memory_format=torch.channels_last)):
        ys, gs = _run(small, xs)
        want_ys, want_gs = _run(eager, xs)
        torch.testing.assert_close(ys, want_ys, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gs[0], want_gs[0], rtol=1e-5, atol=1e-4)
    stats = kernel_stats()
    assert stats["calls"]["compiled"] == 6 and stats["recompiles"] == 0
    assert stats["fallbacks"] == 0


def test_auto_is_a_function_of_the_call_not_of_history():
    act = build_activation("cos(x) * atan(x) - x")
    small = torch.randn(100, requires_grad=True)
    large = torch.randn(AUTO_MIN_NUMEL, requires_grad=True)

    def ran(x):
        before = kernel_stats()["calls"]
        act(x).sum().backward()
        after = kernel_stats()["calls"]
        return {k: after[k] - before[k] for k in after if after[k] != before[k]}

    assert ran(large) == {"compiled": 2}  # the first large call compiles: no warm-up count
    for _ in range(3):
        assert ran(small) == {"eager": 2}
        assert ran(large) == {"compiled": 2}
    reset_kernels()
    assert ran(small) == {"eager": 2}  # a fresh process history decides the same way
    assert ran(large[: AUTO_MIN_NUMEL - 1]) == {"eager": 2}
    assert kernel_stats()["fallbacks"] == 0


def test_compile_failure_is_warned_counted_and_falls_back_to_eager():
    act = build_activation("x * 1.25 + sin(x) * 0.5", backend="auto")
    x = torch.randn(AUTO_MIN_NUMEL)
    want = x * 1.25 + torch.sin(x) * 0.5
    calls = 3
    with (
        torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        for _ in range(calls):
            y = act(x.requires_grad_(True))
            y.sum().backward()
    messages = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    # one warning per compiled function (forward, backward), each naming the formula
    assert len(messages) == 2 and all("x * 1.25 + sin(x) * 0.5" in m for m in messages)
    torch.testing.assert_close(y.detach(), want)
    torch.testing.assert_close(x.grad / calls, 1.25 + 0.5 * torch.cos(x))
    stats = kernel_stats()
    assert stats["fallbacks"] == 2 * calls and stats["calls"]["eager"] == 2 * calls
    assert stats["calls"]["compiled"] == 0
    assert stats["formulas_failed"] == ["x * 1.25 + sin(x) * 0.5"]
    assert stats["backend"] == "eager"
    # An explicit "compiled" backend raises instead of falling back.
    strict = build_activation("x * 1.5 + cos(x)", backend="compiled")
    with (
        torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}),
        pytest.raises(Exception, match="nonexistent|c\\+\\+|compil"),
    ):
        strict(torch.randn(16))


@pytest.mark.parametrize(
    ("spec", "backend"),
    [
        ("x * sigmoid(beta * x)", "eager"),
        ("x * sigmoid(beta * x)", "compiled"),
        ("max(x, sigmoid(x))", "eager"),
        ("glu(x * sigmoid(beta * x))", "eager"),
    ],
)
def test_float16_gradients_propagate_inf_and_nan(spec, backend):
    gated = spec.startswith("glu(")
    act = build_activation(spec, backend=backend, channel_dim=-1).half()
    x = torch.tensor([0.5, 1.0, 2.0, -1.5], dtype=torch.float16)
    if gated:  # gate half, then a positive value half
        x = torch.cat([x, torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float16)])
    x.requires_grad_(True)
    g = torch.tensor([math.inf, -math.inf, math.nan, 1.0], dtype=torch.float16)
    gx = torch.autograd.grad(act(x), x, g)[0][:4]
    assert gx[0].item() == math.inf and gx[1].item() == -math.inf  # derivatives > 0 there
    assert math.isnan(gx[2].item()) and math.isfinite(gx[3].item())
    for p in act.parameters():  # a parameter gradient sums an inf and a nan: not finite
        (gp,) = torch.autograd.grad(act(x), p, g)
        assert not torch.isfinite(gp).all()


def test_float16_overflow_is_inf_like_native_ops():
    x = torch.tensor([2.0, 50.0, -50.0], dtype=torch.float16, requires_grad=True)
    act = build_activation("x^3", backend="eager").half()
    y = act(x)
    assert torch.equal(y, x.detach() ** 3)  # 125000 > 65504: inf, as the native op gives
    assert y[1].item() == math.inf and y[2].item() == -math.inf
    # an incoming gradient that overflows through the derivative (3x^2 = 12 at 2) is inf
    (gx,) = torch.autograd.grad(y, x, torch.tensor([6000.0, 0.0, 0.0], dtype=torch.float16))
    assert gx[0].item() == math.inf


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["eager", "compiled"])
def test_cuda_matches_cpu(dtype, backend):
    torch.manual_seed(0)
    x = torch.randn(64, 8, 32) * 3
    for spec in list(PAPER_FUNCTIONS) + ["swish", "prelu", "gelu"]:
        cpu = build_activation(spec, channels=8, backend="eager") if spec in ("swish", "prelu") \
            else build_activation(spec, backend="eager")  # fmt: skip
        gpu = build_activation(spec, channels=8, backend=backend) if spec in ("swish", "prelu") \
            else build_activation(spec, backend=backend)  # fmt: skip
        want_y, want_g = _run(cpu.double(), x.double())
        got_y, got_g = _run(gpu.to("cuda", dtype), x.to("cuda", dtype))
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(got_y.double().cpu(), want_y, rtol=tol, atol=tol)
        torch.testing.assert_close(got_g[0].double().cpu(), want_g[0], rtol=tol, atol=tol)


def test_inside_an_outer_torch_compile():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        build_activation("swish", channels=16, channel_dim=-1),
        torch.nn.Linear(16, 1),
        build_activation("max(x, sigmoid(x))"),
    )
    x = torch.randn(32, 8)
    model(x).sum().backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.compile(model, fullgraph=True)(x).sum().backward()
    for p, w in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, w, rtol=1e-5, atol=1e-6)
