#!/usr/bin/env bash
# The one-shot GPU check (issue 10): shows the GPU path working in one call of under 8 minutes.
#
#   scripts/gpu_check.sh OUT_DIR            on the GPU box (or OUT=DIR scripts/gpu_check.sh)
#   scripts/gpu_check.sh --dry-run          every step's exact command; recipes validated here
#   scripts/gpu_check.sh --cpu-smoke OUT    every step at toy size on the CPU (the plumbing)
# Options: --wheelhouse DIR (default .gpu-wheelhouse), --work DIR (run directories, checkpoints
# and the overlay venv; default runs/gpu_check, with --cpu-smoke OUT/work), --budget SECONDS
# (default 465; --cpu-smoke 1200), --steps a,b,c,d,e (default all), --no-install (use PYTHON as it is),
# --summary-only (summary.json/.md and the tarball again from an earlier run's WORK).
#
# Steps, each timed, its output saved, a failure recorded without stopping the later ones:
#   a  pytest -m gpu
#   b  the WMT base 6+6 Transformer (recipes/wmt14_en_de_transformer_base.yaml's model), 200
#      updates on news-2008-2011, newstest2012 dev: relu vs x * sigmoid(beta * x), fp16 and bf16
#   c  ResNet-20 (recipes/cifar10_subset_resnet20.yaml), one epoch of the CIFAR-10 subset with AMP
#      and channels_last: relu vs max(x, sigmoid(x)), eager and with train.compile
#   d  16 ResNet-20 children of recipes/search_resnet20_cifar10_ppo.yaml in the local pool
#   e  workbench bench activations on the GPU
# Figures come from the rows the runs write (results.jsonl; the bench's --json, pytest's JUnit
# XML), read by the snippet at the end, never from logs. OUT gets four files: summary.json,
# summary.md, check.log and details.tar.gz (every step's command, output, rows and logs,
# checkpoints left out), so the device tool's limit of 8 files back is kept.
#
# Install (skipped by --no-install and --cpu-smoke): an overlay venv in WORK on top of the box's
# python3 (its site-packages stay visible through a .pth file, so torch is the box's own), into
# which the wheelhouse's required wheels go, its fallback wheels where the box's python cannot
# import them, the workbench in editable mode (its `workbench.tasks` entry point is how
# `task: search` is found) and fairseq-fixed built from source against the box's torch
# (--no-build-isolation --no-deps, CUDA_HOME unset: translation needs none of fairseq's CUDA
# extensions). Without a wheelhouse the same packages come from the index.
#
# Time: a global deadline (--budget) caps every step. fairseq builds in the background while
# steps that do not need it run; the two non-measurement steps (pytest without the translation
# tests, the search children) run at the same time; the measured steps (b, c, e) run alone
# except for the end of the fairseq build. summary.json names every overlap.
set -uo pipefail # no -e: a failing step is recorded and the later steps still run
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

MODE=gpu INSTALL=1 BUDGET="" STEPS=a,b,c,d,e WH="" WORK="" OUTDIR=${OUT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=dry ;;
    --cpu-smoke) MODE=smoke ;;
    --summary-only) MODE=summary ;;
    --no-install) INSTALL=0 ;;
    --wheelhouse) WH=$2; shift ;;
    --work) WORK=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) OUTDIR=$1 ;;
  esac
  shift
done
[ "$MODE" = gpu ] || INSTALL=0
# 465 s leaves the 8 minutes' rest for the summary; a shared CPU may need longer for the smoke.
if [ -z "$BUDGET" ]; then if [ "$MODE" = smoke ]; then BUDGET=1200; else BUDGET=465; fi; fi
if [ -z "$OUTDIR" ]; then
  [ "$MODE" = dry ] || { echo "gpu_check: give the output directory (argument or \$OUT)" >&2; exit 2; }
  OUTDIR=$(mktemp -d /tmp/gpu-check-dry.XXXXXX)
fi
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd)
WH=${WH:-$ROOT/.gpu-wheelhouse}
if [ -z "$WORK" ]; then
  if [ "$MODE" = smoke ]; then WORK=$OUTDIR/work; else WORK=$ROOT/runs/gpu_check; fi
fi
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
STEPS_DIR=$WORK/steps
RUNS=$WORK/runs
LOG=$OUTDIR/check.log
START=$(date +%s)
DEADLINE=$((START + BUDGET))
RESERVE=20  # seconds kept for the summary and the tarball
MIN_STEP=20 # a step with less time left than this is skipped
: >"$LOG"

log() { printf '[gpu-check %4ss] %s\n' "$(($(date +%s) - START))" "$*" | tee -a "$LOG" >&2; }
want() { [[ ",$STEPS," == *",$1,"* ]]; }

