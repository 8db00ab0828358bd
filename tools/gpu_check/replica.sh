#!/usr/bin/env bash
# Build (once) a virtualenv that replicates the GPU image's Python for the GPU check's
# rehearsal, and print its path. The image runs Python 3.12 with torch 2.11.0+cu130
# (the registry's torch 2.11.0 is that build; it runs CPU tensors on a machine
# without a GPU), torchvision 0.26.0 and numpy 2.5.2, plus the newest served
# versions of the other packages of its list that the stack imports. mmcv, mmengine,
# mmdet and the rest come from gpu_carry/ during the rehearsal, as on the machine.
#
#   GPU_REPLICA_PYTHON   the Python 3.12 to use (default: python3.12 on PATH, or pyenv's)
#   GPU_REPLICA          where the virtualenv goes (default: the project cache)
set -euo pipefail

CACHE="${GMR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gan_mask_rcnn}"
VENV="${GPU_REPLICA:-$CACHE/gpu-replica-py3.12}"
PACKAGES=(torch==2.11.0 torchvision==0.26.0 numpy==2.5.2 opencv-python-headless scipy
          matplotlib pillow pyyaml rich tqdm six packaging filelock tensorboard pytest
          ninja setuptools wheel pip)
stamp="$VENV/.replica-$(echo "${PACKAGES[*]}" | sha256sum | cut -c1-12)"

if [[ -f "$stamp" ]]; then
  echo "$VENV"
  exit 0
fi
is_312() { [[ -n "$1" ]] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
py="${GPU_REPLICA_PYTHON:-python3.12}"
if ! is_312 "$py" && command -v pyenv >/dev/null; then
  py="$(pyenv root)/versions/$(pyenv versions --bare | grep -E '^3\.12(\.|$)' | tail -n1)/bin/python3.12"
fi
if ! is_312 "$py"; then
  echo "[replica] no Python 3.12 found: install one, or set GPU_REPLICA_PYTHON" >&2
  exit 1
fi
echo "[replica] $VENV from $py: ${PACKAGES[*]} (a few GB, once)" >&2
rm -rf "$VENV"
"$py" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "${PACKAGES[@]}" >&2
"$VENV/bin/python" -c "import sys, torch, numpy; print('[replica] python', sys.version.split()[0],
  'torch', torch.__version__, 'numpy', numpy.__version__)" >&2
touch "$stamp"
echo "$VENV"
