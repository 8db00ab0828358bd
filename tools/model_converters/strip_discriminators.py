"""Make a GAN Mask R-CNN checkpoint publishable as a plain Mask R-CNN one.

The discriminators only matter during training: this tool drops their weights
(every ``state_dict`` key with a module named in ``--modules``, by default
``box_discriminator``, ``mask_discriminator`` and ``disc_roi_extractor``) and, like
mmdet's ``tools/model_converters/publish_model.py``, every top-level entry except
``meta`` and ``state_dict`` (optimizer, scheduler and message-hub state). The
result loads into mmdet's own Mask R-CNN config with the same backbone and heads.
It is saved as ``<out_file stem>-<first 8 hex digits of its sha256>.pth``.

Example::

    python tools/model_converters/strip_discriminators.py \
        work_dirs/gan-mask-rcnn_r50_fpn_2k_glas/iter_2000.pth gan-mask-rcnn_glas.pth
"""
import argparse
import hashlib
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import torch

DISCRIMINATOR_MODULES = ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor')
SAVE_KEYS = ('meta', 'state_dict')


def strip_checkpoint(checkpoint: Dict, modules: Sequence[str] = DISCRIMINATOR_MODULES,
                     save_keys: Sequence[str] = SAVE_KEYS) -> Tuple[List[str], Dict]:
    """Remove discriminator weights and training state from ``checkpoint`` in place.

    Args:
        checkpoint (dict): A checkpoint as saved by MMEngine's ``CheckpointHook``.
        modules (Sequence[str]): A ``state_dict`` key is removed when one of its
            dot-separated parts is one of these module names.
        save_keys (Sequence[str]): Top-level entries to keep.

    Returns:
        tuple[list[str], dict]: The removed top-level entries and the removed
        ``state_dict`` items.
    """
    if 'state_dict' not in checkpoint:
        raise KeyError('checkpoint has no "state_dict" entry; top-level keys: '
                       f'{sorted(checkpoint)}')
    removed_entries = [k for k in checkpoint if k not in save_keys]
    for key in removed_entries:
        del checkpoint[key]
    state_dict = checkpoint['state_dict']
    removed_weights = {k: v for k, v in state_dict.items() if set(k.split('.')) & set(modules)}
    for key in removed_weights:
        del state_dict[key]
    return removed_entries, removed_weights


def _group_by_module(weights: Dict, modules: Sequence[str]) -> Dict[str, Tuple[int, int]]:
    """``{'roi_head.mask_discriminator': (num_tensors, num_values)}`` of ``weights``."""
    groups: Dict[str, Tuple[int, int]] = {}
    for key, tensor in weights.items():
        parts = key.split('.')
        end = next(i for i, part in enumerate(parts) if part in modules)
        prefix = '.'.join(parts[:end + 1])
        count, numel = groups.get(prefix, (0, 0))
        groups[prefix] = (count + 1, numel + tensor.numel())
    return groups


def publish(in_file: str, out_file: str, modules: Sequence[str] = DISCRIMINATOR_MODULES,
            save_keys: Sequence[str] = SAVE_KEYS) -> str:
    """Strip ``in_file`` and save it as ``<out_file stem>-<sha256[:8]>.pth``.

    Args:
        in_file (str): The GAN Mask R-CNN checkpoint.
        out_file (str): Where to save; the hash is appended to its stem.
        modules (Sequence[str]): See :func:`strip_checkpoint`.
        save_keys (Sequence[str]): See :func:`strip_checkpoint`.

    Returns:
        str: The path of the published checkpoint.
    """
    if not osp.isfile(in_file):
        raise FileNotFoundError(f'in_file not found: {in_file!r}')
    checkpoint = torch.load(in_file, map_location='cpu', weights_only=False)
    removed_entries, removed_weights = strip_checkpoint(checkpoint, modules, save_keys)
    if not removed_weights:
        print(f'Warning: no state_dict key belongs to {list(modules)}; '
              f'is {in_file!r} a GAN Mask R-CNN checkpoint?')
    for key in removed_entries:
        print(f'removed entry {key!r}')
    for prefix, (count, numel) in _group_by_module(removed_weights, modules).items():
        print(f'removed {prefix}: {count} tensors, {numel} values')
    print(f'{len(removed_weights)} discriminator tensors removed, '
          f'{len(checkpoint["state_dict"])} kept')

    torch.save(checkpoint, out_file)
    with open(out_file, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    final_file = f'{stem}-{sha[:8]}.pth'
    os.replace(out_file, final_file)
    print(f'The published model is saved at {final_file}')
    return final_file


def parse_args():
    parser = argparse.ArgumentParser(
        description='Strip the discriminators from a GAN Mask R-CNN checkpoint')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_file', help='output checkpoint; the sha256 prefix is appended')
    parser.add_argument('--modules', nargs='+', default=list(DISCRIMINATOR_MODULES),
                        help='module names whose weights are removed')
    parser.add_argument('--save-keys', nargs='+', default=list(SAVE_KEYS),
                        help='top-level checkpoint entries to keep')
    return parser.parse_args()


def main():
    args = parse_args()
    publish(args.in_file, args.out_file, args.modules, args.save_keys)


if __name__ == '__main__':
    main()