# ---------------------------------------------------------------- data
# The files the check trains on: one definition, in gpu_wheelhouse.sh (which also copies them).
mapfile -t DATA_FILES < <(bash "$ROOT/scripts/gpu_wheelhouse.sh" --data-files)
has_data() { local f; for f in "${DATA_FILES[@]}"; do [ -f "$1/$f" ] || return 1; done; }
DATA=""
for d in "${WB_DATA:-}" "$ROOT/../shared/data" "$WH/data" "$ROOT/shared/data"; do
  if [ -n "$d" ] && has_data "$d"; then DATA=$(cd "$d" && pwd); break; fi
done
LINKED_SHARED=""
cleanup() { [ -n "$LINKED_SHARED" ] && rm -f "$LINKED_SHARED/data" && rmdir "$LINKED_SHARED" 2>/dev/null; }
trap cleanup EXIT
if [ -z "$DATA" ]; then
  log "DATA MISSING: the check needs ${DATA_FILES[*]} under ../shared/data, the wheelhouse's data/" \
    "(scripts/gpu_wheelhouse.sh copies them) or \$WB_DATA; steps b, c, d will fail"
  DATA=$ROOT/../shared/data
elif [ "$MODE" = gpu ] && [ ! -e "$ROOT/../shared" ] && [ -w "$ROOT/.." ]; then
  # tests/conftest.py reads ../shared/data (tests/test_search_gpu.py needs the CIFAR subset).
  mkdir "$ROOT/../shared" && ln -s "$DATA" "$ROOT/../shared/data" && LINKED_SHARED=$ROOT/../shared
  log "linked ../shared/data -> $DATA for the tests (removed at exit)"
fi
WMT=$DATA/wmt-en-de
CIFAR=$DATA/cifar10-subset/cifar10_subset.npz

