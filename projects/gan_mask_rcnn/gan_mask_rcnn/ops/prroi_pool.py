"""Precise RoI Pooling (PrRoIPool, Jiang et al., IoU-Net, ECCV 2018).

Each output bin is the exact integral of the bilinear surface through the
feature map's grid points (zero outside the map) over the bin, divided by the
bin's area (0 for an empty bin); the definition and call signature match
``mmcv.ops.PrRoIPool``, but the kernels run on CPU and CUDA, in float32 and
float64 (and float16/bfloat16 on CUDA), and the gradient with respect to the
RoI coordinates is always available.

The ops are ``torch.ops.gan_mask_rcnn.prroi_pool`` (+ ``prroi_pool_backward``
and ``prroi_pool_coor_backward``), declared in C++ with ``TORCH_LIBRARY``; this
module adds their fake kernels and autograd formula, so they work with
``torch.compile(fullgraph=True)`` and pass ``torch.library.opcheck``.
"""
import math
from typing import Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from . import _C  # noqa: F401  (registers torch.ops.gan_mask_rcnn.*)

_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = _CPU_DTYPES + (torch.float16, torch.bfloat16)


@torch.library.register_fake('gan_mask_rcnn::prroi_pool')
def _prroi_pool_fake(features, rois, pooled_height, pooled_width,
                     spatial_scale):
    return features.new_empty(
        (rois.shape[0], features.shape[1], pooled_height, pooled_width))


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_backward')
def _prroi_pool_backward_fake(grad_output, rois, features_shape, pooled_height,
                              pooled_width, spatial_scale):
    return grad_output.new_empty(features_shape)


@torch.library.register_fake('gan_mask_rcnn::prroi_pool_coor_backward')
def _prroi_pool_coor_backward_fake(grad_output, output, features, rois,
                                   pooled_height, pooled_width, spatial_scale):
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


def _check_output_size(output_size) -> Tuple[int, int]:
    if isinstance(output_size, int):
        size = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)):
        size = tuple(output_size)
    else:
        size = ()
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f'output_size must be a positive int or (h, w), got {output_size}')
    return size


def _check_inputs(features: Tensor, rois: Tensor, spatial_scale: float):
    if features.dim() != 4:
        raise ValueError('features must be (N, C, H, W), got shape '
                         f'{tuple(features.shape)}')
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f'rois must be (K, 5), got shape {tuple(rois.shape)}')
    if features.device != rois.device:
        raise ValueError('features and rois must be on one device, got '
                         f'{features.device} and {rois.device}')
    if features.dtype != rois.dtype:
        raise ValueError('features and rois must have one dtype, got '
                         f'{features.dtype} and {rois.dtype}')
    dtypes = _CUDA_DTYPES if features.is_cuda else _CPU_DTYPES
    if features.dtype not in dtypes:
        raise ValueError(f'features dtype must be one of {dtypes} on '
                         f'{features.device.type}, got {features.dtype}')
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ValueError(
            f'spatial_scale must be positive and finite, got {spatial_scale}')


def prroi_pool(features: Tensor,
               rois: Tensor,
               output_size: Union[int, Sequence[int]],
               spatial_scale: float = 1.0) -> Tensor:
    """Precise RoI Pooling.

    Args:
        features (Tensor): Feature map, (N, C, H, W).
        rois (Tensor): (K, 5) rows ``[batch_index, x1, y1, x2, y2]`` in
            input-image pixels; ``spatial_scale`` maps them onto the feature
            map. Same dtype and device as ``features``. A RoI with a
            non-finite coordinate pools to NaN.
        output_size (int | tuple[int, int]): (out_h, out_w) bins.
        spatial_scale (float): Feature-map pixels per input pixel
            (e.g. 0.25 for stride 4). Defaults to 1.0.

    Returns:
        Tensor: (K, C, out_h, out_w), the average of the bilinear surface of
        ``features`` over each bin. Differentiable with respect to
        ``features`` and ``rois`` (the batch-index column gets 0).
    """
    pooled_height, pooled_width = _check_output_size(output_size)
    spatial_scale = float(spatial_scale)
    _check_inputs(features, rois, spatial_scale)
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
        self.output_size = _check_output_size(output_size)
        self.spatial_scale = float(spatial_scale)

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        """Pools (N, C, H, W) features over (K, 5) rois -> (K, C, h, w)."""
        return prroi_pool(features, rois, self.output_size, self.spatial_scale)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(output_size={self.output_size}, '
                f'spatial_scale={self.spatial_scale})')
