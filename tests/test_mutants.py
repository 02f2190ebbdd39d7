"""The mutants of `scripts/mutants.py` stay aimed: each one's text occurs exactly once in its
file, and each test it names exists. Running the mutants themselves takes minutes
(`make mutants`); this keeps the list from drifting as the code moves on."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutants_module():
    name = "scripts_mutants"  # scripts/ is not a package; dataclasses need it in sys.modules
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


MUTANTS = _mutants_module()


@pytest.mark.parametrize("mutant", MUTANTS.MUTANTS, ids=lambda m: m.path)
def test_each_mutant_changes_one_place_and_names_existing_tests(mutant):
    MUTANTS.check_anchor(mutant)
    assert mutant.new != mutant.old
    for node in mutant.tests:
        path, _, name = node.partition("::")
        source = (ROOT / path).read_text()
        if name:
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), node


def test_an_anchor_that_moved_is_an_error(tmp_path):
    (tmp_path / "m.py").write_text("a = 1\na = 1\n")
    twice = MUTANTS.Mutant("x", "m.py", "a = 1", "a = 2", ())
    with pytest.raises(ValueError, match="occurs 2 times in m.py"):
        MUTANTS.check_anchor(twice, tmp_path)
    gone = MUTANTS.Mutant("x", "m.py", "b = 1", "b = 2", ())
    with pytest.raises(ValueError, match="occurs 0 times"):
        MUTANTS.check_anchor(gone, tmp_path)