# ---------------------------------------------------------------- python
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ "$INSTALL" = 0 ] && [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
BASE_PY=$PY
VENV=$WORK/venv
[ "$INSTALL" = 1 ] && PY=$VENV/bin/python
wb_cmd() { # the `workbench` console script next to PY (what `pip install -e .` made)
  if [ -x "$(dirname "$PY")/workbench" ]; then WB=("$(dirname "$PY")/workbench"); else WB=("$(command -v workbench || echo workbench)"); fi
}

# ---------------------------------------------------------------- the steps' commands
SEARCHED="x * sigmoid(beta * x)" # Swish, the paper's searched function, in the formula language
IMAGE_FORMULA="max(x, sigmoid(x))"
BENCH_SECTIONS=${BENCH_SECTIONS:-baselines,paper,densenet}
SEARCH_CHILD_STEPS=${SEARCH_CHILD_STEPS:-300}
if [ "$MODE" = smoke ]; then DEVICE=cpu; else DEVICE=cuda; fi

# CMD is filled by cmd_<step>; the same array is printed (--dry-run) and run.
cmd_a_pytest() { # pytest -m gpu, all but the translation tests (they need fairseq built)
  CMD=("$PY" -m pytest -m gpu -q -p no:cacheprovider "--junitxml=$S/junit.xml"
    --ignore-glob='tests/test_translation_*')
  if [ "$MODE" = gpu ] && "$PY" -c "import xdist" 2>/dev/null; then CMD+=(-n "${PYTEST_WORKERS:-4}"); fi
}
cmd_a_pytest_fairseq() { # pytest -m gpu, the translation tests
  CMD=("$PY" -m pytest -m gpu -q -p no:cacheprovider "--junitxml=$S/junit.xml" tests/test_translation_*.py)
}
cmd_b() { # $1: fp16 | bf16
  CMD=("${WB[@]}" run recipes/wmt14_en_de_transformer_base.yaml --out "$RUNS/b_translation_$1"
    --set "activations=[relu, \"$SEARCHED\"]" --set "device=$DEVICE"
    --set "train.precision=$1" --set "train.lr=[0.0005]" --set train.max_update=200
    # words/s does not depend on gradient accumulation: one 4096-token batch per update
    --set train.tokens_per_update=0 --set train.update_freq=1
    # fairseq's words/s is a mean over log intervals; short ones keep the first interval's
    # one-off costs (CUDA start, compiling the activation kernel) a small share of the mean
    --set train.log_interval=5 --set train.validate=false
    --set train.save_interval_updates=0 --set train.average_last=0
    --set data.train.wmt14=false --set "data.train.local=[\"$WMT/news-2008-2011\"]"
    --set "data.dev.local=$WMT/newstest2012" --set data.dev.max_pairs=200 --set "data.tests=[]"
    --set "data.cache_dir=$WORK/cache")
  [ "$MODE" = smoke ] && CMD+=(--set model.encoder_layers=1 --set model.decoder_layers=1
    --set model.embed_dim=32 --set model.ffn_dim=64 --set model.heads=2 --set train.max_update=4
    --set train.max_tokens=512 --set train.log_interval=1 --set data.train.max_pairs=300
    --set data.dev.max_pairs=8 --set data.vocab_size=400 --set data.workers=1 --set eval.beam=1)
}
cmd_b_fp16() { cmd_b fp16; }
cmd_b_bf16() { cmd_b bf16; }
cmd_c() { # $1: eager | compile
  local compile=false
  [ "$1" = compile ] && compile=true
  CMD=("${WB[@]}" run recipes/cifar10_subset_resnet20.yaml --out "$RUNS/c_image_$1"
    --set "activations=[relu, \"$IMAGE_FORMULA\"]" --set "device=$DEVICE" --set "seeds=[0]"
    --set train.epochs=1 --set train.batch_size=128 --set train.amp=true
    --set train.channels_last=true --set "train.compile=$compile" --set "data.source=$CIFAR"
    --set data.val_fraction=0) # the paper recipes' setting; no per-epoch validation to compile
  [ "$MODE" = smoke ] && CMD+=(--set model.name=small_cnn --set data.max_train=256
    --set train.batch_size=32 --set probe.preact_images=50)
}
cmd_c_eager() { cmd_c eager; }
cmd_c_compile() { cmd_c compile; }
cmd_d_search() {
  CMD=("${WB[@]}" run recipes/search_resnet20_cifar10_ppo.yaml --out "$RUNS/d_search"
    --set "device=$DEVICE" --set budget=16 --set batch_size=8 --set "references=[]"
    --set confirm.n=0 --set top_k=5 --set "child.data=$CIFAR"
    --set "child.train.steps=$SEARCH_CHILD_STEPS" --set executor.workers=8)
  [ "$MODE" = smoke ] && CMD+=(--set budget=4 --set batch_size=2 --set child.model=small_cnn
    --set child.max_train=256 --set child.train.steps=4 --set child.train.batch_size=32
    --set executor.workers=2)
}
cmd_e_bench() {
  CMD=("${WB[@]}" bench activations --json --device "$DEVICE" --sections "$BENCH_SECTIONS")
  [ "$MODE" = smoke ] && CMD+=(--sections paper --size 64x32 --rounds 1 --repeats 2 --warmup 1
    --backend eager)
}

# name  step-letter  time-limit(s)  what
STEP_TABLE="
a_pytest a 150 pytest -m gpu (without tests/test_translation_*)
d_search d 150 16 ResNet-20 search children through the local pool
e_bench e 120 workbench bench activations
c_eager c 70 ResNet-20 one epoch, eager
b_fp16 b 120 WMT base Transformer, 200 updates, fp16
b_bf16 b 120 WMT base Transformer, 200 updates, bf16
c_compile c 170 ResNet-20 one epoch, train.compile
a_pytest_fairseq a 100 pytest -m gpu tests/test_translation_*
"
step_field() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' <<<"$STEP_TABLE"; }
step_what() { awk -v n="$1" '$1 == n { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' <<<"$STEP_TABLE"; }
step_names() { awk 'NF { print $1 }' <<<"$STEP_TABLE"; }

# ---------------------------------------------------------------- running a step
declare -A BG_PID=()
run_step() { # NAME [bg]: runs cmd_NAME under the deadline; files in $STEPS_DIR/NAME
  local name=$1 bg=${2:-}
  S=$STEPS_DIR/$name
  rm -rf "$S" && mkdir -p "$S"
  "cmd_$name"
  printf '%q ' "${CMD[@]}" >"$S/cmd.sh" && echo >>"$S/cmd.sh"
  step_what "$name" >"$S/what.txt"
  local limit left
  limit=$(step_field "$name" 3)
  left=$((DEADLINE - $(date +%s) - RESERVE))
  [ "$left" -lt "$limit" ] && limit=$left
  echo "$limit" >"$S/limit_s"
  if [ "$limit" -lt "$MIN_STEP" ]; then
    echo "skipped: the check's time budget ($BUDGET s) is spent" >"$S/status"
    log "$name: SKIPPED (out of time)"
    return 0
  fi
  log "$name: start (limit ${limit}s) $(cat "$S/what.txt")"
  local cmd=("${CMD[@]}") dir=$S
  body() {
    date +%s.%N >"$dir/start"
    timeout --kill-after=15 "$limit" "${cmd[@]}" >"$dir/stdout.log" 2>"$dir/stderr.log" </dev/null
    local rc=$?
    date +%s.%N >"$dir/end"
    echo "$rc" >"$dir/rc"
    case $rc in
      0) echo ok >"$dir/status" ;;
      124 | 137) echo "timeout: stopped at its ${limit}s limit" >"$dir/status" ;;
      *) echo "failed: exit code $rc" >"$dir/status" ;;
    esac
    log "$name: $(cat "$dir/status") after $(awk -v a="$(cat "$dir/start")" -v b="$(cat "$dir/end")" 'BEGIN { printf "%.0f", b - a }')s"
  }
  if [ "$bg" = bg ]; then
    body &
    BG_PID[$name]=$!
  else
    body
  fi
}
wait_step() { local pid=${BG_PID[$1]:-}; [ -n "$pid" ] && wait "$pid"; unset "BG_PID[$1]"; }
step_ok() { [ "$(cat "$STEPS_DIR/$1/status" 2>/dev/null)" = ok ]; }
skip_step() { # NAME REASON: record a step that cannot run
  mkdir -p "$STEPS_DIR/$1" && echo "skipped: $2" >"$STEPS_DIR/$1/status"
  step_what "$1" >"$STEPS_DIR/$1/what.txt"
  log "$1: SKIPPED ($2)"
}

