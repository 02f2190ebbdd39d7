"""`workbench fairseq-user-dir`: print the fairseq `--user-dir` plugin directory, or check it.

    fairseq-train --user-dir "$(workbench fairseq-user-dir)" --activation-fn "x * sigmoid(beta * x)"
    workbench fairseq-user-dir --check     # load it as fairseq does; list each patch in effect

Printing the path is import-light (no torch, no fairseq); `--check` imports fairseq, loads the
directory through fairseq's own `utils.import_user_module` and reports every patch the plugin
makes (see `workbench.translation.plugin`), exiting 1 if any is not in effect.
"""

from __future__ import annotations

import argparse

from workbench.translation.plugin import plugin_dir


def _check() -> int:
    from fairseq import utils

    from workbench.translation.plugin import patch_status

    utils.import_user_module(argparse.Namespace(user_dir=str(plugin_dir())))
    status = patch_status()
    for what, ok in status.items():
        print(f"{'ok     ' if ok else 'MISSING'}  {what}")
    return 0 if all(status.values()) else 1


def _main(args: argparse.Namespace) -> int:
    if args.check:
        return _check()
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
    parser.add_argument(
        "--check",
        action="store_true",
        help="load the plugin as fairseq does and report each fairseq patch as in effect or not",
    )
    parser.set_defaults(func=_main)
