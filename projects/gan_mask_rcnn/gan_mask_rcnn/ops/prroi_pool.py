"""Precise RoI Pooling (PrRoIPool, Jiang et al., IoU-Net, ECCV 2018).

Each output bin is the exact integral of the bilinear surface through the
feature map's grid points (zero outside the map) over the bin, divided by the
bin's area (0 for an empty bin); the definition and call signature match
``mmcv.ops.PrRoIPool``, but the kernels run on CPU and CUDA, in float32 and
float64 (and float16/bfloat16 on CUDA), and the gradient with respect to the
RoI coordinates is always available.

Under ``torch.autocast`` (CUDA, or CPU with bfloat16) the op's Autocast kernel
computes in float32 from float32 RoIs, whatever the features' dtype, and returns
the features' dtype (torchvision's ``roi_align`` does the same): the boxes are
never rounded to 16 bits.

The ops are ``torch.ops.gan_mask_rcnn.prroi_pool`` (+ ``prroi_pool_backward``
and ``prroi_pool_coor_backward``), declared in C++ with ``TORCH_LIBRARY``; this
module adds their fake kernels and autograd formula, so they work with
``torch.compile(fullgraph=True)`` and pass ``torch.library.opcheck``.
"""
from typing import Sequence, Union

import torch
from torch import Tensor, nn

from . import _C  # noqa: F401  (registers torch.ops.gan_mask_rcnn.*)
from ._checks import (check_batch_index, check_inputs, check_output_size, fake_check_inputs,
                      fake_check_pooled)


@torch.library.register_fake('gan_mask_rcnn::prroi_pool')
def _prroi_pool_fake(features, rois, pooled_height, pooled_width,
                     spatial_scale):
    fake_check_inputs(features.shape, features.dtype, features.device, rois,
                      pooled_height, pooled_width)
    return features.new_empty(
        (rois.shape[0], features.shape[1], pooled_height, pooled_width))


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_backward')
def _prroi_pool_backward_fake(grad_output, rois, features_shape, pooled_height,
                              pooled_width, spatial_scale):
    fake_check_inputs(features_shape, grad_output.dtype, grad_output.device, rois,
                      pooled_height, pooled_width)
    fake_check_pooled(grad_output, 'grad_output',
                      (rois.shape[0], features_shape[1], pooled_height, pooled_width),
                      grad_output.dtype, grad_output.device)
    return grad_output.new_empty(features_shape)


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_coor_backward')
def _prroi_pool_coor_backward_fake(grad_output, output, features, rois,
                                   pooled_height, pooled_width, spatial_scale):
    fake_check_inputs(features.shape, features.dtype, features.device, rois,
                      pooled_height, pooled_width)
    shape = (rois.shape[0], features.shape[1], pooled_height, pooled_width)
    fake_check_pooled(grad_output, 'grad_output', shape, features.dtype, features.device)
    fake_check_pooled(output, 'output', shape, features.dtype, features.device)
    return rois.new_empty(rois.shape)


def _setup_context(ctx, inputs, output):
    features, rois, pooled_height, pooled_width, spatial_scale = inputs
    ctx.params = (pooled_height, pooled_width, spatial_scale)
    ctx.features_shape = features.shape
    if ctx.needs_input_grad[1]:
        ctx.save_for_backward(features, rois, output)
    else:
        ctx.save_for_backward(None, rois, None)


def _backward(ctx, grad_output):
    features, rois, output = ctx.saved_tensors
    grad_features = grad_rois = None
    if ctx.needs_input_grad[0]:
        grad_features = torch.ops.gan_mask_rcnn.prroi_pool_backward(
            grad_output, rois, ctx.features_shape, *ctx.params)
    if ctx.needs_input_grad[1]:
        grad_rois = torch.ops.gan_mask_rcnn.prroi_pool_coor_backward(
            grad_output, output, features, rois, *ctx.params)
    return grad_features, grad_rois, None, None, None


torch.library.register_autograd('gan_mask_rcnn::prroi_pool',
                                _backward,
                                setup_context=_setup_context)


def prroi_pool(features: Tensor,
               rois: Tensor,
               output_size: Union[int, Sequence[int]],
               spatial_scale: float = 1.0) -> Tensor:
    """Precise RoI Pooling.

    Args:
        features (Tensor): Feature map, (N, C, H, W).
        rois (Tensor): (K, 5) rows ``[batch_index, x1, y1, x2, y2]`` in
            input-image pixels; ``spatial_scale`` maps them onto the feature
            map. Same dtype and device as ``features`` (under autocast, any
            of float16/bfloat16/float32: both are computed in float32). A RoI
            with a non-finite coordinate pools to NaN.
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scale (float): Feature-map pixels per input pixel
            (e.g. 0.25 for stride 4). Defaults to 1.0.

    Returns:
        Tensor: (K, C, out_h, out_w) of the features' dtype, the average of
        the bilinear surface of ``features`` over each bin. Differentiable with respect to
        ``features`` and ``rois`` (the batch-index column gets 0).
    """
    pooled_height, pooled_width = check_output_size(output_size)
    check_inputs(features, rois, spatial_scale)
    check_batch_index(rois, features.shape[0])
    spatial_scale = float(spatial_scale)
    return torch.ops.gan_mask_rcnn.prroi_pool(features, rois, pooled_height,
                                              pooled_width, spatial_scale)


class PrRoIPool(nn.Module):
    """Module form of :func:`prroi_pool`, with mmcv's signature.

    Args:
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scale (float): Feature-map pixels per input pixel.
            Defaults to 1.0.
    """

    def __init__(self,
                 output_size: Union[int, Sequence[int]],
                 spatial_scale: float = 1.0):
        super().__init__()
        self.output_size = check_output_size(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        """Pools (N, C, H, W) features over (K, 5) rois -> (K, C, h, w)."""
        return prroi_pool(features, rois, self.output_size, self.spatial_scale)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale})')
