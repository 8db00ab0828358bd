#!/usr/bin/env bash
# Build (once) a virtualenv that replicates the GPU machine's Python for the GPU
# check's rehearsal (tools/gpu_check.sh rehearse), and print its path. By default
# the target runs Python 3.12 with torch 2.11.0+cu130 (the package index's torch
# 2.11.0 is that build; it runs CPU tensors where there is no GPU), torchvision
# 0.26.0 and numpy 2.5.2, and the newest versions of the other packages the stack
# imports and the target provides. mmcv, mmengine, mmdet and the rest come from
# gpu_carry/ during the rehearsal, as on the GPU machine.
#
#   GPU_REPLICA_PYTHON    the Python to use (default: python3.12, or pyenv's 3.12)
#   GPU_REPLICA_PACKAGES  the target's packages, pip requirement strings
#   GPU_REPLICA           where the virtualenv goes (default: the project cache)
set -euo pipefail

CACHE="${GMR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gan_mask_rcnn}"
VENV="${GPU_REPLICA:-$CACHE/gpu-replica-py3.12}"
PACKAGES=(torch==2.11.0 torchvision==0.26.0 numpy==2.5.2 opencv-python-headless scipy
          matplotlib pillow pyyaml rich tqdm six packaging filelock tensorboard pytest
          ninja setuptools wheel pip)
if [[ -n "${GPU_REPLICA_PACKAGES:-}" ]]; then
  read -r -a PACKAGES <<< "$GPU_REPLICA_PACKAGES"
fi
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
