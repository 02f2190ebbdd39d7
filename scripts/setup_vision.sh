#!/usr/bin/env bash
# Sets up .venv-vision, the environment for the torchvision tests (`pytest -m vision`) and the
# CPU torchvision recipe; safe to run again (pip skips what is installed; `make setup-vision`
# reruns it only when pyproject.toml or this script changed).
#
#   scripts/setup_vision.sh
#
# Why a second venv: the main .venv keeps torch 2.13.0 (the CPU wheel fairseq-fixed is built
# against). No torchvision release imports beside that wheel (0.28.0 fails with "operator
# torchvision::nms does not exist"), so the torchvision tests run against the matching pair
# torch==2.14.1 / torchvision==0.29.1 here (a CUDA build; it runs on the CPU too). fairseq is not
# installed: nothing under `-m vision` touches translation. The workbench's runtime dependencies
# are read from pyproject.toml (one list, not a copy), and the workbench itself is installed
# editable with --no-deps so pip cannot replace the pinned torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VISION_VENV:-.venv-vision}
TORCH_SPEC=${VISION_TORCH_SPEC:-torch==2.14.1}
TORCHVISION_SPEC=${VISION_TORCHVISION_SPEC:-torchvision==0.29.1}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

echo "[setup-vision] installing $TORCH_SPEC $TORCHVISION_SPEC into $VENV"
pip install "$TORCH_SPEC" "$TORCHVISION_SPEC"
# The workbench's own dependencies and its dev extra, as pyproject.toml lists them; torch is
# already pinned above, so it is left out.
mapfile -t DEPS < <("$VENV/bin/python" - <<'PYEOF'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"].get("dev", [])
for dep in deps:
    if re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() not in ("torch", "torchvision"):
        print(dep)
PYEOF
)
pip install "${DEPS[@]}"
pip install --no-deps -e .
"$VENV/bin/python" - <<'PYEOF'
import torch, torchvision, workbench
print(f"[setup-vision] ok: torch {torch.__version__}, torchvision {torchvision.__version__}")
PYEOF
