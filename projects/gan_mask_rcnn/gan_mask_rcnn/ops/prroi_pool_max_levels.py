"""Precise RoI Pooling of every RoI on every pyramid level, merged by maximum.

``prroi_pool_max_levels(feats, rois, size, scales)`` equals
``reduce(torch.maximum, [prroi_pool(f, rois, size, s) for f, s in ...])``, computed
in one pass by the ``gan_mask_rcnn::prroi_pool_max_levels`` kernel (CPU and CUDA;
no per-level output is allocated). It keeps only the maximum (the output itself)
and, per output element, the index of the level it came from (one byte). The
backward routes the gradient to that level alone: the RoI-coordinate gradient
(``prroi_pool_max_levels_coor_backward``, one kernel for all levels) needs a
level's pooled values only where it won, i.e. where they are the output, so
nothing is recomputed, and each element costs one level's work. Autograd through
``torch.maximum`` would instead keep every level's output and every intermediate
maximum: for L levels about 2L - 1 tensors of the output's size, which dominated
the memory of GAN Mask R-CNN's discriminator inputs (28x28, 256 channels, every
positive RoI, four levels).

Ties (equal values on several levels, e.g. a RoI outside all maps) send the
gradient to the first of them; ``torch.maximum`` would split it.

On CPU the output is channels-last (``torch.channels_last``), the layout in which
the discriminators' convolutions are fastest there, written by the kernel itself;
on CUDA it is contiguous. The values do not depend on the layout. The CPU
kernels read channels-last levels in place (others are copied to that layout on
each call, forward and coordinate backward). ``GANRoIHead`` passes the detector's
levels as they are: a channels-last copy shared by its three calls would be saved
for the backward and held until then, whereas the detector keeps its levels anyway.
"""
from typing import Sequence, Union

import torch
from torch import Tensor

from . import _C  # noqa: F401  (registers torch.ops.gan_mask_rcnn.*)
from ._checks import (check_batch_index, check_inputs, check_output_size, fake_check_inputs,
                      fake_check_pooled)

_OPS = torch.ops.gan_mask_rcnn


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_max_levels')
def _prroi_pool_max_levels_fake(features, rois, pooled_height, pooled_width,
                                spatial_scales):
    _fake_check_levels(features, rois, pooled_height, pooled_width, spatial_scales)
    shape = (rois.shape[0], features[0].shape[1], pooled_height, pooled_width)
    fmt = torch.channels_last if features[0].device.type == 'cpu' else torch.contiguous_format
    return (torch.empty(shape, dtype=features[0].dtype, device=features[0].device,
                        memory_format=fmt),
            torch.empty(shape, dtype=torch.uint8, device=features[0].device,
                        memory_format=fmt))


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_max_levels_coor_backward')
def _prroi_pool_max_levels_coor_backward_fake(grad_output, output, level, features,
                                              rois, pooled_height, pooled_width,
                                              spatial_scales):
    _fake_check_levels(features, rois, pooled_height, pooled_width, spatial_scales)
    shape = (rois.shape[0], features[0].shape[1], pooled_height, pooled_width)
    for tensor, name in ((grad_output, 'grad_output'), (output, 'output')):
        fake_check_pooled(tensor, name, shape, features[0].dtype, features[0].device)
    fake_check_pooled(level, 'level', shape, torch.uint8, features[0].device)
    return rois.new_empty(rois.shape)


def _fake_check_levels(features, rois, pooled_height, pooled_width, spatial_scales):
    """The C++ ``prroi_check_levels`` for the fake kernels."""
    torch._check(1 <= len(features) <= 255,
                 lambda: f'prroi_pool_max_levels: need 1 to 255 levels, got {len(features)}')
    torch._check(len(features) == len(spatial_scales),
                 lambda: 'prroi_pool_max_levels: need one spatial scale per level, got '
                         f'{len(features)} levels and {len(spatial_scales)} scales')
    first = features[0]
    fake_check_inputs(first.shape, first.dtype, first.device, rois, pooled_height,
                      pooled_width)
    for f in features:
        torch._check(f.dim() == 4 and f.shape[:2] == first.shape[:2],
                     lambda: 'prroi_pool_max_levels: every level must be (N, C, H, W) with '
                             f'the (N, C) of the first, got {tuple(first.shape)} and '
                             f'{tuple(f.shape)}')
        torch._check(f.dtype == first.dtype and f.device == first.device,
                     lambda: f'prroi_pool_max_levels: every level must be {first.dtype} on '
                             f'{first.device}, got {f.dtype} on {f.device}')


def _setup_context(ctx, inputs, output):
    features, rois, pooled_height, pooled_width, spatial_scales = inputs
    out, level = output
    ctx.mark_non_differentiable(level)
    ctx.params = (pooled_height, pooled_width, list(spatial_scales))
    ctx.save_for_backward(rois, out, level, *features)


def _backward(ctx, grad_out, _grad_level):
    rois, out, level, *feats = ctx.saved_tensors
    h, w, scales = ctx.params
    grad_feats_needed, grad_rois_needed = ctx.needs_input_grad[:2]
    grad_rois = None
    if grad_rois_needed:
        grad_rois = _OPS.prroi_pool_max_levels_coor_backward(
            grad_out, out, level, feats, rois, h, w, scales)
    grad_feats = [
        _OPS.prroi_pool_backward(grad_out * (level == index), rois, feat.shape, h, w,
                                 scale) if needed else None
        for index, (feat, scale, needed) in enumerate(
            zip(feats, scales, grad_feats_needed))
    ]
    return grad_feats, grad_rois, None, None, None


torch.library.register_autograd('gan_mask_rcnn::prroi_pool_max_levels',
                                _backward,
                                setup_context=_setup_context)


def prroi_pool_max_levels(feats: Sequence[Tensor],
                          rois: Tensor,
                          output_size: Union[int, Sequence[int]],
                          spatial_scales: Sequence[float]) -> Tensor:
    """PrRoIPool of ``rois`` on each level of ``feats``, element-wise maximum.

    Args:
        feats (Sequence[Tensor]): Levels, each (N, C, H_l, W_l), one dtype and
            device.
        rois (Tensor): (K, 5) rows ``[batch_index, x1, y1, x2, y2]`` in input
            pixels, same dtype and device as ``feats``.
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scales (Sequence[float]): Feature pixels per input pixel, one per
            level (e.g. 1/4, 1/8, 1/16, 1/32).

    Returns:
        Tensor: (K, C, out_h, out_w) of the levels' dtype, channels-last on
        CPU. Differentiable with respect to ``rois`` and every level. Under
        ``torch.autocast`` computed in float32, as :func:`prroi_pool`.
    """
    if len(feats) == 0 or len(feats) != len(spatial_scales):
        raise ValueError(f'need one spatial scale per level, got {len(feats)} levels '
                         f'and {len(spatial_scales)} scales')
    if len(feats) > 255:
        raise ValueError(f'at most 255 levels, got {len(feats)}')
    size = check_output_size(output_size)
    for feat, scale in zip(feats, spatial_scales):
        check_inputs(feat, rois, scale)
        if feat.shape[:2] != feats[0].shape[:2]:
            raise ValueError('every level needs the same (N, C), got '
                             f'{tuple(feats[0].shape)} and {tuple(feat.shape)}')
    check_batch_index(rois, feats[0].shape[0])
    return _OPS.prroi_pool_max_levels(list(feats), rois, size[0], size[1],
                                      [float(s) for s in spatial_scales])[0]
