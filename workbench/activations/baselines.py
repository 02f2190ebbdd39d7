"""Registered activation names: the paper's nine baselines plus common extras.

Each entry has a one-line description and the formula it equals (used by tests as the
independent definition and by `workbench activations`). Functions torch implements natively
run as the native op; `swish` (trainable beta) runs as the formula kernel; `prelu` is a module of
its own. `PAPER_FUNCTIONS` are the eight novel functions of the paper's table, as formulas.

`GATED` holds the published gated activations act(a) * b (Shazeer 2020, "GLU Variants Improve
Transformer"), each the gated form `glu(<gate>)` of a registered elementwise gate. Note that
`glu` alone is the sigmoid-gated GLU of Dauphin et al. (2017), not the gated-form syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASELINES: tuple[str, ...] = (
    "relu",
    "lrelu",
    "prelu",
    "softplus",
    "elu",
    "selu",
    "gelu",
    "swish1",
    "swish",
)

PAPER_FUNCTIONS: tuple[str, ...] = (
    "x * sigmoid(beta * x)",
    "max(x, sigmoid(x))",
    "cos(x) - x",
    "min(x, sin(x))",
    "atan(x)^2 - x",
    "max(x, tanh(x))",
    "sinc(x) + x",
    "x * asinh(x)^2",
)


@dataclass(frozen=True)
class Registered:
    """A registered activation: native op (`native`), PReLU, or a formula with parameters."""

    description: str
    formula: str  # the same function as a formula (PReLU: with a fixed alpha symbol)
    native: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)  # trainable parameters and inits


REGISTRY: dict[str, Registered] = {
    "relu": Registered("max(x, 0)", "max(x, 0)", "relu"),
    "lrelu": Registered("leaky ReLU, slope 0.01 for x < 0", "max(x, 0.01 * x)", "leaky_relu",
                        {"negative_slope": 0.01}),
    "prelu": Registered("parametric ReLU, learnable alpha (init 0.25; per channel if channels=)",
                        "max(x, 0) + alpha * min(x, 0)", params={"alpha": 0.25}),
    "softplus": Registered("log(1 + exp(x))", "softplus(x)", "softplus"),
    "elu": Registered("x if x > 0 else exp(x) - 1 (alpha = 1)", "max(x, 0) + min(exp(x) - 1, 0)",
                      "elu"),
    "selu": Registered("scale * elu(x, alpha), alpha = 1.6733, scale = 1.0507",
                       "1.0507009873554805 * (max(x, 0) + 1.6732632423543772 * "
                       "min(exp(x) - 1, 0))", "selu"),
    "gelu": Registered("x * Phi(x), exact erf form", "0.5 * x * (1 + erf(x / sqrt(2)))", "gelu"),
    "swish1": Registered("x * sigmoid(x)", "x * sigmoid(x)", "silu"),
    "swish": Registered("x * sigmoid(beta * x), beta trainable (init 1; per channel if channels=)",
                        "x * sigmoid(beta * x)", params={"beta": 1.0}),
    # extras
    "silu": Registered("x * sigmoid(x) (same as swish1)", "x * sigmoid(x)", "silu"),
    "mish": Registered("x * tanh(softplus(x))", "x * tanh(softplus(x))", "mish"),
    "gelu_tanh": Registered("GELU, tanh approximation",
                            "0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x^3)))",
                            "gelu", {"approximate": "tanh"}),
    "tanh": Registered("tanh(x)", "tanh(x)", "tanh"),
    "sigmoid": Registered("sigmoid(x)", "sigmoid(x)", "sigmoid"),
    "relu6": Registered("min(max(x, 0), 6)", "min(max(x, 0), 6)", "relu6"),
    "hardswish": Registered("x * relu6(x + 3) / 6", "x * min(max(x + 3, 0), 6) / 6", "hardswish"),
    "identity": Registered("x", "x", "identity"),
}  # fmt: skip


@dataclass(frozen=True)
class Gated:
    """A registered gated activation act(a) * b: the registered elementwise gate `act`."""

    gate: str
    description: str


GATED: dict[str, Gated] = {
    "swiglu": Gated("swish1", "SwiGLU: swish1(a) * b (Shazeer 2020)"),
    "geglu": Gated("gelu", "GEGLU: gelu(a) * b, exact erf GELU (Shazeer 2020)"),
    "reglu": Gated("relu", "ReGLU: relu(a) * b (Shazeer 2020)"),
    "bilinear": Gated("identity", "bilinear: a * b (Shazeer 2020)"),
    "glu": Gated("sigmoid", "GLU: sigmoid(a) * b (Dauphin et al. 2017)"),
}
