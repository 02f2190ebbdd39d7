"""`workbench activations [FORMULA...]`: list registered activations, or check formulas.

Without arguments: the registered names (baselines first), the functions a formula may use, and
the paper's eight functions. With arguments: each spec's normalised (canonical) form and its
trainable parameters; a bad spec prints one error naming the problem and position (exit 2).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "activations",
        help="list activation names, or show formulas in canonical form",
        description="List registered activations, or validate formulas and print their "
        "canonical form. Formula reference: docs/activations.md.",
    )
    p.add_argument("specs", nargs="*", metavar="SPEC", help="a registered name or a formula over x")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from workbench.activations import (
        BASELINES,
        CONSTANTS,
        FUNCTION_NAMES,
        PAPER_FUNCTIONS,
        ActivationError,
        check_spec,
        list_activations,
        params_of,
        parse,
    )
    from workbench.activations.baselines import REGISTRY
    from workbench.cli import UserError

    if not args.specs:
        names = list_activations()
        if args.json:
            print(json.dumps({"registered": names, "baselines": list(BASELINES),
                              "functions": list(FUNCTION_NAMES), "constants": CONSTANTS,
                              "paper_functions": list(PAPER_FUNCTIONS)}, indent=2))  # fmt: skip
            return 0
        width = max(len(n) for n in names)
        print("Registered activations (the paper's baselines first):")
        for name, text in names.items():
            mark = "*" if name in BASELINES else " "
            print(f"  {mark} {name:<{width}}  {text}")
        print("  (* = baseline of the paper)")
        print("\nFormulas over x may use: + - * / ^ (or **), parentheses, numbers,")
        print(f"  constants {', '.join(f'{k}={v:g}' for k, v in CONSTANTS.items())},")
        print("  parameters beta, alpha, gamma, ... (trainable, init 1.0),")
        print(f"  functions {', '.join(FUNCTION_NAMES)}.")
        print("\nThe paper's novel functions:")
        for formula in PAPER_FUNCTIONS:
            print(f"  {formula}")
        return 0

    out = []
    for spec in args.specs:
        try:
            normal = check_spec(spec)
        except ActivationError as exc:
            raise UserError(str(exc)) from None
        if normal in REGISTRY:
            entry = REGISTRY[normal]
            out.append({"spec": spec, "canonical": normal, "registered": True,
                        "formula": entry.formula, "parameters": sorted(entry.params)})  # fmt: skip
        else:
            out.append({"spec": spec, "canonical": normal, "registered": False,
                        "formula": normal, "parameters": params_of(parse(normal))})  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for row in out:
        params = ", ".join(row["parameters"]) or "none"
        kind = f"registered; equals {row['formula']}" if row["registered"] else "formula"
        print(f"{row['canonical']}    ({kind}; trainable parameters: {params})")
    return 0
