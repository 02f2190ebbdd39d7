#!/usr/bin/env bash
# Prepares the folder that scripts/gpu_check.sh installs from on a GPU box without network.
#
#   scripts/gpu_wheelhouse.sh [DIR]          fill DIR (default .gpu-wheelhouse, git-ignored)
#   scripts/gpu_wheelhouse.sh --list         print the package list (tier, spec, import name)
#   scripts/gpu_wheelhouse.sh --no-data DIR  leave out the data files
#   PY_VERSION=3.11 scripts/gpu_wheelhouse.sh DIR   wheels for another CPython (default 3.12)
#
# Runs where the package index is reachable, with the project's .venv set up (scripts/setup.sh):
# fairseq's setup.py imports torch, so its source distribution is fetched without build
# isolation. The target is the most restrictive box we know of: a system python3 3.12 with
# torch (CUDA), numpy, sacrebleu, sentencepiece, pyyaml, scikit-learn, matplotlib and tqdm, and
# nothing else we can count on; no network; at most 64 MiB brought beside the repository.
#
# Tiers (one definition, below; gpu_check.sh reads the manifest this script writes):
# - required: what such a box lacks and the workbench, fairseq or the test collection import:
#   always installed there (into an overlay venv, see gpu_check.sh).
# - fallback: build and test tools the box usually has (Cython, setuptools, pytest, ...):
#   installed there only when its python cannot import them.
# - sdist: fairseq-fixed 0.12.3.1, built there with --no-build-isolation --no-deps against the
#   installed torch (its C++ extensions must match that torch; a wheel built here would not).
# - data (unless --no-data): the local files the check trains on, in ../shared/data's layout.
# Versions are the ones the project's .venv runs. Wheels are cp3XX manylinux x86_64 or pure
# (py3-none-any); a package published only as a source distribution (antlr4 4.9.3) is built
# here into a pure wheel, and the script fails if that wheel is not pure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY_VERSION=${PY_VERSION:-3.12}
LIMIT_BYTES=$((64 * 1024 * 1024))

# tier  spec  import-name  why
PACKAGES="
required hydra-core==1.3.2 hydra fairseq (its config system)
required omegaconf==2.3.0 omegaconf fairseq and hydra-core
required antlr4-python3-runtime==4.9.3 antlr4 omegaconf and hydra-core (sdist only: built here)
required bitarray==3.12.3 bitarray fairseq (indexed datasets)
required cffi==2.1.1 cffi declared by fairseq-fixed and the workbench
required pycparser==3.12 pycparser cffi
required grimp==3.20 grimp tests/test_layering.py imports it when pytest collects
fallback Cython==3.3.1 Cython building fairseq's extensions
fallback setuptools==84.2.1 setuptools building fairseq and the editable workbench
fallback wheel==0.48.0 wheel building with older setuptools
fallback packaging==26.4 packaging hydra-core, pytest
fallback pytest==9.2.0 pytest pytest -m gpu
fallback pluggy==1.7.0 pluggy pytest
fallback iniconfig==2.3.1 iniconfig pytest
fallback pygments==2.21.0 pygments pytest
sdist fairseq-fixed==0.12.3.1 fairseq the fairseq that imports on Python >= 3.11
"
# What the target box has already (the issue's box, and the H200 image's list in
# /work/.library/device/KINDS.md); tests/test_gpu_scripts.py checks that every run-time
# requirement of fairseq-fixed and the workbench is here or in PACKAGES above. torchaudio is
# declared by fairseq-fixed but never imported by translation (scripts/setup.sh).
BOX_HAS="torch numpy sacrebleu sentencepiece pyyaml scikit-learn matplotlib tqdm regex
portalocker tabulate colorama lxml scipy joblib threadpoolctl typing-extensions torchaudio"
# Data the check trains on, relative to ../shared/data.
DATA_FILES="wmt-en-de/news-2008-2011.en wmt-en-de/news-2008-2011.de wmt-en-de/newstest2012.en
wmt-en-de/newstest2012.de cifar10-subset/cifar10_subset.npz"

list_packages() { printf '%s\n' "$PACKAGES" | sed '/^$/d'; }

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }

DEST="" DATA=1
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list_packages; exit 0 ;;
    --box-has) echo "$BOX_HAS" | tr ' ' '\n' | sed '/^$/d'; exit 0 ;;
    --data-files) echo "$DATA_FILES" | tr ' ' '\n' | sed '/^$/d'; exit 0 ;;
    --no-data) DATA=0 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_wheelhouse: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) DEST=$1 ;;
  esac
  shift
