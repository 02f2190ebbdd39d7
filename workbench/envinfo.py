"""Facts about the environment a number was produced in: versions, git revision, device.

Kept small and import-light: the versions of heavy packages are read from installed metadata,
not by importing them, so recording them costs nothing at start-up.
"""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("torch", "fairseq-fixed", "sacrebleu", "sentencepiece", "numpy", "ray")


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the workbench and the packages its numbers depend on."""
    from workbench import __version__

    out = {"workbench": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name.replace("-fixed", "")] = metadata.version(name)
    return out


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The workbench checkout's git revision (with '+dirty' when modified), if it is a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_info() -> dict[str, Any]:
    """The compute devices visible to torch."""
    import torch

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def environment() -> dict[str, Any]:
    """Everything above in one dict, for a run directory's environment.json."""
    return {
        "versions": versions(),
        "git": git_revision(),
        "device": device_info(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }


def resolve_device(name: str = "auto") -> str:
    """'auto' picks cuda when available, else cpu; explicit names pass through."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
