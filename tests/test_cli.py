"""The `workbench` console script: every command is present and help is instant."""

from __future__ import annotations

from workbench.cli import COMMANDS


def test_every_command_is_registered(cli):
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name.replace("_", "-") in result.stdout, name


def test_unknown_command_is_an_error(cli):
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
