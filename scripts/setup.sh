#!/usr/bin/env bash
# Sets up .venv with everything the workbench needs; safe to run again (finished steps are skipped).
#
#   scripts/setup.sh            CPU machine: torch 2.13.0 CPU wheel
#   TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128 scripts/setup.sh
#                               GPU machine: any CUDA build of torch >= 2.1
#
# fairseq: the fork fairseq-fixed (0.12.3.1) is the fairseq that imports on Python 3.11. It
# declares torchaudio, whose releases each pin one torch version and none matches current torch,
# so it is installed with --no-deps (translation never touches torchaudio) and built against the
# torch already in the venv (--no-build-isolation: an isolated build would fetch another torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-dev,ray}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
has() { "$VENV/bin/python" -c "import $1" >/dev/null 2>&1; }

if ! has torch; then
  echo "[setup] installing $TORCH_SPEC"
  if [ -n "${TORCH_INDEX:-}" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; else pip install "$TORCH_SPEC"; fi
fi
# Build prerequisites for fairseq's C++/Cython extensions.
pip install "setuptools>=61" wheel cython "numpy>=1.24"
echo "[setup] installing the workbench (editable) with extras [$EXTRAS]"
pip install -e ".[$EXTRAS]"
if ! has fairseq; then
  echo "[setup] building fairseq-fixed 0.12.3.1 (compiles C++ extensions, about 5 minutes)"
  pip install --no-deps --no-build-isolation "fairseq-fixed==0.12.3.1"
fi
# Chromium from Debian's packages for the HTML report's browser test (tests/test_report_html.py,
# driven over the DevTools pipe: no chromedriver needed). Installed only where it can be: as root
# with apt (CI runs as root). Elsewhere that one test skips and says why. SKIP_CHROMIUM=1 skips it.
if [ -z "${SKIP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium (apt) for the HTML report's browser test"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "[setup] chromium could not be installed: the HTML report's browser test will skip"
    fi
  else
    echo "[setup] no chromium, and not root with apt: the HTML report's browser test will skip"
  fi
fi
"$VENV/bin/python" - <<'PYEOF'
import fairseq, sacrebleu, sentencepiece, torch, workbench
print(f"[setup] ok: torch {torch.__version__}, fairseq {fairseq.__version__}, sacrebleu {sacrebleu.__version__}, cuda={torch.cuda.is_available()}")
PYEOF