# ---------------------------------------------------------------- install (the GPU box)
install_env() { # foreground part; starts the fairseq build in the background
  local I=$STEPS_DIR/0_install
  mkdir -p "$I"
  date +%s.%N >"$I/start"
  (
    set -e
    "$BASE_PY" -c "import torch; print('base python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    if [ ! -x "$VENV/bin/python" ]; then
      "$BASE_PY" -m venv --without-pip "$VENV"
      local purelib
      purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      # The box's own packages (torch first of all) stay visible, behind the overlay's.
      "$BASE_PY" - "$purelib/_gpu_check_base.pth" <<'PYEOF'
import os, sys
# Every site directory the box's python reads (its own, inherited system ones, the user's).
paths = [p for p in sys.path if os.path.isdir(p) and os.path.basename(p) in ("site-packages", "dist-packages")]
with open(sys.argv[1], "w") as fh:
    for p in paths:
        fh.write(f"import site; site.addsitedir({p!r})\n")
print("overlay sees", paths)
PYEOF
    fi
    "$PY" -c "import torch, pip; print('overlay python ok, pip', pip.__version__)"
    pipi() { "$PY" -m pip install --disable-pip-version-check --no-cache-dir --no-input -q "$@"; }
    if [ -f "$WH/manifest.tsv" ]; then
      (cd "$WH" && sha256sum --quiet -c SHA256SUMS)
      echo "installing from $WH"
      local required=() tier spec module file
      while IFS=$'\t' read -r tier spec module file; do
        case "$tier" in
          required) required+=("$WH/$file") ;;
          fallback) "$PY" -c "import $module" 2>/dev/null || { echo "fallback: $spec"; pipi --no-index --no-deps "$WH/$file"; } ;;
        esac
      done < <(grep -v '^#' "$WH/manifest.tsv")
      pipi --no-index --no-deps "${required[@]}"
    else
      echo "no wheelhouse at $WH: installing from the package index"
      local tier spec module _why required=()
      while read -r tier spec module _why; do
        case "$tier" in
          required) required+=("$spec") ;;
          fallback) "$PY" -c "import $module" 2>/dev/null || pipi --no-deps "$spec" ;;
        esac
      done < <(bash "$ROOT/scripts/gpu_wheelhouse.sh" --list)
      pipi --no-deps "${required[@]}"
    fi
    pipi --no-index --no-deps --no-build-isolation -e "$ROOT"
    "$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -iE "hydra|omegaconf|antlr|bitarray|grimp|activation-workbench|fairseq|torch " || true
  ) >"$I/stdout.log" 2>"$I/stderr.log"
  local rc=$?
  date +%s.%N >"$I/end"
  echo "$rc" >"$I/rc"
  echo "overlay venv $VENV on $BASE_PY; wheelhouse $WH" >"$I/what.txt"
  if [ "$rc" = 0 ]; then echo ok >"$I/status"; else echo "failed: exit code $rc" >"$I/status"; fi
  log "install: $(cat "$I/status") (log: $I)"
  [ "$rc" = 0 ] || return 1
  want a || want b || return 0 # only the translation steps and their tests need fairseq
  if "$PY" -c "import fairseq, sys; sys.exit(fairseq.__version__ != '0.12.3.1')" 2>/dev/null; then
    mkdir -p "$STEPS_DIR/0_fairseq_build" && echo "ok" >"$STEPS_DIR/0_fairseq_build/status"
    echo "fairseq 0.12.3.1 already installed" >"$STEPS_DIR/0_fairseq_build/what.txt"
    log "fairseq already installed"
    return 0
  fi
  local src=fairseq-fixed==0.12.3.1 index=()
  if [ -f "$WH/manifest.tsv" ]; then
    src=$WH/$(awk -F'\t' '$1 == "sdist" { print $4 }' "$WH/manifest.tsv") index=(--no-index)
  fi
  S=$STEPS_DIR/0_fairseq_build
  mkdir -p "$S"
  echo "fairseq-fixed built from source against the box's torch (background)" >"$S/what.txt"
  printf '%q ' env -u CUDA_HOME "$PY" -m pip install "${index[@]}" --no-deps --no-build-isolation "$src" >"$S/cmd.sh"
  (
    date +%s.%N >"$S/start"
    timeout "$((DEADLINE - $(date +%s) - RESERVE))" env -u CUDA_HOME "$PY" -m pip install --disable-pip-version-check --no-cache-dir \
      "${index[@]}" --no-deps --no-build-isolation "$src" >"$S/stdout.log" 2>"$S/stderr.log"
    rc=$?
    date +%s.%N >"$S/end"
    echo "$rc" >"$S/rc"
    if [ "$rc" = 0 ]; then echo ok >"$S/status"; else echo "failed: exit code $rc" >"$S/status"; fi
    log "fairseq build: $(cat "$S/status")"
  ) &
  BG_PID[0_fairseq_build]=$!
  log "fairseq build started in the background"
}

