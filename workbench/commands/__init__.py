"""Subcommands of the `workbench` CLI, one module each (see workbench.cli)."""
