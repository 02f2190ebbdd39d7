"""`workbench plot SPEC... -o FILE.png`: activations and their derivatives on one figure.

`--set beta=0.1,1,10` draws every spec that has parameter beta once per value (like the
paper's Swish figure); several --set options give every combination.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot activations and their derivatives",
        description="Plot activations (registered names or formulas over x) and their first "
        "derivatives side by side.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help="a registered name or a formula")
    p.add_argument("-o", "--out", type=Path, required=True, help="output image (e.g. plot.png)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PARAM=V1,V2,...",
        help="parameter values to draw, e.g. --set beta=0.1,1,10 (repeatable)",
    )
    p.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("LO", "HI"))
    p.add_argument("--points", type=int, default=1001, help="samples along x (default 1001)")
    p.add_argument("--no-derivative", action="store_true", help="draw the functions only")
    p.set_defaults(func=main)


def parse_sets(items: list[str]) -> dict[str, list[float]]:
    """`["beta=0.5,1,2"]` -> `{"beta": [0.5, 1.0, 2.0]}`; raises UserError on bad input."""
    from workbench.activations.expr import is_param
    from workbench.cli import UserError

    values: dict[str, list[float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not text.strip():
            raise UserError(f"--set {item!r}: expected PARAM=V1,V2,... (e.g. beta=0.5,1,2)")
        if not is_param(name):
            raise UserError(f"--set {item!r}: {name!r} is not a parameter name (beta, alpha, ...)")
        try:
            values[name] = [float(v) for v in text.split(",")]
        except ValueError:
            raise UserError(f"--set {item!r}: values must be numbers separated by commas") from None
    return values


def main(args: argparse.Namespace) -> int:
    from workbench.activations import ActivationError
    from workbench.activations.plot import plot
    from workbench.cli import UserError

    lo, hi = args.range
    if not lo < hi:
        raise UserError(f"--range {lo:g} {hi:g}: LO must be below HI")
    if args.points < 2:
        raise UserError("--points must be at least 2")
    values = parse_sets(args.sets)
    try:
        out = plot(args.specs, args.out, values, lo=lo, hi=hi, points=args.points,
                   derivative=not args.no_derivative)  # fmt: skip
    except ActivationError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {out}")
    return 0
