"""Pieces shared by the box and the mask discriminator: the conv stack, the input
check, and a masked convolution that keeps no product for backward.

Both discriminators of GAN Mask R-CNN (thesis section 3.2) are five 3x3 conv layers,
each followed by BatchNorm and LeakyReLU, applied to 28x28 RoI features.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn

from mmdet.utils import ConfigType


def conv_output_size(size: int, stride: int) -> int:
    """Side of the output of a 3x3 conv with padding 1 and ``stride``."""
    return (size - 1) // stride + 1


def build_conv_stack(in_channels: int, roi_size: int, channels: Sequence[int],
                     strides: Sequence[int], norm_cfg: ConfigType,
                     act_cfg: ConfigType) -> nn.ModuleList:
    """Build the 3x3 conv + norm + activation layers of a discriminator.

    Args:
        in_channels (int): Channels of the input features.
        roi_size (int): Side of the square input, in pixels of the pooled grid.
        channels (Sequence[int]): Output channels of each layer.
        strides (Sequence[int]): Stride of each layer (same length as ``channels``).
        norm_cfg (dict): Norm layer config, e.g. ``dict(type='BN')``.
        act_cfg (dict): Activation config, e.g. ``dict(type='LeakyReLU')``.

    Returns:
        nn.ModuleList: One ``ConvModule`` per layer.
    """
    if len(channels) != len(strides) or not channels:
        raise ValueError('channels and strides must be non-empty and of equal length, '
                         f'got channels={tuple(channels)}, strides={tuple(strides)}')
    if any(s < 1 for s in strides) or any(c < 1 for c in channels):
        raise ValueError(f'channels and strides must be positive, got channels='
                         f'{tuple(channels)}, strides={tuple(strides)}')
    if roi_size < 1:
        raise ValueError(f'roi_size must be >= 1, got {roi_size}')
    layers = nn.ModuleList()
    for out_channels, stride in zip(channels, strides):
        layers.append(ConvModule(in_channels, out_channels, 3, stride=stride, padding=1,
                                 norm_cfg=norm_cfg, act_cfg=act_cfg))
        in_channels = out_channels
    return layers


def check_roi_features(x: Tensor, in_channels: int, roi_size: int, name: str) -> None:
    """Raise a ``ValueError`` unless ``x`` is ``(N, in_channels, roi_size, roi_size)``."""
    expected = (in_channels, roi_size, roi_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f'{name} input must be (N, {in_channels}, {roi_size}, '
                         f'{roi_size}), got {tuple(x.shape)}')


class _MaskedConv2d(torch.autograd.Function):
    """``conv2d(mask * feats, weight, bias)`` that keeps the (N, C, S, S) product
    for backward only when the weight gradient needs it (the critic's own step),
    not when only the mask's does (the generator's step, critic frozen): there
    ``feats`` and ``mask`` suffice. ``feats`` gets no gradient."""

    @staticmethod
    def forward(ctx, feats: Tensor, mask: Tensor, weight: Tensor,
                bias: Optional[Tensor], stride, padding, dilation, groups) -> Tensor:
        ctx.conv_args = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        product = mask * feats
        ctx.save_for_backward(feats, mask, weight,
                              product if ctx.needs_input_grad[2] else None)
        return F.conv2d(product, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        feats, mask, weight, product = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        need_mask, need_weight = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        need_bias = ctx.has_bias and ctx.needs_input_grad[3]
        # the input's value matters for the weight gradient only; else its shape.
        # Under autocast the forward ran in grad_out's dtype: compute in it.
        dtype = grad_out.dtype
        conv_input = (product if need_weight else feats).to(dtype)
        grad_in, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, conv_input, weight.to(dtype),
            [weight.shape[0]] if ctx.has_bias else None, stride, padding, dilation,
            False, [0, 0], groups, [need_mask, need_weight, need_bias])
        grad_mask = ((grad_in * feats.to(dtype)).sum(1, keepdim=True).to(mask.dtype)
                     if need_mask else None)
        if need_weight:
            grad_weight = grad_weight.to(weight.dtype)
        if need_bias:
            grad_bias = grad_bias.to(weight.dtype)
        return (None, grad_mask, grad_weight, grad_bias if need_bias else None,
                None, None, None, None)


def masked_conv(conv: nn.Conv2d, feats: Tensor, mask: Tensor) -> Tensor:
    """``conv(mask * feats)`` without keeping the product for backward.

    Args:
        conv (nn.Conv2d): The convolution (its weight and bias are used).
        feats (Tensor): (N, C, H, W) features; not differentiated.
        mask (Tensor): (N, 1, H, W) mask, broadcast over the channels.

    Returns:
        Tensor: ``conv(mask * feats)``, differentiable in ``mask`` and the
        conv's parameters.
    """
    if feats.requires_grad:
        raise ValueError('masked_conv does not differentiate feats: detach them')
    if isinstance(conv.padding, str):
        raise ValueError(f'masked_conv needs numeric padding, got {conv.padding!r}')
    return _MaskedConv2d.apply(feats, mask, conv.weight, conv.bias, conv.stride,
                               conv.padding, conv.dilation, conv.groups)
