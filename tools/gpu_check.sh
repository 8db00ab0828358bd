#!/usr/bin/env bash
# The prepared GPU check (issue 34, item 4), for a bare machine with python3, torch
# with CUDA and nvcc, and no package registry. Two halves:
#
#   tools/gpu_check.sh prepare   # here, with a registry: fill gpu_carry/ (<= 56 MiB)
#   tools/gpu_check.sh run       # there, from the repository root, gpu_carry/ beside it
#
# `prepare` downloads, for the GPU machine's Python (GPU_PY_VERSION, 3.12) on x86-64:
# wheels of mmengine, mmdet, pycocotools, faster-coco-eval and those of their
# requirements that the machine's image lacks, the mmcv sdist (built there with its
# CUDA ops), and setuptools 80.9 for an image whose setuptools lacks pkg_resources
# (mmcv's setup.py and mmengine import it). It then names what the machine itself must provide.
# `run` installs them under a temporary folder, builds mmcv and the project for the
# local GPU, runs the CUDA tests, the PrRoIPool benchmark, baseline and GAN trainings
# (fp32 and --amp), a resume and an NCCL launch within 9 minutes, prints one table
# and writes it with the logs to $OUT (tools/gpu_check/run_check.py; its options
# follow `run`). On a CPU machine:
#
#   tools/gpu_check.sh run --dry-run        # the steps and their commands
#   tools/gpu_check.sh run --device cpu     # the same steps on CPU (.venv), 2 iterations
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${GPU_CARRY:-$ROOT/gpu_carry}"
PY_VERSION="${GPU_PY_VERSION:-3.12}"
CARRY_LIMIT_MIB=56  # the device tool carries 64 MiB with the working tree
# The image lacks these (its pip list has matplotlib, numpy, opencv, scipy, rich, tqdm,
# pyyaml, pillow, six, packaging); versions as in requirements/pinned.txt where pinned.
WHEELS=(mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.8 faster-coco-eval==1.8.0
        addict==2.4.0 termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9
        shapely==2.2.0 terminaltables==3.1.10)
MMCV=mmcv==2.1.0
FALLBACK=(setuptools==80.9.0)

download() {  # download DIR SPEC...: wheels for the GPU machine's Python, no dependencies
  local dir="$1"; shift
  python3 -m pip download -q --no-deps --disable-pip-version-check --only-binary=:all: \
    --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}

prepare() {
  # pip reads the sdist's metadata by running mmcv's setup.py, which imports torch
  local sdist_py="${GPU_CHECK_SDIST_PYTHON:-$ROOT/.venv/bin/python}"
  rm -rf "$CARRY"
  mkdir -p "$CARRY/setuptools-fallback"
  echo "[gpu-check] wheels for Python $PY_VERSION -> $CARRY"
  download "$CARRY" "${WHEELS[@]}"
  download "$CARRY/setuptools-fallback" "${FALLBACK[@]}"
  echo "[gpu-check] $MMCV sdist (metadata read with $sdist_py)"
  "$sdist_py" -m pip download -q --no-deps --disable-pip-version-check --no-binary=:all: \
    --no-build-isolation -d "$CARRY" "$MMCV"
  local bytes
  bytes="$(du -sb "$CARRY" | cut -f1)"
  ls -l "$CARRY" "$CARRY/setuptools-fallback" | grep -v '^total'
  python3 "$ROOT/tools/gpu_check/carry.py" --carried-only "$CARRY"
  echo "[gpu-check] $CARRY: $((bytes / 1024)) KiB in all (limit ${CARRY_LIMIT_MIB} MiB)"
  if (( bytes > CARRY_LIMIT_MIB * 1024 * 1024 )); then
    echo "[gpu-check] $CARRY is over ${CARRY_LIMIT_MIB} MiB: carry less" >&2
    exit 1
  fi
}

run() {
  local py=python3
  if [[ " $* " == *" --device cpu "* ]]; then
    py="${GPU_CHECK_PYTHON:-$ROOT/.venv/bin/python}"
  fi
  cd "$ROOT"
  exec "$py" "$ROOT/tools/gpu_check/run_check.py" --carry "$CARRY" "$@"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [--dry-run] [--device cpu] [run_check.py options]" >&2
     exit 2 ;;
esac