# ---------------------------------------------------------------- summary
summarize() { # figures from WORK's rows into OUT/summary.{json,md}; the details into one tarball
  local rc
  log "writing the summary"
  "$PY" - "$STEPS_DIR" "$RUNS" "$OUTDIR" <<'PYEOF' 2>>"$LOG"
"""Every figure from the rows the runs wrote (results.jsonl), the bench's JSON and pytest's XML."""
import json, statistics, sys
import xml.etree.ElementTree as ET
from pathlib import Path

from workbench.records import read_rows

steps_dir, runs, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
check = dict(line.split("=", 1) for line in (steps_dir / "check.env").read_text().split())
mode, budget, start, wanted = check["mode"], int(check["budget"]), float(check["start"]), check["steps"]


def text(p, default=None):
    try:
        return p.read_text().strip()
    except OSError:
        return default


def rows_of(run):
    d = runs / run
    return read_rows(d) if (d / "results.jsonl").exists() else []


steps = {}
for d in sorted((p for p in steps_dir.iterdir() if (p / "status").exists()),
                key=lambda p: float(text(p / "start", "inf"))):
    s = {"what": text(d / "what.txt", ""), "status": text(d / "status", "not run")}
    t0, t1 = text(d / "start"), text(d / "end")
    if t0 and t1:
        s.update(start_s=round(float(t0) - start, 1), wall_s=round(float(t1) - float(t0), 1))
    for key, name in (("limit_s", "limit_s"), ("rc", "rc")):
        if text(d / name) is not None:
            s[key] = int(text(d / name))
    if (d / "cmd.sh").exists():
        s["command"] = text(d / "cmd.sh")
    steps[d.name] = s
for name, s in steps.items():  # what ran at the same time (measurements should not overlap)
    if "wall_s" in s:
        a0, a1 = s["start_s"], s["start_s"] + s["wall_s"]
        s["overlapped"] = [o for o, t in steps.items() if o != name and "wall_s" in t
                           and t["start_s"] < a1 and a0 < t["start_s"] + t["wall_s"]]
env = json.loads(text(steps_dir / "0_env" / "environment.json", "{}") or "{}")

# (a) pytest -m gpu: JUnit XML
tests = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
for name in ("a_pytest", "a_pytest_fairseq"):
    try:
        root = ET.parse(steps_dir / name / "junit.xml").getroot()
    except (OSError, ET.ParseError):
        continue
    for case in root.iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        kinds = {c.tag for c in case}
        if "failure" in kinds or "error" in kinds:
            tests["failed" if "failure" in kinds else "errors"] += 1
            tests["failures"].append(tid)
        elif "skipped" in kinds:
            tests["skipped"] += 1
        else:
            tests["passed"] += 1

# (b) translation: one row per unit and metric; words/s is the unit's, on its bleu row
translation = {}
for prec in ("fp16", "bf16"):
    for r in rows_of(f"b_translation_{prec}"):
        if r.get("metric") == "bleu" and r.get("status") == "ok":
            translation.setdefault(prec, {})[r["activation"]] = {
                "words_per_s": r.field("train_words_per_s"), "updates": r.field("updates"),
                "wall_s": r.field("wall_s"), "bleu_dev": r.get("value"),
                "kernel_backend": r.field("kernel_backend"), "gpus": r.field("gpus"),
                "tokens_per_update": r.field("target_tokens_per_update"),
            }
    acts = translation.get(prec, {})
    if "relu" in acts and len(acts) == 2:
        other = next(a for a in acts if a != "relu")
        w, base = acts[other]["words_per_s"], acts["relu"]["words_per_s"]
        if w and base:
            acts["ratio"] = {"activation": other, "vs_relu": round(w / base, 3)}

# (c) image: images/s on each unit's test row
image = {}
for mode_ in ("eager", "compile"):
    for r in rows_of(f"c_image_{mode_}"):
        if r.get("metric") == "accuracy" and r.get("split") == "test" and r.get("status") == "ok":
            image.setdefault(mode_, {})[r["activation"]] = {
                "images_per_s": r.field("images_per_s"), "test_accuracy": r.get("value"),
                "compiled": r.field("compiled"), "steps": r.field("steps_run"),
            }
for mode_, acts in image.items():
    if "relu" in acts and len(acts) == 2:
        other = next(a for a in acts if a != "relu")
        a, b = acts[other]["images_per_s"], acts["relu"]["images_per_s"]
        if a and b:
            acts["ratio"] = {"activation": other, "vs_relu": round(a / b, 3)}
if "eager" in image and "compile" in image:
    image["compile_vs_eager"] = {
        act: round(image["compile"][act]["images_per_s"] / image["eager"][act]["images_per_s"], 3)
        for act in image["eager"] if act != "ratio" and act in image["compile"]
        and image["eager"][act]["images_per_s"] and image["compile"][act]["images_per_s"]
    }

# (d) search: one reward row per child
search = {}
children = [r for r in rows_of("d_search") if r.get("metric") == "reward"]
if children:
    walls = [r.field("wall_s") for r in children if r.field("wall_s")]
    ok = [r for r in children if r.get("status") == "ok"]
    units = [r for r in rows_of("d_search") if r.get("kind") == "unit" and r.get("status") == "done"]
    search = {
        "children": len(children),
        "status": {s: sum(r.get("status") == s for r in children) for s in {r.get("status") for r in children}},
        "child_wall_s": {"median": round(statistics.median(walls), 2), "max": round(max(walls), 2)} if walls else None,
        "reward": {"best": max(r["value"] for r in ok), "median": statistics.median(r["value"] for r in ok)} if ok else None,
        "best": max(ok, key=lambda r: r["value"])["activation"] if ok else None,
        "search_unit_wall_s": sum(u.get("wall_s") or 0 for u in units),
        "errors": sorted({str(r.field("error"))[:200] for r in children if r.get("status") == "error"}),
    }

# (e) bench: its --json output
bench = {}
try:
    report = json.loads((steps_dir / "e_bench" / "stdout.log").read_text())
    formula = [r for r in report["rows"] if r["section"] in ("paper", "candidates", "densenet")]
    bench = {
        "config": report["config"], "summary": report["summary"],
        "fallbacks": report["kernel_stats"].get("fallbacks"),
        "rows": [{k: r[k] for k in ("section", "spec", "shape", "ms", "ref_ms", "ratio", "backend")}
                 for r in report["rows"]],
        "formula_rows": len(formula),
        "worst": max(formula, key=lambda r: r["ratio"])["spec"] if formula else None,
    }
except (OSError, ValueError, KeyError):
    formula = []

# targets (issue 10)
def target(met, detail):
    return {"met": met, "detail": detail}

if formula:
    over = [f"{r['spec']} {r['ratio']:.2f}x ({r['backend']})" for r in formula
            if r["ratio"] > 1.2 or r["backend"] != "compiled"]
    t1 = target(not over, f"{len(formula)} formula rows (sections paper, candidates, densenet); "
                + ("over 1.2x or not compiled: " + "; ".join(over) if over else
                   f"worst {max(r['ratio'] for r in formula):.2f}x"))
else:
    t1 = target(None, "no bench rows")
ratios = {p: translation[p]["ratio"]["vs_relu"] for p in translation if "ratio" in translation[p]}
t2 = target(all(v >= 0.9 for v in ratios.values()) if len(ratios) == 2 else None,
            ", ".join(f"{p}: {v:.3f}x relu" for p, v in ratios.items()) or "no translation rows")
summary = {
    "mode": mode, "steps_asked": wanted, "budget_s": budget,
    "wall_s": max((s["start_s"] + s["wall_s"] for s in steps.values() if "wall_s" in s), default=0.0),
    "environment": env,
    "targets": {"compiled formulas <= 1.2x native silu each": t1,
                "words/s of the searched formula >= 0.9x relu (fp16 and bf16)": t2},
    "steps": steps, "a_pytest": tests, "b_translation": translation, "c_image": image,
    "d_search": search, "e_bench": bench,
}
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


def fmt(v, digits=1):
    return "–" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else str(v))


