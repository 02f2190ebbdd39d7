"""`workbench fairseq-user-dir`: print the fairseq `--user-dir` plugin directory.

    fairseq-train --user-dir "$(workbench fairseq-user-dir)" --activation-fn "x * sigmoid(beta * x)"

Import-light: the path is found without importing fairseq or torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def plugin_dir() -> Path:
    import workbench.translation as translation

    return Path(translation.__file__).resolve().parent / "fairseq_plugin"


def _main(args: argparse.Namespace) -> int:
    print(plugin_dir())
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fairseq-user-dir",
        help="print the fairseq --user-dir plugin path (every workbench activation in fairseq)",
        description=(
            "Print the directory to pass as fairseq's --user-dir, so that fairseq-train, "
            "fairseq-generate, fairseq-interactive and from_pretrained accept any workbench "
            "activation name or formula as --activation-fn."
        ),
    )
    parser.set_defaults(func=_main)
