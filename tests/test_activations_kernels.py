"""Kernels: the float32 fast functions, compiled vs eager, the auto switch, compile fallback,
and CUDA (marked gpu). Compiled tests are few and small: each compilation costs seconds."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from workbench.activations import PAPER_FUNCTIONS, build_activation
from workbench.activations import fast as fast_fns
from workbench.activations.kernels import AUTO_MIN_NUMEL, AUTO_WARMUP_CALLS, ENV_BACKEND, get_kernel


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


def test_compiled_matches_eager_and_auto_switches(monkeypatch):
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    torch.manual_seed(0)
    channels = 4
    shape = (AUTO_MIN_NUMEL // (channels * 64), channels, 64)
    x = torch.randn(shape) * 3
    eager = build_activation(FORMULA, channels=channels, backend="eager")
    auto = build_activation(FORMULA, channels=channels, backend="auto")
    with torch.no_grad():
        for m in (eager, auto):
            m.beta.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    want_y, want_g = _run(eager, x)
    kernel = get_kernel(auto.expr, auto.formula, auto.param_names)
    kernel.large_calls = 0
    for _ in range(AUTO_WARMUP_CALLS + 1):
        y, grads = _run(auto, x)
    assert any(compiled for (_, _, compiled) in kernel._fns)
    torch.testing.assert_close(y, want_y, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, want_g, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    # A small tensor under an explicit "compiled" backend reuses the dynamic-shape kernel.
    small = build_activation(FORMULA, channels=channels, backend="compiled")
    small.load_state_dict(auto.state_dict())
    xs = x[:3]
    ys, _ = _run(small, xs)
    torch.testing.assert_close(ys, _run(eager, xs)[0], rtol=1e-5, atol=1e-5)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    act = build_activation("x * 1.25 + sin(x) * 0.5", backend="auto")
    x = torch.randn(AUTO_MIN_NUMEL)
    want = x * 1.25 + torch.sin(x) * 0.5
    with (
        torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        for _ in range(AUTO_WARMUP_CALLS + 2):
            y = act(x.requires_grad_(True))
            y.sum().backward()
    messages = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert len(messages) == 1 and "x * 1.25 + sin(x) * 0.5" in messages[0]
    torch.testing.assert_close(y.detach(), want)
    torch.testing.assert_close(x.grad / (AUTO_WARMUP_CALLS + 2), 1.25 + 0.5 * torch.cos(x))


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