def verdict(t):
    return {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]


md = [f"# GPU check ({mode})", "",
      f"{env.get('gpu', 'no GPU')}, torch {env.get('torch')} (CUDA {env.get('cuda')}), "
      f"python {env.get('python')}; wall {summary['wall_s']:.0f} s of a {budget} s budget.", "",
      "## Targets", ""]
if mode == "smoke":
    md[4:4] = ["**CPU smoke run**: every step at toy size on the CPU. It shows that the plumbing "
               "works; its figures measure nothing.", ""]
md += [f"- {name}: **{verdict(t)}**: {t['detail']}" for name, t in summary["targets"].items()]
md += ["", "## Steps", "", "| step | what | status | wall s | ran beside |", "|---|---|---|---:|---|"]
for name, s in steps.items():
    md.append(f"| {name} | {s['what']} | {s['status']} | {fmt(s.get('wall_s'))} | "
              f"{', '.join(s.get('overlapped', [])) or '–'} |")
md += ["", f"## (a) pytest -m gpu: {tests['passed']} passed, {tests['failed']} failed, "
       f"{tests['errors']} errors, {tests['skipped']} skipped", ""]
md += [f"- {t}" for t in tests["failures"]]
md += ["## (b) translation: words/s (fairseq's, mean over log intervals)", "",
       "| precision | activation | words/s | updates | kernel backend | vs relu |", "|---|---|---:|---:|---|---:|"]
