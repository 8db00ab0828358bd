#!/usr/bin/env bash
# The prepared GPU check, for a bare GPU machine with python3, torch with CUDA, nvcc
# and ninja, and no package index. Three commands:
#
#   tools/gpu_check.sh prepare     # with a package index: fill gpu_carry/
#   tools/gpu_check.sh run         # on the GPU machine, gpu_carry/ beside the checkout
#   tools/gpu_check.sh rehearse    # on a CPU: `run`'s install, builds, tests and trainings
#                                  # in a replica of the GPU machine's Python (no index)
#
# `prepare` downloads, for the GPU machine's Python (GPU_PY_VERSION, default 3.12) on
# x86-64, the wheels of mmengine, mmdet, pycocotools and faster-coco-eval and of those
# requirements the GPU machine lacks (GPU_CARRY_WHEELS overrides the list), the mmcv
# sdist (built there with its CUDA ops) and setuptools 80.9 for a Python whose
# setuptools lacks pkg_resources. It needs no virtualenv: pip reads the sdist's
# metadata with that setuptools pinned. It stops when the folder outgrows
# GPU_CARRY_LIMIT_MIB (default 56).
#
# `run` installs them under a temporary folder, builds mmcv and the project for the
# local GPU, runs the CUDA tests, trainings, a resume and an NCCL launch, then the
# PrRoIPool benchmark and the timed GAN / baseline runs, within a budget, and writes
# one table and the logs to $OUT (tools/gpu_check/run_check.py; its options follow
# `run`: --dry-run prints the steps and the estimate, --device cpu runs the steps in
# the current environment).
#
# `rehearse` builds the replica of the target's Python (tools/gpu_check/replica.sh)
# and runs `run --device cpu --from-carry` in it with PIP_NO_INDEX=1: the install from
# gpu_carry/ alone, the builds (mmcv's CPU ops; the project's CUDA kernels compiled
# too when GPU_REHEARSAL_CUDA_ARCH is set and nvcc is found), the CPU tests, the
# trainings, the resume and a gloo launch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${GPU_CARRY:-$ROOT/gpu_carry}"
PY_VERSION="${GPU_PY_VERSION:-3.12}"
LIMIT_MIB="${GPU_CARRY_LIMIT_MIB:-56}"
# What the target lacks of the stack's requirements (it is expected to provide torch,
# numpy, opencv-python-headless, scipy, matplotlib, pillow, pyyaml, rich, tqdm, six,
# packaging, filelock, pytest and ninja: tools/gpu_check/replica.sh's list);
# requirements/pinned.txt's versions where pinned there.
WHEELS=(mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.8 faster-coco-eval==1.8.0
        addict==2.4.0 termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9 shapely==2.2.0
        terminaltables==3.1.10)
if [[ -n "${GPU_CARRY_WHEELS:-}" ]]; then
  read -r -a WHEELS <<< "$GPU_CARRY_WHEELS"
fi
MMCV=mmcv==2.1.0
SETUPTOOLS=setuptools==80.9.0

download() {  # download DIR SPEC...: wheels for the GPU machine's Python, no dependencies
  local dir="$1"; shift
  python3 -m pip download -q --no-deps --disable-pip-version-check --only-binary=:all: \
    --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}

prepare() {
  local constraint
  rm -rf "$CARRY"
  mkdir -p "$CARRY/setuptools-fallback"
  echo "[gpu-check] wheels for Python $PY_VERSION -> $CARRY"
  download "$CARRY" "${WHEELS[@]}"
  download "$CARRY/setuptools-fallback" "$SETUPTOOLS"
  echo "[gpu-check] $MMCV sdist (its setup.py needs pkg_resources: $SETUPTOOLS)"
  constraint="$(mktemp)"
  echo "$SETUPTOOLS" > "$constraint"
  PIP_CONSTRAINT="$constraint" python3 -m pip download -q --no-deps \
    --disable-pip-version-check --no-binary=:all: -d "$CARRY" "$MMCV"
  rm -f "$constraint"
  ls -l "$CARRY" "$CARRY/setuptools-fallback" | grep -v '^total'
  local bytes
  bytes="$(du -sb "$CARRY" | cut -f1)"
  echo "[gpu-check] $CARRY: $((bytes / 1024)) KiB in all (limit ${LIMIT_MIB} MiB)"
  if (( bytes > LIMIT_MIB * 1024 * 1024 )); then
    echo "[gpu-check] $CARRY is over ${LIMIT_MIB} MiB: carry less (GPU_CARRY_WHEELS)" >&2
    exit 1
  fi
}

run() {
  local py=python3
  if [[ " $* " == *" --device cpu "* && " $* " != *" --from-carry "* ]]; then
    py="${GPU_CHECK_PYTHON:-$ROOT/.venv/bin/python}"
  fi
  cd "$ROOT"
  exec "$py" "$ROOT/tools/gpu_check/run_check.py" --carry "$CARRY" "$@"
}

rehearse() {
  local replica
  replica="$(bash "$ROOT/tools/gpu_check/replica.sh")"
  cd "$ROOT"
  PIP_NO_INDEX=1 exec "$replica/bin/python" "$ROOT/tools/gpu_check/run_check.py" \
    --carry "$CARRY" --device cpu --from-carry --budget "${GPU_REHEARSAL_BUDGET:-3600}" \
    --cuda-arch "${GPU_REHEARSAL_CUDA_ARCH:-}" --cap-scale "${GPU_REHEARSAL_CAP_SCALE:-10}" \
    --wheel-cache "${GMR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gan_mask_rcnn}/rehearsal-wheels" \
    "$@"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  rehearse) shift; rehearse "$@" ;;
  *) echo "usage: $0 prepare | run [--dry-run] [--device cpu] [run_check.py options]" \
          "| rehearse [run_check.py options]" >&2
     exit 2 ;;
esac