done
DEST=${DEST:-$ROOT/.gpu-wheelhouse}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
if ! "$PYTHON" -c "import torch, Cython, numpy, setuptools" 2>/dev/null; then
  echo "gpu_wheelhouse: $PYTHON needs torch, Cython, numpy and setuptools (fairseq's setup.py" \
    "imports torch): run scripts/setup.sh first, or set PYTHON" >&2
  exit 1
fi
tag=cp${PY_VERSION//./}
pip() { nice -n 10 "$PYTHON" -m pip --disable-pip-version-check -q "$@"; }
# pip matches a manylinux_2_N tag exactly: name the glibc versions wheels are built for.
PLATFORMS=(--platform manylinux2014_x86_64)
for n in 17 24 27 28 31 34 35 39; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
TARGET=(--python-version "$PY_VERSION" --implementation cp --abi "$tag" --abi abi3 --abi none
  "${PLATFORMS[@]}")

mkdir -p "$DEST"
STAGE=$(mktemp -d "$DEST/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/required" "$STAGE/fallback" "$STAGE/sdist"
echo "[wheelhouse] $(list_packages | wc -l) packages for CPython $PY_VERSION into $DEST"
while read -r tier spec module _why; do
  one=$STAGE/one
  rm -rf "$one" && mkdir -p "$one"
  if [ "$tier" = sdist ]; then
    pip download --no-deps --no-binary "${spec%%==*}" --no-build-isolation -d "$one" "$spec"
  elif ! pip download --no-deps --only-binary=:all: "${TARGET[@]}" -d "$one" "$spec" 2>/dev/null; then
    echo "[wheelhouse] $spec: no $tag wheel on the index; building a wheel from its source"
    pip wheel --no-deps --no-binary "${spec%%==*}" -w "$one" "$spec"
    for w in "$one"/*; do
      case "$w" in
        *-py3-none-any.whl | *-py2.py3-none-any.whl) ;;
        *) echo "gpu_wheelhouse: $spec built into $w, not a pure wheel" >&2; exit 1 ;;
      esac
    done
  fi
  got=("$one"/*)
  [ "${#got[@]}" = 1 ] || { echo "gpu_wheelhouse: $spec gave ${got[*]}" >&2; exit 1; }
  file=$(basename "${got[0]}")
  mv "${got[0]}" "$STAGE/$tier/"
  printf '%s\t%s\t%s\t%s\n' "$tier" "$spec" "$module" "$tier/$file" >>"$STAGE/list.tsv"
done < <(list_packages)

if [ "$DATA" = 1 ]; then
  SRC=${DATA_SRC:-$ROOT/../shared/data}
  for f in $DATA_FILES; do
    [ -f "$SRC/$f" ] || { echo "gpu_wheelhouse: data file $SRC/$f not found (set DATA_SRC or use --no-data)" >&2; exit 1; }
    mkdir -p "$STAGE/data/$(dirname "$f")"
    cp "$SRC/$f" "$STAGE/data/$f"
  done
fi

# Replace the previous contents in one go: a failed run above leaves the old folder intact.
rm -rf "$DEST/required" "$DEST/fallback" "$DEST/sdist" "$DEST/data" "$DEST/manifest.tsv" "$DEST/SHA256SUMS"
for d in required fallback sdist data; do if [ -d "$STAGE/$d" ]; then mv "$STAGE/$d" "$DEST/"; fi; done
{
  printf '# tier\tspec\timport\tfile  (written by scripts/gpu_wheelhouse.sh for CPython %s)\n' "$PY_VERSION"
  cat "$STAGE/list.tsv"
} >"$DEST/manifest.tsv"
parts=()
for d in required fallback sdist data; do [ -d "$DEST/$d" ] && parts+=("$d"); done
(cd "$DEST" && find "${parts[@]}" -type f | sort | xargs sha256sum >SHA256SUMS)

total=$(du -sb --exclude='.stage.*' "$DEST" | cut -f1)
repo=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
for d in "${parts[@]}"; do echo "[wheelhouse]   $d: $(mib "$(du -sb "$DEST/$d" | cut -f1)")"; done
echo "[wheelhouse] total $(mib "$total") ($total bytes) in $DEST; the repository's files: $(mib "$repo")"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "gpu_wheelhouse: $(mib "$total") is over the 64 MiB that can be brought to the box" >&2
  exit 1
fi
if [ $((total + repo)) -gt "$LIMIT_BYTES" ]; then
  echo "[wheelhouse] note: with the repository that is $(mib $((total + repo))), over 64 MiB" >&2
fi
echo "[wheelhouse] ok: on the GPU box run scripts/gpu_check.sh (it finds $DEST)"