for prec, acts in translation.items():
    for act, v in acts.items():
        if act != "ratio":
            vs = acts.get("ratio", {}).get("vs_relu") if act != "relu" else 1.0
            md.append(f"| {prec} | `{act}` | {fmt(v['words_per_s'], 0)} | {fmt(v['updates'])} | "
                      f"{fmt(v['kernel_backend'])} | {fmt(vs, 3)} |")
md += ["", "## (c) image: ResNet-20, one epoch, images/s (after warm-up steps)", "",
       "| mode | activation | images/s | vs relu | test acc |", "|---|---|---:|---:|---:|"]
for mode_ in ("eager", "compile"):
    for act, v in image.get(mode_, {}).items():
        if act != "ratio":
            vs = image[mode_].get("ratio", {}).get("vs_relu") if act != "relu" else 1.0
            md.append(f"| {mode_} | `{act}` | {fmt(v['images_per_s'], 0)} | {fmt(vs, 3)} | "
                      f"{fmt(v['test_accuracy'], 2)} |")
if image.get("compile_vs_eager"):
    md += ["", "compiled vs eager images/s: " + ", ".join(
        f"`{a}` {v:.2f}x" for a, v in image["compile_vs_eager"].items())]
md += ["", "## (d) search children", ""]
if search:
    md.append(f"{search['children']} children {search['status']}; child wall median "
              f"{fmt((search['child_wall_s'] or {}).get('median'), 2)} s, max "
              f"{fmt((search['child_wall_s'] or {}).get('max'), 2)} s; best reward "
              f"{fmt((search['reward'] or {}).get('best'), 2)} (`{search['best']}`)")
    md += [f"- error: {e}" for e in search["errors"]]
else:
    md.append("no rows")
md += ["", "## (e) bench activations", ""]
if bench:
    c = bench["config"]
    md.append(f"{c['dtype']} {'x'.join(map(str, c['shape']))} on {c['device']}, eager fallbacks: "
              f"{bench['fallbacks']}")
    md += ["", "| section | rows | geomean | max |", "|---|---:|---:|---:|"]
    md += [f"| {k} | {v['rows']:.0f} | {v['geomean']:.2f} | {v['max']:.2f} |" for k, v in bench["summary"].items()]
    md += ["", "| section | activation | ratio | backend |", "|---|---|---:|---|"]
    md += [f"| {r['section']} | `{r['spec']}` | {r['ratio']:.2f} | {r['backend']} |" for r in bench["rows"]
           if r["section"] in ("paper", "densenet")]
else:
    md.append("no bench output")
(out / "summary.md").write_text("\n".join(md) + "\n")
PYEOF
  rc=$?
  [ "$rc" = 0 ] || log "summary failed (exit $rc)"
  # Everything but checkpoints, caches and the venv, in one file (the device tool returns 8 files).
  tar czf "$OUTDIR/details.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='checkpoints' \
    --exclude='*.bin' --exclude='*.idx' --exclude='*.npz' steps runs 2>>"$LOG" || log "tar failed"
  log "done in $(($(date +%s) - START))s: $OUTDIR/summary.md"
  [ -f "$OUTDIR/summary.md" ] && cat "$OUTDIR/summary.md"
  [ "$rc" = 0 ] && [ -f "$OUTDIR/summary.json" ]
}

