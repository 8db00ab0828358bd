#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in ./.venv from nothing.
#
# Used by `make demo`, `make test` and .ci/run. Versions come from
# requirements/pinned.txt only. mmcv 2.1.0 is compiled from source with its ops
# once and kept as a wheel in a cache outside the checkout
# (${GMR_CACHE:-~/.cache/gan_mask_rcnn}/wheels), so later set-ups do not compile it
# again. A second run with everything in place only compares two hashes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GMR_VENV:-$ROOT/.venv}"
CACHE="${GMR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gan_mask_rcnn}"
WHEELS="$CACHE/wheels"
PINS="$ROOT/requirements/pinned.txt"
PY="${GMR_PYTHON:-python3.11}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

step() {  # step NAME CMD...: run CMD, stop the script naming NAME if it fails
  local name="$1"; shift
  echo "[setup] $name"
  if ! "$@"; then
    echo "[setup] FAILED at step: $name" >&2
    exit 1
  fi
}

pin() { grep -E "^$1==" "$PINS" | head -n1; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

deps_hash="$(hash_of "$PINS")"
proj_hash="$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" \
  $(find "$ROOT/projects/gan_mask_rcnn/gan_mask_rcnn/ops/csrc" -type f 2>/dev/null | sort))"

if [[ -f "$VENV/.deps-$deps_hash" && -f "$VENV/.proj-$proj_hash" ]]; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PY" >/dev/null || { echo "[setup] FAILED at step: find $PY (install Python 3.11)" >&2; exit 1; }
  step "create virtualenv $VENV" "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if [[ ! -f "$VENV/.deps-$deps_hash" ]]; then
  step "install build tools" "${PIP[@]}" install -q "$(pin setuptools)" wheel ninja
  step "install $(pin torch) and $(pin numpy)" "${PIP[@]}" install -q "$(pin torch)" "$(pin numpy)"
  mmcv="$(pin mmcv)"
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-"${mmcv#mmcv==}"-*.whl >/dev/null 2>&1; then
    echo "[setup] compiling $mmcv with ops (about 20 minutes; cached in $WHEELS)"
    step "build $mmcv wheel" env MMCV_WITH_OPS=1 "${PIP[@]}" wheel -q --no-build-isolation \
      --no-deps "$mmcv" -w "$WHEELS"
  fi
  step "install pinned requirements" "${PIP[@]}" install -q --find-links "$WHEELS" \
    --no-build-isolation -r "$PINS"
  rm -f "$VENV"/.deps-*
  touch "$VENV/.deps-$deps_hash"
fi

step "install gan_mask_rcnn (editable, builds the PrRoIPool extension)" \
  "${PIP[@]}" install -q --no-build-isolation --no-deps -e "$ROOT"
step "check imports" "$VENV/bin/python" -c \
  "import mmcv.ops, mmdet, gan_mask_rcnn; print('[setup] mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
rm -f "$VENV"/.proj-*
touch "$VENV/.proj-$proj_hash"
echo "[setup] done"
