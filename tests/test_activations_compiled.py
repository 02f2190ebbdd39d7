"""Compiled kernels stay compiled (issue 10 item 3): in one process, any number of distinct
formulas, channel widths, ranks, strides and gates run on the compiled path, each compiled
function compiles exactly once, and nothing falls back to eager.

Before the fix all formulas' closures shared one code object, so dynamo counted every new
formula as a recompilation of the same function and gave up after 8 (recompile_limit).
The fast test uses dynamo's "eager" backend (real dynamo tracing, guards and caches, which is
what decides about recompilation, without inductor's C++ code generation); the slow test runs
the real inductor backend and also compares values with the eager kernels.
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch._dynamo.eval_frame import _debug_get_cache_entry_list
from torch._dynamo.utils import counters

from workbench.activations import (
    PAPER_FUNCTIONS,
    build_activation,
    compilation,
    kernel_stats,
    kernels,
)

EXTRA = [
    "x * atan(x)",
    "sin(x) * x",
    "x + erf(x)",
    "max(x, cos(x))",
    "x * tanh(softplus(x))",
    "x / (1 + abs(x))",
    "x * erf(x)",
    "min(x, 0) + max(x, 0) * 0.5",
    "x * sigmoid(x) + 0.1 * sin(x)",
    "x^2 * sigmoid(x)",
    "log(abs(x) + eps) * x",
    "exp(-x^2) + x",
    "cosh(x) - 1",
    "asinh(x) * sigmoid(x)",
    "x * sinc(x)",
    "beta * x + (1 - beta) * sigmoid(x)",
]
GATES = ["glu(x * sigmoid(beta * x))", "swiglu", "geglu", "reglu"]
WIDTHS = [12, 24, 48, 108, 216, 342]  # DenseNet-BC-100-12 channel widths


def _cases(n_formulas: int, widths=WIDTHS, gates=GATES):
    """(label, module factory, input, incoming-gradient maker) for every call to make."""
    g_t = lambda y: torch.randn(y.shape[::-1]).t()  # noqa: E731 - a transposed gradient
    g_c = lambda y: torch.randn_like(y)  # noqa: E731
    cases = []
    for i, spec in enumerate((list(PAPER_FUNCTIONS) + EXTRA)[:n_formulas]):
        cases.append((spec, lambda s=spec: build_activation(s), torch.randn(96, 80), g_c))
        if i % 3 == 0:  # another rank, a transposed input and a transposed gradient
            x = torch.randn(80, 96).t()
            cases.append((spec, lambda s=spec: build_activation(s), x, g_t))
            cases.append((spec, lambda s=spec: build_activation(s), torch.randn(7, 9, 11), g_c))
            strided = torch.randn(96, 160)[:, ::2]  # not dense: copied to a contiguous layout
            cases.append((spec, lambda s=spec: build_activation(s), strided, g_c))
    swish = "x * sigmoid(beta * x)"
    for c in widths:
        x = torch.randn(3, c, 4, 3)  # at c = 12, C == H * W: dynamo's duck sizing would tie them
        make = lambda c=c: build_activation(swish, channels=c)  # noqa: E731
        cases.append((swish, make, x, g_c))
        xl = x.to(memory_format=torch.channels_last)
        cases.append((swish, make, xl, lambda y: torch.randn_like(y)))
        make_t = lambda c=c: build_activation(swish, channels=c, channel_dim=-1)  # noqa: E731
        cases.append((swish, make_t, torch.randn(6, 3, c), g_c))
    for spec in gates:
        make = lambda s=spec: build_activation(s, channels=24, channel_dim=-1)  # noqa: E731
        label = "glu(x * sigmoid(beta * x))" if "beta" in spec else None
        cases.append((label or spec, make, torch.randn(5, 4, 48), g_c))
        cases.append((label or spec, make, torch.randn(9, 48), g_t))
    return cases


def _run_all(cases, backend: str):
    outs = []
    for _, make, x, grad_of in cases:
        torch.manual_seed(len(outs))
        act = make()
        act.backend = backend
        x = x.detach().clone() if x.is_contiguous() else x.detach()
        x.requires_grad_(True)
        y = act(x)
        g = grad_of(y)
        grads = torch.autograd.grad(y, [x, *act.parameters()], g)
        outs.append((y.detach(), grads))
    return outs


def _check_all_compiled(cases, caplog) -> None:
    counters.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback or recompile warning fails
        with caplog.at_level(logging.WARNING, logger="torch._dynamo"):
            outs = _run_all(cases, "compiled")
    stats = kernel_stats()
    assert stats["fallbacks"] == 0 and stats["recompiles"] == 0
    assert stats["calls"] == {"compiled": 2 * len(cases), "eager": 0, "traced": 0}
    assert stats["backend"] == "compiled" and stats["formulas_failed"] == []
    labels = {label if label.startswith("glu(") or label not in ("swiglu", "geglu", "reglu")
              else label for label, *_ in cases}  # fmt: skip
    assert len(stats["formulas_compiled"]) == len(labels)
    fns = [f for k in kernels._KERNELS.values() for f in k._compiled.values()]
    assert all(len(_debug_get_cache_entry_list(f.code)) == 1 for f in fns)
    assert counters["stats"]["unique_graphs"] == len(fns)  # each compiled exactly once
    assert not [r for r in caplog.records if "recompile" in r.getMessage()]
    return outs


def test_many_formulas_widths_strides_and_gates_stay_compiled(monkeypatch, caplog):
    monkeypatch.setattr(compilation, "COMPILER", "eager")
    cases = _cases(9, WIDTHS[:3], GATES[:2])
    assert len({label for label, *_ in cases}) >= 9 + 1  # beyond dynamo's recompile_limit (8)
    _check_all_compiled(cases, caplog)


@pytest.mark.slow
def test_inductor_kernels_stay_compiled_and_match_eager(caplog):
    cases = _cases(24)
    assert len({label for label, *_ in cases}) >= 24 + 1  # far beyond recompile_limit (8)
    got = _check_all_compiled(cases, caplog)
    want = _run_all(cases, "eager")
    for (label, *_), (y, grads), (wy, wgrads) in zip(cases, got, want, strict=True):
        torch.testing.assert_close(y, wy, rtol=2e-5, atol=2e-5, msg=label)
        for a, b in zip(grads, wgrads, strict=True):
            torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-4, msg=label)


@pytest.mark.parametrize("spec", ["x * sigmoid(beta * x)", "glu(x * tanh(softplus(x)))"])
def test_a_model_compiled_around_a_formula_compiles_once(spec):
    """Inside the user's torch.compile the formula is traced into the outer graph. Nothing the
    kernel does there may change what dynamo guards on: before the fix a call counter bumped in
    traced code (and a kernel registry filled during the first trace) failed a guard on every
    step, so the outer model recompiled each step until dynamo gave up and ran it eagerly."""
    torch._dynamo.reset()
    counters.clear()
    width = 16 if spec.startswith("glu(") else 8
    model = torch.nn.Sequential(torch.nn.Linear(4, width), build_activation(spec, channel_dim=-1))
    compiled = torch.compile(model, backend="eager")
    for _ in range(6):
        compiled(torch.randn(3, 4)).sum().backward()
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["recompiles"]
    # one site, traced once: "traced" counts traces, the compiled graph runs without Python
    assert kernel_stats()["calls"] == {"compiled": 0, "eager": 0, "traced": 1}