# ---------------------------------------------------------------- dry run
dry_run() {
  wb_cmd
  S=$OUTDIR/dry
  mkdir -p "$S"
  local argv_file=$S/argv.bin name n=0
  : >"$argv_file"
  echo "gpu_check --dry-run: data $DATA, work $WORK, python $PY, budget ${BUDGET}s"
  echo "order: a_pytest and d_search side by side (fairseq builds meanwhile), then one at a time" \
    "e_bench, c_eager, b_fp16 and b_bf16 (after the build), c_compile, a_pytest_fairseq"
  echo "install: overlay venv $VENV on python3; wheels from $WH ($( [ -f "$WH/manifest.tsv" ] && echo present || echo "absent: the index instead")); fairseq-fixed built in the background"
  for name in $(step_names); do
    want "$(step_field "$name" 2)" || continue
    "cmd_$name"
    n=$((n + 1))
    printf '\nstep %s [%s, limit %ss]: %s\n  ' "$name" "$(step_field "$name" 2)" "$(step_field "$name" 3)" "$(step_what "$name")"
    printf '%q ' "${CMD[@]}"
    echo
    if [ "${CMD[1]:-}" = run ]; then # a workbench recipe: validate it here with --dry-run
      printf '%s\0' "${CMD[@]:1}" --dry-run >>"$argv_file"
      printf '\0' >>"$argv_file" # an empty argument ends one command
    fi
  done
  echo
  echo "validating the recipes and overrides here (workbench run ... --dry-run, one process):"
  "$PY" - "$argv_file" "$BENCH_SECTIONS" <<'PYEOF'
import sys

from workbench.cli import main
from workbench.commands.bench import SECTIONS

raw = open(sys.argv[1], "rb").read().split(b"\0")
commands, current = [], []
for arg in raw:
    if arg:
        current.append(arg.decode())
    elif current:
        commands.append(current)
        current = []
failed = 0
for argv in commands:
    print(f"--- workbench {' '.join(argv[:4])} ...", flush=True)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    if code:
        failed += 1
        print(f"INVALID (exit {code})")
bad = sorted(set(sys.argv[2].split(",")) - set(SECTIONS))
if bad:
    failed += 1
    print(f"bench sections unknown: {bad} (known: {', '.join(SECTIONS)})")
print(f"dry run: {len(commands)} recipe commands validated, {failed} invalid")
sys.exit(1 if failed else 0)
PYEOF
}

if [ "$MODE" = dry ]; then
  dry_run
  exit $?
fi
if [ "$MODE" = summary ]; then
  [ -d "$STEPS_DIR" ] || { echo "gpu_check: no steps in $WORK (give --work DIR of an earlier run)" >&2; exit 2; }
  summarize
  exit $?
fi

# ---------------------------------------------------------------- the check
rm -rf "$STEPS_DIR" "$RUNS"
mkdir -p "$STEPS_DIR" "$RUNS"
log "mode $MODE, budget ${BUDGET}s, steps $STEPS, out $OUTDIR, work $WORK, data $DATA"
printf 'mode=%s\nbudget=%s\nstart=%s\nsteps=%s\n' "$MODE" "$BUDGET" "$START" "$STEPS" >"$STEPS_DIR/check.env"
E=$STEPS_DIR/0_env
mkdir -p "$E"
{ nvidia-smi 2>&1 || echo "no nvidia-smi"; } >"$E/nvidia-smi.txt"
if [ "$INSTALL" = 1 ]; then
  install_env || log "install failed: the steps below will fail too; see $STEPS_DIR/0_install"
fi
wb_cmd
"$PY" - >"$E/environment.json" 2>"$E/stderr.log" <<'PYEOF'
import json, os, platform, sys
import torch
info = {"python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
        "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cpus": os.cpu_count(), "platform": platform.platform()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_count=torch.cuda.device_count(),
                gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}")
print(json.dumps(info, indent=1))
PYEOF
log "environment: $(tr -d '\n' <"$E/environment.json" | tr -s ' ')"

# Non-measurement steps first, side by side, while fairseq builds.
want a && run_step a_pytest bg
want d && run_step d_search bg
wait_step a_pytest
wait_step d_search
# Measurement steps, one at a time.
want e && run_step e_bench
want c && run_step c_eager
if [ -n "${BG_PID[0_fairseq_build]:-}" ]; then
  log "waiting for the fairseq build"
  wait_step 0_fairseq_build
fi
fairseq_ready() {
  "$PY" -c "import fairseq" 2>/dev/null && { [ -x "$(dirname "$PY")/fairseq-train" ] || command -v fairseq-train >/dev/null; }
}
fairseq_step() {
  want "$(step_field "$1" 2)" || return 0
  if fairseq_ready; then run_step "$1"; else skip_step "$1" "fairseq is not installed (see 0_fairseq_build)"; fi
}
# The targets' steps before the long compile step, so a slow compile cannot crowd them out.
fairseq_step b_fp16
fairseq_step b_bf16
want c && run_step c_compile
fairseq_step a_pytest_fairseq
for name in "${!BG_PID[@]}"; do wait_step "$name"; done # nothing may outlive the check
summarize
